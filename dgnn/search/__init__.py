"""Structural-learning strategies under one interface (see README 'Search')."""
from .strategy import STRATEGIES as STRATEGIES, Budget as Budget, StrategyResult as StrategyResult
from .strategy import make_strategy as make_strategy
from . import dnn as dnn, nne as nne  # noqa: F401  (registers nne, nne_signsgd, sparse_sgd, dnn)
