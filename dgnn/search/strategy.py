"""One interface for every structural-learning strategy (baselines now, dgnn's own search later): fit on a task
under a budget, return the final model, the results-table metrics and a history of arrays for HDF5."""
from __future__ import annotations

import inspect
import sys
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from torch import nn

from ..errors import ConfigError
from ..learn.config import EnergyTable
from ..learn.data import Dataset
from ..learn.train import evaluate


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


STRATEGIES: dict[str, type] = {}


def register_strategy(name: str):
    def deco(cls):
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return deco


def register_variant(base: type, name: str, doc: str, **defaults) -> type:
    """Register `base` under `name` with other defaults (a named configuration, e.g. Table 7's strategies); its
    keys stay `base`'s, and the config may still override any of them."""
    cls = type(name, (base,), {"__init__": lambda self, **kw: base.__init__(self, **{**defaults, **kw}), "__doc__": doc,
                               "__module__": base.__module__})
    setattr(sys.modules[base.__module__], name, cls)  # importable by name, so instances pickle (worker processes)
    return register_strategy(name)(cls)


def make_strategy(name: str, **options) -> Strategy:
    """The strategy registered under `name`, built from its config keys."""
    if name not in STRATEGIES:
        raise ConfigError(f"strategy: unknown name {name!r}; valid names are {', '.join(sorted(STRATEGIES))}")
    cls = STRATEGIES[name]
    keys = set()
    for klass in cls.__mro__:  # a strategy may pass its parent's keys through **kwargs
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        keys |= {p.name for p in params if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break
    unknown = sorted(set(options) - keys)
    if unknown:
        raise ConfigError(f"strategy {name}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(sorted(keys))}")
    return cls(**options)


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

