"""Trials per hour of `dgnn search` with candidates of one shape trained as one batch (batch: K) against one-by-one
training (batch: 1), in the same run, on one thread, with a check that every trial's results are equal.

    python benchmarks/search_batching.py [--trials 64] [--batch 32 [16 ...]] [--epochs 10] [--quick] [--out FILE.json]

The space is a small realistic one on digits: MLPs and oscillator nets (clamped inputs, weight
parameterisation, 5 time units of rk4 settling in steps of 0.5) of two widths, with the learning rate and lambda
(activation penalty) drawn from ranges. The strategy is Optuna's random sampler with one seed, so both runs train the
same candidates in the same order: their trials.csv rows must agree in every column but the seconds. Trials per
hour are counted over the strategy's trials (first start to last finish in the study's storage), over the whole
command (with the figures and tables, written once per run), and in this process's CPU time (which other load on
a shared machine leaves nearly unchanged, where it stretches wall time).
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
    t0, c0 = time.perf_counter(), time.process_time()
    res = search(cfg, out, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    storage = open_storage(res.storage)
    import optuna

    trials = optuna.load_study(study_name=res.study, storage=storage).get_trials(deepcopy=False)
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"batch": cfg.batch, "trials": len(rows), "trials_seconds": span, "command_seconds": wall,
            "trials_per_hour": 3600 * len(rows) / span, "command_trials_per_hour": 3600 * len(rows) / wall,
            "command_cpu_seconds": cpu, "trials_per_cpu_hour": 3600 * len(rows) / cpu,
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


def warm_up() -> None:
    """Pay the one-time costs (lazy imports: torch.optim's first optimizer imports torch._dynamo, seconds) before
    either run is timed."""
    from dgnn.learn.batched import train_batch
    from dgnn.learn.config import DatasetConfig, ModelConfig, TrainConfig
    from dgnn.learn.data import load_dataset
    from dgnn.learn.models import build_model
    from dgnn.learn.train import train

    data = load_dataset(DatasetConfig(name="digits", classes=[0, 1]), 0)
    mcfg, tcfg = ModelConfig(kind="mlp", hidden=[4]), TrainConfig(epochs=1)
    train(build_model(mcfg, data.n_features, data.n_classes, 0), data, tcfg)
    train_batch([build_model(mcfg, data.n_features, data.n_classes, s) for s in (0, 1)], data, [tcfg] * 2, [0.0] * 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--batch", type=int, nargs="+", default=[32], help="batch sizes, each against one-by-one")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--quick", action="store_true", help="16 trials of 3 epochs, batch 8 (a smoke run)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        args.trials, args.batch, args.epochs = 16, [8], 3
    torch.set_num_threads(1)
    warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        one = run(space_config(args.trials, 1, args.epochs, args.widths), Path(tmp) / "one")
        runs = [run(space_config(args.trials, k, args.epochs, args.widths), Path(tmp) / f"batch{k}")
                for k in args.batch]
    ref = one.pop("rows")
    print(f"one by one: {one['trials']} trials in {one['trials_seconds']:.1f} s ({one['trials_per_hour']:.0f} / hour, "
          f"{one['trials_per_cpu_hour']:.0f} / CPU hour)")
    result = {"one_by_one": one, "batched": [], "target_ratio": 4.0, "shapes": shapes(ref),
              "threads": torch.get_num_threads(), "torch": torch.__version__}
    equal = True
    for many in runs:
        diffs = compare(ref, many.pop("rows"))
        equal &= not diffs
        many.update(ratio_trials_per_hour=many["trials_per_hour"] / one["trials_per_hour"],
                    ratio_command=many["command_trials_per_hour"] / one["command_trials_per_hour"],
                    ratio_cpu=many["trials_per_cpu_hour"] / one["trials_per_cpu_hour"],
                    results_equal=not diffs, differences=diffs[:20])
        result["batched"].append(many)
        print(f"batch {many['batch']:>3}: {many['trials']} trials in {many['trials_seconds']:.1f} s; ratio "
              f"{many['ratio_trials_per_hour']:.2f}x over the trials (target >= 4), {many['ratio_command']:.2f}x over "
              f"the whole command, {many['ratio_cpu']:.2f}x in CPU time (this process's: other load stretches wall "
              f"time, not this); per-trial results {'equal' if not diffs else 'DIFFER: ' + '; '.join(diffs[:3])}")
    print(f"shapes: {result['shapes']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
