"""A sweep point's trace is a function of its config alone: bit for bit its own run, whatever its batch mates
(issue 15, item 10). Noise, frequencies, initial phases and structural draws come from the point's own seed, and
every product keeps the shapes of the point's own run."""
import numpy as np
import pytest
import torch

import dgnn
from dgnn.config import config_from_dict
from dgnn.simulation import Simulation
from dgnn.solvers import GaussianIncrements, PointIncrements
from dgnn.study.sweep import expand, sweep
from problems import config_with

BASE = {
    "name": "ps", "seed": 7, "replicas": 2,
    "neurons": {"count": 16, "frequency": {"distribution": "normal", "center": 1.0, "width": 0.3}},
    "glia": {"ratio": 0.25, "coupling_to_neurons": 0.3, "coupling_from_neurons": 0.3, "coupling": 0.2},
    "noise": {"neurons": 0.3, "glia": 0.1},
    "solver": {"method": "heun", "dt": 0.05, "duration": 2.0}, "record": {"every": 0.5},
}
NETWORKS = {
    "mean_field": {"topology": {"kind": "all_to_all"}},
    "dense": {"topology": {"kind": "watts_strogatz", "k": 4, "p": 0.2}},
    "sparse": {"topology": {"kind": "watts_strogatz", "k": 4, "p": 0.2}, "coupling": {"backend": "sparse"}},
    "metabolism": {"topology": {"kind": "watts_strogatz", "k": 4, "p": 0.2},
                   "metabolism": {"enabled": True, "supply": 0.7, "e_max": 6.0, "e_init": 3.0}},
    "structure": {"topology": {"kind": "watts_strogatz", "k": 4, "p": 0.2},
                  "metabolism": {"enabled": True, "supply": 0.7, "e_max": 6.0, "e_init": 3.0},
                  "structure": {"enabled": True, "interval": 0.5, "window": 0.5, "candidates": 6,
                                "synaptogenesis": {"threshold": 0.5, "cost": 0.01}, "pruning": {"threshold": 0.5},
                                "neurogenesis": {"enabled": True, "threshold": 0.1, "cost": 0.1}}},
}
# values that are not powers of two, so that any rounding done differently in a batch shows
GRID = {"coupling.strength": [0.7, 1.3], "noise.neurons": [0.0, 0.37]}
METABOLIC = {"coupling.strength": [0.7, 1.3], "metabolism.e_max": [6.0, 7.3]}


def records(sim: Simulation, n: int) -> list[dict]:
    out = [sim.snapshot()]
    for _ in range(n):
        sim.advance()
        out.append(sim.snapshot())
    return out


def assert_point_equals_own_run(batch: list[dict], own: list[dict], point: int, replicas: int):
    rows = slice(point * replicas, (point + 1) * replicas)
    for rb, ro in zip(batch, own):
        for key, value in ro.items():
            mine = np.asarray(rb[key])
            mine = mine[rows] if mine.ndim else mine
            assert np.array_equal(mine, value), (point, key, float(rb["time"]))


@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("method, dtype", [("euler_maruyama", "float64"), ("heun", "float32"),
                                           ("heun", "float64"), ("euler_maruyama", "float32")])
def test_batched_noisy_point_is_its_own_run_bit_for_bit(network, method, dtype):
    base = config_with({**BASE, **NETWORKS[network]}, dtype=dtype, coupling={"b": 0.31, **NETWORKS[network].get("coupling", {})},
                       solver={"method": method, "dt": 0.05, "duration": 1.5})
    grid = METABOLIC if "metabolism" in NETWORKS[network] else GRID
    points = [p.cfg for p in expand(base, grid)]
    batch = records(Simulation(points[0], device="cpu", points=points), base.n_records)
    for i, p in enumerate(points):
        assert_point_equals_own_run(batch, records(Simulation(p, device="cpu"), base.n_records), i, base.replicas)


def test_noisy_sweep_points_equal_their_runs_whatever_the_batching(tmp_path):
    # the case: --grid coupling.strength=0.5,1.5,2.5 with noise.neurons 0.3 and euler_maruyama differed from
    # max_batch=1 and from `dgnn run` of the point by 0.06-0.11 in r(t)
    base = config_from_dict({**BASE, "replicas": 1, "noise": {"neurons": 0.3}, "topology": {"kind": "erdos_renyi", "p": 0.3},
                             "solver": {"method": "euler_maruyama", "dt": 0.02, "duration": 2.0}, "record": {"every": 0.2}})
    grid = {"coupling.strength": [0.5, 1.5, 2.5]}
    whole = sweep(base, grid, tmp_path / "whole", progress=False)
    pairs = sweep(config_with(base.model_dump(), sweep={"max_batch": 2}), grid, tmp_path / "pairs", progress=False)
    assert whole.status == pairs.status == "complete"
    for p in expand(base, grid):
        own = dgnn.read_trace(dgnn.run(p.cfg, tmp_path / f"run{p.index}", progress=False).path)
        for out in ("whole", "pairs"):
            tr = dgnn.read_trace(tmp_path / out / "points" / p.label / "trace.h5")
            assert np.array_equal(tr.metrics["order_parameter"], own.metrics["order_parameter"]), (out, p.index)
            assert np.array_equal(tr.metrics["glia_order_parameter"], own.metrics["glia_order_parameter"])
    r = [dgnn.read_trace(tmp_path / "whole" / "points" / p.label / "trace.h5").metrics["order_parameter"]
         for p in expand(base, grid)]
    assert not np.array_equal(r[0], r[2])  # the points do differ: their strengths are not batched away


def test_a_single_point_draws_todays_stream():
    # a plain run's noise must stay what it was: one point's increments are GaussianIncrements', draw for draw
    a, b = GaussianIncrements(11), PointIncrements(11, points=1)
    for t in (0.0, 0.1, 0.2):
        assert torch.equal(a(t, 0.1, (3, 5), torch.float64), b(t, 0.1, (3, 5), torch.float64))
    # and each of P points gets the increments of its own run, repeated: (P B, D)
    c, d = GaussianIncrements(11), PointIncrements(11, points=4)
    one, all_ = c(0.0, 0.1, (3, 5), torch.float32), d(0.0, 0.1, (12, 5), torch.float32)
    assert all(torch.equal(all_[3 * i:3 * (i + 1)], one) for i in range(4))
    assert torch.equal(c.state(), d.state())


def test_points_of_different_seeds_cannot_share_a_batch():
    a = config_from_dict(BASE)
    b = config_with(BASE, seed=8)
    with pytest.raises(dgnn.ConfigError, match="share seed"):
        Simulation(a, device="cpu", points=[a, b])


def test_interrupted_structural_point_resumes_as_its_own_run(tmp_path):
    # a point's checkpoint is its own run's (noise stream, structural generator, W, activity): `dgnn run --resume`
    # of an interrupted sweep point finishes it exactly as its own uninterrupted run
    base = config_with({**BASE, **NETWORKS["structure"]}, solver={"method": "euler_maruyama", "dt": 0.05, "duration": 2.5})
    grid = {"coupling.strength": [0.7, 1.3]}
    calls = iter(range(1000))
    first = sweep(base, grid, tmp_path / "s", progress=False, should_stop=lambda: next(calls) >= 2)
    assert first.status == "interrupted"
    for p in expand(base, grid):
        resumed = dgnn.simulation.resume(tmp_path / "s" / "points" / p.label, progress=False)
        assert resumed.status == "complete"
        own = dgnn.read_trace(dgnn.run(p.cfg, tmp_path / f"own{p.index}", progress=False).path)
        got = dgnn.read_trace(resumed.path)
        assert np.array_equal(got.metrics["order_parameter"], own.metrics["order_parameter"])
        assert np.array_equal(got.static["structure/events"], own.static["structure/events"])
