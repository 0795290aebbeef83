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
    with pytest.raises(ConfigError, match="not empty; pass overwrite=True"):
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


def _foreign(path, kind, elsewhere):
    """Rewire /time of trace `path` to data in the file `elsewhere` (holding /secret and its raw bytes)."""
    with h5py.File(path, "r+") as h5:
        n = h5["time"].shape[0]
        del h5["time"]
        if kind == "external storage":
            h5.create_dataset("time", shape=(n,), dtype="f8", external=[(str(elsewhere) + ".raw", 0, 8 * n)])
        elif kind == "external link":
            h5["time"] = h5py.ExternalLink(str(elsewhere), "/secret")
        else:
            layout = h5py.VirtualLayout(shape=(n,), dtype="f8")
            layout[:] = h5py.VirtualSource(str(elsewhere), "secret", shape=(n,))
            h5.create_virtual_dataset("time", layout)


@pytest.mark.parametrize("kind", ["external storage", "external link", "virtual dataset"])
def test_traces_that_read_other_files_are_refused(tmp_path, kind, capsys):
    from dgnn.cli import main

    res = dgnn.run(cfg_with(solver={"dt": 0.02, "duration": 0.4}), tmp_path / "r", progress=False)
    secret = np.full(res.records, 424242.0)
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["secret"] = secret
    (tmp_path / "other.h5.raw").write_bytes(secret.tobytes())
    _foreign(res.path, kind, tmp_path / "other.h5")
    for argv in (["info", str(res.path)], ["analyze", str(res.path)], ["run", "--resume", str(tmp_path / "r")]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and "/time" in err and "self-contained" in err and "424242" not in out + err
    with pytest.raises(ConfigError, match="self-contained"):
        read_trace(res.path)


def test_damaged_traces_get_one_line_never_a_traceback(tmp_path, capsys):
    from dgnn.cli import main

    src = dgnn.run(cfg_with(), tmp_path / "r", progress=False, should_stop=StopAfter(5)).path
    data = src.read_bytes()
    with h5py.File(src) as h5:
        chunk = h5["neurons/phase"].id.get_chunk_info(0)  # a compressed chunk of phases
    start = chunk.byte_offset + 16
    flipped = bytes(b ^ 0xFF for b in data[start: start + 64])
    bad = {"empty": b"", "truncated": data[:512], "half": data[: len(data) // 2], "tail cut": data[:-600],
           "garbage": data[:2048] + bytes(range(256)) * 40 + data[2048 + 10240:],
           "chunk": data[:start] + flipped + data[start + 64:]}
    for name, content in bad.items():
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        (folder / "trace.h5").write_bytes(content)
        for argv in (["info", str(folder)], ["analyze", str(folder)], ["run", "--resume", str(folder)]):
            code = main(argv)
            out, err = capsys.readouterr()
            assert code in (0, 2) and "Traceback" not in err, (name, argv, err)
            assert code == 0 or (err.count("\n") == 1 and str(folder / "trace.h5") in err), (name, argv, err)
        assert main(["analyze", str(folder)]) == 2, name  # analyze reads every record
        assert "damaged trace" in capsys.readouterr().err or name != "chunk"


def test_resume_refuses_an_edited_stored_config(run_dir):
    dgnn.run(cfg_with(), run_dir, progress=False, should_stop=StopAfter(5))
    with h5py.File(run_dir / "trace.h5", "r+") as h5:
        h5.attrs["config"] = h5.attrs["config"].replace("strength: 1.5", "strength: 2.5")
    with pytest.raises(ConfigError, match=r"stored config was edited after the run started \(coupling\.strength\)"):
        dgnn.resume(run_dir, progress=False)


def test_a_run_killed_before_its_first_record_starts_again_on_resume(tmp_path):
    """Only config.yaml (and a stale lock file) made it to disk: resume runs it from the start."""
    cfg = cfg_with()
    whole = read_trace(dgnn.run(cfg, tmp_path / "whole", progress=False).path)
    run = tmp_path / "killed"
    run.mkdir()
    (run / "config.yaml").write_text(dgnn.config.config_to_yaml(cfg))
    (run / ".dgnn.lock").write_text('{"pid": 999999999, "host": "gone", "since": "2020-01-01T00:00:00+00:00"}')
    assert dgnn.resume(run, progress=False).status == "complete"
    again = read_trace(run)
    assert np.array_equal(again.neuron_phase, whole.neuron_phase) and np.array_equal(again.time, whole.time)
