"""The reference model reproduces MODEL.md's analytic results."""
import math

import numpy as np
import pytest

from dgnn.config import config_from_dict
from dgnn.simulation import Simulation
from problems import DEVICES, kuramoto_lorentzian_r, kuramoto_r, records, two_oscillator_config, two_oscillators


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1.5, 2.0, 4.0])
def test_kuramoto_order_parameter_above_critical_coupling(k, device):
    # quantile (inverse-CDF) frequencies: the finite-N stationary r is the theory's up to O(1/N) quadrature error;
    # r fluctuates by ~0.005 at N = 4000, averaged over 100 records of the second half
    n = 4000
    r = kuramoto_r(n, k, device=device)
    assert abs(r[100:].mean() - kuramoto_lorentzian_r(k, 0.5)) < 1e-3


@pytest.mark.parametrize("k", [0.5, 0.9])
def test_kuramoto_incoherent_below_critical_coupling(k):
    # below k_c = 2 gamma the infinite-N state is r = 0; finite N leaves r ~ sqrt(pi / 4N) ~ 0.9 / sqrt(N)
    n = 4000
    r = kuramoto_r(n, k, init="uniform")
    assert r[100:].mean() < 3.0 / math.sqrt(n)


@pytest.mark.parametrize("b, stable_antiphase", [(0.15, False), (0.22, False), (0.28, True), (0.5, True)])
def test_hkb_antiphase_stable_iff_b_over_a_above_quarter(b, stable_antiphase):
    # phi' = -k (a sin phi + 2 b sin 2 phi): linear rate at pi is k (a - 4b); start 0.2 rad off anti-phase
    cfg = two_oscillator_config(0.0, 0.0, 1.0, 0.0, math.pi - 0.2, b=b, duration=200.0, dt=0.05, every=5.0)
    ph = records(Simulation(cfg))[-1, 0]
    phi = math.remainder(ph[0] - ph[1], 2 * math.pi)
    target = math.pi if stable_antiphase else 0.0
    # |rate| >= 0.12: the 0.2 rad offset decays by e^{-0.12 * 200} well below 1e-6
    assert abs(abs(phi) - target) < 1e-6


@pytest.mark.parametrize("d, k", [(0.3, 1.0), (0.6, 1.0), (0.99, 1.0), (1.0, 2.5)])
def test_two_oscillators_lock_at_asin_d_over_k(d, k):
    cfg = two_oscillator_config(d / 2, -d / 2, k, 0.0, 0.0, duration=200.0, dt=0.05, every=10.0)
    ph = records(Simulation(cfg))[:, 0]
    phi = ph[:, 0] - ph[:, 1]
    # the locked state is a fixed point of the rk4 map too, so it is reached to rounding; |d| = 0.99k relaxes slowest
    # at rate sqrt(k^2 - d^2) = 0.14, leaving e^{-0.14 * 200} ~ 1e-12
    assert abs(phi[-1] - math.asin(d / k)) < 1e-8
    assert abs(phi[-1] - phi[-5]) < 1e-8


@pytest.mark.parametrize("d, k", [(1.5, 1.0), (1.01, 1.0), (3.0, 2.0)])
def test_two_oscillators_beat_at_sqrt_d2_minus_k2(d, k):
    w = math.sqrt(d * d - k * k)
    cfg = two_oscillator_config(d / 2 + 0.3, -d / 2 + 0.3, k, 0.4, -0.1, duration=120.0, dt=0.01, every=0.5)
    ph = records(Simulation(cfg))[:, 0]
    t = np.arange(1, ph.shape[0] + 1) * 0.5
    th1, th2 = two_oscillators(d / 2 + 0.3, -d / 2 + 0.3, k, 0.4, -0.1, t)
    # rk4 at dt = 0.01: global error ~ C dt^4 T; 1e-6 rad leaves a margin of ~100x
    assert np.abs(ph[:, 0] - th1).max() < 1e-6
    assert np.abs(ph[:, 1] - th2).max() < 1e-6
    phi = ph[:, 0] - ph[:, 1]
    periods = np.floor((phi[-1] - phi[0]) / (2 * math.pi))
    assert periods >= 2
    # mean beat frequency over whole slips: phi advances 2 pi per period 2 pi / w
    beat = 2 * math.pi / (2 * math.pi / w)
    measured = (phi[-1] - phi[0]) / (t[-1] - t[0])
    assert abs(measured - beat) < 2 * math.pi / (t[-1] - t[0])  # at most one partial slip of error


@pytest.mark.parametrize("d_over_k, locks", [(0.95, True), (1.05, False)])
def test_locking_boundary_is_d_equals_k(d_over_k, locks):
    cfg = two_oscillator_config(d_over_k / 2, -d_over_k / 2, 1.0, 0.0, 0.0, duration=300.0, dt=0.05, every=1.0)
    ph = records(Simulation(cfg))[:, 0]
    drift = abs((ph[-1, 0] - ph[-1, 1]) - (ph[150, 0] - ph[150, 1]))
    # locked: phi settles; drifting: one slip takes 2 pi / sqrt(d^2 - k^2) = 20 time units at d = 1.05k
    assert (drift < 1e-6) if locks else (drift > 2 * math.pi)


@pytest.mark.parametrize("method", ["euler_maruyama", "heun"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_free_phase_diffusion_variance_is_sigma2_t(method, dtype):
    sigma, n, b = 0.3, 500, 8
    cfg = config_from_dict({
        "dtype": dtype, "replicas": b, "seed": 3,
        "neurons": {"count": n, "frequency": {"distribution": "constant", "center": 0.7}, "initial_phase": {"distribution": "constant"}},
        "coupling": {"strength": 0.0}, "noise": {"neurons": sigma},
        "solver": {"method": method, "dt": 0.01, "duration": 10.0}, "record": {"every": 2.5},
    })
    ph = records(Simulation(cfg))  # (4, B, N)
    t = np.array([2.5, 5.0, 7.5, 10.0])
    dev = ph - 0.7 * t[:, None, None]
    m = b * n
    for i, ti in enumerate(t):
        var = dev[i].var()
        # sample variance of m Gaussian draws: sd = var sqrt(2 / (m - 1)); 5 sd
        assert abs(var - sigma**2 * ti) < 5 * sigma**2 * ti * math.sqrt(2 / (m - 1))
        assert abs(dev[i].mean()) < 5 * sigma * math.sqrt(ti / m)


def test_noise_scaling_does_not_depend_on_dt():
    # sigma dW with dW ~ N(0, dt): the variance at t = 4 is the same for dt = 0.01 and 0.04
    out = []
    for dt in (0.01, 0.04):
        cfg = config_from_dict({
            "replicas": 4, "neurons": {"count": 1000, "frequency": {"distribution": "constant"}, "initial_phase": {"distribution": "constant"}},
            "coupling": {"strength": 0.0}, "noise": {"neurons": 0.5},
            "solver": {"method": "euler_maruyama", "dt": dt, "duration": 4.0}, "record": {"every": 4.0},
        })
        out.append(records(Simulation(cfg))[-1].var())
    m = 4000
    for v in out:
        assert abs(v - 1.0) < 5 * math.sqrt(2 / (m - 1))
