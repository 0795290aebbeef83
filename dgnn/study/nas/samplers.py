"""The search strategies that are Optuna samplers, by name: tpe (the default for several objectives), nsga2, gp,
random and grid; each worker gets its own seed (seed + 7919 x worker) so that parallel workers do not propose the
same candidates. Trial constraints (objectives.accuracy_min / energy_max) go to the samplers that take them."""
from __future__ import annotations

import optuna

from ...errors import ConfigError

CONSTRAINED = ("tpe", "nsga2", "gp")


def _constraints(trial) -> list[float]:
    return trial.user_attrs.get("constraints", [])


def make_sampler(cfg, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The strategy's sampler (developmental trials draw their options at random)."""
    name, options = cfg.strategy.name, dict(cfg.strategy.options)
    seed = cfg.seed + 7919 * worker
    kw = {"constraints_func": _constraints} if name in CONSTRAINED and (
        cfg.objectives.accuracy_min is not None or cfg.objectives.energy_max is not None) else {}
    makers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True, **kw, **options),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, **kw, **options),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed, **kw, **options),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed, **options),
        "grid": lambda: optuna.samplers.GridSampler(cfg.search_space().grid(), seed=seed, **options),
        "developmental": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    try:
        return makers[name]()
    except TypeError as exc:
        raise ConfigError(f"strategy.options: {exc}") from None
