"""DYNO grow-and-prune (seed 001 section 7, Algorithm 5): every n steps, each hidden layer is first pruned, then
grown, by triggers on its effective dimension phi_ED (eq. 37) against a moving baseline phi*, the layer's value
at its last structural change (eqs. 38-39 with the outer min read as max, see the seeds index):

    TRIG_PRUNE = max(0, floor(M_l ((1 - delta) phi* - phi_ED)))      TRIG_GROW = max(0, floor(M_l (phi_ED - (1 + delta) phi*)))

Pruning removes the dormant neurons first (all-zero post-activations on the buffer), then greedily the neuron whose
normalised post-activations have the largest norm of cosine similarities with the remaining ones. Growth is
NORTH-Select: 100 x TRIG_GROW random scaled fan-in candidates, the best by the layer's eps-rank, fan-out 0.
A model passed to `fit` (pre-trained on another task) is fine-tuned: its classification layer is replaced by a
fresh one when the number of classes differs (the thesis's Galaxy10 protocol).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ConfigError
from ..learn.data import Dataset
from ..learn.models import Readout
from ..progress import Progress
from .gate import EnergyGate, GateConfig
from .growing import GrowingMLP, InputBuffer, finish_growth, Minibatches, effective_dimension, train_step, xavier
from .north import init_random, select_by_rank
from ..learn.strategy import Budget, Clock, StrategyResult
from .strategy import register_strategy


def prune_count(m: int, phi: float, star: float, delta: float) -> int:
    """Eq. (38)."""
    return max(0, math.floor(m * ((1 - delta) * star - phi) + 1e-9))


def grow_count(m: int, phi: float, star: float, delta: float) -> int:
    """Eq. (39)."""
    return max(0, math.floor(m * (phi - (1 + delta) * star) + 1e-9))


def select_prune(h: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of k neurons to remove from post-activations h (n, M): dormant ones first, then greedily the one
    with the largest norm of cosine similarities to the other remaining neurons."""
    h = h.double()
    m = h.shape[1]
    k = min(k, m - 1)  # a layer keeps at least one neuron
    norms = h.norm(dim=0)
    dormant = torch.nonzero(norms == 0).flatten()
    chosen = dormant[:k].tolist()
    alive = torch.ones(m, dtype=torch.bool)
    alive[chosen] = False
    unit = h / norms.clamp_min(1e-300)
    cos2 = (unit.T @ unit) ** 2  # (M, M)
    cos2.fill_diagonal_(0.0)
    cos2[:, ~alive] = 0.0
    load = cos2.sum(1)  # squared norm of each neuron's similarities to the remaining others
    while len(chosen) < k:
        i = int(torch.where(alive, load, torch.full_like(load, -1.0)).argmax())
        chosen.append(i)
        alive[i] = False
        load -= cos2[:, i]
    return torch.as_tensor(sorted(chosen), dtype=torch.long)


@register_strategy("dyno")
class Dyno:
    """DYNO on an MLP trained by Adam (the thesis's lr 3e-4, weight decay 1e-3); one step = one minibatch."""

    def __init__(self, hidden: list[int] = (64, 64), epsilon: float = 0.01, delta: float = 0.03, every: int = 50,
                 candidates: int = 100, max_width: int = 512, buffer: int = 1024, lr: float = 3e-4,
                 weight_decay: float = 1e-3, batch: int = 64, gate: dict | None = None):
        if not hidden or min(hidden) < 1 or max(hidden) > max_width:
            raise ConfigError(f"strategy dyno.hidden: widths must be in 1..max_width={max_width}, found {list(hidden)}")
        if buffer <= max_width:
            raise ConfigError(f"strategy dyno.buffer: must exceed max_width={max_width} (eq. 37 needs more samples "
                              f"than neurons), found {buffer}")
        if every < 0:
            raise ConfigError(f"strategy dyno.every: steps between trigger evaluations (0 = never) must be >= 0, "
                              f"found {every}")
        self.hidden, self.eps, self.delta, self.every, self.candidates = list(hidden), epsilon, delta, every, candidates
        self.max_width, self.buffer, self.lr, self.wd, self.batch = max_width, buffer, lr, weight_decay, batch
        self.gate = GateConfig(**gate) if gate is not None else None

    def _phi(self, model, xbuf) -> list[float]:
        with torch.no_grad():
            return [effective_dimension(h, self.eps) for h in model.layer_io(xbuf)[2]]

    def evaluate(self, model, xbuf, star, gen, opt, gate) -> tuple[np.ndarray, np.ndarray]:
        """One round of Algorithm 5's structural part: prune, then grow, every hidden layer. Returns the neurons
        pruned and grown per layer; star (the baselines) is updated in place for layers that changed."""
        layers = len(model.widths)
        pruned, grown = np.zeros(layers, dtype=np.int64), np.zeros(layers, dtype=np.int64)
        for l in range(layers):
            with torch.no_grad():
                h = model.layer_io(xbuf)[2][l]
            phi = effective_dimension(h, self.eps)
            k = prune_count(model.widths[l], phi, star[l], self.delta)
            if gate is not None:
                k = gate.prune(l, k)
            if k > 0:
                idx = select_prune(h, k)
                model.remove(l, idx, opt)
                pruned[l] = len(idx)
                phi = effective_dimension(model.layer_io(xbuf)[2][l].detach(), self.eps)
            k = min(grow_count(model.widths[l], phi, star[l], self.delta), self.max_width - model.widths[l])
            if gate is not None:
                k = gate.grow(l, k)
            if k > 0:
                pool = init_random(model, l, k, gen, self.candidates * k)
                w_in = select_by_rank(model, l, pool, xbuf, k, self.eps)
                model.add(l, w_in, torch.zeros(k), torch.zeros(model.fan_out(l).shape[0], k), opt)
                grown[l] = k
            if pruned[l] or grown[l]:
                star[l] = self._phi(model, xbuf)[l]
        return pruned, grown

    def fit(self, data: Dataset, budget: Budget, seed: int, progress: bool = False,
            model: GrowingMLP | None = None, source: Dataset | None = None) -> StrategyResult:
        """Train (or, given `model`, fine-tune) under the budget. `source`: the task the model was pre-trained on;
        the baselines phi* then start at the model's values on the source inputs (its last structural state), so
        the shift to `data` itself can trigger changes at the first evaluation."""
        gen = torch.Generator().manual_seed(int(seed) + 7368787)
        x, y = torch.as_tensor(data.x_train, dtype=torch.float32), torch.as_tensor(data.y_train)
        if model is None:
            model = GrowingMLP(data.n_features, self.hidden, data.n_classes, gen)
        elif model.readout.weight.shape[0] != data.n_classes:
            width = model.widths[-1]
            model.readout = Readout(width, data.n_classes, gen, model.readout.weight.dtype)
            with torch.no_grad():
                model.readout.weight.copy_(xavier(data.n_classes, width, gen))
        if max(model.widths) > self.max_width or model.weights[0].shape[1] != data.n_features:
            raise ConfigError(f"strategy dyno: the given model (inputs {model.weights[0].shape[1]}, widths "
                              f"{model.widths}) does not fit the task's {data.n_features} inputs / max_width")
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.wd)
        buf = InputBuffer(self.buffer, data.n_features)
        buf.push(x[torch.randperm(len(y), generator=gen)[: self.buffer]])
        if source is not None:
            ref = torch.as_tensor(source.x_train, dtype=torch.float32)
            star = self._phi(model, ref[torch.randperm(len(ref), generator=gen)[: self.buffer]])
        else:
            star = self._phi(model, buf.get())
        gate = EnergyGate(self.gate, model.widths) if self.gate is not None else None
        layers = len(model.widths)
        hist = {"loss": [], "widths": [], "grown": [], "pruned": [], "phi": [], "reserve": []}
        clock = Clock(budget)
        bar = Progress(total=budget.steps or None, enabled=progress, unit="step", desc="dyno")
        batches = Minibatches(len(y), self.batch, gen)
        while not clock.done():
            pruned, grown = np.zeros(layers, dtype=np.int64), np.zeros(layers, dtype=np.int64)
            if self.every and clock.steps % self.every == 0:
                pruned, grown = self.evaluate(model, buf.get(), star, gen, opt, gate)
            idx = batches.next()
            loss, acts = train_step(model, opt, x[idx], y[idx])
            buf.push(x[idx])
            if gate is not None:
                gate.step(model, acts)
                hist["reserve"].append(gate.reserve())
            hist["loss"].append(float(loss))
            hist["widths"].append(model.widths)
            hist["pruned"].append(pruned)
            hist["grown"].append(grown)
            hist["phi"].append(list(star))
            clock.tick(3.0 * model.macs()["macs"] * len(idx))
            bar.update(1)
        bar.close()
        return finish_growth(model, data, clock, hist, gate)
