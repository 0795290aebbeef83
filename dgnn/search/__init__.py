"""Structural-learning strategies under one interface (see the docs' Search page)."""
from ..learn.strategy import Budget as Budget, StrategyResult as StrategyResult
from .strategy import STRATEGIES as STRATEGIES, make_strategy as make_strategy, strategy_keys as strategy_keys
from . import darts as darts, dnn as dnn, dyno as dyno, nne as nne, north as north  # noqa: F401  (registers)
from . import developmental as developmental  # noqa: F401  (registers)
