"""Cases with closed forms, shared by the tests (as torchdiffeq's tests/problems.py), and the helpers that run them
on a device given as a parameter: the same bodies run on the CPU everywhere and on CUDA where there is one."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import dgnn
from dgnn.config import config_from_dict
from dgnn.simulation import Simulation

# CUDA cases carry the `cuda` marker and are skipped, with the reason, where torch sees no CUDA device
CUDA_ONLY = [pytest.mark.cuda,
             pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False")]
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=CUDA_ONLY)]


def adler_drifting(d: float, k: float, phi0: float, t: np.ndarray) -> np.ndarray:
    """Unwrapped phi(t) of phi' = d - k sin(phi) for d > k > 0 (no locking).

    With u = tan(phi / 2): u = k/d + (w/d) tan(w t / 2 + c), w = sqrt(d^2 - k^2); each pass of the tangent's
    argument through pi/2 + n pi adds one turn.
    """
    w = math.sqrt(d * d - k * k)
    u0 = math.tan(phi0 / 2.0)
    c = math.atan((u0 - k / d) * d / w)
    arg = w * np.asarray(t) / 2.0 + c
    return 2.0 * np.arctan(k / d + (w / d) * np.tan(arg)) + 2.0 * np.pi * np.floor((arg + np.pi / 2) / np.pi)


def two_oscillators(w1, w2, k, th1, th2, t):
    """(theta_1(t), theta_2(t)) of two all-to-all Kuramoto oscillators (K = k/2): the sum advances at w1 + w2."""
    phi = adler_drifting(w1 - w2, k, th1 - th2, t)
    s = th1 + th2 + (w1 + w2) * np.asarray(t)
    return (s + phi) / 2.0, (s - phi) / 2.0


def two_oscillator_config(w1, w2, k, th1, th2, *, b=0.0, duration=10.0, dt=0.01, every=None, method="rk4", **extra):
    data = {
        "dtype": "float64",
        "neurons": {
            "count": 2,
            "frequency": {"distribution": "values", "values": [w1, w2]},
            "initial_phase": {"distribution": "values", "values": [th1, th2]},
        },
        "coupling": {"strength": k, "b": b},
        "solver": {"method": method, "dt": dt, "duration": duration},
        "record": {"every": every or dt},
    }
    for key, value in extra.items():
        data.setdefault(key, {}).update(value) if isinstance(value, dict) else data.__setitem__(key, value)
    return config_from_dict(data)


def kuramoto_lorentzian_r(k: float, gamma: float) -> float:
    """Infinite-N stationary order parameter for Lorentzian frequencies (half-width gamma) with coupling k/N."""
    return math.sqrt(1.0 - 2.0 * gamma / k) if k > 2.0 * gamma else 0.0


def gbm_ito(x0, mu, sigma, t, w):
    """dX = mu X dt + sigma X dW (Ito): X = x0 exp((mu - sigma^2 / 2) t + sigma W)."""
    return x0 * np.exp((mu - 0.5 * sigma**2) * t + sigma * w)


def gbm_stratonovich(x0, mu, sigma, t, w):
    """dX = mu X dt + sigma X o dW (Stratonovich): X = x0 exp(mu t + sigma W)."""
    return x0 * np.exp(mu * t + sigma * w)


def config_with(base: dict, **over):
    """A Config from a base dict with top-level sections overridden (section dicts are merged one level deep)."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in over.items():
        data[k] = {**data[k], **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
    return config_from_dict(data)


def nm_pair_config(w_fast, w_slow, k_sf, k_fs, n, m, th_fast=0.0, th_slow=0.0, *, shape="sine", sharpness=2.0,
                   duration=10.0, dt=0.01, every=None, **extra):
    """A fast and a slow neuron coupled n:m (omega_f / omega_s ~ n / m): slow -> fast k_sf sin(n th_s - m th_f),
    fast -> slow k_fs sin(m th_f - n th_s) (or the pulse shape with the same integers)."""
    term = {"shape": shape, "sharpness": sharpness}
    data = {
        "dtype": "float64",
        "neurons": {
            "groups": {"fast": {"count": 1, "frequency": {"distribution": "constant", "center": w_fast}},
                       "slow": {"count": 1, "frequency": {"distribution": "constant", "center": w_slow}}},
            "initial_phase": {"distribution": "values", "values": [th_fast, th_slow]},
        },
        "coupling": {"strength": 0.0, "cross": {
            "slow_to_fast": {"source": "slow", "target": "fast", "n_source": n, "n_target": m, "strength": k_sf, **term},
            "fast_to_slow": {"source": "fast", "target": "slow", "n_source": m, "n_target": n, "strength": k_fs, **term},
        }},
        "solver": {"method": "rk4", "dt": dt, "duration": duration},
        "record": {"every": every or dt},
    }
    for key, value in extra.items():
        data.setdefault(key, {}).update(value) if isinstance(value, dict) else data.__setitem__(key, value)
    return config_from_dict(data)


def records(sim: Simulation, n: int | None = None) -> np.ndarray:
    """Advance through every record; (T, B, N + G) unwrapped phases after each."""
    out = []
    for _ in range(n if n is not None else sim.cfg.n_records):
        sim.advance()
        out.append(sim.unwrapped().cpu().numpy())
    return np.stack(out)


def kuramoto_r(n: int, k: float, gamma: float = 0.5, init: str = "constant", duration: float = 200.0,
               device: str | None = None) -> np.ndarray:
    """r(t) at every record of N Kuramoto oscillators with quantile-sampled Lorentzian frequencies (mean field)."""
    cfg = config_from_dict({
        "neurons": {"count": n, "frequency": {"distribution": "lorentzian", "center": 0.0, "width": gamma, "sampling": "quantile"},
                    "initial_phase": {"distribution": init}},
        "coupling": {"strength": k}, "solver": {"dt": 0.05, "duration": duration}, "record": {"every": 1.0},
    })
    ph = records(Simulation(cfg, device=device))[:, 0]  # (T, N)
    return np.abs(np.exp(1j * ph).mean(axis=1))


def whole_and_resumed(cfg, tmp_path, stop_after: int, device: str | None = None):
    """Traces of an uninterrupted run and of the same run stopped after `stop_after` records and resumed."""
    whole = dgnn.read_trace(dgnn.run(cfg, tmp_path / "w", progress=False, device=device).path)
    calls = iter(range(1000))
    dgnn.run(cfg, tmp_path / "p", progress=False, should_stop=lambda: next(calls) >= stop_after, device=device)
    return whole, dgnn.read_trace(dgnn.resume(tmp_path / "p", progress=False, device=device).path)
