"""log2 of distinct attractors from random initial conditions, on cases whose attractors are known."""
import math

import h5py
import pytest

import dgnn
from dgnn.attractors import attractor_information
from dgnn.config import config_from_dict

OFF = {op: {"enabled": False} for op in ("neurogenesis", "neuron_removal")}


def two_oscillators(b: float, coupling: float = 1.0, width: float = 0.0):
    freq = {"distribution": "constant", "center": 1.0} if width == 0 else {"distribution": "values", "values": [1.0, 1.0 + width]}
    return config_from_dict({
        "dtype": "float64", "neurons": {"count": 2, "frequency": freq},
        "glia": {"ratio": 0.5}, "coupling": {"strength": coupling, "b": b},
        # reserves full and k_m tiny: the gate is 1, so the pair follows the plain HKB equation
        "metabolism": {"enabled": True, "supply": 1.0, "e_init": 5.0, "e_max": 5.0, "k_m": 1e-9, "p_base": 0.0,
                       "p_act": 0.0, "p_syn": 0.0},
        "topology": {"kind": "all_to_all"},
        "structure": {"enabled": True, "capacity": 2, "synaptogenesis": {"enabled": False, "threshold": 0.9},
                      "pruning": {"enabled": False, "threshold": 0.1}, **OFF},
        "solver": {"dt": 0.05, "duration": 1.0}, "record": {"every": 0.5},
    })


@pytest.mark.parametrize("b, expected_classes", [(0.0, 1), (0.5, 2)])
def test_hkb_pair_has_one_or_two_attractors(run_dir, b, expected_classes):
    # identical HKB oscillators: in-phase is always stable; anti-phase too iff b/a > 1/4
    cfg = two_oscillators(b)
    res = dgnn.run(cfg, run_dir, progress=False)
    with h5py.File(res.path) as h5:
        ckpt = {k: v[()] for k, v in h5["checkpoint"].items()}
    info = attractor_information(cfg, ckpt, 0, trials=24, settle=80.0)
    assert info["locked_fraction"] == 1.0
    assert info["classes"] == expected_classes and info["bits"] == pytest.approx(math.log2(expected_classes))


def test_drifting_pair_is_one_non_stationary_class(run_dir):
    cfg = two_oscillators(0.0, coupling=0.1, width=1.0)  # detuning 1 > coupling 0.1: no locking
    res = dgnn.run(cfg, run_dir, progress=False)
    with h5py.File(res.path) as h5:
        ckpt = {k: v[()] for k, v in h5["checkpoint"].items()}
    info = attractor_information(cfg, ckpt, 0, trials=16, settle=30.0)
    assert info["locked_fraction"] == 0.0 and info["classes"] == 1 and info["bits"] == 0.0
