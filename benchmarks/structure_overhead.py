"""Structural bookkeeping overhead: throughput of a run with structure evaluated every `interval` against the same
run without structure, measured in the same process (target: >= 70% at interval 1.0).

    python benchmarks/structure_overhead.py [--threads 1] [--n 200] [--replicas 16] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dgnn.config import config_from_dict
from dgnn.simulation import Simulation


def config(n: int, b: int, structure: bool, interval: float = 1.0, dtype: str = "float32", candidates: int = 0):
    return config_from_dict({
        "replicas": b, "dtype": dtype, "seed": 1,
        "neurons": {"count": n, "frequency": {"distribution": "normal", "center": 1.0, "width": 0.3}},
        "glia": {"ratio": 0.1, "coupling_to_neurons": 0.2, "coupling_from_neurons": 0.3},
        "topology": {"kind": "erdos_renyi", "p": 0.1},
        "coupling": {"strength": 1.5, "backend": "dense"},
        "metabolism": {"enabled": True, "p_base": 0.02, "p_act": 0.2, "supply": 2.0, "e_max": 5.0, "e_init": 4.0},
        "structure": {"enabled": structure, "interval": interval, "window": 2.0, "capacity": int(1.25 * n),
                      "candidates": candidates,
                      "synaptogenesis": {"threshold": 0.9, "cost": 0.02}, "pruning": {"threshold": 0.3},
                      "neurogenesis": {"threshold": 0.45, "cost": 0.5}},
        "solver": {"dt": 0.01, "duration": 10**6}, "record": {"every": 0.5, "phases": False},
    })


def paired(n: int, b: int, interval: float, seconds: float, candidates: int = 0) -> tuple[float, float, float]:
    """Throughput (neuron-steps per CPU second) without and with structure, and their ratio. The two runs
    alternate one controller interval at a time in this process, so a load change on this shared machine hits
    both alike (3-second blocks in turn scattered single rounds from 53% to 78%)."""
    sims = [Simulation(config(n, b, False), device="cpu"), Simulation(config(n, b, True, interval, candidates=candidates), device="cpu")]
    for sim in sims:
        for _ in range(4):  # fill the window so the controller really runs
            sim.advance()
            sim.snapshot()
    per = max(1, round(interval / sims[1].cfg.record.every))  # records per controller evaluation
    spent, recs = [0.0, 0.0], 0
    while sum(spent) < seconds:
        for k, sim in enumerate(sims):
            t0 = time.process_time()
            for _ in range(per):
                sim.advance()
                sim.snapshot()
                sim.take_events()
            spent[k] += time.process_time() - t0
        recs += per
    steps = recs * sims[0].cfg.steps_per_record * n * b
    return steps / spent[0], steps / spent[1], spent[0] / spent[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--replicas", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--candidates", type=int, default=0, help="structure.candidates (0 = all pairs)")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    # paired rounds, median ratio: a shared machine's load drifts by 2x between minutes
    rows = {"threads": args.threads, "N": args.n, "B": args.replicas, "rounds": args.rounds, "candidates": args.candidates}
    for interval in (1.0, 5.0):
        ratios, rates = [], []
        for _ in range(args.rounds):
            base, r, ratio = paired(args.n, args.replicas, interval, 2 * args.seconds, args.candidates)
            ratios.append(ratio)
            rates.append((base, r))
        med = float(np.median(ratios))
        rows[f"interval_{interval}"] = {"ratio_median": med, "ratios": ratios, "rates": rates}
        print(f"N={args.n} B={args.replicas} candidates={args.candidates}: interval {interval}: with / without structure = {100 * med:.0f}% "
              f"(median of {args.rounds} paired rounds: {', '.join(f'{100 * x:.0f}%' for x in ratios)})", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"structure_overhead-n{args.n}-threads{args.threads}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
