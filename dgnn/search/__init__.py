"""Structural-learning strategies under one interface (see README 'Search')."""
from .strategy import STRATEGIES as STRATEGIES, Budget as Budget, StrategyResult as StrategyResult
from .strategy import make_strategy as make_strategy
from . import darts as darts, dnn as dnn, dyno as dyno, nne as nne, north as north  # noqa: F401  (registers)
