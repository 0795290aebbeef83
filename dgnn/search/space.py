"""A search space in YAML: dotted keys of a candidate config mapped to distributions, with conditions.

    space:
      model.kind: {choice: [glial, oscillator, mlp]}
      model.width: {int: [4, 64], log: true}              # every hidden layer's width
      model.glia_ratio: {float: [0.0, 6.0], when: {model.kind: glial}}
      model.b: {float: [0.0, 0.5], when: {model.potential: hkb}}
      train.lr: {float: [0.001, 0.01], log: true}

Each entry has exactly one of `int: [low, high]`, `float: [low, high]` or `choice: [values]`, and optionally `log`
(int and float), `step`, and `when: {key: value or [values]}`: the key exists only when every named key of the
space took one of those values. `model.layers` with `model.width` sets `model.hidden` to `layers` equal widths;
`model.hidden.<i>` sets layer i's width. Values are drawn by an Optuna trial (define-by-run, conditions first), and
the sampled point is merged into the base config and validated by the candidate's own config model.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from pydantic import ConfigDict, Field, model_validator

from ..config import StrictModel
from ..errors import ConfigError

Scalar = bool | int | float | str


class Dimension(StrictModel):
    """One key's distribution: int or float range (optionally log-scaled or stepped), or a choice."""

    model_config = ConfigDict(**StrictModel.model_config, serialize_by_alias=True)

    ints: list[int] | None = Field(None, alias="int", min_length=2, max_length=2)  # [low, high]
    floats: list[float] | None = Field(None, alias="float", min_length=2, max_length=2)
    choice: list[Scalar] | None = None
    log: bool = False
    step: float | None = None
    when: dict[str, Scalar | list[Scalar]] = {}

    @model_validator(mode="after")
    def _check(self):
        kinds = [k for k, v in (("int", self.ints), ("float", self.floats), ("choice", self.choice)) if v is not None]
        if len(kinds) != 1:
            raise ValueError(f"give exactly one of int, float, choice (found {', '.join(kinds) or 'none'})")
        rng = self.ints if self.ints is not None else self.floats
        if rng is not None:
            lo, hi = rng
            if not lo <= hi:
                raise ValueError(f"empty or inverted range [{lo}, {hi}]")
            if self.log and lo <= 0:
                raise ValueError(f"log scale needs a range above 0, found [{lo}, {hi}]")
            if self.step is not None and (self.step <= 0 or self.log):
                raise ValueError("step must be > 0 and cannot be combined with log")
        elif not self.choice:
            raise ValueError("choice needs at least one value")
        elif self.log or self.step is not None:
            raise ValueError("log and step apply to int and float ranges, not to a choice")
        return self

    def values_for_grid(self) -> list[Scalar]:
        """Every value of a choice or a stepped range (what a grid sampler enumerates)."""
        if self.choice is not None:
            return list(self.choice)
        lo, hi = self.ints if self.ints is not None else self.floats
        step = self.step if self.step is not None else (1 if self.ints is not None else None)
        if step is None:
            raise ValueError("a float range needs a step to be gridded")
        n = int(math.floor((hi - lo) / step + 1e-9)) + 1
        vals = [lo + i * step for i in range(n)]
        return [int(round(v)) for v in vals] if self.ints is not None else vals

    def suggest(self, trial, name: str) -> Scalar:
        if self.choice is not None:
            return trial.suggest_categorical(name, self.choice)
        if self.ints is not None:
            return trial.suggest_int(name, *self.ints, log=self.log, step=int(self.step or 1))
        return trial.suggest_float(name, *self.floats, log=self.log, step=self.step)

    def edges(self) -> list[Scalar]:
        """The values a validation must try: every choice, or a range's ends."""
        if self.choice is not None:
            return list(self.choice)
        return list(self.ints if self.ints is not None else self.floats)


def _holds(cond: Scalar | list[Scalar], value) -> bool:
    return value in cond if isinstance(cond, list) else value == cond


class SearchSpace:
    """Dimensions by dotted key, sampled in condition order; `point -> candidate` merges a sample into the base."""

    def __init__(self, dims: dict[str, Dimension], keys: Callable[[str], bool]):
        """keys(name) says whether a dotted key names something the candidate config has."""
        self.dims = dims
        for name, dim in dims.items():
            if not keys(name):
                raise ConfigError(f"space.{name}: unknown key (not a key of the candidate config)")
            for cond in dim.when:
                if cond not in dims:
                    raise ConfigError(f"space.{name}.when.{cond}: a condition on a key that is not in the space")
                if cond == name:
                    raise ConfigError(f"space.{name}.when: a key cannot depend on itself")
        self.order = self._order()

    def _order(self) -> list[str]:
        """Keys with their conditions' keys first (a condition cycle is an error)."""
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(k: str, path: tuple) -> None:
            if state.get(k) == 2:
                return
            if state.get(k) == 1:
                raise ConfigError(f"space.{k}.when: conditions form a cycle ({' -> '.join((*path, k))})")
            state[k] = 1
            for c in self.dims[k].when:
                visit(c, (*path, k))
            state[k] = 2
            order.append(k)

        for k in self.dims:
            visit(k, ())
        return order

    def active(self, name: str, point: dict) -> bool:
        return all(c in point and _holds(v, point[c]) for c, v in self.dims[name].when.items())

    def sample(self, trial) -> dict[str, Any]:
        """One point: every active key drawn by the trial (define-by-run), in condition order."""
        point: dict[str, Any] = {}
        for name in self.order:
            if self.active(name, point):
                point[name] = self.dims[name].suggest(trial, name)
        return point

    def grid(self) -> dict[str, list]:
        """The search space of Optuna's GridSampler (every key, conditions ignored: inactive keys are unused)."""
        try:
            return {name: self.dims[name].values_for_grid() for name in self.order}
        except ValueError as exc:
            raise ConfigError(f"strategy grid: {exc} (space keys need choices or stepped ranges)") from None

    def probes(self) -> list[tuple[str, dict]]:
        """For validation: for each key and each of its edge values, a whole point that holds it (the conditions
        it needs, and a first value for every key that then becomes active)."""
        out = []
        for name in self.order:
            for value in self.dims[name].edges():
                point = self._enabling(name)
                point[name] = value
                for other in self.order:
                    if other not in point and self.active(other, point):
                        point[other] = self.dims[other].edges()[0]
                out.append((name, point))
        return out

    def _enabling(self, name: str) -> dict:
        point: dict = {}
        for c, cond in self.dims[name].when.items():
            point.update(self._enabling(c))
            point[c] = cond[0] if isinstance(cond, list) else cond
        return point
