"""Learning: phase-based oscillator networks against weight-based MLPs, energy-regularised training."""
from .config import ModelConfig as ModelConfig
from .data import load_dataset as load_dataset, read_idx as read_idx, write_idx as write_idx
from .strategy import Budget as Budget, StrategyResult as StrategyResult
from .train import fit as fit
