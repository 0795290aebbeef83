"""Strategies x digits tasks x seeds, beside the source paper's numbers (seed 004's Tables 1 and 2 at reduced scale).

    python simulations/search_digits.py [--config configs/nne_digits.yaml] [--out outputs/nne_digits] [--quiet]
    python simulations/search_digits.py --config configs/dnn_digits.yaml --out outputs/dnn_digits
    python simulations/search_digits.py --config configs/darts_digits.yaml --out outputs/darts_digits

Writes results.csv / results.json (one row per task x strategy x seed, and means) and history.h5 (per-run
histories: fitness per generation and allele polarisation for NNE, losses for the gradient and plasticity rules).
"""
from __future__ import annotations


import h5py
import numpy as np
from common import load_study, study_args, write_table
from dgnn.learn.config import DatasetConfig
from dgnn.learn.data import load_dataset
from dgnn.search import Budget
from dgnn.search.config import StudyConfig
from dgnn.search.strategy import write_history

def main(argv=None) -> int:
    args = study_args(__doc__, "configs/nne_digits.yaml", "outputs/nne_digits", argv)
    study = load_study(args.config, StudyConfig, StudyConfig.build)
    if study is None:
        return 2
    strategies = study.build()
    rows = []
    with h5py.File(args.out / "history.h5", "w") as h5:
        for task in study.tasks:
            for seed in range(study.seeds):
                data = load_dataset(DatasetConfig(name="digits", classes=task.classes), seed)
                for name, strategy in strategies.items():
                    res = strategy.fit(data, Budget(steps=task.steps, seconds=task.seconds), seed, progress=not args.quiet)
                    write_history(res, h5.create_group(f"{task.label}/{name}/seed{seed}"))
                    rows.append({"task": task.label, "strategy": name, "seed": seed,
                                 "accuracy": res.metrics["accuracy"], "information_bits": res.metrics["information_bits"],
                                 "steps": res.metrics["steps"], "seconds": res.metrics["train_seconds"],
                                 "macs": res.metrics["macs"], "neurons": res.metrics.get("neurons", ""),
                                 "skip_share": res.metrics.get("skip_share", ""),
                                 "paper": study.strategies[name].paper.get(task.label, "")})
                    if not args.quiet:
                        print(f"{task.label} {name} seed {seed}: accuracy {res.metrics['accuracy']:.3f} "
                              f"({res.metrics['steps']} steps, {res.metrics['train_seconds']:.0f} s)", flush=True)
    means = []
    for task in study.tasks:
        for name in strategies:
            mine = [r for r in rows if r["task"] == task.label and r["strategy"] == name]
            acc = [r["accuracy"] for r in mine]
            skip = [r["skip_share"] for r in mine if r["skip_share"] != ""]
            means.append({"task": task.label, "strategy": name, "accuracy_mean": float(np.mean(acc)),
                          "accuracy_sd": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
                          "skip_share_mean": float(np.mean(skip)) if skip else "",
                          "paper": study.strategies[name].paper.get(task.label, "")})
    write_table(args.out, rows, {"means": means})
    if not args.quiet:
        for m in means:
            skip = f"   skip share {m['skip_share_mean']:.2f}" if m["skip_share_mean"] != "" else ""
            print(f"{m['task']:11s} {m['strategy']:20s} {100 * m['accuracy_mean']:.1f} +/- {100 * m['accuracy_sd']:.1f}"
                  f"{skip}   (paper: {m['paper'] or '-'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
