"""The registry of structural-learning strategies (baselines now, dgnn's own search later): every strategy fits a
task under a Budget and returns a StrategyResult (the protocol in dgnn.learn.strategy)."""
from __future__ import annotations

import inspect
import sys

from ..errors import ConfigError
from ..learn.strategy import Strategy

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
    keys = strategy_keys(name)
    unknown = sorted(set(options) - keys)
    if unknown:
        raise ConfigError(f"strategy {name}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(sorted(keys))}")
    return STRATEGIES[name](**options)


def strategy_keys(name: str) -> set[str]:
    """The config keys of the strategy registered under `name`."""
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
    return keys
