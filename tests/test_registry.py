"""Another vector field registered beside the reference one runs through configs, solvers and traces."""
import numpy as np
import pytest
import torch

import dgnn
from dgnn.config import config_from_dict
from dgnn.errors import ConfigError
from dgnn.model import VECTOR_FIELDS
from dgnn.sampling import sample_frequencies


@dgnn.register_vector_field("test_free_rotation")
class FreeRotation:
    """theta' = omega: uncoupled oscillators, so theta(t) = theta(0) + omega t exactly."""

    def __init__(self, omega):
        self.omega, self.n_neurons, self.n_glia = omega, omega.shape[1], 0
        self.nu = omega[:, :0]
        self.sigma = torch.zeros(self.n_neurons, dtype=omega.dtype)
        self.graph = self.neuron_domain = self.glia_domain = None
        self.backend_name = "none"

    @classmethod
    def from_config(cls, cfg, device, dtype, rng):
        omega = sample_frequencies(cfg.neurons.frequency, cfg.neurons.count, cfg.replicas, rng)
        return cls(torch.as_tensor(omega, device=device, dtype=dtype))

    def __call__(self, t, y):
        return self.omega.expand_as(y)


def test_registered_field_runs_from_config(run_dir):
    cfg = config_from_dict({"model": "test_free_rotation", "replicas": 3, "neurons": {"count": 5},
                            "solver": {"dt": 0.1, "duration": 50.0}, "record": {"every": 1.0}})
    res = dgnn.run(cfg, run_dir, progress=False)
    assert res.status == "complete"
    tr = dgnn.read_trace(res.path)
    omega, th0 = tr.static["neurons/frequency"], tr.static["neurons/initial_phase"]
    expected = th0[None] + omega[None] * tr.time[:, None, None]
    assert np.abs(tr.neuron_phase - expected).max() < 1e-11  # unwrapped across ~8 turns
    assert tr.attrs["backend"] == "none"


def test_unknown_model_lists_registered(run_dir):
    cfg = config_from_dict({"model": "nope"})
    with pytest.raises(ConfigError, match=r"model: unknown vector field 'nope'; registered: .*glial_neural"):
        dgnn.run(cfg, run_dir, progress=False)
    assert "glial_neural" in VECTOR_FIELDS and not run_dir.exists()
