"""An adaptive solve that cannot advance fails fast with a clear line instead of hanging (issue 15, item 8):
dopri5 at coupling strength 1e12 made no progress for minutes."""
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import dgnn
from dgnn.config import config_from_dict
from dgnn.simulation import Simulation
from dgnn.solvers import SolverStalled, solve

STIFF = {"name": "stiff", "replicas": 2, "neurons": {"count": 6}, "coupling": {"strength": 1e12},
         "solver": {"method": "dopri5", "duration": 0.2}, "record": {"every": 0.1}}


def test_stalled_run_fails_in_seconds_keeping_its_records(tmp_path):
    cfg = config_from_dict(STIFF)
    assert Simulation(cfg, device="cpu").max_steps == 1000  # 100 x record.every / dt
    start = time.perf_counter()
    res = dgnn.run(cfg, tmp_path / "r", progress=False)
    assert time.perf_counter() - start < 30
    assert res.status == "failed" and res.records == 1  # t = 0 kept
    assert "adaptive solver dopri5 cannot advance: 1000 steps between t=0 and t=0.1" in res.message
    assert "solver.max_steps" in res.message
    tr = dgnn.read_trace(res.path)
    assert tr.status == "failed" and tr.attrs["message"] == res.message


def test_default_budget_follows_the_record_interval_and_the_key_moves_it():
    cfg = config_from_dict({**STIFF, "solver": {"method": "dopri5", "dt": 0.0002, "duration": 0.2}})
    assert Simulation(cfg, device="cpu").max_steps == 100 * 500  # 100 steps of dt per record interval
    cfg = config_from_dict({**STIFF, "solver": {"method": "dopri5", "duration": 0.2, "max_steps": 40}})
    sim = Simulation(cfg, device="cpu")
    with pytest.raises(SolverStalled, match="40 steps between t=0 and t=0.1"):
        sim.advance()
    calm = {**STIFF, "coupling": {"strength": 1.0}, "solver": {"method": "rk4"}}  # rk4 would refuse the stiff one
    assert Simulation(config_from_dict(calm), device="cpu").max_steps is None  # fixed steps need no budget


def test_cli_exits_1_with_one_line(tmp_path):
    cfg = tmp_path / "stiff.yaml"
    cfg.write_text("name: stiff\nneurons: {count: 6}\ncoupling: {strength: 1.0e+12}\n"
                   "solver: {method: dopri5, duration: 0.2}\nrecord: {every: 0.1}\n")
    r = subprocess.run([sys.executable, "-m", "dgnn", "run", str(cfg), "--out", str(tmp_path / "o"), "--quiet",
                        "--set", "solver.max_steps=100"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot advance: 100 steps" in lines[0] and "records kept" in lines[0]


def test_ordinary_adaptive_runs_are_unaffected():
    # the budget only counts: a solve within it gives the very numbers of torchdiffeq without one
    cfg = config_from_dict({**STIFF, "coupling": {"strength": 2.0}, "solver": {"method": "dopri5", "duration": 1.0,
                                                                           "rtol": 1e-9, "atol": 1e-11}})
    sim = Simulation(cfg, device="cpu")
    y0 = sim.y.clone()
    plain = solve(sim.field, y0, [0.0, 0.5], method="dopri5", rtol=1e-9, atol=1e-11)
    budget = solve(sim.field, y0, [0.0, 0.5], method="dopri5", rtol=1e-9, atol=1e-11, max_steps=sim.max_steps)
    assert torch.equal(plain, budget)
    for _ in range(cfg.n_records):
        sim.advance()
    assert torch.isfinite(sim.y).all() and not sim.failed


def test_held_rows_do_not_move_nor_steer_the_steps():
    # rows held (a failed point's) keep their state, and the others step as if alone
    def field(t, y):
        return torch.stack([torch.cos(y[:, 0]) * 3.0, -y[:, 1]], dim=1) * torch.tensor([[1.0], [1e9]], dtype=y.dtype)

    y0 = torch.tensor([[0.3, 1.0], [0.1, 2.0]], dtype=torch.float64)
    held = torch.tensor([False, True])
    out = solve(field, y0, [0.0, 1.0], method="dopri5", rtol=1e-8, atol=1e-10, held=held, max_steps=500)[-1]
    assert torch.equal(out[1], y0[1])
    alone = solve(lambda t, y: torch.stack([torch.cos(y[:, 0]) * 3.0, -y[:, 1]], dim=1), y0[:1], [0.0, 1.0],
                  method="dopri5", rtol=1e-8, atol=1e-10)[-1]
    assert np.allclose(out[0].numpy(), alone[0].numpy(), rtol=0, atol=1e-12)
    with pytest.raises(SolverStalled):  # without holding it, the stiff row spends the budget
        solve(field, y0, [0.0, 1.0], method="dopri5", rtol=1e-8, atol=1e-10, max_steps=500)
