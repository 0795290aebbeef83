"""Measures against values known by construction."""
import math

import numpy as np
import pytest

from dgnn.analysis import (farey, group_order_parameter, mean_frequency, metastability, nm_locking_index,
                           order_parameter, plv_matrix, time_to_lock)


def test_order_parameter_of_known_states():
    r, psi = order_parameter(np.full((3, 10), 0.7))
    np.testing.assert_allclose(r, 1.0) and np.testing.assert_allclose(psi, 0.7)
    r, _ = order_parameter(np.linspace(0, 2 * np.pi, 8, endpoint=False))
    assert r < 1e-12
    r, _ = order_parameter(np.array([0.0, np.pi / 2]))  # |1 + i| / 2
    assert abs(r - math.sqrt(2) / 2) < 1e-12


def test_group_order_parameter():
    ph = np.array([[0.0, 0.0, 0.0, np.pi]])
    np.testing.assert_allclose(group_order_parameter(ph, np.array([0, 0, 1, 1])), [[1.0, 0.0]], atol=1e-12)


def test_plv_and_nm_index():
    t = np.linspace(0, 100, 5001)
    a, b = 1.3 * t, 1.3 * t + 0.5  # locked with a lag
    c = 2.9 * t  # another frequency: PLV ~ 2 / (1.6 * 100)
    plv = plv_matrix(np.stack([a, b, c], axis=1))
    assert abs(plv[0, 1] - 1) < 1e-12 and plv[0, 2] < 0.05 and np.allclose(np.diag(plv), 1)
    slow, fast = 0.5 * t, 1.5 * t + 0.3  # 3:1
    assert abs(nm_locking_index(slow, fast, 3, 1) - 1) < 1e-12
    assert nm_locking_index(slow, fast, 2, 1) < 0.05


def test_mean_frequency_exact_for_linear_phases():
    t = np.linspace(0, 10, 101)
    ph = np.stack([0.3 * t + 1, -2.0 * t], axis=1)
    np.testing.assert_allclose(mean_frequency(ph, t), [0.3, -2.0], atol=1e-12)


@pytest.mark.parametrize("ratio, q, expected", [(3.02, 8, (3, 1)), (1.49, 8, (3, 2)), (0.6667, 5, (2, 3)),
                                                (2.718281828, 7, (19, 7)), (0.3333, 2, (1, 2))])
def test_farey_nearest_fraction(ratio, q, expected):
    p, qq, err = farey(ratio, q)
    assert (p, qq) == expected and abs(err - (ratio - p / qq)) < 1e-15
    # nothing in the Farey sequence of order q is closer
    best = min(abs(ratio - n / d) for d in range(1, q + 1) for n in range(0, 10 * d))
    assert abs(abs(err) - best) < 1e-12


def test_time_to_lock_and_metastability():
    t = np.arange(10.0)
    r = np.array([[0.1, 0.95, 0.5, 0.92, 0.93, 0.97, 0.99, 0.99, 0.99, 0.99],
                  [0.1] * 10]).T
    out = time_to_lock(r, t, 0.9)
    assert out[0] == 3.0 and np.isnan(out[1])
    np.testing.assert_allclose(metastability(r), r.std(axis=0))
