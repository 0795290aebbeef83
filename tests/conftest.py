import sys
from pathlib import Path

import pytest
import torch

# two torch threads stall badly when the other core is busy (CI has 2 cores); denormals slow float32 loops
torch.set_num_threads(1)
torch.set_flush_denormal(True)

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def run_dir(tmp_path):
    return tmp_path / "run"
