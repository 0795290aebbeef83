"""Cost of running sweep points as one batch with each point's own noise stream and own-run products, measured in
one run against (a) the same points run one by one and (b) one noise stream drawn for the whole batch (the
pre-issue-15 scheme, whose increments depended on the batch mates).

    python benchmarks/sweep_batches.py [--threads 1] [--quick]

Prints a markdown table: seconds per simulated time unit for the batch and for the points one by one, and the
time per step of drawing the batch's increments per point (PointIncrements) and as one stream (GaussianIncrements).
"""
from __future__ import annotations

import argparse
import time

import torch

from dgnn.config import config_from_dict
from dgnn.simulation import Simulation
from dgnn.solvers import GaussianIncrements, PointIncrements
from dgnn.study.sweep import expand

CASES = [  # (points, N, topology)
    (32, 100, "all_to_all"), (32, 100, "watts_strogatz"), (4, 1000, "all_to_all"), (4, 1000, "watts_strogatz"),
]


def _per_time(sim: Simulation, seconds: float) -> float:
    """Wall seconds per unit of simulated time (advance, record by record)."""
    sim.advance()  # warm-up
    t0, start = sim.t, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sim.advance()
    return (time.perf_counter() - start) / (sim.t - t0)


def _draw(noise, shape, dtype, repeats: int = 200) -> float:
    """Seconds per step to draw a (P B, D) increment."""
    noise(0.0, 0.01, shape, dtype)
    start = time.perf_counter()
    for _ in range(repeats):
        noise(0.0, 0.01, shape, dtype)
    return (time.perf_counter() - start) / repeats


def case(points: int, n: int, topology: str, dtype: str, seconds: float) -> dict:
    topo = {"kind": "all_to_all"} if topology == "all_to_all" else {"kind": "watts_strogatz", "k": 10, "p": 0.2}
    base = config_from_dict({"name": "bench", "dtype": dtype, "neurons": {"count": n}, "topology": topo,
                             "noise": {"neurons": 0.3}, "solver": {"method": "heun", "dt": 0.01, "duration": 1e6},
                             "record": {"every": 0.1, "phases": False}})
    cfgs = [p.cfg for p in expand(base, {"coupling.strength": [0.5 + 0.1 * i for i in range(points)]})]
    batch = Simulation(cfgs[0], device="cpu", points=cfgs)
    batched = _per_time(batch, seconds)
    alone = sum(_per_time(Simulation(c, device="cpu"), seconds / points) for c in cfgs)
    shape, dt = batch.y.shape, batch.dtype
    return {"points": points, "N": n, "topology": topology, "dtype": dtype, "backend": batch.field.backend_name,
            "batch_s": batched, "alone_s": alone,
            "draw_points_us": 1e6 * _draw(PointIncrements(1, points), shape, dt),
            "draw_one_us": 1e6 * _draw(GaussianIncrements(1), shape, dt),
            "step_us": 1e6 * batched * 0.01}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="shorter timings")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seconds = 0.5 if args.quick else 2.0
    print("| points x N | network | dtype | batch s / time unit | one by one | speed-up | noise per point us | "
          "one stream us | ratio | step us |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for points, n, topology in CASES:
        for dtype in ("float32", "float64"):
            r = case(points, n, topology, dtype, seconds)
            print(f"| {points} x {n} | {r['backend']} | {dtype} | {r['batch_s']:.3f} | {r['alone_s']:.3f} | "
                  f"{r['alone_s'] / r['batch_s']:.1f} | {r['draw_points_us']:.0f} | {r['draw_one_us']:.0f} | "
                  f"{r['draw_points_us'] / r['draw_one_us']:.2f} | {r['step_us']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
