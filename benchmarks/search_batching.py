"""Trials per hour of `dgnn search` with candidates of one shape trained as one batch (batch: K) against one-by-one
training (batch: 1), in the same run, on one thread, with a check that every trial's results are equal.

    python benchmarks/search_batching.py [--trials 64] [--batch 32] [--epochs 10] [--quick] [--out FILE.json]

The space is a small realistic one on digits: MLPs and oscillator nets (clamped inputs, weight
parameterisation, 5 time units of rk4 settling in steps of 0.5) of two widths, with the learning rate and lambda
(activation penalty) drawn from ranges. The strategy is Optuna's random sampler with one seed, so both runs train the
same candidates in the same order: their trials.csv rows must agree in every column but the seconds. Trials per
hour are counted over the strategy's trials (first start to last finish in the study's storage), and over the whole
command (with the figures and tables, written once per run).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from dgnn.study.nas.command import search
from dgnn.study.nas.config import SearchConfig
from dgnn.study.storage import open_storage

TIMING = ("seconds",)  # the columns that may differ between the two runs


def space_config(trials: int, batch: int, epochs: int, widths: list[int]) -> SearchConfig:
    return SearchConfig.model_validate({
        "name": f"batching-{batch}", "seed": 0, "task": {"name": "digits"},
        "model": {"kind": "oscillator", "hidden": [16], "settle_time": 5.0, "dt": 0.5},
        "train": {"epochs": epochs, "patience": 3},
        "objectives": {"energy": "mac_joules"},
        "space": {"model.kind": {"choice": ["mlp", "oscillator"]}, "model.width": {"choice": widths},
                  "train.lr": {"float": [1e-3, 1e-2], "log": True}, "lambda": {"float": [0.0, 0.3]}},
        "strategy": {"name": "random"}, "budget": {"trials": trials}, "batch": batch, "threads": 1})


def run(cfg: SearchConfig, out: Path) -> dict:
    t0 = time.perf_counter()
    res = search(cfg, out, progress=False)
    wall = time.perf_counter() - t0
    storage = open_storage(res.storage)
    import optuna

    trials = optuna.load_study(study_name=res.study, storage=storage).get_trials(deepcopy=False)
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"batch": cfg.batch, "trials": len(rows), "trials_seconds": span, "command_seconds": wall,
            "trials_per_hour": 3600 * len(rows) / span, "command_trials_per_hour": 3600 * len(rows) / wall,
            "failed": sum(r["state"] != "complete" for r in rows), "rows": rows}


def compare(a: list[dict], b: list[dict]) -> list[str]:
    """Every difference between two runs' trials.csv rows outside the timing columns."""
    diffs = []
    for ra, rb in zip(a, b):
        for k in ra:
            if k not in TIMING and ra[k] != rb.get(k):
                diffs.append(f"trial {ra['number']} {k}: {ra[k]} != {rb.get(k)}")
    if len(a) != len(b):
        diffs.append(f"{len(a)} trials against {len(b)}")
    return diffs


def shapes(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        key = f"{r['params.model.kind']}-{r['params.model.width']}"
        out[key] = out.get(key, 0) + 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--quick", action="store_true", help="16 trials of 3 epochs, batch 8 (a smoke run)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        args.trials, args.batch, args.epochs = 16, 8, 3
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        one = run(space_config(args.trials, 1, args.epochs, args.widths), Path(tmp) / "one")
        many = run(space_config(args.trials, args.batch, args.epochs, args.widths), Path(tmp) / "batched")
    diffs = compare(one.pop("rows"), rows := many.pop("rows"))
    result = {"one_by_one": one, "batched": many, "ratio_trials_per_hour": many["trials_per_hour"] / one["trials_per_hour"],
              "ratio_command": many["command_trials_per_hour"] / one["command_trials_per_hour"],
              "target_ratio": 4.0, "shapes": shapes(rows), "results_equal": not diffs, "differences": diffs[:20],
              "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(f"one by one: {one['trials']} trials in {one['trials_seconds']:.1f} s ({one['trials_per_hour']:.0f} / hour)")
    print(f"batch {args.batch}:   {many['trials']} trials in {many['trials_seconds']:.1f} s "
          f"({many['trials_per_hour']:.0f} / hour); shapes {result['shapes']}")
    print(f"ratio {result['ratio_trials_per_hour']:.2f}x over the trials (target >= 4), "
          f"{result['ratio_command']:.2f}x over the whole command; per-trial results "
          f"{'equal' if not diffs else 'DIFFER: ' + '; '.join(diffs[:3])}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0 if not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
