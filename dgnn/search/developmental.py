"""The developmental strategy: seed 000's biological NAS. A phase-based oscillator net starts small (`start` units
per hidden layer) and grows and prunes while it trains (Adam on minibatches), through the simulator's structural
operators read on a trained net and paid from its glial energy budget.

Every `every` steps, on the settled phases theta of an input buffer (n recent training inputs), each hidden layer
(M units) is first pruned, then grown:

    removal      dormant units (outgoing coupling norm <= dormant x the layer's mean) first, then redundant ones:
                 pairs locked over the buffer, PLV_ab = |mean e^{i (theta_a - theta_b)}| > redundancy; the victim
                 (the one with the smaller outgoing norm) has its outgoing couplings folded into its mate, rotated
                 by their mean phase difference, and is removed (the simulator's neuron removal)
    growth       trigger 'ratio' (the simulator's neurogenesis): D / (2 M) > threshold, with D the effective
                 dimension of the layer's centred activity [cos theta, sin theta] (n, 2 M): the participation ratio
                 ('pr', as the simulator) or the eps-rank of (1 / sqrt n) X ('rank', NORTH*'s eq. 27); the layer
                 asks for ceil(D / (2 threshold)) - M units, the smallest size at which the ratio is at the threshold.
                 Trigger 'north': NORTH*'s eq. 28 on phi = D / (2 M) against its value at the start of training.
                 New units listen (incoming couplings: 'select' keeps, of candidates x k random ones, the k that each
                 maximise the layer's participation ratio, NORTH-Select; or 'random'; scaled to the layer's mean norm)
                 and send nothing (zero outgoing couplings): every output is unchanged at insertion
    budget       dgnn.search.gate.EnergyGate: one glial domain per layer with round(glia_ratio x M) glial cells (updated
                 as the layer changes), its reserve advanced every step by the simulator's Metabolism with the units'
                 coupling load and RMS phase activity; a unit costs grow_cost and is added only if its layer's
                 reserve stays at or above floor; removals cost prune_cost and refund prune_refund, all in the ledger
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ..config import MetabolismConfig, config_from_dict
from ..errors import ConfigError
from ..learn.config import ModelConfig
from ..learn.data import Dataset
from ..learn.strategy import Budget, Clock, StrategyResult
from ..progress import Progress
from .gate import EnergyGate, GateConfig
from .growing import InputBuffer, Minibatches, finish_growth, singular_values, train_step
from .growing_oscillator import GrowingOscillatorNet
from .north import growth_count
from .strategy import register_strategy

NETS = {"oscillator": GrowingOscillatorNet}  # growing nets by kind (a glial kind registers its own)


# ------------------------------------------------------------------------------------------------------ metrics
def activity(theta: torch.Tensor) -> torch.Tensor:
    """Centred [cos theta, sin theta] (n, 2 M) of phases (n, M), float64."""
    t = theta.double()
    x = torch.cat([torch.cos(t), torch.sin(t)], 1)
    return x - x.mean(0)


def participation_ratio(x: torch.Tensor) -> float:
    """(tr C)^2 / tr(C^2) of the covariance C of centred features x (n, F): the simulator's effective dimension."""
    c = x.T @ x / x.shape[0]  # (F, F)
    tr = float(torch.trace(c))
    return tr * tr / float((c * c).sum()) if tr > 0 else 0.0


def dimension(theta: torch.Tensor, metric: str, eps: float) -> float:
    """Effective dimension D of a layer's activity: participation ratio ('pr') or eps-rank ('rank')."""
    x = activity(theta)
    if metric == "pr":
        return participation_ratio(x)
    return float((singular_values(x) > eps).sum())


def growth_need(m: int, dim: float, threshold: float) -> int:
    """Units the ratio trigger asks for: ceil(D / (2 threshold)) - M (> 0 exactly when D / (2 M) > threshold)."""
    return max(0, math.ceil(dim / (2.0 * threshold) - 1e-9) - m)


def pr_scores(existing: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Participation ratio of the layer's activity with each candidate unit added alone: existing phases (n, M),
    candidate phases (n, K) -> (K,). Exact and vectorised: C' = [[C, b], [b^T, d]] gives tr C' = tr C + tr d and
    tr C'^2 = tr C^2 + 2 ||b||^2 + ||d||^2."""
    x = activity(existing)  # (n, 2M)
    t = candidates.double()
    y = torch.stack([torch.cos(t), torch.sin(t)], 2)
    y = y - y.mean(0)  # (n, K, 2)
    n = x.shape[0]
    c = x.T @ x / n
    b = torch.einsum("nf,nkj->kfj", x, y) / n  # (K, 2M, 2)
    d = torch.einsum("nki,nkj->kij", y, y) / n  # (K, 2, 2)
    tr = torch.trace(c) + d.diagonal(dim1=1, dim2=2).sum(1)
    return tr * tr / ((c * c).sum() + 2 * (b * b).sum((1, 2)) + (d * d).sum((1, 2))).clamp_min(1e-300)


def locked_pairs(theta: torch.Tensor, redundancy: float):
    """Pairs (a < b) of a layer's units whose PLV over the buffer exceeds `redundancy`, most locked first:
    (plv, a, b, delta) with delta = arg mean e^{i (theta_a - theta_b)}."""
    z = torch.polar(torch.ones_like(theta, dtype=torch.float64), theta.double())  # (n, M)
    r = z.T @ z.conj() / theta.shape[0]  # (M, M): mean e^{i (theta_a - theta_b)}
    plv = r.abs().triu(1)
    a, b = torch.nonzero(plv > redundancy, as_tuple=True)
    order = torch.argsort(plv[a, b], descending=True, stable=True)
    a, b = a[order], b[order]
    return plv[a, b], a, b, torch.angle(r[a, b])


# ------------------------------------------------------------------------------------------------------ strategy
@register_strategy("developmental")
class Developmental:
    """Grow-and-prune oscillator net gated by its glial energy budget; one step = one minibatch."""

    def __init__(self, kind: str = "oscillator", start: int = 4, layers: int = 1, max_width: int = 64,
                 every: int = 50, trigger: str = "ratio", metric: str = "pr", threshold: float = 0.5,
                 gamma: float = 0.97, epsilon: float = 0.01, init: str = "select", candidates: int = 20,
                 max_grow: int = 0, redundancy: float = 0.999, dormant: float = 1e-3, max_remove: int = 4,
                 gated: bool = True, glia_ratio: float = 1.0, supply: float = 1.0, grow_cost: float = 1.0,
                 prune_cost: float = 0.0, prune_refund: float = 0.5, floor: float = 0.0, gate_dt: float = 0.01,
                 metabolism: dict | None = None, settle_time: float = 10.0, dt: float = 0.25, coupling: float = 1.0,
                 parameterization: str = "weight", potential: str = "kuramoto", b: float = 0.0,
                 encoding: str = "clamp", input_scale: float = math.pi / 2, lr: float = 1e-2, batch: int = 64,
                 buffer: int = 256, dtype: str = "float32"):
        """every: steps between structural evaluations (0 = never: a static net of `start` units); max_grow,
        max_remove: units per layer per evaluation at most (max_grow 0 = the trigger's need); gated: False grows
        as the triggers ask, without the budget; metabolism: MetabolismConfig keys of the gate and of the
        `metabolic` energy (supply is the key above); gate_dt: time units of the reserve per step."""
        self._options = {k: v for k, v in locals().items() if k != "self"}
        self._options["metabolism"] = dict(metabolism or {})
        self._check()
        for k, v in self._options.items():
            setattr(self, k, v)
        met = config_from_dict({"enabled": True, **self.metabolism, "supply": supply}, "strategy developmental.metabolism",
                               model=MetabolismConfig)
        self.gate_cfg = config_from_dict({"metabolism": met.model_dump(), "dt": gate_dt, "floor": floor,
                                          "grow_cost": grow_cost, "prune_cost": prune_cost, "prune_refund": prune_refund},
                                         "strategy developmental", model=GateConfig)
        self.model_cfg = config_from_dict(
            {"kind": "oscillator", "hidden": [start] * layers, "settle_time": settle_time, "dt": dt,
             "coupling": coupling, "parameterization": parameterization, "potential": potential, "b": b,
             "encoding": encoding, "input_scale": input_scale, "metabolism": met.model_dump()},
            "strategy developmental", model=ModelConfig)

    def _check(self) -> None:
        o = self._options
        choices = {"kind": tuple(NETS), "trigger": ("ratio", "north"), "metric": ("pr", "rank"),
                   "init": ("select", "random"), "dtype": ("float32", "float64")}
        for key, valid in choices.items():
            if o[key] not in valid:
                raise ConfigError(f"strategy developmental.{key}: expected one of {', '.join(valid)}, found {o[key]!r}")
        for key in ("start", "layers", "candidates", "batch"):
            if o[key] < 1:
                raise ConfigError(f"strategy developmental.{key}: must be >= 1, found {o[key]}")
        for key in ("every", "max_grow", "max_remove", "glia_ratio", "dormant"):
            if o[key] < 0:
                raise ConfigError(f"strategy developmental.{key}: must be >= 0, found {o[key]}")
        for key in ("threshold", "redundancy"):
            if not 0 < o[key] <= 1:
                raise ConfigError(f"strategy developmental.{key}: must be in (0, 1], found {o[key]}")
        for key in ("gamma", "epsilon", "lr"):
            if o[key] <= 0:
                raise ConfigError(f"strategy developmental.{key}: must be > 0, found {o[key]}")
        if o["max_width"] < o["start"]:
            raise ConfigError(f"strategy developmental.max_width: must be >= start={o['start']}, found {o['max_width']}")
        if o["buffer"] < 2 * o["max_width"]:
            raise ConfigError(f"strategy developmental.buffer: the activity of a layer of max_width={o['max_width']} "
                              f"units has {2 * o['max_width']} features; the buffer must hold at least as many "
                              f"samples, found {o['buffer']}")
        if o["encoding"] == "drive" and o["input_scale"] >= 1.0:
            raise ConfigError(f"strategy developmental.input_scale: encoding drive needs input_scale < 1 (the "
                              f"inputs settle at asin(input_scale tanh x)), found {o['input_scale']}")

    def options(self) -> dict:
        """Every key of this strategy with its value (what a trial record stores to build it again)."""
        return copy.deepcopy(self._options)

    # -- the net and its new units ----------------------------------------------------------------------------
    def build(self, n_in: int, n_out: int, gen: torch.Generator, dtype) -> GrowingOscillatorNet:
        return NETS[self.kind](n_in, n_out, self.model_cfg, gen, dtype)

    def random_rows(self, model: GrowingOscillatorNet, layer: int, count: int, gen: torch.Generator) -> dict:
        """`count` units' incoming couplings: 'weight': uniform signed magnitudes (with the reference's) scaled
        to the layer's mean norm; 'phase': the layer's mean magnitudes with uniform lags in (-pi, pi]."""
        lay = model.layers[layer]
        n_src, dt = lay.mag.shape[1], lay.mag.dtype
        if lay.lag is None:
            w = torch.rand(count, n_src + 1, generator=gen, dtype=torch.float64) * 2 - 1
            w = w * (model.fan_in_norm(layer) / w.norm(dim=1, keepdim=True).clamp_min(1e-12))
            return {"mag": w[:, :-1].to(dt), "bias_mag": w[:, -1].to(dt)}
        lags = (torch.rand(count, n_src + 1, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
        return {"mag": lay.mag.detach().mean(0).expand(count, -1).clone(),
                "bias_mag": lay.bias_mag.detach().mean().expand(count).clone(),
                "lag": lags[:, :-1].to(dt), "bias_lag": lags[:, -1].to(dt)}

    def new_rows(self, model, layer: int, k: int, gen: torch.Generator, xbuf, theta) -> dict:
        """Incoming couplings of k new units of `layer` (theta: the layer's phases on the buffer, (n, M))."""
        if self.init == "random":
            return self.random_rows(model, layer, k, gen)
        pool = self.random_rows(model, layer, self.candidates * k, gen)
        trial = copy.deepcopy(model)  # the pool appended: zero outgoing, so the others' phases do not move
        with torch.no_grad():
            trial.add_units(layer, pool, torch.Generator().manual_seed(0))
            cand = trial.phases(xbuf)[layer][:, theta.shape[1]:]  # (n, K)
        best = torch.argsort(pr_scores(theta, cand), descending=True, stable=True)[:k]
        return {key: v[best] for key, v in pool.items()}

    # -- one structural evaluation ----------------------------------------------------------------------------
    def removals(self, model, layer: int, theta: torch.Tensor, born: np.ndarray, step: int):
        """The units to remove from `layer`, in order (dormant, then redundant victims), with the redundant
        victims' (mate, delta); at most max_remove, never the last unit, never a unit younger than `every`."""
        norms = model.fan_out_norms(layer).double()
        mature = torch.as_tensor(born <= step - self.every)
        dormant = torch.nonzero(mature & (norms <= self.dormant * norms.mean())).flatten().tolist()
        cap = min(self.max_remove, model.widths[layer] - 1)
        victims, merges = dormant[:cap], {}
        taken = set(victims)
        _, a, b, delta = locked_pairs(theta, self.redundancy)
        for i, j, d in zip(a.tolist(), b.tolist(), delta.tolist()):
            if len(victims) >= cap:
                break
            if i in taken or j in taken:
                continue
            v, mate, d = (i, j, d) if norms[i] <= norms[j] else (j, i, -d)  # delta = arg e^{i (theta_v - theta_mate)}
            if not mature[v]:
                continue
            victims.append(v)
            merges[v] = (mate, d)
            taken |= {v, mate}
        return victims, merges

    def develop(self, model, xbuf, gate, opt, gen, born: list[np.ndarray], step: int, baseline) -> dict:
        """Prune, then grow, every hidden layer; returns per-layer counts (requested, grown, dormant, redundant)."""
        layers = len(model.widths)
        out = {k: np.zeros(layers, dtype=np.int64) for k in ("requested", "grown", "dormant", "redundant")}
        with torch.no_grad():
            thetas = model.phases(xbuf)
        for l in range(layers):
            victims, merges = self.removals(model, l, thetas[l], born[l], step)
            n = gate.prune(l, len(victims)) if gate is not None else len(victims)
            victims = victims[:n]
            if victims:
                for v in victims:
                    if v in merges:
                        model.merge_unit(l, v, *merges[v])
                model.remove_units(l, torch.as_tensor(victims), opt)
                born[l] = np.delete(born[l], victims)
                out["redundant"][l] = sum(v in merges for v in victims)
                out["dormant"][l] = len(victims) - out["redundant"][l]
                with torch.no_grad():
                    thetas = model.phases(xbuf)
            m = model.widths[l]
            dim = dimension(thetas[l], self.metric, self.epsilon)
            if self.trigger == "ratio":
                k = growth_need(m, dim, self.threshold)
            else:
                k = growth_count(m, dim / (2 * m), baseline[l], self.gamma)
            k = min(k, self.max_width - m, self.max_grow or k)
            out["requested"][l] = k
            if gate is not None:
                k = gate.grow(l, k)
            if k > 0:
                model.add_units(l, self.new_rows(model, l, k, gen, xbuf, thetas[l]), gen, opt)
                born[l] = np.concatenate([born[l], np.full(k, step)])
                out["grown"][l] = k
            if gate is not None:
                gate.set_glia(self.glia(model.widths))
        return out

    def glia(self, widths: list[int]) -> list[int]:
        """Glial cells per layer: round(glia_ratio x width)."""
        return [int(round(self.glia_ratio * w)) for w in widths]

    @staticmethod
    def gate_inputs(model, acts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per unit: coupling load (gain x sum_j |K_hj|) and RMS wrapped phase over the batch, (N,) each."""
        load = torch.cat([(layer.gain() * layer.total_coupling()).detach() for layer in model.layers])
        rms = torch.cat([a.detach().double().pow(2).mean(0).sqrt() for a in acts])
        return load, rms

    # -- the fit ----------------------------------------------------------------------------------------------
    def fit(self, data: Dataset, budget: Budget, seed: int, progress: bool = False) -> StrategyResult:
        dtype = torch.float64 if self.dtype == "float64" else torch.float32
        gen = torch.Generator().manual_seed(int(seed) + 15485863)
        x, y = torch.as_tensor(data.x_train, dtype=dtype), torch.as_tensor(data.y_train)
        model = self.build(data.n_features, data.n_classes, gen, dtype)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        buf = InputBuffer(self.buffer, data.n_features, dtype)
        buf.push(x[torch.randperm(len(y), generator=gen)[: self.buffer]])
        with torch.no_grad():
            baseline = [dimension(t, self.metric, self.epsilon) / (2 * t.shape[1]) for t in model.phases(buf.get())]
        gate = EnergyGate(self.gate_cfg, model.widths, self.glia(model.widths)) if self.gated else None
        born = [np.zeros(w, dtype=np.int64) for w in model.widths]
        hist = {k: [] for k in ("loss", "widths", "requested", "grown", "dormant", "redundant")}
        if gate is not None:
            hist.update(reserve=[], glia=[])
        clock = Clock(budget)
        bar = Progress(total=budget.steps or None, enabled=progress, unit="step", desc="developmental")
        batches = Minibatches(len(y), self.batch, gen)
        while not clock.done():
            idx = batches.next()
            loss, acts = train_step(model, opt, x[idx], y[idx])
            if not math.isfinite(float(loss)):
                raise FloatingPointError(f"developmental: the loss diverged at step {clock.steps + 1} ({float(loss)}); "
                                         f"lower lr")
            buf.push(x[idx])
            if gate is not None:
                gate.advance(model.widths, *self.gate_inputs(model, acts))
            counts = {k: np.zeros(len(model.widths), dtype=np.int64) for k in ("requested", "grown", "dormant", "redundant")}
            if self.every and (clock.steps + 1) % self.every == 0:
                counts = self.develop(model, buf.get(), gate, opt, gen, born, clock.steps + 1, baseline)
            hist["loss"].append(float(loss))
            hist["widths"].append(model.widths)
            for k, v in counts.items():
                hist[k].append(v)
            if gate is not None:
                hist["reserve"].append(gate.reserve())
                hist["glia"].append(self.glia(model.widths))
            clock.tick(3.0 * model.macs()["macs"] * len(idx))  # forward + backward MACs of the step
            bar.update(1)
        bar.close()
        res = finish_growth(model, data, clock, hist, gate)
        res.metrics["widths"] = model.widths
        return res
