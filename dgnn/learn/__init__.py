"""Learning: phase-based oscillator networks against weight-based MLPs, energy-regularised training, `dgnn compare`."""
from .compare import compare as compare, load_compare_config as load_compare_config
from .config import CompareConfig as CompareConfig, ModelConfig as ModelConfig
from .data import load_dataset as load_dataset, read_idx as read_idx, write_idx as write_idx
from .train import fit as fit
