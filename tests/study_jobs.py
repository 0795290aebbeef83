"""Jobs for the study engine's tests (importable by worker processes: multiprocessing gives them this sys.path)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dgnn.study.engine import Interrupted, Unit, UnitFailed


@dataclass(frozen=True)
class DrawJob:
    """A unit draws 1000 normals from its own seed and writes them to its own file; its row is their sum, a
    function of the unit alone. `seconds` of work per unit; seed `fail` fails."""

    out: Path
    seconds: float = 0.0
    fail: int = -1

    def run(self, unit: Unit, should_stop) -> dict:
        seed = unit.params["seed"]
        if seed == self.fail:
            raise UnitFailed(f"seed {seed} fails on purpose")
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            if should_stop is not None and should_stop():
                raise Interrupted("stop flag")
            time.sleep(0.01)
        x = np.random.default_rng(seed).standard_normal(1000)
        path = self.out / f"u{seed}.npy"
        tmp = path.with_name(f".{os.getpid()}.{path.name}")
        np.save(tmp, x)
        os.replace(tmp, path)
        return {"seed": seed, "sum": float(x.sum()), "pid": os.getpid()}


def units(n: int) -> list[Unit]:
    return [Unit(f"s{i}", {"seed": i}) for i in range(n)]
