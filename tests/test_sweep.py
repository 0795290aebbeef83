"""dgnn sweep: batching equals separate runs, planning by structure, metrics-only traces, resume, CLI."""
import csv
import subprocess
import sys

import h5py
import numpy as np
import pytest

import dgnn
from dgnn.config import config_from_dict
from dgnn.errors import ConfigError
from dgnn.study.sweep import expand, parse_grid, plan, resume_sweep, sweep

BASE = {
    "name": "sw", "replicas": 2, "seed": 5,
    "neurons": {"count": 20, "frequency": {"distribution": "normal", "center": 1.0, "width": 0.3}},
    "glia": {"ratio": 0.2, "coupling_to_neurons": 0.3, "coupling_from_neurons": 0.3, "coupling": 0.2},
    "topology": {"kind": "watts_strogatz", "k": 4, "p": 0.2},
    "solver": {"dt": 0.05, "duration": 5.0}, "record": {"every": 0.5},
}


def test_parse_grid():
    g = parse_grid(["coupling.strength=0.5,1,2", "coupling.b=[0, 0.25]", "topology.kind=all_to_all,erdos_renyi"])
    assert g == {"coupling.strength": [0.5, 1, 2], "coupling.b": [0, 0.25], "topology.kind": ["all_to_all", "erdos_renyi"]}
    for bad in ("coupling.strength", "coupling.strength=", "a=[1, [2]]"):
        with pytest.raises(ConfigError):
            parse_grid([bad])


def test_points_are_validated_with_their_values():
    with pytest.raises(ConfigError, match=r"sweep point 1 \(neurons.count=-1\): neurons\.count"):
        expand(config_from_dict(BASE), {"neurons.count": [10, -1]})
    with pytest.raises(ConfigError, match=r"coupling\.strenght: unknown key"):
        expand(config_from_dict(BASE), {"coupling.strenght": [1.0]})


def test_plan_batches_numeric_points_and_splits_structural_ones():
    pts = expand(config_from_dict(BASE), {"coupling.strength": [0.5, 1, 2], "neurons.count": [20, 30],
                                          "noise.neurons": [0.0], "metabolism.supply": [1.0]})
    batches = plan(pts, max_batch=32)
    assert sorted(len(b) for b in batches) == [3, 3]  # neurons.count changes shapes: two batches
    assert len(plan(pts, max_batch=2)) == 4


@pytest.mark.parametrize("topology", [{"kind": "all_to_all"}, {"kind": "watts_strogatz", "k": 4, "p": 0.2}])
def test_batched_points_equal_separate_runs(tmp_path, topology):
    # deterministic: each point in the batch draws its frequencies and phases from its own seed and multiplies by
    # its own matrices in products of its own run's shapes, so it follows the very trajectory of its own run
    base = config_from_dict({**BASE, "topology": topology, "sweep": {"phases": True},
                             "drive": {"kind": "sinusoid", "amplitude": 0.2, "frequency": 1.0}})
    grid = {"coupling.strength": [0.5, 2.0], "coupling.b": [0.0, 0.3], "glia.coupling_to_neurons": [0.1, 0.6],
            "coupling.phase_lag": [0.0, 0.4], "drive.amplitude": [0.0, 0.5]}
    res = sweep(base, grid, tmp_path / "s", progress=False)
    assert res.status == "complete" and res.points == 32 and res.ran == 32
    for p in expand(base, grid)[::5]:
        single = dgnn.read_trace(dgnn.run(p.cfg, tmp_path / f"single{p.index}", progress=False).path)
        batched = dgnn.read_trace(tmp_path / "s" / "points" / p.label / "trace.h5")
        assert batched.attrs["sweep_batch_size"] == 32
        assert np.array_equal(batched.neuron_phase, single.neuron_phase)
        assert np.array_equal(batched.glia_phase, single.glia_phase)
        assert np.array_equal(batched.metrics["order_parameter"], single.metrics["order_parameter"])


def test_metrics_only_by_default_and_summary(tmp_path):
    res = sweep(config_from_dict(BASE), {"coupling.strength": [0.0, 3.0]}, tmp_path / "s", progress=False)
    with h5py.File(tmp_path / "s" / "points" / "p0000" / "trace.h5") as h5:
        assert "neurons/phase" not in h5 and h5["metrics/order_parameter"].shape == (11, 2)
    rows = list(csv.DictReader(open(tmp_path / "s" / "summary.csv")))
    assert [r["coupling.strength"] for r in rows] == ["0.0", "3.0"]
    assert float(rows[1]["r_mean"]) > float(rows[0]["r_mean"])  # coupling synchronises
    assert res.rows[0]["status"] == "complete"


def test_interrupted_sweep_resumes_skipping_finished_points(tmp_path):
    base = config_from_dict({**BASE, "sweep": {"max_batch": 2}})
    grid = {"coupling.strength": [0.5, 1.0, 1.5, 2.0, 2.5]}
    calls = iter(range(1000))
    first = sweep(base, grid, tmp_path / "s", progress=False, should_stop=lambda: next(calls) >= 15)
    assert first.status == "interrupted"
    done = [r["point"] for r in first.rows if r["status"] == "complete"]
    assert done == [0, 1]  # the first batch (10 records) finished, the second was cut at record 5
    again = resume_sweep(tmp_path / "s", progress=False)
    assert again.status == "complete" and again.ran == 3
    assert all(r["status"] == "complete" for r in again.rows)
    sweep(base, grid, tmp_path / "w", progress=False)  # the uninterrupted reference
    for p in ("p0001", "p0003"):
        with h5py.File(tmp_path / "s" / "points" / p / "trace.h5") as a, h5py.File(tmp_path / "w" / "points" / p / "trace.h5") as b:
            assert np.array_equal(a["metrics/order_parameter"][:], b["metrics/order_parameter"][:])


def test_sweep_cli(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: c\nneurons: {count: 10}\nsolver: {dt: 0.05, duration: 1.0}\nrecord: {every: 0.5}\n"
                   "sweep: {grid: {coupling.b: [0.0, 0.3]}}\n")
    r = subprocess.run([sys.executable, "-m", "dgnn", "sweep", str(cfg), "--grid", "coupling.strength=1,2",
                        "--out", str(tmp_path / "o"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(list(csv.DictReader(open(tmp_path / "o" / "summary.csv")))) == 4
    r = subprocess.run([sys.executable, "-m", "dgnn", "sweep", str(cfg), "--grid", "neurons.cont=1,2",
                        "--out", str(tmp_path / "o2"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 2 and "neurons.cont: unknown key" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_arnold_tongue_edges_match_d_le_k(tmp_path):
    # d/k = 0.9 locks (frequency difference 0), d/k = 1.1 slips at sqrt(d^2 - k^2): the 1:1 tongue edge |d| = k.
    # All six points run as replicas of one batch.
    base = dgnn.load_config("configs/arnold_tongue.yaml", ["solver.duration=240"])
    pts = [(r * k, k) for k in (0.5, 1.0, 2.0) for r in (0.9, 1.1)]
    res = sweep(base, {"neurons.frequency.width": sorted({d for d, _ in pts}), "coupling.strength": [0.5, 1.0, 2.0]},
                tmp_path / "s", progress=False)
    assert res.status == "complete"
    checked = 0
    for row in res.rows:
        d, k = row["neurons.frequency.width"], row["coupling.strength"]
        if not any(abs(d - pd) < 1e-12 and k == pk for pd, pk in pts):
            continue
        tr = dgnn.read_trace(tmp_path / "s" / row["trace"])
        half = slice(len(tr.time) // 2, None)
        phi = tr.neuron_phase[half, 0, 0] - tr.neuron_phase[half, 0, 1]
        beat = abs(phi[-1] - phi[0]) / (tr.time[-1] - tr.time[half][0])
        if d <= k:
            assert beat < 1e-6, (d, k, beat)
        else:  # mean slip rate over the window: within one partial slip of sqrt(d^2 - k^2)
            assert abs(beat - np.sqrt(d * d - k * k)) < 2 * np.pi / 120, (d, k, beat)
        checked += 1
    assert checked == 6
