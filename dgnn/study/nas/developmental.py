"""Developmental trials of `dgnn search` (strategy.name: developmental): each trial samples the developmental
strategy's options from the space (keys `developmental.<option>`), grows one net under the per-trial budget
(`strategy.options.budget`, steps and / or energy: no wall-clock seconds, so that a trial repeats) and is measured
as every other trial. The other keys of strategy.options are the options every trial starts from."""
from __future__ import annotations

import time

from ...errors import ConfigError
from ...search import Budget, make_strategy, strategy_keys
from ..engine import UnitFailed
from .evaluate import measure

NAME = "developmental"
PREFIX = NAME + "."
BUDGET = {"steps": 500}  # one trial's fit when strategy.options has no budget


def options() -> list[str]:
    """The developmental options a space may search (the search's dtype is its own key)."""
    return sorted(strategy_keys(NAME) - {"dtype"})


def is_key(name: str) -> bool:
    """Whether a space key names a developmental option (developmental.<option>)."""
    return name.startswith(PREFIX) and name[len(PREFIX):] in options()


def fit_budget(options: dict) -> Budget:
    """One trial's budget from strategy.options.budget (steps / energy)."""
    budget = options.get("budget", BUDGET)
    if not isinstance(budget, dict):
        raise ConfigError(f"budget: expected a mapping of steps / energy, found {budget!r}")
    if budget.get("seconds"):
        raise ConfigError("budget.seconds: a developmental trial is budgeted in steps (or energy) so that it "
                          "re-runs to the same result; drop seconds")
    try:
        return Budget(**budget)
    except TypeError:
        raise ConfigError(f"budget: expected keys steps / energy, found {', '.join(sorted(budget))}") from None


def candidate(options: dict, point: dict, dtype: str) -> dict:
    """The resolved developmental candidate of a sampled point: every strategy option, and the fit's budget."""
    budget = fit_budget(options)
    base = {k: v for k, v in options.items() if k != "budget"}
    chosen = {"dtype": dtype, **base, **{k[len(PREFIX):]: v for k, v in point.items()}}
    strategy = make_strategy(NAME, **chosen)
    return {"strategy": NAME, "options": strategy.options(),
            "budget": {"steps": budget.steps, "energy": budget.energy}}


def fit_candidate(candidate: dict, data, seed: int, energy: str, table) -> tuple[dict, dict]:
    """Grow and measure one developmental candidate: (row, history)."""
    t0 = time.perf_counter()
    strategy = make_strategy(candidate["strategy"], **candidate["options"])
    try:
        res = strategy.fit(data, Budget(**candidate["budget"]), seed)
    except FloatingPointError as exc:
        raise UnitFailed(str(exc)) from None
    row = measure(res.model, data, energy, table)
    row.update(steps=res.metrics["steps"], neurons=res.metrics["neurons"], seconds=time.perf_counter() - t0)
    return row, res.history
