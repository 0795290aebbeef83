"""Learning: phase-based oscillator and glial-neural networks against weight-based MLPs, energy-regularised training."""
from .config import ModelConfig as ModelConfig
from . import glial as glial  # registers kind glial with build_model
from .data import load_dataset as load_dataset, read_idx as read_idx, write_idx as write_idx
from .strategy import Budget as Budget, StrategyResult as StrategyResult
from .train import fit as fit
