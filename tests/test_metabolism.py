"""Glial energy budget: the ledger balances at every record, the gate switches coupling, schedules, resume."""
import h5py
import numpy as np
import pytest
import torch

import dgnn
from problems import config_with
from dgnn.config import MetabolismConfig
from dgnn.errors import ConfigError
from dgnn.metabolism import LEDGER, Metabolism, Schedule, imbalance
from dgnn.traces import read_trace

BASE = {
    "replicas": 2, "seed": 4,
    "neurons": {"count": 24, "frequency": {"distribution": "normal", "center": 1.0, "width": 0.3}},
    "glia": {"ratio": 0.125, "coupling_to_neurons": 0.3, "coupling_from_neurons": 0.3},
    "coupling": {"strength": 2.0},
    "metabolism": {"enabled": True, "p_base": 0.05, "p_act": 0.5, "p_syn": 0.02, "supply": 1.0, "e_max": 3.0,
                   "e_init": 1.0, "k_m": 0.5,
                   "schedule": [{"name": "quiet", "duration": 5.0, "supply": 0.1}, {"name": "active", "duration": 5.0, "supply": 3.0}]},
    "solver": {"dt": 0.02, "duration": 20.0}, "record": {"every": 0.5},
}


def make(**over):
    return config_with(BASE, **over)


def ledger_error(path):
    with h5py.File(path) as h5:
        e = h5["metabolism/reserve"][:].astype(float)
        # consumed_glia is written only where the glia draw power (p_glia > 0); absent, it is zero
        L = {k: h5[f"metabolism/ledger/{k}"][:].astype(float) for k in LEDGER if f"metabolism/ledger/{k}" in h5}
    scale = max(1.0, max(np.abs(v).max() for v in L.values()))
    return np.abs(imbalance(e, L)).max() / scale, L, e


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("method, noise", [("rk4", 0.0), ("euler_maruyama", 0.2), ("heun", 0.2), ("dopri5", 0.0)])
def test_ledger_balances_at_every_record(run_dir, dtype, tol, method, noise):
    # e and the ledger integrals are solved together: Runge-Kutta methods keep the linear invariant
    # e - e0 - (supplied - consumed) to rounding, and clamping books exactly what it changes
    cfg = make(dtype=dtype, noise={"neurons": noise}, solver={"method": method, "dt": 0.02, "duration": 20.0})
    res = dgnn.run(cfg, run_dir, progress=False)
    assert res.status == "complete"
    err, L, e = ledger_error(res.path)
    assert err < tol
    assert L["unmet"][-1].sum() > 0  # the quiet epochs drained the reserves: clamping at 0 happened and was booked
    assert e.min() >= 0 and e.max() <= 3.0


def test_book_structural_and_refund():
    cfg = MetabolismConfig(enabled=True, e_max=2.0, e_init=1.0)
    met = Metabolism(cfg, np.array([0, 1]), np.array([0, 1]), 2, np.ones(2), "cpu", torch.float64)
    block = met.initial(1, "cpu", torch.float64)
    met.book(block, 0, 1, 0.4, "structural")
    met.book(block, 0, 0, 1.5, "refunded")  # 1 + 1.5 > e_max: 0.5 discarded
    led = met.ledger(block)[0]
    assert block[0, 0] == 2.0 and block[0, 1] == pytest.approx(0.6)
    assert led[LEDGER.index("structural"), 1] == pytest.approx(0.4) and led[LEDGER.index("refunded"), 0] == 1.5
    assert led[LEDGER.index("discarded"), 0] == pytest.approx(0.5)
    e = torch.stack([met.initial(1, "cpu", torch.float64)[0, :2], block[0, :2]]).numpy()
    L = {k: np.stack([np.zeros(2), led[i].numpy()]) for i, k in enumerate(LEDGER)}
    assert np.abs(imbalance(e, L)).max() < 1e-15


def test_clamp_books_unmet_and_discarded():
    cfg = MetabolismConfig(enabled=True, e_max=2.0, e_init=1.0)
    met = Metabolism(cfg, np.array([0, 0, 1]), np.array([0, 1]), 2, np.ones(3), "cpu", torch.float64)
    block = met.initial(1, "cpu", torch.float64)
    block[0, 0], block[0, 1] = -0.3, 2.5
    out = met.project(block)
    led = met.ledger(out)[0]
    assert out[0, 0] == 0.0 and out[0, 1] == 2.0
    assert led[LEDGER.index("unmet"), 0] == pytest.approx(0.3) and led[LEDGER.index("discarded"), 1] == pytest.approx(0.5)


def test_empty_reserves_switch_coupling_off(tmp_path):
    # e = 0 and no supply: g = 0, so the neurons run exactly as if uncoupled
    glia = {"ratio": 0.125, "coupling_to_neurons": 0.0, "coupling_from_neurons": 0.0}
    starved = make(glia=glia, metabolism={"e_init": 0.0, "supply": 0.0, "schedule": []})
    free = make(glia=glia, coupling={"strength": 0.0}, metabolism={"enabled": False})
    a = read_trace(dgnn.run(starved, tmp_path / "a", progress=False).path)
    b = read_trace(dgnn.run(free, tmp_path / "b", progress=False).path)
    assert np.abs(a.neuron_phase - b.neuron_phase).max() < 1e-12
    err, L, e = ledger_error(tmp_path / "a" / "trace.h5")
    assert np.all(e == 0) and err < 1e-12 and L["unmet"][-1].sum() > 0  # base demand went unmet


def test_ample_reserves_leave_coupling_on(tmp_path):
    # full reserves, k_m -> 0: g = e / (e + k_m) = 1 - 1e-12, so the phases follow the run without metabolism
    # (supply 40 per glia: relaxation rate 40 / 3 per time, x dt = 0.27, inside the explicit stability region)
    met = {"e_init": 3.0, "supply": 40.0, "k_m": 1e-12, "schedule": []}
    fed = read_trace(dgnn.run(make(metabolism=met), tmp_path / "a", progress=False).path)
    plain = read_trace(dgnn.run(make(metabolism={"enabled": False}), tmp_path / "b", progress=False).path)
    assert np.abs(fed.neuron_phase - plain.neuron_phase).max() < 1e-8


def test_schedule_repeats():
    s = Schedule(make().metabolism.schedule)
    assert [s.factor(t) for t in (0.0, 4.9, 5.0, 9.99, 10.0, 17.0)] == [0.1, 0.1, 3.0, 3.0, 0.1, 3.0]
    assert s.index(12.0) == 0 and Schedule([]).factor(3.0) == 1.0 and Schedule([]).index(3.0) == -1


def test_supply_follows_schedule_in_trace(run_dir):
    res = dgnn.run(make(), run_dir, progress=False)
    with h5py.File(res.path) as h5:
        f, ep, t = h5["metabolism/supply_factor"][:], h5["metabolism/epoch"][:], h5["time"][:]
    np.testing.assert_array_equal(f, np.where((t % 10.0) < 5.0, 0.1, 3.0))
    np.testing.assert_array_equal(ep, np.where((t % 10.0) < 5.0, 0, 1))


def test_resume_with_metabolism_is_exact(tmp_path):
    cfg = make(noise={"neurons": 0.2}, solver={"method": "euler_maruyama", "dt": 0.02, "duration": 10.0})
    whole = dgnn.run(cfg, tmp_path / "w", progress=False)
    calls = iter(range(100))
    dgnn.run(cfg, tmp_path / "p", progress=False, should_stop=lambda: next(calls) >= 6)
    dgnn.resume(tmp_path / "p", progress=False)
    with h5py.File(whole.path) as a, h5py.File(tmp_path / "p" / "trace.h5") as b:
        for name in ("metabolism/reserve", "metabolism/ledger/unmet", "neurons/phase"):
            assert np.array_equal(a[name][:], b[name][:]), name


@pytest.mark.parametrize("over, match", [
    ({"glia": {"ratio": 0.0}}, r"metabolism\.enabled: needs glia"),
    ({"metabolism": {"e_init": 9.0}}, r"metabolism\.e_init: must be <= metabolism\.e_max"),
    ({"metabolism": {"schedule": [{"name": "x", "duration": 0.0}]}}, r"metabolism\.schedule\.0\.duration"),
    ({"metabolism": {"supply": 1e6}}, r"metabolism\.supply: reserve relaxation rate .* explicit steps go unstable"),
])
def test_metabolism_config_errors(over, match):
    with pytest.raises(ConfigError, match=match):
        make(**over)


def test_energy_summary(run_dir):
    res = dgnn.run(make(), run_dir, progress=False)
    s = dgnn.summarize(res.path)["metabolism"]
    assert s["ledger_max_imbalance"] < 1e-10
    assert s["total_consumed"] == pytest.approx(
        s["total_consumed_base"] + s["total_consumed_activity"] + s["total_consumed_synapse"])
    # quiet epochs (supply x 0.1) starve the coupling: less synchrony than in active ones
    assert s["by_epoch"][0]["order_parameter_mean"] < s["by_epoch"][1]["order_parameter_mean"]


def test_glial_base_power_is_booked_and_balances(run_dir):
    # p_glia is constant per glial cell, so its ledger column is p_glia x (glia in the domain) x t exactly (every
    # Runge-Kutta method integrates a constant exactly), and the balance, now with consumed_glia, still holds
    cfg = make(metabolism={"p_glia": 0.04}, solver={"method": "rk4", "dt": 0.02, "duration": 10.0})
    res = dgnn.run(cfg, run_dir, progress=False)
    err, L, e = ledger_error(res.path)
    assert err < 1e-12
    with h5py.File(res.path) as h5:
        t, glia_domain = h5["time"][:], h5["glia/domain"][:]
    per_domain = np.bincount(glia_domain, minlength=e.shape[-1])  # (D,)
    expected = 0.04 * per_domain[None, None, :] * t[:, None, None]  # (T, 1, D)
    np.testing.assert_allclose(L["consumed_glia"], np.broadcast_to(expected, e.shape), rtol=1e-12, atol=1e-12)
    s = dgnn.summarize(res.path)["metabolism"]
    assert s["total_consumed_glia"] == pytest.approx(0.04 * len(glia_domain) * 10.0, rel=1e-12)
    assert s["total_consumed"] == pytest.approx(s["total_consumed_base"] + s["total_consumed_activity"]
                                                + s["total_consumed_synapse"] + s["total_consumed_glia"])


def test_glial_base_power_drains_the_reserves(tmp_path):
    # p_glia > 0 is a constant extra demand, so every domain ends with less in reserve than without it
    a = read_trace(dgnn.run(make(), tmp_path / "a", progress=False).path)
    b = read_trace(dgnn.run(make(metabolism={"p_glia": 0.05}), tmp_path / "b", progress=False).path)
    assert b.metabolism["ledger/consumed_glia"][-1].min() > 0
    assert a.metabolism["reserve"][-1].mean() > b.metabolism["reserve"][-1].mean()


def test_without_glial_power_the_block_and_trace_carry_no_glia_column(run_dir):
    # p_glia = 0: the state and the noise stream keep their width (noisy runs stay bit-equal to runs made before
    # the column existed, and their checkpoints resume); the summary reads the missing column as zero
    res = dgnn.run(make(), run_dir, progress=False)
    with h5py.File(res.path) as h5:
        assert "metabolism/ledger/consumed_glia" not in h5
        d = h5["metabolism/reserve"].shape[-1]
        assert h5["checkpoint/y"].shape[-1] == 24 + 3 + d * len(LEDGER)  # reserve + every column but consumed_glia
    s = dgnn.summarize(res.path)["metabolism"]
    assert s["total_consumed_glia"] == 0.0 and s["ledger_max_imbalance"] < 1e-10
    assert s["total_consumed"] == pytest.approx(
        s["total_consumed_base"] + s["total_consumed_activity"] + s["total_consumed_synapse"])


def test_resume_refuses_a_checkpoint_of_another_state_layout(tmp_path):
    # a checkpoint whose state is not the one the stored config builds is refused with one line, before writing
    cfg = make(solver={"method": "rk4", "dt": 0.02, "duration": 10.0})
    calls = iter(range(100))
    dgnn.run(cfg, tmp_path / "p", progress=False, should_stop=lambda: next(calls) >= 3)
    path = tmp_path / "p" / "trace.h5"
    with h5py.File(path, "a") as h5:
        y = h5["checkpoint/y"][()]
        del h5["checkpoint/y"]
        h5["checkpoint/y"] = y[:, :-3]  # a damaged checkpoint: one ledger column (3 domains) short
    with pytest.raises(ConfigError, match=r"run_dir .*checkpoint holds \d+ state columns where dgnn .* builds \d+"):
        dgnn.resume(tmp_path / "p", progress=False)
