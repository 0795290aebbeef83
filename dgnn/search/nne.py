"""Neural net evolution (NNE, seed 004 sections 2-3): link weights are W x for a genotype x in {0, 1}^n and a
sparse weight-generation matrix W (m x n); a population sampled from allele frequencies p is scored and p moves by
the weak-selection update, eq. (3). NNE + SignSGD (eq. 5) then trains the output layer by the sign of its gradient."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..learn.data import Dataset
from ..learn.models import Readout
from ..progress import Progress
from ..learn.config import TrainConfig
from ..learn.train import train
from ..learn.strategy import Budget, Clock, StrategyResult, finish
from .strategy import register_strategy


def weak_selection_update(p: torch.Tensor, x: torch.Tensor, fitness: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Eq. (3): p' = p (1 + e f) / (1 + e fbar + e p (f - fbar)), with f (fbar) the mean fitness of the genotypes
    that carry (lack) each allele. p (n,), x (N, n) 0/1, fitness (N,). An allele carried by all or none of the
    population gives no contrast: its p stays (f = fbar)."""
    has = x.sum(0)  # (n,)
    lacks = x.shape[0] - has
    total = fitness.sum()
    f_has = fitness @ x  # (n,) sum of fitness over carriers
    f = torch.where(has > 0, f_has / has.clamp_min(1), 0.0)
    fbar = torch.where(lacks > 0, (total - f_has) / lacks.clamp_min(1), 0.0)
    f = torch.where(has > 0, f, fbar)
    fbar = torch.where(lacks > 0, fbar, f)
    return p * (1 + epsilon * f) / (1 + epsilon * fbar + epsilon * p * (f - fbar))


def sample_population(p: torch.Tensor, population: int, gen: torch.Generator) -> torch.Tensor:
    """Genotypes x ~ Bernoulli(p), (N, n) 0/1, stored gene-major so that W x reads them without a copy."""
    return torch.rand(p.numel(), population, generator=gen, dtype=p.dtype).lt_(p[:, None]).T  # (N, n)


def evolve_step(p: torch.Tensor, fitness, population: int, epsilon: float,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One generation: sample `population` genotypes x ~ Bernoulli(p), score them with fitness(x) -> (N,), and
    return the updated p (eq. 3) and the fitness."""
    x = sample_population(p, population, gen)  # (N, n)
    fit = fitness(x)
    return weak_selection_update(p, x, fit, epsilon), fit


def weight_generation_matrix(m: int, n: int, beta: float, gen: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """W (m, n) sparse CSR: each entry uniform in [-1, 1] with probability beta, else 0 (section 2)."""
    keep = torch.rand(m, n, generator=gen) < beta
    vals = torch.rand(m, n, generator=gen, dtype=dtype) * 2 - 1
    with warnings.catch_warnings():  # CSR is marked beta; the SpMM on it is tested against the dense product
        warnings.simplefilter("ignore", UserWarning)
        return (vals * keep).to_sparse_csr()


class SparseNet(nn.Module):
    """Input -> ReLU hidden over a fixed sparse input graph -> softmax readout (section 3.1's network)."""

    kind = "sparse_mlp"

    def __init__(self, mask: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)  # (h, d) bool
        self.w1 = nn.Parameter(w1 * mask)  # (h, d)
        self.readout = Readout(w2.shape[1], w2.shape[0], torch.Generator(), w2.dtype)
        with torch.no_grad():
            self.readout.weight.copy_(w2)  # (C, h)
        self.readout.bias.requires_grad_(False)  # the paper's network has no biases

    def forward(self, x: torch.Tensor):
        h = torch.relu(x @ (self.w1 * self.mask).T)  # (B, h)
        return self.readout(h), [h]

    def macs(self) -> dict[str, float]:
        return {"macs": float(self.mask.sum()) + float(self.readout.weight.numel()), "transcendentals": 0.0}


GROUPS = 8  # fan-in groups in the first layer: 8 ran its product + ReLU 1.3x faster than one K for all (h = 128)


@dataclass
class Genome:
    """The fixed parts of an NNE: the input graph, the weight-generation matrix, the layer sizes. Hidden units are
    taken in order of fan-in and cut into groups of about equal size; each unit's input links sit in K_g slots, K_g
    its group's largest fan-in (padding slots have no genes, so weight 0). A population's first layer then runs as
    one batched product per group, with little padding."""

    mask: torch.Tensor  # (h, d) bool
    order: torch.Tensor  # (h,) the unit at each position of the fan-in order
    slot_unit: torch.Tensor  # (R,) unit of each first-layer slot
    slot_input: torch.Tensor  # (R,) input index of each slot (0 in padding slots)
    groups: tuple[tuple[int, int], ...]  # (units, K_g) per group, in position order; R = sum units K_g
    w: torch.Tensor  # (R + C h, n) sparse CSR: rows are the slots, then (class, position)
    n_out: int

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)

    def links(self, x: torch.Tensor) -> torch.Tensor:
        """Genotypes x (N, n) -> every link weight W x, (R + C h, N). Each row of W x is a weighted sum of a few
        rows of x^T, which embedding_bag computes about 2x faster than the CSR product (same sums, same order)."""
        return nn.functional.embedding_bag(self.w.col_indices(), x.T.contiguous(), self.w.crow_indices(),
                                           mode="sum", per_sample_weights=self.w.values(), include_last_offset=True)

    def weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Genotypes x (N, n) -> dense input weights (N, h, d) and output weights (N, C, h)."""
        (h, d), r = self.shape, self.slot_input.numel()
        q = self.links(x).T  # (N, R + C h)
        target = (self.slot_unit * d + self.slot_input).expand(x.shape[0], -1)  # (N, R) flat (unit, input)
        w1 = q.new_zeros(x.shape[0], h * d).scatter_add_(1, target, q[:, :r]).view(-1, h, d)
        w2 = q.new_zeros(x.shape[0], self.n_out, h)
        w2[:, :, self.order] = q[:, r:].reshape(-1, self.n_out, h)
        return w1, w2

    def net(self, x: torch.Tensor) -> SparseNet:
        w1, w2 = self.weights(x[None])
        return SparseNet(self.mask, w1[0], w2[0])


def make_genome(n_in: int, n_out: int, hidden: int, edge_prob: float, genes: int, beta: float,
                gen: torch.Generator, dtype=torch.float32) -> Genome:
    """Input graph (each link present with probability edge_prob) and W (section 2) over its links, in row-major
    order, and the output layer's; W's rows are then laid out in the fan-in groups (the draws do not change)."""
    mask = torch.rand(hidden, n_in, generator=gen) < edge_prob  # (h, d)
    unit, inp = torch.nonzero(mask, as_tuple=True)  # links in row-major order
    slot = mask.long().cumsum(1)[unit, inp] - 1  # (E,) position of each link among its unit's links
    fan = mask.sum(1)  # (h,)
    order = torch.argsort(fan, stable=True)
    position = torch.empty_like(order)
    position[order] = torch.arange(hidden)
    cuts = [round(i * hidden / min(GROUPS, hidden)) for i in range(min(GROUPS, hidden) + 1)]
    groups = tuple((b - a, max(1, int(fan[order[a:b]].max()))) for a, b in zip(cuts, cuts[1:]))
    k = torch.cat([torch.full((units,), kk) for units, kk in groups])  # (h,) slots at each position
    first = k.cumsum(0) - k  # (h,) first row of each position
    r = int(k.sum())
    slot_unit = order.repeat_interleave(k)  # (R,)
    slot_input = torch.zeros(r, dtype=torch.long)
    slot_input[first[position[unit]] + slot] = inp
    w = weight_generation_matrix(unit.numel() + n_out * hidden, genes, beta, gen, dtype).to_sparse_coo()
    readout = r + (torch.arange(n_out)[:, None] * hidden + position[None, :]).flatten()  # (C h,) row of (c, unit)
    rows = torch.cat([first[position[unit]] + slot, readout])  # old row -> new row
    idx = w.indices()
    with warnings.catch_warnings():  # as in weight_generation_matrix
        warnings.simplefilter("ignore", UserWarning)
        w = torch.sparse_coo_tensor(torch.stack([rows[idx[0]], idx[1]]), w.values(),
                                    (r + n_out * hidden, genes)).coalesce().to_sparse_csr()
    return Genome(mask, order, slot_unit, slot_input, groups, w, n_out)


def population_fitness(genome: Genome, x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor,
                       chunk: int = 1 << 24) -> torch.Tensor:
    """Section 3.1's delta_x = mean over samples of max(0, alpha^2 - CE), alpha = ln C, for every genotype of x
    (N, n) on samples y (S, d): batched products per chunk of genotypes, no loop over individuals."""
    (h, _), r, s, c = genome.shape, genome.slot_input.numel(), y.shape[0], genome.n_out
    alpha2 = math.log(c) ** 2
    inputs = y.T.contiguous().index_select(0, genome.slot_input)  # (R, S) each slot's input
    step = max(1, chunk // max(1, s * h))
    out = []
    for i in range(0, x.shape[0], step):
        q = genome.links(x[i:i + step])  # (R + C h, n)
        n = q.shape[1]
        hid = y.new_empty(h, n, s)
        row = unit = 0
        for units, k in genome.groups:  # ReLU on each group's block while it is still in cache
            rows = slice(row, row + units * k)
            torch.bmm(q[rows].view(units, k, n).transpose(1, 2), inputs[rows].view(units, k, s),
                      out=hid[unit:unit + units]).relu_()  # (units, n, S)
            row, unit = row + units * k, unit + units
        w2 = q[r:].view(c, h, n).permute(2, 0, 1).contiguous()  # (n, C, h) units in fan-in order, as hid
        logits = torch.bmm(w2, hid.transpose(0, 1))  # (n, C, S)
        # log_softmax over the strided class axis is ~8x faster here than logsumexp
        ce = -torch.log_softmax(logits, 1).gather(1, labels.expand(n, -1)[:, None, :])[:, 0]  # (n, S)
        out.append((alpha2 - ce).clamp_min(0.0).mean(1))  # (n,)
    return torch.cat(out)


def population_fitness_loop(genome: Genome, x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The same delta_x one genotype at a time (reference for the batched version and its benchmark)."""
    alpha2 = math.log(genome.n_out) ** 2
    out = []
    for g in x:
        logits, _ = genome.net(g)(y)
        ce = nn.functional.cross_entropy(logits, labels, reduction="none")
        out.append((alpha2 - ce).clamp_min(0.0).mean())
    return torch.stack(out)


def sign_sgd(net: SparseNet, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, batch: int,
             gen: torch.Generator) -> list[float]:
    """Eq. (5) on minibatches: w_ij -= lr sign(sum_batch (z_j - l_j) h_i), the output layer only."""
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(y), (batch,), generator=gen)
        losses.append(sign_step(net, x[idx], y[idx], lr))
    return losses


def sign_step(net: SparseNet, x: torch.Tensor, y: torch.Tensor, lr: float) -> float:
    """Eq. (5) on one minibatch; returns its cross-entropy before the step."""
    with torch.no_grad():
        logits, (h,) = net(x)
        z = torch.softmax(logits, dim=1)
        z[torch.arange(len(y)), y] -= 1.0  # z - l (one-hot)
        net.readout.weight -= lr * torch.sign(z.T @ h)  # (C, h)
        return float(nn.functional.cross_entropy(logits, y))


@register_strategy("nne")
class NNE:
    """Allele frequencies evolved by eq. (3); the final network is the modal genotype (p >= 1/2)."""

    sign_steps_default = 0

    def __init__(self, hidden: int = 128, edge_prob: float = 0.25, genes: int = 5000, beta: float = 0.001,
                 population: int = 100, samples: int = 128, epsilon: float = 1.0, sign_steps: int | None = None,
                 sign_lr: float = 1e-3, sign_batch: int = 50):
        for key, value, ok in (("hidden", hidden, hidden >= 1), ("edge_prob", edge_prob, 0 < edge_prob <= 1),
                               ("genes", genes, genes >= 1), ("beta", beta, 0 < beta <= 1),
                               ("population", population, population >= 2), ("samples", samples, samples >= 1),
                               ("epsilon", epsilon, epsilon > 0)):
            if not ok:
                raise ConfigError(f"strategy {self.name}.{key}: out of range, found {value}")
        self.hidden, self.edge_prob, self.genes, self.beta = hidden, edge_prob, genes, beta
        self.population, self.samples, self.epsilon = population, samples, epsilon
        self.sign_steps = self.sign_steps_default if sign_steps is None else sign_steps
        self.sign_lr, self.sign_batch = sign_lr, sign_batch

    def fit(self, data: Dataset, budget: Budget, seed: int, progress: bool = False) -> StrategyResult:
        gen = torch.Generator().manual_seed(int(seed) + 104729)
        x = torch.as_tensor(data.x_train, dtype=torch.float32)
        y = torch.as_tensor(data.y_train)
        genome = make_genome(data.n_features, data.n_classes, self.hidden, self.edge_prob, self.genes, self.beta, gen)
        p = torch.rand(self.genes, generator=gen)  # p^1 uniform in [0, 1]^n (section 3.1)
        clock = Clock(budget)
        hist = {"mean_fitness": [], "best_fitness": [], "allele_polarisation": []}
        bar = Progress(total=budget.steps or None, enabled=progress, unit="gen", desc=self.name)
        while not clock.done():
            idx = torch.randint(0, len(y), (min(self.samples, len(y)),), generator=gen)
            p, fit = evolve_step(p, lambda pop: population_fitness(genome, pop, x[idx], y[idx]), self.population,
                                 self.epsilon, gen)
            hist["mean_fitness"].append(float(fit.mean()))
            hist["best_fitness"].append(float(fit.max()))
            hist["allele_polarisation"].append(float((torch.minimum(p, 1 - p) < 0.05).float().mean()))
            clock.tick()
            bar.update(1)
        bar.close()
        net = genome.net((p >= 0.5).float())
        if self.sign_steps:
            hist["sign_sgd_loss"] = sign_sgd(net, x, y, self.sign_steps, self.sign_lr, self.sign_batch, gen)
        return finish(net, data, clock, hist)


@register_strategy("nne_signsgd")
class NNESignSGD(NNE):
    """NNE, then SignSGD on the output layer (eq. 5; a few hundred minibatches of 50 in the paper)."""

    sign_steps_default = 300


@register_strategy("sparse_sgd")
class SparseSGD(NNE):
    """Table 1's SGD row: the same network (input graph, no biases) trained end to end by Adam on cross-entropy
    from a Kaiming-uniform start (He et al. 2015, as the paper's section 3.2 initialises); epochs up to
    budget.steps, early stopping on validation."""

    def __init__(self, lr: float = 3e-3, batch: int = 50, patience: int = 30, **nne):
        super().__init__(**nne)
        self.lr, self.batch, self.patience = lr, batch, patience

    def fit(self, data: Dataset, budget: Budget, seed: int, progress: bool = False) -> StrategyResult:
        gen = torch.Generator().manual_seed(int(seed) + 104729)
        genome = make_genome(data.n_features, data.n_classes, self.hidden, self.edge_prob, self.genes, self.beta, gen)
        h, d = genome.shape
        fan = genome.mask.sum(1, keepdim=True).clamp_min(1)  # (h, 1) inputs per hidden unit
        w1 = (torch.rand(h, d, generator=gen) * 2 - 1) * torch.sqrt(6.0 / fan)
        w2 = (torch.rand(data.n_classes, h, generator=gen) * 2 - 1) * math.sqrt(6.0 / h)
        net = SparseNet(genome.mask, w1, w2)
        cfg = TrainConfig(lr=self.lr, batch_size=self.batch, epochs=budget.steps or 10**6, patience=self.patience,
                          max_seconds=budget.seconds)
        clock = Clock(budget)
        res = train(net, data, cfg, seed=seed, progress=progress)
        clock.steps = res.epochs
        return finish(res.model, data, clock, {"loss": res.history["loss"], "val_accuracy": res.history["val_accuracy"]})
