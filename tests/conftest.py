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


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server for the session (tests/postgres.py). Skipped where PostgreSQL is not installed,
    except on CI (CI=true), where its absence is a failure: .ci/run installs it."""
    import os

    from postgres import Server, find_bin

    bin_dir = find_bin()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL's initdb not found: .ci/run must install Debian's postgresql package")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); CI runs these tests")
    server = Server(bin_dir)
    url = server.start()
    yield url
    server.stop()
