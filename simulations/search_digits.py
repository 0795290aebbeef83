"""Strategies x tasks x seeds, beside the source paper's numbers (seed 004's Tables 1 and 2, seed 001's Table 5,
at reduced scale).

    python simulations/search_digits.py [--config configs/nne_digits.yaml] [--out outputs/nne_digits] [--quiet]
    python simulations/search_digits.py --config configs/dnn_digits.yaml --out outputs/dnn_digits
    python simulations/search_digits.py --config configs/darts_digits.yaml --out outputs/darts_digits --jobs 2

Tasks are digits (a class subset) or MNIST-1D. Writes results.csv / results.json (one row per task x strategy x
seed, and means) and history.h5 (per-run histories: fitness per generation and allele polarisation for NNE,
losses for the gradient and plasticity rules, alpha and the schedule for DARTS). --jobs N runs N fits at a time
in worker processes; step budgets give the same numbers either way, time budgets do not (the runs share cores).
--resume keeps the runs an earlier, interrupted call finished in --out (the config must be the same except for
`seeds`, so a study can also be extended with more seeds) and runs the rest.
"""
from __future__ import annotations

import sys
import time

import h5py
import numpy as np
import yaml
from scipy import stats
from common import load_study, run_jobs, study_args, write_table
from dgnn.config import config_to_yaml
from dgnn.learn.config import DatasetConfig
from dgnn.learn.data import load_dataset
from dgnn.search import Budget
from dgnn.search.config import StudyConfig, StudyTask
from dgnn.search.strategy import StrategyResult, make_strategy, write_history


def fit_one(task: StudyTask, strategy: str, options: dict, seed: int, progress: bool) -> tuple[dict, dict]:
    """One fit: (metrics, history). Runs in the main process or in a worker (one torch thread)."""
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    data = task_data(task, seed)
    res = make_strategy(strategy, **options).fit(data, Budget(steps=task.steps, seconds=task.seconds), seed,
                                                 progress=progress)
    return res.metrics, res.history


def task_data(task: StudyTask, seed: int):
    """The dataset of a study task for one seed (the seed draws the split)."""
    return load_dataset(DatasetConfig(name=task.dataset, classes=task.classes, samples=task.samples), seed)


def finished_runs(out, study: StudyConfig, group: dict) -> dict | None:
    """--resume: the metrics of the runs that history.h5 in `out` holds as finished, by run key; None (after a
    one-line error) when `out` was made by a study that differs in more than its number of seeds."""
    stored, path = out / "config.yaml", out / "history.h5"
    if not path.exists():
        return {}
    if stored.exists():
        old, new = yaml.safe_load(stored.read_text(encoding="utf-8")), yaml.safe_load(config_to_yaml(study))
        diff = [k for k in new if k != "seeds" and old.get(k) != new[k]]
        if diff:
            print(f"error: --resume: {out} holds runs of a study with other {', '.join(diff)} (see {stored}); resume "
                  "with that config, or drop --resume or choose another --out", file=sys.stderr)
            return None
    done = {}
    with h5py.File(path, "r") as h5:
        for key, name in group.items():
            if name in h5 and h5[name].attrs.get("finished", False):
                done[key] = {k: v.item() if hasattr(v, "item") else v for k, v in h5[name].attrs.items() if k != "finished"}
    return done


def paired(acc: np.ndarray, first: np.ndarray | None) -> dict:
    """Accuracy minus the task's first strategy's, seed by seed: mean, standard error and the two-sided paired
    t-test's p (blank for the first strategy itself, or with fewer than 2 seeds)."""
    if first is None or len(acc) < 2:
        return {"vs_first_mean": "", "vs_first_se": "", "vs_first_p": ""}
    d = acc - first
    se = float(np.std(d, ddof=1) / np.sqrt(len(d)))
    p = float(stats.ttest_rel(acc, first).pvalue) if se > 0 else (1.0 if d.mean() == 0 else 0.0)
    return {"vs_first_mean": float(d.mean()), "vs_first_se": se, "vs_first_p": p}


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/nne_digits.yaml", "outputs/nne_digits", argv, jobs=True, resume=True)
    study = load_study(args.config, StudyConfig, StudyConfig.build)
    if study is None:
        return 2
    strategies = study.build()  # validates every strategy's keys before any run starts
    runs = [(t, name, seed) for t in range(len(study.tasks)) for seed in range(study.seeds) for name in strategies]
    entry = {name: (study.strategies[name].strategy or name, study.strategies[name].options) for name in strategies}
    group = {key: f"{study.tasks[key[0]].label}/{key[1]}/seed{key[2]}" for key in runs}
    metrics = finished_runs(args.out, study, group) if args.resume else {}
    if metrics is None:
        return 2
    (args.out / "config.yaml").write_text(config_to_yaml(study), encoding="utf-8")
    todo = [key for key in runs if key not in metrics]
    if not args.quiet and metrics:
        print(f"resuming: {len(metrics)} of {len(runs)} runs already in {args.out / 'history.h5'}", flush=True)
    t0 = time.perf_counter()
    with h5py.File(args.out / "history.h5", "a" if args.resume else "w") as h5:

        def record(key, result):
            """Store one finished fit at once (an interrupted study keeps every run it finished) and report it."""
            metrics[key], history = result
            if group[key] in h5:  # left half-written by an interrupted call
                del h5[group[key]]
            g = h5.create_group(group[key])
            write_history(StrategyResult(None, metrics[key], history), g)
            g.attrs["finished"] = True  # written last: --resume trusts only groups that have it
            h5.flush()
            if not args.quiet:
                m, done = metrics[key], len(metrics) - (len(runs) - len(todo))  # finished in this call
                eta = (time.perf_counter() - t0) / done * (len(todo) - done)  # wall time per finished run
                print(f"{group[key]}: accuracy {m['accuracy']:.3f} ({m['steps']} steps, "
                      f"{m['train_seconds']:.0f} s) [{done}/{len(todo)}, ETA {eta / 60:.0f} min]", flush=True)

        bars = args.jobs == 1 and not args.quiet  # progress bars only when fits run one at a time, here
        run_jobs({key: (study.tasks[key[0]], *entry[key[1]], key[2], bars) for key in todo}, fit_one, record, args.jobs)
    rows = []
    for key in runs:  # in config order, whatever order the workers finished in
        task, name, seed, m = study.tasks[key[0]], key[1], key[2], metrics[key]
        rows.append({"task": task.label, "strategy": name, "seed": seed,
                     "accuracy": m["accuracy"], "information_bits": m["information_bits"],
                     "steps": m["steps"], "seconds": m["train_seconds"], "macs": m["macs"],
                     "neurons": m.get("neurons", ""), "skip_share": m.get("skip_share", ""),
                     "alpha_spread": m.get("alpha_spread", ""), "paper": study.strategies[name].paper.get(task.label, "")})
    means = []
    for task in study.tasks:
        first = None
        for name in strategies:
            mine = [r for r in rows if r["task"] == task.label and r["strategy"] == name]
            acc = np.array([r["accuracy"] for r in mine])  # (seeds,) in seed order
            skip = [r["skip_share"] for r in mine if r["skip_share"] != ""]
            means.append({"task": task.label, "strategy": name, "accuracy_mean": float(np.mean(acc)),
                          "accuracy_sd": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
                          "skip_share_mean": float(np.mean(skip)) if skip else "",
                          "paper": study.strategies[name].paper.get(task.label, ""), **paired(acc, first)})
            first = acc if first is None else first
    write_table(args.out, rows, {"means": means})
    if not args.quiet:
        for m in means:
            skip = f"   skip share {m['skip_share_mean']:.2f}" if m["skip_share_mean"] != "" else ""
            vs = (f"   vs first {100 * m['vs_first_mean']:+.1f} (SE {100 * m['vs_first_se']:.1f}, p {m['vs_first_p']:.2f})"
                  if m["vs_first_p"] != "" else "")
            print(f"{m['task']:11s} {m['strategy']:20s} {100 * m['accuracy_mean']:.1f} +/- {100 * m['accuracy_sd']:.1f}"
                  f"{skip}{vs}   (paper: {m['paper'] or '-'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
