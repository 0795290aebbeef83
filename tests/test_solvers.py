"""Convergence order from the slope of log error vs log dt (as diffrax's test_ode_order), and solver contracts."""
import math

import numpy as np
import pytest
import torch

from dgnn.model import build_field
from dgnn.solvers import SOLVERS, BrownianPath, GaussianIncrements, available_methods, solve
from problems import gbm_ito, gbm_stratonovich, two_oscillator_config, two_oscillators

W1, W2, K, TH1, TH2, T = 1.2, -0.3, 1.0, 0.4, -0.2, 5.0


def _field():
    cfg = two_oscillator_config(W1, W2, K, TH1, TH2)
    return build_field([cfg], "cpu", torch.float64, [np.random.default_rng(0)])


def _slope(dts, errs):
    return np.polyfit(np.log(dts), np.log(errs), 1)[0]


@pytest.mark.parametrize("method, backend", [
    ("euler", "native"), ("midpoint", "native"), ("rk4", "native"), ("heun", "native"),
    ("euler", "torchdiffeq"), ("midpoint", "torchdiffeq"), ("rk4", "torchdiffeq"), ("heun3", "torchdiffeq"),
])
def test_ode_convergence_order(method, backend):
    expected = {"euler": 1, "midpoint": 2, "rk4": 4, "heun": 2, "heun3": 3}[method]
    field = _field()
    y0 = torch.tensor([[TH1, TH2]], dtype=torch.float64)
    exact = np.array(two_oscillators(W1, W2, K, TH1, TH2, np.array([T]))).ravel()
    dts = [0.2, 0.1, 0.05, 0.025] if expected >= 3 else [0.05, 0.025, 0.0125, 0.00625]
    errs = []
    for dt in dts:
        y = solve(field, y0, [0.0, T], method=method, dt=dt, backend=backend)[-1, 0].numpy()
        errs.append(np.abs(y - exact).max())
    assert abs(_slope(dts, errs) - expected) < 0.25, errs


def test_native_rk4_equals_torchdiffeq_rk4():
    # the same 3/8-rule tableau: identical to rounding
    field = _field()
    y0 = torch.tensor([[TH1, TH2]], dtype=torch.float64)
    a = solve(field, y0, [0.0, 1.0, 2.0], method="rk4", dt=0.05, backend="native")
    b = solve(field, y0, [0.0, 1.0, 2.0], method="rk4", dt=0.05, backend="torchdiffeq")
    assert torch.allclose(a, b, rtol=0, atol=1e-13)


def test_adaptive_torchdiffeq_meets_tolerance():
    field = _field()
    y0 = torch.tensor([[TH1, TH2]], dtype=torch.float64)
    y = solve(field, y0, [0.0, T], method="dopri5", rtol=1e-10, atol=1e-12)[-1, 0].numpy()
    exact = np.array(two_oscillators(W1, W2, K, TH1, TH2, np.array([T]))).ravel()
    assert np.abs(y - exact).max() < 1e-8


def _strong_errors(method, exact_fn, diffusion, mu=1.0, sigma=0.8, paths=4000):
    torch.manual_seed(0)  # test data only; the solver itself takes the path object
    fine = 2.0**-10
    inc = torch.randn(int(1 / fine), paths, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * math.sqrt(fine)
    bm = BrownianPath(0.0, fine, inc)
    w1 = bm.cumulative[-1].numpy()
    exact = exact_fn(1.0, mu, sigma, 1.0, w1)
    drift = lambda t, y: mu * y  # noqa: E731
    g = lambda t, y: sigma * y  # noqa: E731
    y0 = torch.ones(paths, 1, dtype=torch.float64)
    dts = [2.0**-4, 2.0**-5, 2.0**-6, 2.0**-7, 2.0**-8]
    errs = [np.abs(solve(drift, y0, [0.0, 1.0], method=method, dt=dt, diffusion=g, noise=bm)[-1].numpy() - exact).mean()
            for dt in dts]
    return dts, errs


def test_euler_maruyama_strong_order_half_on_ito_gbm():
    dts, errs = _strong_errors("euler_maruyama", gbm_ito, "diagonal")
    assert abs(_slope(dts, errs) - SOLVERS["euler_maruyama"].strong_order) < 0.12, errs


def test_heun_strong_order_one_on_stratonovich_gbm():
    dts, errs = _strong_errors("heun", gbm_stratonovich, "diagonal")
    assert abs(_slope(dts, errs) - SOLVERS["heun"].strong_order) < 0.15, errs


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="valid:.*euler_maruyama.*rk4"):
        solve(_field(), torch.zeros(1, 2), [0.0, 1.0], method="rk5", dt=0.1)


def test_noise_needs_a_stochastic_method():
    with pytest.raises(ValueError, match="cannot integrate noise"):
        solve(_field(), torch.zeros(1, 2, dtype=torch.float64), [0.0, 1.0], method="dopri5",
              diffusion=torch.ones(2), noise=GaussianIncrements(0))


def test_same_seed_same_path_different_seed_different_path():
    f = lambda t, y: torch.zeros_like(y)  # noqa: E731
    y0 = torch.zeros(3, 4, dtype=torch.float64)
    run = lambda seed: solve(f, y0, [0.0, 1.0], method="euler_maruyama", dt=0.1, diffusion=torch.ones(4),  # noqa: E731
                             noise=GaussianIncrements(seed))
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_registry_declares_order_and_noise():
    for name, cls in SOLVERS.items():
        assert cls.order >= 1
        assert "none" in cls.noise
    assert set(SOLVERS) <= set(available_methods())
