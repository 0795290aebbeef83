"""Non-finite state fails only the replicas (sweep points) it reaches (issue 15, item 5): the healthy points of a
batch complete, equal to their own runs, on every backend; the failed point's trace says why, naming its own
replica; a plain run fails whole (exit 1) naming the replica that diverged."""
import csv
import subprocess
import sys

import numpy as np
import pytest

import dgnn
from dgnn.config import config_from_dict
from dgnn.simulation import Simulation
from dgnn.study.sweep import expand, sweep
from problems import config_with

BASE = {
    "name": "pf", "seed": 4, "replicas": 2,
    "neurons": {"count": 12, "frequency": {"distribution": "normal", "center": 1.0, "width": 0.3}},
    "glia": {"ratio": 0.25, "coupling_to_neurons": 0.3, "coupling_from_neurons": 0.3, "coupling": 0.2},
    "drive": {"kind": "constant", "amplitude": 0.0},
    "solver": {"method": "rk4", "dt": 0.05, "duration": 1.5}, "record": {"every": 0.5},
}
METABOLISM = {"enabled": True, "supply": 0.7, "e_max": 6.0, "e_init": 3.0}
NETWORKS = {
    "mean_field": {"topology": {"kind": "all_to_all"}},
    "dense": {"topology": {"kind": "watts_strogatz", "k": 4, "p": 0.2}},
    "sparse": {"topology": {"kind": "watts_strogatz", "k": 4, "p": 0.2}, "coupling": {"backend": "sparse"}},
    "glia_domains": {"topology": {"kind": "watts_strogatz", "k": 4, "p": 0.2}, "glia": {**BASE["glia"], "topology": "domains"}},
    "metabolism": {"topology": {"kind": "watts_strogatz", "k": 4, "p": 0.2}, "metabolism": METABOLISM},
    "structure": {"topology": {"kind": "watts_strogatz", "k": 4, "p": 0.2}, "metabolism": METABOLISM,
                  "structure": {"enabled": True, "interval": 0.5, "window": 0.5,
                                "synaptogenesis": {"threshold": 0.5, "cost": 0.01}}},
}


def trace(out, label):
    return dgnn.read_trace(out / "points" / label / "trace.h5")


@pytest.mark.parametrize("network", list(NETWORKS))
def test_a_diverging_point_fails_alone_and_its_mates_equal_their_own_runs(tmp_path, network):
    # the case: --grid drive.amplitude=0,1e308 marked both points failed, naming replica 2 of a 2-replica point
    base = config_with({**BASE, **NETWORKS[network]})
    grid = {"drive.amplitude": [0.0, 1e308, 0.5]}
    res = sweep(base, grid, tmp_path / "s", progress=False)
    assert [r["status"] for r in res.rows] == ["complete", "failed", "complete"]
    assert res.status == "failed" and res.ran == 3
    bad = trace(tmp_path / "s", "p0001")
    assert bad.status == "failed" and len(bad.time) == 1  # the records before the fault are kept: t = 0
    msg = bad.attrs["message"]
    assert "neurons" in msg and "turned non-finite between t=0 and t=0.5" in msg
    replica = int(msg.split("replica ")[1].split(",")[0])
    assert replica in range(base.replicas)  # its own replica, not the batch's index
    for p in expand(base, grid)[::2]:
        own = dgnn.read_trace(dgnn.run(p.cfg, tmp_path / f"own{p.index}", progress=False).path)
        got = trace(tmp_path / "s", p.label)
        assert got.status == "complete" and len(got.time) == base.n_records + 1
        for key, value in own.metrics.items():
            assert np.array_equal(got.metrics[key], value), (p.index, key)
        for key, value in own.metabolism.items():
            assert np.array_equal(got.metabolism[key], value), (p.index, key)
    summary = list(csv.DictReader(open(tmp_path / "s" / "summary.csv")))
    assert [r["status"] for r in summary] == ["complete", "failed", "complete"]


def test_plain_run_fails_whole_and_names_the_replica_that_diverged(tmp_path):
    # replicas differ in their frequencies: a Cauchy draw times 1e308 overflows to inf in some replicas only
    cfg = config_from_dict({"name": "pr", "seed": 2, "replicas": 6, "neurons": {
        "count": 1, "frequency": {"distribution": "lorentzian", "center": 0.0, "width": 1e308}},
        "solver": {"method": "euler", "dt": 0.1, "duration": 1.0}, "record": {"every": 0.5}})
    with np.errstate(over="ignore"):
        sim = Simulation(cfg, device="cpu")
        res = dgnn.run(cfg, tmp_path / "r", progress=False)
    omega = sim.field.omega.numpy()[:, 0]
    diverging = np.flatnonzero(~np.isfinite(omega))
    assert 0 < len(diverging) < cfg.replicas  # the seed gives both kinds
    assert res.status == "failed" and res.records == 1
    replica = int(res.message.split("replica ")[1].split(",")[0])
    assert replica in diverging and "neurons state turned non-finite between t=0 and t=0.5" in res.message
    with np.errstate(over="ignore"):
        with pytest.raises(dgnn.SimulationFailed, match=f"replica {replica},"):
            sim.advance()


def test_sweep_cli_exits_1_and_summary_marks_exactly_the_failed_point(tmp_path):
    cfg = tmp_path / "base.yaml"
    cfg.write_text("name: cli\nneurons: {count: 8}\nsolver: {dt: 0.05, duration: 1.0}\nrecord: {every: 0.5}\n")
    r = subprocess.run([sys.executable, "-m", "dgnn", "sweep", str(cfg), "--set", "drive.kind=constant",
                        "--set", "solver.method=rk4", "--grid", "drive.amplitude=0,1e308,2", "--out", str(tmp_path / "o"),
                        "--quiet"], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert "points [1] failed" in r.stderr and "Traceback" not in r.stderr
    rows = list(csv.DictReader(open(tmp_path / "o" / "summary.csv")))
    assert [row["status"] for row in rows] == ["complete", "failed", "complete"]
    assert rows[0]["r_mean"] and rows[2]["r_mean"] and not rows[1]["r_mean"]


def test_a_stalled_adaptive_point_fails_alone_and_its_mates_equal_their_own_runs(tmp_path):
    # dopri5 shares its steps across a batch: the point that cannot advance is found by solving each point alone;
    # the others then step together as if it were not there, equal to their own runs to the solver's tolerance
    base = config_with({**BASE, **NETWORKS["dense"]}, drive={"kind": "none"},
                       solver={"method": "dopri5", "dt": 0.05, "duration": 1.5, "max_steps": 200})
    grid = {"coupling.strength": [1.0, 1e12, 2.0]}
    res = sweep(base, grid, tmp_path / "s", progress=False)
    assert [r["status"] for r in res.rows] == ["complete", "failed", "complete"]
    assert "cannot advance: 200 steps between t=0 and t=0.5" in trace(tmp_path / "s", "p0001").attrs["message"]
    for p in expand(base, grid)[::2]:
        own = dgnn.read_trace(dgnn.run(p.cfg, tmp_path / f"own{p.index}", progress=False).path)
        got = trace(tmp_path / "s", p.label).metrics["order_parameter"]
        assert np.array_equal(got[:2], own.metrics["order_parameter"][:2])  # the first interval: solved alone
        assert np.abs(got - own.metrics["order_parameter"]).max() < 1e-5  # then shared steps, rtol 1e-6
