"""DARTS and DARTS-PRIME (seed 001 section 5) on a supernet of fully connected cells.

Supernet: a linear stem to width D, then `cells` cells sharing one architecture alpha. A cell takes the outputs of
the two previous cells (each through its own linear preprocessing to D), computes `nodes` intermediate states,
each the sum over every earlier state j of the mixed edge sum_p softmax(alpha_ij)_p op_p(s_j), and outputs the
concatenation of its intermediate states. Operators: linear+ReLU, linear+tanh, skip, zero and the oscillator
layer of dgnn.learn (a D-unit oscillator layer settled from the clamped inputs, read out linearly from
[cos theta, sin theta]).

Search: first-order bilevel alternation, w on the search-train split and alpha on the search-validation split,
with the w:alpha split fixed by the schedule (50/50 when alternating, r/(r+1) otherwise, as section 5.3.3 says).
Schedules: 'alternate' (DARTS: one alpha step per w step), 'constant' (CS10: one alpha step after every r w
steps), 'fimt' (Algorithm 3). Proximity regularisation (eq. 20): c rho / 2 ||softmax(alpha) - Pi_S(alpha)||_2 on
the alpha step, c rising linearly from 0 to 1 over the search. DARTS-PRIME = fimt + proximity.
Discretisation (eqs. 13-16): for each intermediate state, the two strongest non-zero operators from distinct
sources. The found cell is then retrained from scratch (the evaluation network) and reported.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..errors import ConfigError
from ..learn.config import ModelConfig, TrainConfig
from ..learn.data import Dataset
from ..learn.models import OscillatorNet, Readout
from ..learn.train import train
from ..progress import Progress
from ..learn.strategy import Budget, Clock, StrategyResult, finish
from .strategy import register_strategy, register_variant

OPS = ("linear_relu", "linear_tanh", "skip", "zero", "oscillator")


class Op(nn.Module):
    """One candidate operation D -> D."""

    def __init__(self, kind: str, width: int, gen: torch.Generator, osc: ModelConfig):
        super().__init__()
        self.kind = kind
        if kind in ("linear_relu", "linear_tanh"):
            bound = 1.0 / math.sqrt(width)
            self.weight = nn.Parameter((torch.rand(width, width, generator=gen) * 2 - 1) * bound)
            self.bias = nn.Parameter(torch.zeros(width))
        elif kind == "oscillator":
            self.net = OscillatorNet(width, width, osc, gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "skip":
            return x
        if self.kind == "zero":
            return torch.zeros_like(x)
        if self.kind == "oscillator":
            return self.net(x)[0]
        z = x @ self.weight.T + self.bias
        return torch.relu(z) if self.kind == "linear_relu" else torch.tanh(z)

    def macs(self) -> tuple[float, float]:
        """(MACs, transcendentals) per sample."""
        if self.kind in ("skip", "zero"):
            return 0.0, 0.0
        if self.kind == "oscillator":
            c = self.net.macs()
            return c["macs"], c["transcendentals"]
        return float(self.weight.numel()), float(self.weight.shape[0]) if self.kind == "linear_tanh" else 0.0


def edges_of(nodes: int) -> list[tuple[int, int]]:
    """(node, source) for every edge of a cell: node i (0-based) reads states 0 .. i + 1 (two cell inputs first)."""
    return [(i, j) for i in range(nodes) for j in range(i + 2)]


class MixedNode(nn.Module):
    """One intermediate state of the supernet cell: sum over its J sources j and operators p of
    softmax(alpha)_jp op_jp(s_j). Each operator's J copies are stacked, so a node costs one batched call per
    operator (baddbmm for the linear ones, vmap over the oscillator layers) instead of J; built from per-edge `Op`s,
    it computes exactly what they would."""

    def __init__(self, edge_ops: list[list[Op]]):
        super().__init__()
        self.kinds = [op.kind for op in edge_ops[0]]
        self.weight, self.bias, self.osc = nn.ParameterDict(), nn.ParameterDict(), nn.ParameterDict()
        cost = [0.0, 0.0]
        for p, kind in enumerate(self.kinds):
            ops = [edge[p] for edge in edge_ops]  # (J,) copies of operator p
            for op in ops:
                m, t = op.macs()
                cost[0], cost[1] = cost[0] + m, cost[1] + t
            if kind in ("linear_relu", "linear_tanh"):
                self.weight[kind] = nn.Parameter(torch.stack([op.weight.detach() for op in ops]))  # (J, D, D)
                self.bias[kind] = nn.Parameter(torch.stack([op.bias.detach() for op in ops]))  # (J, D)
            elif kind == "oscillator":
                params, buffers = stack_module_state([op.net for op in ops])
                if buffers:
                    raise ValueError("MixedNode: oscillator layers with buffers are not supported")
                self._names = list(params)
                for k, v in params.items():
                    self.osc[k.replace(".", "__")] = nn.Parameter(v.detach().clone())
                self._template = [copy.deepcopy(ops[0].net).to("meta")]  # a list: not a registered submodule
        self._cost = tuple(cost)

    def _oscillators(self, s: torch.Tensor) -> torch.Tensor:
        """(J, B, D) -> (J, B, D): each source through its own oscillator layer."""
        params = {k: self.osc[k.replace(".", "__")] for k in self._names}
        net = self._template[0]
        return vmap(lambda p, x: functional_call(net, p, (x,))[0])(params, s)

    def forward(self, states: list[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
        """states: the J sources, (B, D) each; w (J, P) operator weights -> (B, D)."""
        s = torch.stack(states)  # (J, B, D)
        total = torch.zeros_like(states[0])
        for p, kind in enumerate(self.kinds):
            if kind == "zero":
                continue
            if kind == "skip":
                out = s
            elif kind == "oscillator":
                out = self._oscillators(s)
            else:
                z = torch.baddbmm(self.bias[kind][:, None, :], s, self.weight[kind].transpose(1, 2))  # (J, B, D)
                out = torch.relu(z) if kind == "linear_relu" else torch.tanh(z)
            total = total + (w[:, p, None, None] * out).sum(0)
        return total

    def macs(self) -> tuple[float, float]:
        """(MACs, transcendentals) per sample over every operator of every source."""
        return self._cost


class Cell(nn.Module):
    """A cell; `genotype` None = the mixed supernet cell, else a list of (node, source, op) edges."""

    def __init__(self, c_pp: int, c_p: int, width: int, nodes: int, ops: tuple[str, ...], gen, osc,
                 genotype: list[tuple[int, int, str]] | None = None):
        super().__init__()
        self.nodes, self.ops = nodes, ops
        self.pre0 = nn.Linear(c_pp, width)
        self.pre1 = nn.Linear(c_p, width)
        for lin in (self.pre0, self.pre1):
            bound = 1.0 / math.sqrt(lin.in_features)
            with torch.no_grad():
                lin.weight.copy_((torch.rand(lin.weight.shape, generator=gen) * 2 - 1) * bound)
                lin.bias.zero_()
        self.genotype = genotype
        if genotype is None:
            self.edges = edges_of(nodes)
            edge_ops = [[Op(o, width, gen, osc) for o in ops] for _ in self.edges]
            self.mixed = nn.ModuleList([MixedNode([edge_ops[e] for e, (ii, _) in enumerate(self.edges) if ii == i])
                                        for i in range(nodes)])
        else:
            self.edges = [(i, j) for i, j, _ in genotype]
            self.single = nn.ModuleList([Op(o, width, gen, osc) for _, _, o in genotype])

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor | None = None):
        states = [self.pre0(s0), self.pre1(s1)]  # (B, D) each
        first = 0
        for i in range(self.nodes):  # edges are ordered by node, so node i's sources all exist here
            if self.genotype is None:
                states.append(self.mixed[i](states[:i + 2], weights[first:first + i + 2]))
                first += i + 2
                continue
            total = torch.zeros_like(states[0])
            for e, (node, j) in enumerate(self.edges):
                if node == i:
                    total = total + self.single[e](states[j])
            states.append(total)
        return torch.cat(states[2:], dim=1)  # (B, nodes D)


class CellNet(nn.Module):
    """Stem -> cells -> readout; the supernet when genotype is None (then alpha is a parameter)."""

    def __init__(self, n_in: int, n_out: int, width: int, cells: int, nodes: int, ops: tuple[str, ...],
                 gen: torch.Generator, osc: ModelConfig, genotype=None):
        super().__init__()
        self.kind = "cellnet"
        self.stem = nn.Linear(n_in, width)
        with torch.no_grad():
            bound = 1.0 / math.sqrt(n_in)
            self.stem.weight.copy_((torch.rand(width, n_in, generator=gen) * 2 - 1) * bound)
            self.stem.bias.zero_()
        layers, c_pp, c_p = [], width, width
        for _ in range(cells):
            layers.append(Cell(c_pp, c_p, width, nodes, ops, gen, osc, genotype))
            c_pp, c_p = c_p, nodes * width
        self.cells = nn.ModuleList(layers)
        self.readout = Readout(c_p, n_out, gen, torch.float32)
        self.ops = ops
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(edges_of(nodes)), len(ops), generator=gen)) if genotype is None else None

    def weights_w(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n != "alpha"]

    def forward(self, x: torch.Tensor):
        w = torch.softmax(self.alpha, dim=-1) if self.alpha is not None else None
        s0 = s1 = self.stem(x)
        acts = []
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w)
            acts.append(s1)
        return self.readout(s1), acts

    def macs(self) -> dict[str, float]:
        mac = float(self.stem.weight.numel() + self.readout.weight.numel())
        trans = 0.0
        for cell in self.cells:
            mac += cell.pre0.weight.numel() + cell.pre1.weight.numel()
            ops = list(cell.mixed) if cell.genotype is None else list(cell.single)
            for op in ops:
                m, t = op.macs()
                mac, trans = mac + m, trans + t
        return {"macs": mac, "transcendentals": trans}


# -------------------------------------------------------------------------------------------- discretisation
def discretize(alpha: torch.Tensor, nodes: int, ops: tuple[str, ...]) -> list[tuple[int, int, str]]:
    """Pi_S (eqs. 13-16): per intermediate state, the two strongest non-zero operators from distinct sources
    (each source's best non-zero operator by softmax weight; then the two best sources)."""
    w = torch.softmax(alpha.detach(), dim=-1)
    allowed = torch.tensor([o != "zero" for o in ops])
    out = []
    edges = edges_of(nodes)
    for i in range(nodes):
        rows = [(e, j) for e, (ii, j) in enumerate(edges) if ii == i]
        best = []
        for e, j in rows:
            v = torch.where(allowed, w[e], torch.full_like(w[e], -1.0))
            p = int(v.argmax())
            best.append((float(v[p]), j, ops[p]))
        best.sort(key=lambda t: (-t[0], t[1]))
        out += [(i, j, op) for _, j, op in sorted(best[:2], key=lambda t: t[1])]
    return out


def projection(alpha: torch.Tensor, genotype, nodes: int, ops: tuple[str, ...]) -> torch.Tensor:
    """The discrete encoding Pi_S(alpha) as a 0/1 matrix over (edge, operator)."""
    p = torch.zeros_like(alpha)
    index = {e: k for k, e in enumerate(edges_of(nodes))}
    for i, j, op in genotype:
        p[index[(i, j)], ops.index(op)] = 1.0
    return p


# ---------------------------------------------------------------------------------------------------- schedules
class Schedule:
    """Decides after each w step whether an alpha step follows."""

    def __init__(self, kind: str, ratio: int = 10, h0: float = 1.0, h_inc: float = 1.05, lam: float = 0.2):
        if kind not in ("alternate", "constant", "fimt"):
            raise ConfigError(f"strategy darts.schedule: expected alternate, constant or fimt, found {kind!r}")
        self.kind, self.r, self.h, self.h_inc, self.lam = kind, ratio, h0, h_inc, lam
        self.h_dec = math.exp(-ratio * math.log(h_inc))  # Algorithm 3, line 1
        self.fimt, self.n = None, 0

    def split(self) -> float:
        """Fraction of the training split given to w (the rest is alpha's validation split)."""
        return 0.5 if self.kind == "alternate" else self.r / (self.r + 1.0)

    def step(self, grad_sq: float) -> bool:
        """grad_sq = tr(G G^T) = ||dL_train / dw||^2 of the w step just taken; True = take an alpha step now."""
        self.n += 1
        if self.kind == "alternate":
            return True
        if self.kind == "constant":
            return self.n % self.r == 0
        self.fimt = grad_sq if self.fimt is None else self.lam * grad_sq + (1 - self.lam) * self.fimt  # eq. (19)
        if self.fimt < self.h:
            self.h *= self.h_dec
            return True
        self.h *= self.h_inc
        return False


# ----------------------------------------------------------------------------------------------------- strategy
@register_strategy("darts")
class Darts:
    """Supernet search then retraining of the discretised cell; one step = one w minibatch of the search."""

    def __init__(self, schedule: str = "alternate", ratio: int = 10, rho: float = 0.0, width: int = 32,
                 cells: int = 2, nodes: int = 3, ops: list[str] = OPS, lr: float = 3e-3, arch_lr: float = 3e-3,
                 arch_weight_decay: float = 1e-3, batch: int = 64, h0: float = 1.0, h_inc: float = 1.05,
                 fimt_lambda: float = 0.2, retrain_epochs: int = 60, retrain_seeds: int = 1, settle_time: float = 2.0,
                 osc_dt: float = 0.5):
        bad = sorted(set(ops) - set(OPS))
        if bad or len(set(ops)) != len(ops):
            raise ConfigError(f"strategy darts.ops: unknown or repeated operator(s) {bad or list(ops)}; valid: {', '.join(OPS)}")
        if ratio < 1 or nodes < 1 or cells < 1 or width < 1 or retrain_seeds < 1:
            raise ConfigError("strategy darts: ratio, nodes, cells, width and retrain_seeds must be >= 1")
        Schedule(schedule, ratio)  # validates the name
        self.schedule, self.ratio, self.rho, self.width, self.cells, self.nodes = schedule, ratio, rho, width, cells, nodes
        self.ops = tuple(ops)
        self.lr, self.arch_lr, self.arch_wd, self.batch = lr, arch_lr, arch_weight_decay, batch
        self.h0, self.h_inc, self.fimt_lambda, self.retrain_epochs = h0, h_inc, fimt_lambda, retrain_epochs
        self.retrain_seeds = retrain_seeds
        self.osc = ModelConfig(kind="oscillator", hidden=[width], settle_time=settle_time, dt=osc_dt)

    def search(self, data: Dataset, budget: Budget, seed: int, progress: bool = False):
        """The supernet search: returns (genotype, supernet, history, clock)."""
        gen = torch.Generator().manual_seed(int(seed) + 9973)
        sched = Schedule(self.schedule, self.ratio, self.h0, self.h_inc, self.fimt_lambda)
        x, y = torch.as_tensor(data.x_train, dtype=torch.float32), torch.as_tensor(data.y_train)
        order = torch.randperm(len(y), generator=gen)
        cut = int(round(sched.split() * len(y)))
        tr, va = order[:cut], order[cut:]
        net = CellNet(data.n_features, data.n_classes, self.width, self.cells, self.nodes, self.ops, gen, self.osc)
        opt_w = torch.optim.Adam(net.weights_w(), lr=self.lr)
        opt_a = torch.optim.Adam([net.alpha], lr=self.arch_lr, betas=(0.5, 0.999), weight_decay=self.arch_wd)
        clock = Clock(budget)
        total = budget.steps or None
        hist = {"loss": [], "val_loss": [], "alpha_step": [], "fimt": [], "alpha": []}
        bar = Progress(total=total, enabled=progress, unit="step", desc=f"darts/{self.schedule}")
        pt, pv = len(tr), len(va)
        t0 = clock.seconds
        while not clock.done():
            if pt + self.batch > len(tr):
                tr, pt = tr[torch.randperm(len(tr), generator=gen)], 0
            idx = tr[pt:pt + self.batch]
            pt += self.batch
            loss = nn.functional.cross_entropy(net(x[idx])[0], y[idx])
            opt_w.zero_grad()
            net.alpha.grad = None
            loss.backward()
            grad_sq = float(sum((p.grad ** 2).sum() for p in net.weights_w() if p.grad is not None))
            opt_w.step()
            do_alpha = sched.step(grad_sq)
            vloss = float("nan")
            if do_alpha:
                if pv + self.batch > len(va):
                    va, pv = va[torch.randperm(len(va), generator=gen)], 0
                vidx = va[pv:pv + self.batch]
                pv += self.batch
                obj = nn.functional.cross_entropy(net(x[vidx])[0], y[vidx])
                vloss = float(obj.detach())
                if self.rho:
                    c = self._progress(clock, budget, t0)
                    geno = discretize(net.alpha, self.nodes, self.ops)
                    target = projection(net.alpha, geno, self.nodes, self.ops)
                    obj = obj + c * self.rho / 2 * torch.linalg.norm(torch.softmax(net.alpha, -1) - target)
                opt_a.zero_grad()
                opt_w.zero_grad()
                obj.backward()
                opt_a.step()
            hist["loss"].append(float(loss.detach()))
            hist["val_loss"].append(vloss)
            hist["alpha_step"].append(do_alpha)
            hist["fimt"].append(sched.fimt if sched.fimt is not None else grad_sq)
            hist["alpha"].append(torch.softmax(net.alpha.detach(), -1).numpy().copy())
            clock.tick()
            bar.update(1)
        bar.close()
        return discretize(net.alpha, self.nodes, self.ops), net, hist, clock

    @staticmethod
    def _progress(clock: Clock, budget: Budget, t0: float) -> float:
        """c of eq. (20): the fraction of the search budget spent (steps or seconds, whichever is further)."""
        fr = [clock.steps / budget.steps] if budget.steps else []
        if budget.seconds:
            fr.append((clock.seconds - t0) / budget.seconds)
        return min(1.0, max(fr)) if fr else 0.0

    def retrain(self, genotype, data: Dataset, seed: int, clock: Clock | None = None, history: dict | None = None,
                progress: bool = False, first: int = 0) -> tuple[list[StrategyResult], list[int]]:
        """The evaluation of a cell: `genotype` retrained from scratch, retrains first .. retrain_seeds - 1 (retrain
        r seeded from seed + 7919 r, so each is the same whichever call runs it; retrain 0 is a single-retrain
        fit's), each tested; (results, epochs trained)."""
        clock = clock if clock is not None else Clock(Budget(steps=1))
        runs, epochs = [], []
        for r in range(first, self.retrain_seeds):
            gen = torch.Generator().manual_seed(int(seed) + 31337 + 7919 * r)
            net = CellNet(data.n_features, data.n_classes, self.width, self.cells, self.nodes, self.ops, gen, self.osc,
                          genotype)
            res = train(net, data, TrainConfig(lr=self.lr, batch_size=self.batch, epochs=self.retrain_epochs,
                                               patience=15), seed=int(seed) + 7919 * r, progress=progress)
            runs.append(finish(res.model, data, clock, history if history is not None else {}))
            epochs.append(res.epochs)
        return runs, epochs

    def fit(self, data: Dataset, budget: Budget, seed: int, progress: bool = False) -> StrategyResult:
        """Search, then retrain the discretised cell from scratch `retrain_seeds` times; the metrics are the means
        over the retrains (the model returned is the first), which separates the cell's quality from one
        training run's luck."""
        genotype, _, hist, clock = self.search(data, budget, seed, progress)
        hist["genotype"] = genotype_labels(genotype)
        runs, epochs = self.retrain(genotype, data, seed, clock, hist, progress)
        out = runs[0]
        out.history["retrain_accuracy"] = np.array([run.metrics["accuracy"] for run in runs])
        for k, v in out.metrics.items():
            vals = [run.metrics[k] for run in runs]
            if isinstance(v, (int, float)) and not isinstance(v, bool) and len(set(vals)) > 1:
                out.metrics[k] = float(np.mean(vals))
        ops = [op for _, _, op in genotype]
        final = hist["alpha"][-1]  # (edges, ops) softmax at the end of the search
        out.metrics.update({"skip_share": ops.count("skip") / len(ops), "alpha_steps": int(np.sum(hist["alpha_step"])),
                            "alpha_spread": float((final.max(1) - final.min(1)).mean()),  # 0 = still uniform
                            "retrain_epochs": float(np.mean(epochs)) if len(epochs) > 1 else epochs[0]})
        return out


def genotype_labels(genotype) -> np.ndarray:
    """The genotype as the history stores it: one 'node<-source:op' byte string per edge."""
    return np.array([f"{i}<-{j}:{op}" for i, j, op in genotype], dtype="S")


def parse_genotype(labels) -> list[tuple[int, int, str]]:
    """Inverse of genotype_labels (bytes or str)."""
    out = []
    for lab in labels:
        lab = lab.decode() if isinstance(lab, bytes) else str(lab)
        edge, op = lab.split(":")
        i, j = edge.split("<-")
        out.append((int(i), int(j), op))
    return out


DartsCS10 = register_variant(Darts, "darts_cs10", "DARTS with the constant schedule: one alpha step per 10 w steps.",
                             schedule="constant")
DartsFIMT = register_variant(Darts, "darts_fimt", "DARTS with the dynamic FIMT schedule (Algorithm 3) only.",
                             schedule="fimt")
DartsPR = register_variant(Darts, "darts_pr", "DARTS with proximity regularisation (eq. 20) only.", rho=0.1)
DartsPrime = register_variant(Darts, "darts_prime", "DARTS-PRIME: FIMT schedule + proximity regularisation.",
                              schedule="fimt", rho=0.1)
