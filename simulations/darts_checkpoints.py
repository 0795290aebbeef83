"""Seed 001's Figure 19 at reduced scale: the cell each DARTS-family search of a finished study would have returned
had it stopped earlier, retrained and tested, so that accuracy can be read against search length.

    python simulations/darts_checkpoints.py --study outputs/darts_mnist1d_5000 [--every 500] [--retrains 1]
        [--out STUDY/checkpoints] [--jobs 2] [--resume] [--quiet]

The study's history.h5 holds softmax(alpha) after every w step; the cell at step s is its discretisation there
(the same Pi_S as the search's end; the last checkpoint is the study's own cell, and its retrain 0 the study's).
Like the thesis's extended trials, a checkpoint is a search cut short, not a search given that shorter budget:
the proximity term's c had not yet reached 1. Each distinct (seed, cell) is retrained once per --retrains seed
and cached, so checkpoints that share a cell share its retraining. Writes retrains.csv as retrainings finish
(--resume keeps them), then results.csv / results.json: one row per run x checkpoint (cell composition and
accuracy) and `means` per strategy x checkpoint with the paired difference to the study's first strategy.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from common import load_study, run_jobs, write_table
from search_digits import paired, task_data
from dgnn.search.config import StudyConfig
from dgnn.search.darts import Darts, discretize, genotype_labels, parse_genotype
from dgnn.search.strategy import make_strategy

COUNTED = ("skip", "linear_relu", "linear_tanh", "oscillator")


def checkpoint_cells(alpha: np.ndarray, every: int, nodes: int, ops: tuple[str, ...]) -> list[tuple[int, str]]:
    """(step, cell) every `every` w steps and at the last; alpha: (steps, edges, ops) softmax; a cell is the
    history's genotype labels joined by '|'."""
    n = len(alpha)
    steps = sorted({*range(every, n + 1, every), n})
    # softmax(log p) = p: the stored softmax discretises exactly as the logits it came from
    return [(s, "|".join(genotype_labels(discretize(torch.log(torch.as_tensor(alpha[s - 1])), nodes, ops)).astype(str)))
            for s in steps]


def retrain_one(entry: tuple[str, dict], retrains: int, task, seed: int, cell: str) -> list[float]:
    """Test accuracy of each retraining of one cell by the strategy entry = (registered name, options); runs in a
    worker (one torch thread)."""
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    strategy = make_strategy(entry[0], **{**entry[1], "retrain_seeds": retrains})
    runs, _ = strategy.retrain(parse_genotype(cell.split("|")), task_data(task, seed), seed)
    return [run.metrics["accuracy"] for run in runs]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", required=True, help="a finished search_digits.py results folder (config.yaml, history.h5)")
    ap.add_argument("--every", type=int, default=500, help="w steps between checkpoints (default 500)")
    ap.add_argument("--retrains", type=int, default=1, help="retrainings per cell (default 1)")
    ap.add_argument("--out", default=None, help="results folder (default STUDY/checkpoints)")
    ap.add_argument("--jobs", type=int, default=1, help="retrainings in parallel, one core each (default 1)")
    ap.add_argument("--resume", action="store_true", help="keep the retrainings already in OUT/retrains.csv")
    ap.add_argument("--quiet", action="store_true", help="no progress or table on stdout")
    args = ap.parse_args(argv)
    for name in ("every", "retrains", "jobs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name}: expected >= 1, found {getattr(args, name)}")
    study_dir = Path(args.study)
    cfg_path, h5_path = study_dir / "config.yaml", study_dir / "history.h5"
    for p in (cfg_path, h5_path):
        if not p.exists():
            print(f"error: --study: {p} not found; point --study at a folder written by simulations/search_digits.py",
                  file=sys.stderr)
            return 2
    study = load_study(cfg_path, StudyConfig, StudyConfig.build)
    if study is None:
        return 2
    strategies = {k: v for k, v in study.build().items() if isinstance(v, Darts)}
    if not strategies:
        print(f"error: --study: {cfg_path} runs no DARTS-family strategy (darts, darts_cs10, darts_fimt, darts_pr, "
              "darts_prime)", file=sys.stderr)
        return 2
    entry = {name: (study.strategies[name].strategy or name, study.strategies[name].options) for name in strategies}
    out = Path(args.out) if args.out else study_dir / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)

    runs, jobs = [], {}  # jobs: (task index, seed, cell, setting), as retrains.csv holds them -> strategy label
    with h5py.File(h5_path, "r") as h5:
        for t, task in enumerate(study.tasks):
            for name, strat in strategies.items():
                for seed in range(study.seeds):
                    group = f"{task.label}/{name}/seed{seed}"
                    if group not in h5 or not h5[group].attrs.get("finished", False):
                        print(f"note: {group} is not finished in {h5_path}; skipped", file=sys.stderr)
                        continue
                    # what decides a retraining: the cell, the seed and the evaluation network's settings
                    setting = hashlib.sha1(repr((strat.width, strat.cells, strat.nodes, strat.ops, strat.lr, strat.batch,
                                                 strat.retrain_epochs, strat.osc)).encode()).hexdigest()[:12]
                    taken = np.cumsum(h5[group]["alpha_step"][()])  # (steps,) alpha steps so far
                    for step, cell in checkpoint_cells(h5[group]["alpha"][()], args.every, strat.nodes, strat.ops):
                        key = (t, seed, cell, setting)
                        jobs.setdefault(key, name)
                        runs.append((t, name, seed, step, int(taken[step - 1]), key))
    if not runs:
        print(f"error: --study: {h5_path} holds no finished DARTS-family run", file=sys.stderr)
        return 2

    log = out / "retrains.csv"
    done: dict = {}
    if args.resume and log.exists():
        with open(log, newline="") as fh:
            for r in csv.DictReader(fh):
                done[(int(r["task"]), int(r["seed"]), r["cell"], r["setting"])] = [float(a) for a in r["accuracy"].split()]
    todo = [k for k in jobs if k not in done or len(done[k]) < args.retrains]
    if not args.quiet:
        print(f"{len(runs)} checkpoints, {len(jobs)} distinct cells, {len(todo)} to retrain", flush=True)
    fresh = not (args.resume and log.exists())
    t0 = time.perf_counter()
    with open(log, "w" if fresh else "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["task", "seed", "cell", "setting", "accuracy"])
        if fresh:
            w.writeheader()

        finished = [0]

        def record(key, accs):
            """Append one cell's retrainings at once: an interrupted call keeps every cell it finished."""
            done[key] = accs
            w.writerow(dict(zip(("task", "seed", "cell", "setting"), key),
                            accuracy=" ".join(repr(float(a)) for a in accs)))  # round-trips exactly
            fh.flush()
            finished[0] += 1
            if not args.quiet:
                n = finished[0]
                eta = (time.perf_counter() - t0) / n * (len(todo) - n)
                print(f"seed {key[1]} cell {', '.join(c.split(':')[1] for c in key[2].split('|'))}: "
                      f"{np.mean(accs):.3f} [{n}/{len(todo)}, ETA {eta / 60:.0f} min]", flush=True)

        run_jobs({k: (entry[jobs[k]], args.retrains, study.tasks[k[0]], k[1], k[2]) for k in todo}, retrain_one, record,
                 args.jobs)

    rows = []
    for t, name, seed, step, alpha_steps, key in runs:
        ops = [c.split(":")[1] for c in key[2].split("|")]
        rows.append({"task": study.tasks[t].label, "strategy": name, "seed": seed, "step": step,
                     "alpha_steps": alpha_steps, "cell": " ".join(ops),
                     **{f"n_{op}": ops.count(op) for op in COUNTED},
                     "accuracy": float(np.mean(done[key][:args.retrains]))})  # retrains beyond --retrains (resume) are not averaged
    means = []
    for task in study.tasks:
        for step in sorted({r["step"] for r in rows if r["task"] == task.label}):
            first = None
            for name in strategies:
                mine = sorted((r for r in rows if r["task"] == task.label and r["strategy"] == name
                               and r["step"] == step), key=lambda r: r["seed"])
                if not mine:
                    continue
                acc = np.array([r["accuracy"] for r in mine])  # (seeds,)
                means.append({"task": task.label, "strategy": name, "step": step, "runs": len(mine),
                              "alpha_steps_mean": float(np.mean([r["alpha_steps"] for r in mine])),
                              "accuracy_mean": float(acc.mean()),
                              "accuracy_sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                              **{f"{k}_mean": float(np.mean([r[k] for r in mine])) for k in mine[0] if k.startswith("n_")},
                              **paired(acc, first if first is not None and len(first) == len(acc) else None)})
                first = acc if first is None else first
    write_table(out, rows, {"study": str(study_dir), "every": args.every, "retrains": args.retrains, "means": means})
    if not args.quiet:
        for m in means:
            vs = (f"   vs first {100 * m['vs_first_mean']:+.1f} (SE {100 * m['vs_first_se']:.1f}, p {m['vs_first_p']:.2f})"
                  if m["vs_first_p"] != "" else "")
            comp = " ".join(f"{k[2:-5]} {m[k]:.2f}" for k in m if k.startswith("n_"))
            print(f"{m['task']:11s} {m['strategy']:12s} step {m['step']:6d}  {100 * m['accuracy_mean']:.1f} +/- "
                  f"{100 * m['accuracy_sd']:.1f}   {comp}{vs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
