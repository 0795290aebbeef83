"""The strategy protocol: what every structural-learning strategy takes (a task, a Budget, a seed) and returns (a
StrategyResult). The strategies themselves and their registry live in dgnn.search; the study layer runs them."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from torch import nn

from ..energy import EnergyTable
from ..errors import ConfigError
from .data import Dataset
from .train import evaluate


@dataclass(frozen=True)
class Budget:
    """Stop at whichever comes first: optimisation steps (generations, minibatches), CPU-wall seconds, or
    energy (the strategy's own unit, e.g. MACs spent); 0 = no limit on that axis."""

    steps: int = 0
    seconds: float = 0.0
    energy: float = 0.0

    def __post_init__(self):
        if not (self.steps or self.seconds or self.energy):
            raise ConfigError("budget: set at least one of steps, seconds, energy (all are 0, so nothing would stop the fit)")
        for k in ("steps", "seconds", "energy"):
            if getattr(self, k) < 0:
                raise ConfigError(f"budget.{k}: must be >= 0, found {getattr(self, k)}")


class Clock:
    """Tracks a fit against its budget."""

    def __init__(self, budget: Budget):
        self.budget, self.t0, self.steps, self.energy = budget, time.perf_counter(), 0, 0.0

    def tick(self, energy: float = 0.0) -> None:
        self.steps += 1
        self.energy += energy

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def done(self) -> bool:
        b = self.budget
        return bool((b.steps and self.steps >= b.steps) or (b.seconds and self.seconds >= b.seconds)
                    or (b.energy and self.energy >= b.energy))


@dataclass
class StrategyResult:
    model: nn.Module  # forward(x) -> (logits, hidden activations), macs(), readout: what learn.evaluate reads
    metrics: dict  # the results-table row: accuracy, information, energies, parameters, MACs, wall time
    history: dict[str, np.ndarray] = field(default_factory=dict)  # per step: sizes, events, loss, ...


class Strategy(Protocol):
    name: str

    def fit(self, data: Dataset, budget: Budget, seed: int, progress: bool = False) -> StrategyResult: ...


def finish(model: nn.Module, data: Dataset, clock: Clock, history: dict, table: EnergyTable | None = None) -> StrategyResult:
    """Evaluate the final model on the test split and package the result."""
    dtype = next(model.parameters()).dtype
    row = evaluate(model, data, table or EnergyTable(), dtype)
    row.update({"steps": clock.steps, "train_seconds": clock.seconds, "budget_energy": clock.energy})
    return StrategyResult(model, row, {k: np.asarray(v) for k, v in history.items()})


def write_history(result: StrategyResult, group) -> None:
    """Write a strategy's history arrays and metrics into an open h5py group."""
    for k, v in result.history.items():
        group.create_dataset(k, data=v)
    for k, v in result.metrics.items():
        if isinstance(v, (int, float, np.floating, np.integer)):
            group.attrs[k] = v

