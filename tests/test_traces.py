"""HDF5 layout, incremental writing, statuses, failure and resume to the bit."""
import h5py
import numpy as np
import pytest

import dgnn
from dgnn.config import config_from_dict
from dgnn.errors import ConfigError
from dgnn.traces import read_trace

BASE = {
    "name": "t", "replicas": 2, "seed": 11,
    "neurons": {"count": 16, "frequency": {"distribution": "normal", "center": 1.0, "width": 0.2}},
    "glia": {"ratio": 0.25, "coupling_to_neurons": 0.5, "coupling_from_neurons": 0.5, "coupling": 0.2},
    "topology": {"kind": "modular", "modules": 2, "p_in": 0.6, "p_out": 0.1},
    "coupling": {"strength": 1.5, "b": 0.1},
    "solver": {"dt": 0.02, "duration": 4.0}, "record": {"every": 0.2},
}


def cfg_with(**over):
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for key, value in over.items():
        section, _, leaf = key.partition("__")
        if leaf:
            data[section] = {**data.get(section, {}), leaf: value}
        else:
            data[section] = value
    return config_from_dict(data)


def test_layout_contract(run_dir):
    cfg = cfg_with()
    res = dgnn.run(cfg, run_dir, progress=False)
    assert res.status == "complete" and res.records == 21
    assert (run_dir / "config.yaml").read_text() == dgnn.config.config_to_yaml(cfg)
    with h5py.File(res.path) as h5:
        assert h5.attrs["status"] == "complete"
        assert h5.attrs["dgnn_version"] == dgnn.__version__
        assert "created" in h5.attrs and dgnn.config.config_from_yaml_text(h5.attrs["config"]) == cfg
        assert h5["time"].shape == (21,)
        assert h5["neurons/phase"].shape == (21, 2, 16) and h5["neurons/phase"].attrs["units"] == "rad"
        assert h5["glia/phase"].shape == (21, 2, 4)
        assert h5["metrics/order_parameter"].shape == (21, 2)
        assert h5["metrics/module_order_parameter"].shape == (21, 2, 2)
        assert h5["neurons/phase"].compression == "gzip" and h5["neurons/phase"].chunks is not None
        np.testing.assert_allclose(h5["time"][:], np.arange(21) * 0.2, atol=1e-12)
    tr = read_trace(run_dir)
    r = np.abs(np.exp(1j * tr.neuron_phase).mean(-1))
    np.testing.assert_allclose(tr.metrics["order_parameter"], r, atol=1e-12)


def test_metrics_only(run_dir):
    res = dgnn.run(cfg_with(record={"every": 0.2, "phases": False}), run_dir, progress=False)
    with h5py.File(res.path) as h5:
        assert "neurons/phase" not in h5 and "glia/phase" not in h5
        assert h5["metrics/order_parameter"].shape == (21, 2)
    assert dgnn.summarize(res.path)["neurons"]["order_parameter_final"] > 0


def test_same_seed_same_trace(tmp_path):
    cfg = cfg_with(noise={"neurons": 0.2, "glia": 0.1}, solver={"method": "heun", "dt": 0.02, "duration": 2.0})
    a = read_trace(dgnn.run(cfg, tmp_path / "a", progress=False).path)
    b = read_trace(dgnn.run(cfg, tmp_path / "b", progress=False).path)
    assert np.array_equal(a.neuron_phase, b.neuron_phase) and np.array_equal(a.glia_phase, b.glia_phase)


class StopAfter:
    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self):
        self.calls += 1
        return self.calls >= self.n


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_interrupt_and_resume_equal_uninterrupted(tmp_path, noise, dtype):
    over = {"dtype": dtype}
    if noise:
        over.update(noise={"neurons": 0.3, "glia": 0.2}, solver={"method": "euler_maruyama", "dt": 0.02, "duration": 4.0})
    cfg = cfg_with(**over)
    whole = read_trace(dgnn.run(cfg, tmp_path / "whole", progress=False).path)
    part = dgnn.run(cfg, tmp_path / "part", progress=False, should_stop=StopAfter(7))
    assert part.status == "interrupted" and part.records == 8
    assert read_trace(part.path).status == "interrupted"
    again = dgnn.resume(tmp_path / "part", progress=False, should_stop=StopAfter(5))  # interrupted twice
    assert again.status == "interrupted"
    done = dgnn.resume(tmp_path / "part", progress=False)
    assert done.status == "complete"
    resumed = read_trace(done.path)
    assert np.array_equal(resumed.time, whole.time)
    assert np.array_equal(resumed.neuron_phase, whole.neuron_phase)
    assert np.array_equal(resumed.glia_phase, whole.glia_phase)
    for k, v in whole.metrics.items():
        assert np.array_equal(resumed.metrics[k], v), k


def test_resume_refuses_complete_run(run_dir):
    dgnn.run(cfg_with(), run_dir, progress=False)
    with pytest.raises(ConfigError, match="already complete"):
        dgnn.resume(run_dir, progress=False)


def test_non_finite_state_fails_and_keeps_records(run_dir):
    cfg = cfg_with(drive={"kind": "constant", "amplitude": 1e308, "targets": [3]},
                   solver={"dt": 0.02, "duration": 4.0})
    res = dgnn.run(cfg, run_dir, progress=False)
    assert res.status == "failed"
    assert "state turned non-finite between t=0 and t=0.2" in res.message and "neurons" in res.message
    assert "replica 0, neuron 3 " in res.message  # the origin, not a neighbour the NaN spread to
    tr = read_trace(run_dir)
    assert tr.status == "failed" and "non-finite" in tr.attrs["message"]
    assert tr.time.size == 1 and np.isfinite(tr.neuron_phase).all()  # the initial record survives


def test_non_empty_out_refused_unless_overwrite(run_dir):
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty; pass --overwrite"):
        dgnn.run(cfg_with(), run_dir, progress=False)
    dgnn.run(cfg_with(), run_dir, progress=False, overwrite=True)
    assert (run_dir / "notes.txt").read_text() == "keep me"  # overwrite replaces only dgnn's own files


def test_default_out_dir_is_outputs_name_timestamp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = dgnn.run(cfg_with(solver={"dt": 0.02, "duration": 0.2}), progress=False)
    assert res.path.parts[0] == "outputs" and (tmp_path / res.path).is_file()
    assert res.path.parent.name.startswith("t-") and res.path.name == "trace.h5"


def test_edgelist_and_graphml_topologies(tmp_path):
    import networkx as nx

    (tmp_path / "g.txt").write_text("# ring with one weighted, lagged edge\n0 1\n1 2 2.0\n2 3 1.0 0.5\n3 0\n")
    g = nx.cycle_graph(4)
    nx.write_graphml(g, tmp_path / "g.graphml")
    for topo in ({"kind": "edgelist", "path": str(tmp_path / "g.txt"), "directed": True},
                 {"kind": "graphml", "path": str(tmp_path / "g.graphml")}):
        cfg = cfg_with(neurons={"count": 4}, glia={"ratio": 0.0}, topology=topo)
        res = dgnn.run(cfg, tmp_path / topo["kind"], progress=False)
        assert res.status == "complete"
        edges = read_trace(res.path).static["topology/edges"]
        assert len(edges) == (4 if topo.get("directed") else 8)


@pytest.mark.parametrize("text, match", [
    ("0 1\n1 x\n", r"g\.txt:2: could not convert|g\.txt:2"),
    ("0 1\n0 9\n", r"g\.txt:2: node id out of range"),
    ("0 1 2 3 4\n", r"g\.txt:1: expected 'i j \[weight \[lag\]\]'"),
])
def test_bad_edgelist_names_file_and_line(tmp_path, text, match):
    (tmp_path / "g.txt").write_text(text)
    cfg = cfg_with(neurons={"count": 4}, glia={"ratio": 0.0}, topology={"kind": "edgelist", "path": str(tmp_path / "g.txt")})
    with pytest.raises(ConfigError, match=match):
        dgnn.run(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()  # nothing half-made
