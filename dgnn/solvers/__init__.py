"""Solvers as plain functions over (vector field, initial state, times); methods registered by name."""
from .graphs import CudaGraphLoop as CudaGraphLoop, graph_reason as graph_reason
from .integrate import (
    ADAPTIVE as ADAPTIVE, SOLVERS as SOLVERS, TORCHDIFFEQ_METHODS as TORCHDIFFEQ_METHODS,
    SolverStalled as SolverStalled, available_methods as available_methods, check_method as check_method,
    is_fixed_step as is_fixed_step, solve as solve,
)
from .methods import Method as Method
from .noise import BrownianPath as BrownianPath, GaussianIncrements as GaussianIncrements, PointIncrements as PointIncrements

__all__ = [
    "SOLVERS", "TORCHDIFFEQ_METHODS", "available_methods", "check_method", "solve", "is_fixed_step",
    "GaussianIncrements", "PointIncrements", "BrownianPath", "Method", "ADAPTIVE", "SolverStalled",
    "CudaGraphLoop", "graph_reason",
]
