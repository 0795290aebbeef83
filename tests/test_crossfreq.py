"""Cross-frequency n:m coupling and state-dependent frequencies against closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
from problems import adler_drifting, nm_pair_config
from scipy.special import ive

import dgnn
from dgnn.analysis import farey, mean_frequency
from dgnn.config import config_from_dict
from dgnn.model import batchable_paths


def run_points(points, records):
    """Unwrapped phases (T + 1, B, N) of sweep points simulated as one batch."""
    sim = dgnn.Simulation(points[0], device="cpu", points=points)
    out = [sim.unwrapped().numpy()]
    for _ in range(records):
        sim.advance()
        out.append(sim.unwrapped().numpy())
    return np.stack(out)[:, :, : sim.n]


@pytest.mark.parametrize("n, m", [(3, 1), (3, 2), (1, 1)])
def test_nm_locking_range_is_m_k_plus_n_k_prime(n, m):
    """phi = m th_f - n th_s obeys phi' = D - (m K + n K') sin(phi), D = m w_f - n w_s: locked at asin(D / K_eff)
    iff |D| <= K_eff, else the exact Adler trajectory."""
    w_s, k, kp = 1.0, 0.12, 0.05
    k_eff = m * k + n * kp
    detunings = [-1.5 * k_eff, -0.9 * k_eff, -0.3 * k_eff, 0.0, 0.5 * k_eff, 0.95 * k_eff, 1.3 * k_eff, 2.0 * k_eff]
    points = [nm_pair_config((n * w_s + d) / m, w_s, k, kp, n, m, 0.3, -0.2, duration=200.0, dt=0.05, every=1.0)
              for d in detunings]
    ph = run_points(points, 200)  # (T, P, 2)
    t = np.arange(ph.shape[0]) * 1.0
    phi = m * ph[:, :, 0] - n * ph[:, :, 1]  # (T, P)
    for p, d in enumerate(detunings):
        if abs(d) <= k_eff:
            # relaxation rate sqrt(K_eff^2 - D^2) >= 0.31 K_eff = 0.08: after 200 time units the gap is < 1e-6
            target = math.asin(d / k_eff)
            gap = math.remainder(phi[-1, p] - target, 2 * math.pi)
            assert abs(gap) < 1e-4, (d, k_eff, gap)
        else:
            sign = 1.0 if d > 0 else -1.0  # phi -> -phi maps D to -D
            exact = sign * adler_drifting(abs(d), k_eff, sign * phi[0, p], t)
            assert np.abs(phi[:, p] - exact).max() < 1e-6, (d, k_eff)


def test_pulse_coupling_opens_p_to_1_tongue_of_first_order_width():
    """Slow source at omega_s firing one von Mises pulse per cycle onto a fast -sin PRC target (no back-coupling): averaging gives
    phi = th_f - p th_s, phi' = (w_f - p w_s) - K e^{-kappa} I_p(kappa) sin(phi), a tongue of half-width
    K e^{-kappa} I_p(kappa) = K ive(p, kappa). The second-order shift of the tongue's centre is O(K^2 / w), so the
    test compares the width (edges located to the grid spacing) to first order, within 15%."""
    p, kappa, k, w_s = 3, 2.0, 0.25, 1.0
    half = k * ive(p, kappa)  # 0.0072
    offsets = np.linspace(-0.03, 0.03, 61)  # spacing 1e-3
    points = [nm_pair_config(p * w_s + o, w_s, k, 0.0, 1, 1, shape="pulse", sharpness=kappa,
                             duration=1500.0, dt=0.1, every=1.0) for o in offsets]
    ph = run_points(points, 1500)
    time = np.arange(ph.shape[0]) * 1.0
    late = slice(500, None)
    ratio = mean_frequency(ph[late, :, 0], time[late]) / mean_frequency(ph[late, :, 1], time[late])  # (P,)
    locked = np.abs(ratio - p) < 2e-4  # a drifting point slips >= 1 turn in 1000 time units: |ratio - 3| > 2e-3
    width = locked.sum() * (offsets[1] - offsets[0])
    assert locked.any() and np.all(np.diff(np.flatnonzero(locked)) == 1), "the locked points form one interval"
    assert abs(width - 2 * half) < 0.15 * 2 * half + 2e-3, (width, 2 * half)
    assert farey(float(ratio[locked][0]), 5)[:2] == (p, 1)


def test_state_factors_scale_frequencies_per_epoch():
    """Uncoupled groups advance at omega x the epoch's factor: the phase gained over a cycle is exact."""
    cfg = config_from_dict({
        "dtype": "float64",
        "neurons": {"groups": {"a": {"count": 2, "frequency": {"distribution": "constant", "center": 1.0}},
                               "b": {"count": 1, "frequency": {"distribution": "constant", "center": 2.0}}},
                    "initial_phase": {"distribution": "constant", "value": 0.0}},
        "coupling": {"strength": 0.0},
        "metabolism": {"schedule": [{"name": "quiet", "duration": 2.0},
                                    {"name": "active", "duration": 3.0, "frequency": {"a": 1.5, "b": 0.5}}]},
        "solver": {"method": "rk4", "dt": 0.01, "duration": 10.0},
        "record": {"every": 1.0},
    })
    ph = run_points([cfg], 10)[:, 0]  # (11, 3)
    # one cycle: a gains 2 x 1 + 3 x 1.5 = 6.5 rad, b gains 2 x 2 + 3 x 1 = 7; two cycles in 10 time units
    np.testing.assert_allclose(ph[5], [6.5, 6.5, 7.0], atol=1e-9)
    np.testing.assert_allclose(ph[10], [13.0, 13.0, 14.0], atol=1e-9)
    np.testing.assert_allclose(ph[3], [2.0 + 1.5, 2.0 + 1.5, 4.0 + 1.0], atol=1e-9)


def test_group_and_cross_keys_batch_in_sweeps(tmp_path):
    cfg = nm_pair_config(3.0, 1.0, 0.1, 0.0, 3, 1)
    paths = batchable_paths(cfg)
    assert "neurons.groups.fast.frequency.center" in paths and "coupling.cross.slow_to_fast.strength" in paths
    from dgnn.study.sweep import expand, plan

    points = expand(cfg, {"neurons.groups.fast.frequency.center": [2.9, 3.0, 3.1],
                          "coupling.cross.slow_to_fast.strength": [0.1, 0.2]})
    assert len(plan(points, 64)) == 1


@pytest.mark.parametrize("text, key", [
    ("coupling: {cross: {x: {source: nope, target: fast}}}", "coupling.cross.x.source"),
    ("metabolism: {schedule: [{duration: 1, frequency: {heart: 2}}]}", "metabolism.schedule.0.frequency"),
])
def test_bad_group_names_are_config_errors(text, key):
    base = "neurons: {groups: {fast: {count: 1}, slow: {count: 1}}}\n"
    with pytest.raises(dgnn.ConfigError, match=key.replace(".", r"\.")):
        dgnn.config.config_from_yaml_text(base + text)


def test_farey_locking_classifies_and_separates_locked_from_passing():
    from dgnn.analysis import farey_locking

    t = np.linspace(0.0, 200.0, 4001)
    slow = np.stack([t, t, t], axis=1)  # (T, 3)
    fast = np.stack([3.0 * t + 0.4 * np.sin(0.5 * t),  # 3:1 locked, with a bounded wobble
                     3.5 * t + 1.0,  # 7:2 locked
                     3.43 * t], axis=1)  # drifts: nearest q <= 5 ratio is 17:5 (3.4), not locked
    out = farey_locking(fast, slow, t, q_max=5)
    assert [(int(a), int(b)) for a, b in zip(out["p"], out["q"])] == [(3, 1), (7, 2), (17, 5)]
    assert out["locked"].tolist() == [True, True, False]
    # a 3.43 : 1 pair has 5 th_a - 17 th_b = -0.15 t: over 200 time units 30 rad, index <= 2 / 30
    assert out["index"][2] < 2.0 / 30.0


def test_schedule_breaks_split_intervals_at_epoch_starts():
    from dgnn.config import Epoch
    from dgnn.metabolism import Schedule

    s = Schedule([Epoch(name="q", duration=2.0), Epoch(name="a", duration=3.0)])
    assert s.breaks(0.0, 1.0) == [0.0, 1.0]
    assert s.breaks(1.0, 6.0) == [1.0, 2.0, 5.0, 6.0]
    assert s.breaks(2.0, 5.0) == [2.0, 5.0]
    assert Schedule([]).breaks(0.0, 7.0) == [0.0, 7.0]
