"""Bad input never gives a traceback or a silently wrong result: each case is provoked and gets one line, exit 2.

Issue 15, items 6 (silently wrong results), 7 (tracebacks and wrong exit codes) and 9b (names escaping outputs/).
"""
import math
import re

import h5py
import numpy as np
import pytest
import torch
from inprocess import run_cli

from dgnn.config import config_from_dict, config_from_yaml_text, load_config
from dgnn.errors import ConfigError
from dgnn.simulation import Simulation
from dgnn.solvers import SOLVERS
from dgnn.stability import STABILITY_INTERVAL

TINY = """name: tiny
neurons: {count: 8}
solver: {dt: 0.05, duration: 0.5}
record: {every: 0.25}
"""


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(TINY)
    return p


def _graphml(path, nodes, edges, weight_type="double"):
    """A GraphML file: node ids as given, edges (u, v, weight text)."""
    body = "".join(f'<node id="{n}"/>' for n in nodes)
    body += "".join(f'<edge source="{u}" target="{v}"><data key="w">{w}</data></edge>' for u, v, w in edges)
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<graphml xmlns="http://graphml.graphdrawing.org/xmlns">\n'
                    f'<key id="w" for="edge" attr.name="weight" attr.type="{weight_type}"/>\n'
                    f'<graph edgedefault="undirected">\n{body}\n</graph>\n</graphml>\n')
    return path


# ------------------------------------------------------------------------------------- item 6: GraphML files
@pytest.mark.parametrize("nodes, match", [
    (["0", "1", "50"], r"g\.graphml: node id '50' is out of range 0\.\.7 \(neurons\.count=8\)"),
    (["-1", "0", "1"], r"g\.graphml: node id '-1' is out of range"),
    (["1", "01", "2"], r"g\.graphml: node ids '1' and '01' are both neuron 1"),
    (["0", "a", "1"], r"g\.graphml: node ids mix integers and names \('a'\)"),
])
def test_graphml_node_ids_are_never_remapped_silently(tmp_path, tiny, nodes, match):
    _graphml(tmp_path / "g.graphml", nodes, [(nodes[0], nodes[1], "1.0")])
    r = run_cli("validate", tiny, "--set", "topology.kind=graphml", "--set", "topology.path=g.graphml")
    assert re.search(match, r.one_line_error())


def test_graphml_names_are_numbered_in_file_order(tmp_path):
    # n10 before n2 in sorted text order; the file's order is the neuron order
    names = ["n0", "n1", "n2", "n10"]
    _graphml(tmp_path / "g.graphml", names, [("n0", "n10", "2.0")])
    cfg = config_from_dict({"neurons": {"count": 4}, "topology": {"kind": "graphml", "path": str(tmp_path / "g.graphml")}})
    graph = Simulation(cfg).field.graph
    assert sorted(zip(graph.source.tolist(), graph.target.tolist(), graph.weight.tolist())) == [(0, 3, 2.0), (3, 0, 2.0)]


@pytest.mark.parametrize("weight, kind", [("NaN", "double"), ("INF", "double"), ("-inf", "double"), ("heavy", "string")])
def test_graphml_weights_must_be_finite_numbers(tmp_path, tiny, weight, kind):
    _graphml(tmp_path / "g.graphml", ["0", "1", "2"], [("0", "1", "1.0"), ("1", "2", weight)], kind)
    graph = ["--set", "topology.kind=graphml", "--set", "topology.path=g.graphml"]
    for args in (["validate", tiny, *graph], ["run", tiny, *graph, "--out", tmp_path / "o", "--quiet"]):
        line = run_cli(*args).one_line_error()
        assert re.search(r"g\.graphml: edge 1 -> 2: weight must be a finite number, found", line), line
    assert not (tmp_path / "o").exists()  # refused before the run folder is made


def test_edge_list_edge_given_twice_must_agree(tmp_path, tiny):
    (tmp_path / "g.txt").write_text("0 1 1.0\n1 2\n1 0 2.0\n")  # undirected: 1 0 is the edge 0 1 again
    r = run_cli("validate", tiny, "--set", "topology.kind=edgelist", "--set", "topology.path=g.txt")
    assert re.search(r"g\.txt:3: edge 1 0 was given before with weight 1", r.one_line_error())
    (tmp_path / "g.txt").write_text("0 1 1.0\n1 0 1.0\n")  # the same edge twice, in agreement: fine
    assert run_cli("validate", tiny, "--set", "topology.kind=edgelist", "--set", "topology.path=g.txt").rc == 0


# ------------------------------------------------------------------------------------- item 6: duplicate keys
@pytest.mark.parametrize("text, match", [
    ("name: a\nseed: 1\nname: b\n", r"c\.yaml:3: name: duplicate key \(first at line 1\)"),
    ("neurons:\n  count: 5\n  frequency: {center: 1.0}\n  count: 6\n", r"c\.yaml:4: neurons\.count: duplicate key"),
    ("metabolism:\n  schedule:\n  - {duration: 1, supply: 1, supply: 2}\n",
     r"c\.yaml:3: metabolism\.schedule\.0\.supply: duplicate key"),
    ("solver: {dt: 0.01}\nsolver: {dt: 0.02}\n", r"c\.yaml:2: solver: duplicate key"),
])
def test_duplicate_yaml_keys_are_refused_with_line_and_path(tmp_path, text, match):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(tmp_path / "c.yaml")


def test_duplicate_keys_are_refused_by_every_loader(tmp_path):
    from dgnn.study.compare import load_compare_config
    from dgnn.study.config import StudyConfig

    with pytest.raises(ConfigError, match=r"stored:2: seed: duplicate key"):
        config_from_yaml_text("seed: 1\nseed: 2\n", "stored")
    (tmp_path / "cmp.yaml").write_text("name: x\nseeds: 1\nseeds: 2\n")
    with pytest.raises(ConfigError, match=r"cmp\.yaml:3: seeds: duplicate key"):
        load_compare_config(tmp_path / "cmp.yaml")
    (tmp_path / "study.yaml").write_text("tasks: []\nstrategies: {a: {}, a: {}}\n")
    with pytest.raises(ConfigError, match=r"study\.yaml:2: strategies\.a: duplicate key"):
        load_config(tmp_path / "study.yaml", model=StudyConfig)
    (tmp_path / "c.yaml").write_text(TINY)
    with pytest.raises(ConfigError, match=r"override neurons=\{count: 1, count: 2\}: neurons\.count: duplicate key \(first at line 1\)"):
        load_config(tmp_path / "c.yaml", ["neurons={count: 1, count: 2}"])


def test_merge_keys_may_be_overridden_and_equal_values_are_one_key():
    data = "neurons: {count: 4}\nsolver: {<<: {dt: 0.01, duration: 1.0}, dt: 0.02}\nrecord: {every: 0.1}\n"
    cfg = config_from_yaml_text(data)
    assert cfg.solver.dt == 0.02 and cfg.solver.duration == 1.0
    with pytest.raises(ConfigError, match=r"stored:2: neurons\.groups\.0x1: duplicate key"):  # 1 and 0x1: one int
        config_from_yaml_text("neurons:\n  groups: {1: {count: 1}, 0x1: {count: 2}}\n", "stored")


@pytest.mark.parametrize("text, match", [
    ("a: &a [1]\n" + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
                             for p, c in zip("abcdefg", "bcdefgh")), r"YAML aliases expand the document by more than"),
    ("a: &a [*a]\n", r"YAML alias refers to a node that contains it"),
    ("[" * 5000 + "]" * 5000, r"YAML nested too deeply"),
], ids=["alias-bomb", "recursive-alias", "deep-nesting"])
def test_yaml_that_would_exhaust_memory_or_the_stack_is_refused(tmp_path, text, match):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(tmp_path / "c.yaml")


# ------------------------------------------------------------------------------------- item 6: step stability
@pytest.mark.parametrize("method", sorted(set(SOLVERS) & set(STABILITY_INTERVAL)))
def test_stability_interval_is_where_the_native_step_stops_contracting(method):
    """On y' = -lam y each method's step multiplies y by R(-lam dt): |R| <= 1 up to the tabulated interval, > 1 beyond."""
    step, lam = SOLVERS[method](), 1.0
    field = lambda t, y: -lam * y  # noqa: E731
    for x, shrinks in ((0.999 * STABILITY_INTERVAL[method], True), (1.001 * STABILITY_INTERVAL[method], False)):
        y = torch.ones(1, dtype=torch.float64)
        for _ in range(2000):
            y = step.step(field, 0.0, y, x / lam, None, None)
        assert (abs(float(y)) <= 1.0) == shrinks, (method, x, float(y))


def test_coarse_step_of_the_issue_is_refused_and_the_safe_step_locks(tiny):
    """strength 100, euler, dt 0.5 ran to 'complete' with r = 0.13 (1.00 at a fine step); now it is refused with the
    largest safe dt, and a run at that dt locks."""
    args = ["--set", "coupling.strength=100", "--set", "solver.method=euler", "--set", "solver.dt=0.5",
            "--set", "record.every=0.5", "--set", "solver.duration=10", "--set", "neurons.count=100"]
    line = run_cli("validate", tiny, *args).one_line_error()
    assert "--set solver.dt=0.5: solver.dt: 0.5 is outside euler's stability interval" in line
    # rate = k (N - 1) / N = 99 per time unit: dt <= 2 / 99, and 0.5 / 25 = 0.02 is the largest that divides 0.5
    assert "99 per time unit" in line and "use solver.dt <= 0.0202" in line and "0.5 / 25 = 0.02)" in line
    cfg = load_config(tiny, [a for a in args[1::2] if not a.startswith("solver.dt")] + ["solver.dt=0.02"])
    sim = Simulation(cfg)
    for _ in range(cfg.n_records):
        sim.advance()
    assert sim.snapshot()["metrics/order_parameter"][0] > 0.999


@pytest.mark.parametrize("extra, rate", [
    ({"coupling": {"strength": 10.0, "b": 1.0}}, 10 * (1 + 4) * 7 / 8),  # HKB: |a| + 4 |b|
    ({"coupling": {"strength": 0.0}, "glia": {"ratio": 1.0, "coupling_to_neurons": 100.0}}, 100.0),
    ({"coupling": {"strength": 0.0}, "glia": {"ratio": 1.0, "coupling": 60.0, "coupling_from_neurons": 40.0}},
     60.0 * 7 / 8 + 40.0),
])
def test_rate_bound_holds_harmonics_and_glial_couplings(extra, rate):
    base = {"neurons": {"count": 8}, "record": {"every": 0.5}, "solver": {"duration": 1.0}}
    dt = 2.7852935634052822 / rate  # rk4's interval: just inside is valid, just outside is refused
    config_from_dict({**base, **extra, "solver": {"dt": 0.999 * dt, "duration": 1.0}, "record": {"every": 0.999 * dt}})
    with pytest.raises(ConfigError, match=r"solver\.dt: .* outside rk4's stability interval"):
        config_from_dict({**base, **extra, "solver": {"dt": 1.001 * dt, "duration": 1.0}, "record": {"every": 1.001 * dt}})


def test_graph_rate_uses_the_largest_in_degree_and_validate_builds_the_graph(tmp_path, tiny):
    # a star: the hub hears 7 neurons, the mean degree is 14 / 8, so the hub relaxes at k 7 / 1.75 = 4 k
    (tmp_path / "star.txt").write_text("".join(f"0 {j}\n" for j in range(1, 8)))
    star = ["--set", "topology.kind=edgelist", "--set", "topology.path=star.txt", "--set", "solver.method=euler"]
    ok = run_cli("validate", tiny, *star, "--set", "coupling.strength=9.0")  # 4 x 9 x 0.05 = 1.8 < 2
    assert ok.rc == 0, ok.err
    line = run_cli("validate", tiny, *star, "--set", "coupling.strength=11.0").one_line_error()  # 2.2 > 2
    assert re.search(r"c\.yaml:3: solver\.dt: 0\.05 is outside euler's stability interval: .* up to 44 per", line)
    run = run_cli("run", tiny, *star, "--set", "coupling.strength=11.0", "--out", tmp_path / "o", "--quiet")
    assert run.one_line_error() == line and not (tmp_path / "o").exists()  # validate refuses what run refuses


def test_shipped_configs_build_and_pass_the_checks():
    """validate builds each shipped run config (graph, memory, stability) without stepping."""
    from pathlib import Path

    import yaml

    for path in sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("*.yaml")):
        if not {"models", "strategies", "toy", "targets", "tasks"} & set(yaml.safe_load(path.read_text())):
            res = run_cli("validate", path)  # a search config validates its space and each branch's candidate
            assert res.rc == 0 and "valid" in res.out, (path, res.err)


# ------------------------------------------------------------------------------------- item 6: other ranges
@pytest.mark.parametrize("override, match", [
    ("metabolism.schedule=[{duration: 1.0e-9}]", r"metabolism\.schedule\.0\.duration: an epoch must last at least"),
    ("neurons.frequency={distribution: constant, center: 1.0e+300}", r"neurons\.frequency: frequencies up to 1e\+300"),
    ("record.every=1e300", r"record\.every: record\.every / solver\.dt is not finite \(1e\+300 / 1e-10\)"),
    ("solver.duration=1e308", r"solver\.duration: solver\.duration / record\.every is not finite"),
    ("glia.ratio=1e308", r"glia\.ratio: glia\.ratio x neurons\.count is not finite"),
])
def test_values_that_would_overflow_or_hang_are_refused(tiny, override, match):
    step = ["--set", "solver.dt=1e-10"] if override.startswith("record.every") else []
    assert re.search(match, run_cli("validate", tiny, "--set", override, *step).one_line_error())


# ------------------------------------------------------------------------------------- item 7: config values
@pytest.mark.parametrize("override, match", [
    ("seed=-1", r"--set seed=-1: seed: Input should be greater than or equal to 0"),
    ("topology={kind: watts_strogatz, k: 8, p: 0.1}", r"--set topology=.*: topology\.k: must be < neurons\.count=8"),
    ("topology={kind: watts_strogatz, k: 3, p: 0.1}", r"topology\.k: must be even"),
    ("topology={kind: barabasi_albert, m: 8}", r"topology\.m: must be < neurons\.count=8"),
    ("name=../up", r"--set name=\.\./up: name: must be a non-empty folder-name-safe string"),
    ("name=" + "x" * 201, r"name: must be .* at most 200 bytes"),
])
def test_values_run_would_choke_on_fail_validate(tmp_path, tiny, override, match):
    for cmd in ("validate", "run"):
        r = run_cli(cmd, tiny, "--set", override, *(["--out", tmp_path / "o", "--quiet"] if cmd == "run" else []))
        assert re.search(match, r.one_line_error())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_names_the_flag_or_the_key(tmp_path, tiny):
    assert run_cli("run", tiny, "--device", "cuda", "--out", tmp_path / "o", "--quiet").one_line_error() == \
        "dgnn: error: --device 'cuda': no CUDA device is available here; use auto or cpu"
    assert run_cli("validate", tiny, "--device", "cuda").rc == 2
    line = run_cli("validate", tiny, "--set", "device=cuda").one_line_error()
    assert line.startswith("dgnn: error: --set device=cuda: device 'cuda': no CUDA device")


def test_memory_is_estimated_before_allocating_and_says_what_fits(tiny, monkeypatch):
    from dgnn import resources

    line = run_cli("validate", tiny, "--set", "neurons.count=10000000000").one_line_error()
    m = re.search(r"neurons\.count: 10000000000 neurons x 1 replicas need about ([\d.e+]+) GiB of cpu memory .* but "
                  r"only ([\d.]+) GiB are free; neurons\.count <= (\d+) would fit", line)
    assert m and line.startswith("dgnn: error: --set neurons.count=10000000000:"), line
    # a fixed budget makes 'what fits' exact: the named N fits and one more does not
    monkeypatch.setattr(resources, "available_bytes", lambda device="cpu": 1 << 30)
    cfg = load_config(tiny, ["replicas=1000000"])
    with pytest.raises(ConfigError, match=r"^replicas: 8 neurons x 1000000 replicas .* replicas <= (\d+) at") as info:
        Simulation(cfg)
    fits = int(re.search(r"replicas <= (\d+)", str(info.value)).group(1))
    need = lambda b: resources.total(resources.estimate(cfg, 1, replicas=b))["cpu"]  # noqa: E731
    assert need(fits) <= 1 << 30 < need(fits + 1)
    Simulation(load_config(tiny, [f"replicas={fits}", "neurons.count=8"]))  # and it builds


def test_memory_estimate_counts_graph_edges_and_dense_matrices(tiny):
    from dgnn import resources

    cfg = load_config(tiny, ["neurons.count=2000", "topology={kind: erdos_renyi, p: 0.5}"])
    parts = resources.estimate(cfg)
    edges = 0.5 * 2000 * 1999 / 2
    assert parts["graph"] == 2000 * resources.GRAPH_NODE_BYTES + edges * resources.GRAPH_EDGE_BYTES
    assert parts["coupling"] == 2000 ** 2 * 8 and parts["build"] == 2000 ** 2 * resources.DENSE_BUILD_BYTES  # b = 0
    assert parts["edges"] == 2 * edges * resources.EDGE_ARRAY_BYTES
    # on a GPU the networkx build and the edge arrays stay in host memory; the device holds state and K
    pools = resources.total(parts, "cuda")
    assert pools["cuda"] == parts["state"] + parts["coupling"]
    assert pools["cpu"] == parts["set-up"] + parts["edges"] + parts["records"] + max(parts["graph"], parts["build"])


# ------------------------------------------------------------------------------------- item 7: files
def test_devices_binary_and_non_utf8_files_are_refused_quickly(tmp_path, tiny):
    (tmp_path / "bin").write_bytes(b"seed: 1\n\x00\x01\x02")
    (tmp_path / "latin.yaml").write_bytes(b"name: x\nneurons: {count: 4}\n# caf\xe9\n")
    assert re.search(r"/dev/zero:1: not a text config file", run_cli("validate", "/dev/zero").one_line_error())
    assert re.search(r"bin:2: not a text config file", run_cli("validate", tmp_path / "bin").one_line_error())
    assert re.search(r"latin\.yaml:3: not UTF-8 text \(byte 0xe9", run_cli("validate", tmp_path / "latin.yaml").one_line_error())
    assert "is a folder, not a config file" in run_cli("validate", tmp_path).one_line_error()
    for kind in ("edgelist", "graphml"):
        for path in ("/dev/zero", tmp_path / "bin"):
            line = run_cli("validate", tiny, "--set", f"topology.kind={kind}", "--set", f"topology.path={path}").one_line_error()
            assert "topology.path" in line and "binary data" in line, line
    (tmp_path / "g.txt").write_bytes(b"0 1\n1 2 \xff\n")
    line = run_cli("validate", tiny, "--set", "topology.kind=edgelist", "--set", "topology.path=g.txt").one_line_error()
    assert re.search(r"g\.txt:2: not UTF-8 text \(byte 0xff\)", line)


def test_unwritable_out_and_plots_are_one_line(tmp_path, tiny):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for cmd in (["run", tiny, "--quiet"], ["sweep", tiny, "--grid", "coupling.strength=1,2", "--quiet"]):
        assert re.search(r"--out .*file/sub: cannot create the folder \(Not a directory\)",
                         run_cli(*cmd, "--out", blocker / "sub").one_line_error())
    assert run_cli("run", tiny, "--out", tmp_path / "r", "--quiet", "--no-plots").rc == 0
    line = run_cli("analyze", tmp_path / "r", "--plots", blocker).one_line_error()
    assert line == f"dgnn: error: --plots {blocker}: exists and is not a folder"
    assert "cannot create the folder" in run_cli("analyze", tmp_path / "r", "--plots", blocker / "figs").one_line_error()


def test_compare_out_is_a_file(tmp_path):
    (tmp_path / "cmp.yaml").write_text("name: x\nseeds: 1\n")
    (tmp_path / "file").write_text("x")
    line = run_cli("compare", tmp_path / "cmp.yaml", "--out", tmp_path / "file", "--quiet").one_line_error()
    assert line.endswith("file: exists and is not a folder") and "--out" in line


# ------------------------------------------------------------------------------------- item 7: analyze
@pytest.fixture
def glial_trace(tmp_path, tiny):
    assert run_cli("run", tiny, "--set", "glia.ratio=0.5", "--out", tmp_path / "r", "--quiet", "--no-plots").rc == 0
    return tmp_path / "r" / "trace.h5"


@pytest.mark.parametrize("q", ["0", "-3"])
def test_analyze_q_max_below_one(glial_trace, q):
    line = run_cli("analyze", glial_trace, "--q-max", q).one_line_error()
    assert line == f"dgnn: error: --q-max: must be an integer >= 1 (the largest Farey denominator), found {q}"


@pytest.mark.parametrize("build, match", [
    (lambda h: h.__setitem__("time", np.arange(3.0)), r"not a complete dgnn trace \(no /metrics/order_parameter\)"),
    (lambda h: h.create_dataset("time", shape=(0,), dtype="f8"), r"the trace holds no records yet"),
    (lambda h: h.create_group("time"), r"not a dgnn trace \(no /time series or config attribute\)"),
    (lambda h: h.__setitem__("time", 1.0), r"not a dgnn trace \(no /time series"),
    (lambda h: (h.__setitem__("time", np.arange(3.0)), h.__setitem__("metrics/order_parameter", np.ones((2, 1))),
                h.__setitem__("neurons/frequency", np.ones((1, 4)))), r"/metrics/order_parameter holds 2 records but /time 3"),
])
def test_analyze_refuses_incomplete_traces(tmp_path, build, match):
    with h5py.File(tmp_path / "t.h5", "w") as h5:
        h5.attrs["config"] = TINY
        build(h5)
    for args in (["analyze", tmp_path / "t.h5"], ["analyze", tmp_path / "t.h5", "--plots", tmp_path / "figs"]):
        assert re.search(match, run_cli(*args).one_line_error())
    assert run_cli("info", tmp_path / "t.h5").rc == 0  # what is there can still be described


def test_plv_of_large_networks_reads_a_bounded_subset():
    from dgnn import analysis
    from dgnn.traces import Trace

    t, n = np.linspace(0, 10, 21), analysis.PLV_MAX_NEURONS + 500
    omega = np.linspace(0.5, 1.5, n)
    phases = (omega[None, :] * t[:, None])[:, None, :]  # (T, 1, N): free oscillators
    r = np.abs(np.exp(1j * phases).mean(-1))
    trace = Trace(path="mem", attrs={"status": "complete"}, time=t, neuron_phase=phases, glia_phase=None,
                  metrics={"order_parameter": r, "mean_phase": r}, static={"neurons/frequency": omega[None]},
                  checkpoint={})
    s = analysis.summarize(trace)["neurons"]
    assert s["plv_neurons"] == analysis.PLV_MAX_NEURONS
    assert math.isclose(s["mean_frequency"], 1.0, rel_tol=1e-12)


# ------------------------------------------------------------------------------------- item 7: --set blame
def test_errors_from_overrides_blame_the_override_not_the_file_line(tmp_path):
    (tmp_path / "c.yaml").write_text("name: x\nneurons:\n  count: 5\n  frequency: {distribution: constant, width: 0.0}\n")
    p = tmp_path / "c.yaml"
    for override, match in (
        ("neurons.count=abc", r"^override neurons\.count=abc: neurons\.count: Input should be a valid integer"),
        ("neurons.frequency.distribution=normal", (r"^override neurons\.frequency\.distribution=normal: "
                                                   r"neurons\.frequency: distribution 'normal' needs width > 0")),
        ("neurons={count: 0}", r"^override neurons=\{count: 0\}: neurons\.count: .*greater than or equal to 1"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config(p, [override])
    p.write_text(p.read_text().replace("count: 5", "count: 0"))  # the same error from the file names its line
    with pytest.raises(ConfigError, match=r"c\.yaml:3: neurons\.count: .*greater than or equal to 1"):
        load_config(p)
    p.write_text(p.read_text().replace("count: 0", "count: 5"))
    r = run_cli("validate", p, "--set", "coupling.strength=x")
    assert r.one_line_error().startswith("dgnn: error: --set coupling.strength=x: coupling.strength:")


def test_overrides_index_lists():
    import yaml

    data = {"neurons": {"count": 4}, "metabolism": {"schedule": [{"duration": 1.0}, {"duration": 2.0}]}}
    from dgnn.config import apply_overrides

    out = apply_overrides(data, ["metabolism.schedule.1.supply=0.5"])
    assert out["metabolism"]["schedule"][1] == {"duration": 2.0, "supply": 0.5}
    with pytest.raises(ConfigError, match=r"metabolism\.schedule is a list of 2; '2' is not an index of it"):
        apply_overrides(data, ["metabolism.schedule.2.supply=0.5"])
    assert yaml.safe_dump(data)  # the input is left as it was
    assert data["metabolism"]["schedule"][1] == {"duration": 2.0}


# ------------------------------------------------------------------------------------- item 9b: names
@pytest.mark.parametrize("name", ["..", "../escape", "a/b", "a\\b", ".hidden", "x..y", "tab\there", ""])
def test_names_that_become_folders_cannot_escape_outputs(tmp_path, name):
    import yaml

    from dgnn.study.compare import load_compare_config

    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump({"name": name, "seeds": 1}))
    with pytest.raises(ConfigError, match=r"cmp\.yaml:1: name: must be a non-empty folder-name-safe string"):
        load_compare_config(path)
    with pytest.raises(ConfigError, match=r"name: must be a non-empty folder-name-safe string"):
        config_from_dict({"name": name})
    path.write_text(yaml.safe_dump({"name": "ok", "models": {name: {"kind": "mlp"}}}))  # model names name files
    with pytest.raises(ConfigError, match=r"cmp\.yaml:\d: models: name .*: must be a non-empty folder-name-safe"):
        load_compare_config(path)
