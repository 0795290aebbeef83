"""The GPU path against the CPU path: coupling backends, solver families, metabolism with its ledger, structure with
its events, batched sweep points and the oscillator-net training step on a device against CPU float64 references;
same-seed reruns bit for bit; interrupt and resume; CUDA graphs against the eager loop they capture.

Each body takes the device as a parameter (problems.DEVICES): the CPU case runs everywhere, the CUDA case carries
the `cuda` marker and is skipped, with the reason, where torch sees no CUDA device. The Kuramoto r(k) test
(tests/test_analytic.py) and the SIGINT / SIGTERM + --resume test (tests/test_cli.py) take the same parameter.
"""
import math
import os
import warnings

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS; read when CUDA starts

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import dgnn  # noqa: E402
from dgnn.config import config_to_yaml  # noqa: E402
from dgnn.learn.config import DatasetConfig, ModelConfig, TrainConfig  # noqa: E402
from dgnn.learn.data import load_dataset  # noqa: E402
from dgnn.learn.models import build_model  # noqa: E402
from dgnn.learn.train import train  # noqa: E402
from dgnn.simulation import Simulation  # noqa: E402
from dgnn.solvers import BrownianPath, CudaGraphLoop, GaussianIncrements, graph_reason, solve  # noqa: E402
from problems import CUDA_ONLY, DEVICES, config_with, records, whole_and_resumed  # noqa: E402
from test_metabolism import ledger_error  # noqa: E402
from test_metabolism import make as metabolism_config  # noqa: E402
from test_structure import make as structure_config  # noqa: E402

CUDA = [pytest.param("cuda", id="cuda", marks=CUDA_ONLY)]
U32 = 2.0 ** -24  # float32 unit roundoff
TWO_PI = 2.0 * math.pi

BASE = {
    "replicas": 2, "seed": 7,
    "neurons": {"count": 32, "frequency": {"distribution": "normal", "center": 1.0, "width": 0.3}},
    "glia": {"ratio": 0.25, "coupling_to_neurons": 0.4, "coupling_from_neurons": 0.4, "coupling": 0.3},
    "coupling": {"strength": 2.0, "b": 0.2, "phase_lag": 0.1},
    "solver": {"dt": 0.02, "duration": 2.0}, "record": {"every": 0.2},
}
TOPOLOGY = {"mean_field": {"kind": "all_to_all"}, "dense": {"kind": "erdos_renyi", "p": 0.3},
            "sparse": {"kind": "erdos_renyi", "p": 0.3}}


def network(backend: str, **over):
    """BASE on the topology of `backend`, with that backend asked for."""
    coupling = {**BASE["coupling"], "backend": backend}
    return config_with(BASE, topology=TOPOLOGY[backend], coupling=coupling, **over)


def float32_tolerance(steps, scale: float) -> np.ndarray:
    """Bound on |y_float32 - y_float64| after `steps` solver steps, for states of magnitude <= scale.

    A float32 step rounds the state in its stage sums and its update (five additions of h k to y: each at most
    u scale), and the drift inside them (cos, sin, sums, matmuls: a relative error of a few u, times h |f|, which is
    below scale for these steps); the record's wrap to [-pi, pi) rounds once more. That is at most 8 u scale per
    step. The initial state is rounded once (the + 1). These networks synchronise: every direction but the common
    phase contracts, and along that neutral one the errors add up, so the step errors add without amplification.
    """
    return 8.0 * U32 * scale * (np.asarray(steps, dtype=np.float64) + 1.0)


def assert_matches(got: np.ndarray, ref: np.ndarray, dtype: str, steps, scale: float, what: str) -> None:
    """got and ref (T, ...), record t `steps[t]` solver steps from the start: 1e-10 in float64, else the bound."""
    err = np.abs(got.astype(np.float64) - ref).reshape(len(ref), -1).max(1)  # (T,)
    tol = np.full(len(ref), 1e-10) if dtype == "float64" else float32_tolerance(steps, scale)
    worst = int(np.argmax(err - tol))
    assert (err <= tol).all(), f"{what}: record {worst} differs by {err[worst]:.3g} > {tol[worst]:.3g}"


def cases(*dims, skip_reference=True):
    """(device, dtype, *dims) parameters; the CPU float64 case is the reference itself and is left out."""
    out = []
    for device in DEVICES:
        for dtype in ("float64", "float32"):
            if skip_reference and device.values[0] == "cpu" and dtype == "float64":
                continue
            for rest in dims or [()]:
                out.append(pytest.param(*device.values, dtype, *rest, marks=device.marks,
                                        id="-".join([device.id, dtype, *map(str, rest)])))
    return out


def steps_of(cfg) -> np.ndarray:
    """Solver steps from t = 0 to each record (record 0 included)."""
    return np.arange(cfg.n_records + 1) * cfg.steps_per_record


@pytest.fixture
def deterministic():
    """torch's deterministic algorithms for the test (index_add_ and scatter_add_ without atomics on CUDA)."""
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(was)


# ------------------------------------------------------------------------------------------ device vs CPU
@pytest.mark.parametrize("device, dtype, backend", cases(["mean_field"], ["dense"], ["sparse"]))
def test_coupling_backend_matches_cpu_float64(device, dtype, backend):
    ref = records(Simulation(network(backend), device="cpu"))
    sim = Simulation(network(backend, dtype=dtype), device=device)
    assert sim.field.backend_name == backend
    got = records(sim)
    assert_matches(got, ref, dtype, steps_of(sim.cfg)[1:], math.pi, f"{backend} phases")


def _solve_family(device: str, dtype: str, method: str, backend: str) -> np.ndarray:
    """y at every record of one method on the dense network; SDE methods on one fixed Brownian path."""
    sde = method in ("euler_maruyama", "heun")
    cfg = network("dense", dtype=dtype, noise={"neurons": 0.2 if sde else 0.0, "glia": 0.1 if sde else 0.0},
                  solver={"method": method, "backend": backend, "dt": 0.02, "duration": 2.0})
    sim = Simulation(cfg, device=device)
    times = [i * cfg.record.every for i in range(cfg.n_records + 1)]
    noise = None
    if sde:  # the same increments on every device and dtype (a generator's stream differs between devices)
        steps = cfg.n_records * cfg.steps_per_record
        inc = np.random.default_rng(3).standard_normal((steps, *sim.y.shape)) * math.sqrt(cfg.solver.dt)
        noise = BrownianPath(0.0, cfg.solver.dt, torch.as_tensor(inc, device=device))
    ys = solve(sim.field, sim.y, times, method=method, dt=cfg.solver.dt, rtol=1e-10, atol=1e-12,
               diffusion=sim.field.sigma if sde else None, noise=noise, backend=backend)
    return ys.double().cpu().numpy()  # (T, B, S)


FAMILIES = [("rk4", "native"), ("rk4", "torchdiffeq"), ("euler_maruyama", "native"), ("heun", "native")]


@pytest.mark.parametrize("device, dtype, method, backend",
                         cases(*FAMILIES) + [c for c in cases(("dopri5", "torchdiffeq")) if "float64" in c.id])
def test_solver_family_matches_cpu_float64(device, dtype, method, backend):
    # dopri5 in float64 only: its step-size control reads error estimates that float32 rounding moves, so the
    # steps themselves differ and no per-step rounding bound applies
    ref = _solve_family("cpu", "float64", method, backend)
    got = _solve_family(device, dtype, method, backend)
    steps = np.arange(len(ref)) * 10  # record.every / dt
    assert_matches(got, ref, dtype, steps, np.abs(ref).max(), f"{method} ({backend}) state")


@pytest.mark.parametrize("device, dtype", cases())
def test_metabolism_and_its_ledger_match_cpu_float64(tmp_path, device, dtype):
    cfg = metabolism_config(solver={"method": "rk4", "dt": 0.02, "duration": 6.0})  # a quiet epoch drains, an active one refills
    ref = dgnn.read_trace(dgnn.run(cfg, tmp_path / "ref", progress=False, device="cpu").path)
    run = dgnn.run(cfg.model_copy(update={"dtype": dtype}), tmp_path / "dev", progress=False, device=device)
    got = dgnn.read_trace(run.path)
    err, ledger, e = ledger_error(run.path)
    assert err < (1e-12 if dtype == "float64" else 1e-5)  # tests/test_metabolism.py's balance, on this device
    assert ledger["unmet"][-1].sum() > 0 and e.min() >= 0 and e.max() <= 3.0  # drained and clamped on the way
    steps = steps_of(cfg)
    assert_matches(got.neuron_phase, ref.neuron_phase, dtype, steps, math.pi, "neuron phases")
    for name, values in ref.metabolism.items():
        if values.dtype.kind == "f":
            assert_matches(got.metabolism[name], values, dtype, steps, np.abs(values).max(), name)


@pytest.mark.parametrize("device", CUDA)
def test_structure_and_its_events_match_cpu_float64(tmp_path, device):
    # float64 only: the operators pick the best pairs by PLV, and float32 rounding reorders near-ties
    cfg = structure_config(metabolism={"supply": 5.0, "e_init": 5.0},
                           structure={"synaptogenesis": {"threshold": 0.5, "cost": 0.05}, "pruning": {"threshold": 0.99},
                                      "neurogenesis": {"threshold": 0.05, "cost": 0.5},
                                      "neuron_removal": {"redundancy": 0.99}})
    ref = dgnn.read_trace(dgnn.run(cfg, tmp_path / "ref", progress=False, device="cpu").path)
    run = dgnn.run(cfg, tmp_path / "dev", progress=False, device=device)
    got = dgnn.read_trace(run.path)
    a, b = got.static["structure/events"], ref.static["structure/events"]
    assert b["accepted"].sum() > 10  # the comparison covers real edits
    for key in ("time", "replica", "operator", "target", "source", "domain", "accepted", "reason"):
        assert np.array_equal(a[key], b[key]), key
    for key in ("cost", "refund", "reserve_before", "reserve_after"):
        assert np.abs(a[key] - b[key]).max() < 1e-10, key
    assert np.array_equal(got.metrics["structure_size"], ref.metrics["structure_size"])
    assert np.abs(got.neuron_phase - ref.neuron_phase).max() < 1e-10
    assert ledger_error(run.path)[0] < 1e-12


SWEEP = {
    "replicas": 2, "seed": 5,
    "neurons": {"count": 20, "frequency": {"distribution": "normal", "center": 1.0, "width": 0.3}},
    "glia": {"ratio": 0.2, "coupling_to_neurons": 0.3, "coupling_from_neurons": 0.3, "coupling": 0.2},
    "topology": {"kind": "watts_strogatz", "k": 4, "p": 0.2},
    "drive": {"kind": "sinusoid", "amplitude": 0.2, "frequency": 1.0},
    "solver": {"dt": 0.05, "duration": 5.0}, "record": {"every": 0.5},
}


@pytest.mark.parametrize("device, dtype", cases())
def test_batched_sweep_points_match_cpu_float64(device, dtype):
    # four points differing in batchable keys, simulated as one batch (as dgnn sweep runs them)
    values = [(0.5, 0.0, 0.1, 0.0, 0.0), (2.0, 0.3, 0.6, 0.4, 0.5), (1.0, 0.1, 0.3, 0.2, 0.3), (3.0, 0.0, 0.0, 0.0, 0.1)]

    def points(dt):
        return [config_with(SWEEP, dtype=dt, coupling={"strength": k, "b": b, "phase_lag": lag},
                            glia={**SWEEP["glia"], "coupling_to_neurons": c}, drive={**SWEEP["drive"], "amplitude": u})
                for k, b, c, lag, u in values]

    ref_pts, pts = points("float64"), points(dtype)
    ref = records(Simulation(ref_pts[0], device="cpu", points=ref_pts))
    sim = Simulation(pts[0], device=device, points=pts)
    assert sim.b == 8
    assert_matches(records(sim), ref, dtype, steps_of(pts[0])[1:], math.pi, "batched points")


def _training_step(device: str, dtype: torch.dtype):
    """Loss and gradients of one minibatch through a two-layer recurrent HKB oscillator net with glial gains."""
    cfg = ModelConfig(kind="oscillator", hidden=[6, 4], settle_time=2.0, dt=0.25, glia=True, potential="hkb", b=0.3,
                      recurrent=True)
    net = build_model(cfg, 5, 3, seed=2, dtype=torch.float64).to(device=device, dtype=dtype)  # the same weights, rounded
    x = torch.as_tensor(np.random.default_rng(0).standard_normal((8, 5)), dtype=dtype, device=device)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1], device=device)
    logits, acts = net(x)
    loss = torch.nn.functional.cross_entropy(logits, y) + 0.1 * sum((a * a).mean() for a in acts)
    loss.backward()
    return float(loss.detach()), [p.grad.double().cpu().numpy() for p in net.parameters()]


@pytest.mark.parametrize("device, dtype", cases())
def test_oscillator_training_step_matches_cpu_float64(device, dtype):
    ref_loss, ref_grads = _training_step("cpu", torch.float64)
    loss, grads = _training_step(device, getattr(torch, dtype))
    # backpropagation runs every forward step's operations once more, transposed: twice the settling's 8 steps
    steps = 2 * 8
    scale = max(np.abs(g).max() for g in ref_grads)
    tol = 1e-10 if dtype == "float64" else float(float32_tolerance(steps, max(scale, abs(ref_loss))))
    assert abs(loss - ref_loss) <= tol
    for g, r in zip(grads, ref_grads):
        assert np.abs(g - r).max() <= tol


@pytest.mark.parametrize("device", CUDA)
def test_training_epoch_on_device_equals_cpu_float64(device):
    # the harness itself (dgnn.learn.train) on the device: the same minibatches (a CPU generator orders them)
    data = load_dataset(DatasetConfig(name="digits", classes=[0, 1, 2]), 0)
    cfg = ModelConfig(kind="oscillator", hidden=[6], settle_time=2.0, dt=0.5, glia=True)
    tc = TrainConfig(optimizer="sgd", lr=0.05, epochs=1, patience=1)
    params = []
    for dev in ("cpu", device):
        net = build_model(cfg, data.n_features, data.n_classes, seed=0, dtype=torch.float64).to(dev)
        res = train(net, data, tc, dtype=torch.float64, device=dev)
        params.append([p.detach().cpu().numpy() for p in res.model.parameters()])
    for a, b in zip(*params):
        assert np.abs(a - b).max() < 1e-10


# ------------------------------------------------------------------------------------ reruns and resume
def datasets(path) -> dict:
    """Every dataset of an HDF5 file (records, static arrays, events and the resume checkpoint)."""
    out = {}
    with h5py.File(path) as h5:
        h5.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


RERUNS = {
    # dense coupling, glial domain means (index_add_) and the energy block, with noise: the CUDA-graph path
    "noisy_glia_metabolism": lambda: network("dense", noise={"neurons": 0.2, "glia": 0.1},
                                             metabolism={"enabled": True, "supply": 1.0, "e_max": 3.0, "e_init": 1.0},
                                             solver={"method": "euler_maruyama", "dt": 0.02, "duration": 2.0}),
    "sparse_heun": lambda: network("sparse", noise={"neurons": 0.2}, solver={"method": "heun", "dt": 0.02, "duration": 2.0}),
    # plastic networks: the per-replica edits go through the CSR product on CUDA, where index_add_ would use atomics
    "structure": lambda: structure_config(noise={"neurons": 0.1}, solver={"method": "euler_maruyama", "dt": 0.02,
                                                                           "duration": 6.0}),
}


@pytest.mark.parametrize("case", sorted(RERUNS))
@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_twice_gives_bit_identical_traces(tmp_path, deterministic, device, case):
    cfg = RERUNS[case]()
    paths = [dgnn.run(cfg, tmp_path / name, progress=False, device=device).path for name in ("a", "b")]
    a, b = datasets(paths[0]), datasets(paths[1])
    assert a.keys() == b.keys() and "neurons/phase" in a
    for name in a:
        assert np.array_equal(a[name], b[name]), name


@pytest.mark.parametrize("device", DEVICES)
def test_interrupted_run_resumes_to_the_uninterrupted_trace(tmp_path, deterministic, device):
    whole, done = whole_and_resumed(RERUNS["noisy_glia_metabolism"](), tmp_path, stop_after=4, device=device)
    assert done.status == "complete" and whole.attrs["device"] == done.attrs["device"]
    assert np.array_equal(done.neuron_phase, whole.neuron_phase)
    assert np.array_equal(done.glia_phase, whole.glia_phase)
    for name, values in whole.metabolism.items():
        assert np.array_equal(done.metabolism[name], values), name


# --------------------------------------------------------------------------------------------- CUDA graphs
GPU = torch.device("cuda")  # a device object only: graph_reason reads its type, no GPU is touched


@pytest.mark.parametrize("over, reason", [
    ({}, None),
    ({"solver": {"cuda_graph": False}}, "solver.cuda_graph is false"),
    ({"solver": {"method": "dopri5"}}, "solver.method 'dopri5' is not a native fixed-step method"),
    ({"solver": {"method": "rk4", "backend": "torchdiffeq"}},
     "solver.backend torchdiffeq: the steps are torchdiffeq's, not the native loop's"),
    ({"drive": {"kind": "sinusoid", "amplitude": 0.1, "frequency": 1.0}}, "drive.kind sinusoid: the drift depends on t"),
    ({"drive": {"kind": "constant", "amplitude": 0.1}}, None),
    ({"metabolism": {"enabled": True, "schedule": [{"name": "q", "duration": 1.0, "supply": 0.5}]}},
     "metabolism.schedule: the drift depends on t"),
    ({"metabolism": {"enabled": True}}, None),
])
def test_graph_path_is_chosen_only_where_it_is_exact(over, reason):
    assert graph_reason(network("dense", **over), GPU, None) == reason
    assert graph_reason(network("dense", **over), torch.device("cpu"), None) == "not on a CUDA device"


def test_graph_path_refuses_structure_and_noise_it_cannot_register():
    assert graph_reason(structure_config(), GPU, None).startswith("structure.enabled")
    noisy = network("mean_field", noise={"neurons": 0.1}, solver={"method": "euler_maruyama"})
    registers = hasattr(torch.cuda.CUDAGraph, "register_generator_state")  # False in CPU-only torch builds
    expected = None if registers else f"torch {torch.__version__} cannot register a generator with a CUDA graph"
    assert graph_reason(noisy, GPU, GaussianIncrements(0)) == expected
    path = BrownianPath(0.0, 0.01, torch.zeros(4, 1, 40))
    assert graph_reason(noisy, GPU, path) == "noise source BrownianPath has no single generator to register with a graph"


@pytest.mark.parametrize("device", DEVICES)
def test_eager_path_is_the_plain_solver_loop(device):
    # with the graph path off (on the CPU it is never taken) advance() is solve() over the interval, then the wrap
    cfg = network("dense", solver={"cuda_graph": False}) if device == "cuda" else network("dense")
    sim = Simulation(cfg, device=device)
    y0 = sim.y.clone()
    sim.advance()
    assert sim.graphs is None and sim.graph_reason is not None
    y = solve(sim.field, y0, [0.0, cfg.record.every], method="rk4", dt=cfg.solver.dt)[-1]
    assert torch.equal(sim.y, y - TWO_PI * torch.floor((y + math.pi) / TWO_PI))


GRAPH_CASES = {
    # the benchmark's case: mean field, N = 1000, B = 1
    "mean_field_rk4_n1000_b1": lambda: config_with(BASE, replicas=1, dtype="float32", neurons={"count": 1000},
                                                   glia={"ratio": 0.0}),
    "dense_rk4": lambda: network("dense", glia={"ratio": 0.0}),
    "sparse_midpoint": lambda: network("sparse", glia={"ratio": 0.0}, solver={"method": "midpoint", "dt": 0.02}),
    "euler_constant_drive": lambda: network("mean_field", glia={"ratio": 0.0}, drive={"kind": "constant", "amplitude": 0.3},
                                            solver={"method": "euler", "dt": 0.02}),
    "heun_noise_float32": lambda: network("dense", dtype="float32", noise={"neurons": 0.2, "glia": 0.1},
                                          solver={"method": "heun", "dt": 0.02}),
    "noisy_glia_metabolism": RERUNS["noisy_glia_metabolism"],
}
NO_ATOMICS = {"mean_field_rk4_n1000_b1", "dense_rk4", "sparse_midpoint", "euler_constant_drive"}


@pytest.mark.parametrize("case", sorted(GRAPH_CASES))
@pytest.mark.parametrize("device", CUDA)
def test_graph_replay_equals_the_eager_loop_bit_for_bit(deterministic, device, case):
    base = GRAPH_CASES[case]()
    runs = []
    for on in (True, False):
        cfg = base.model_copy(update={"solver": base.solver.model_copy(update={"cuda_graph": on, "duration": 8.0})})
        sim = Simulation(cfg, device=device)
        runs.append((records(sim), sim))
    (graph_y, g), (eager_y, e) = runs
    assert e.graphs is None and e.graph_reason == "solver.cuda_graph is false"
    assert g.graph_reason is None and g.graphs is not None
    if case in NO_ATOMICS or g.graphs.failure is None:
        assert g.graphs.failure is None and g.graphs.replays > 0 and 1 <= g.graphs.captures <= 8, g.graphs.failure
    assert np.array_equal(graph_y, eager_y)
    assert torch.equal(g.y, e.y) and torch.equal(g.turns, e.turns)
    assert torch.equal(g.noise.state(), e.noise.state())  # replays advanced the noise stream as the loop did


@pytest.mark.parametrize("device", CUDA)
def test_failed_capture_falls_back_to_the_eager_loop(device):
    # a drift that reads a value back to the host (a device sync) cannot be captured: the fault is provoked here
    sim = Simulation(network("dense", glia={"ratio": 0.0}), device=device)

    def syncing(t, y):
        return sim.field(t, y) * (1.0 + 0.0 * float(y.sum()))

    loop = CudaGraphLoop(syncing, "rk4", 0.02)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = loop(sim.y, 0.0, 0.2)
        second = loop(first, 0.2, 0.4)
    assert loop.failure is not None and loop.captures == 0 and loop.replays == 0
    assert any("CUDA graph capture failed" in str(w.message) for w in caught)
    ref = solve(syncing, sim.y, [0.0, 0.2, 0.4], method="rk4", dt=0.02)
    assert torch.equal(first, ref[1]) and torch.equal(second, ref[2])


@pytest.mark.parametrize("device", DEVICES)
def test_renewed_generator_continues_the_same_stream(device):
    # what a failed noisy capture falls back on: the increments go on exactly as without the renewal
    a, b = GaussianIncrements(11, device), GaussianIncrements(11, device)
    a(0.0, 0.01, (2, 5), torch.float64)
    b(0.0, 0.01, (2, 5), torch.float64)
    b.renew()
    assert torch.equal(a(0.01, 0.01, (2, 5), torch.float64), b(0.01, 0.01, (2, 5), torch.float64))
    assert torch.equal(a.state(), b.state())


def test_config_switch_round_trips():
    cfg = network("dense", solver={"cuda_graph": False})
    assert "cuda_graph: false" in config_to_yaml(cfg)
    assert dgnn.config.config_from_yaml_text(config_to_yaml(cfg)) == cfg
