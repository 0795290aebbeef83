"""DYNO transfer at reduced scale (seed 001 section 7): pre-train a static MLP on digits 0-4, then fine-tune it on
each target with DYNO grow-and-prune and, as the reference, with the architecture fixed.

    python simulations/dyno_transfer.py [--config configs/dyno_transfer.yaml] [--out outputs/dyno_transfer] [--quiet]

Targets: the source classes themselves (no shift), digits 5-9 (new classes, same pixels) and MNIST-1D zero-padded
to 64 inputs (a new input distribution). Writes results.csv / results.json (per target x seed: accuracy, final
widths, neurons pruned and grown per layer, MACs for DYNO and static fine-tuning) and history.h5.
"""
from __future__ import annotations

import copy

import h5py
import numpy as np
from common import load_study, study_args, write_table
from dgnn.errors import ConfigError
from dgnn.learn.config import DatasetConfig
from dgnn.learn.data import Dataset, load_dataset
from dgnn.search import Budget, make_strategy
from dgnn.search.config import TransferStudy
from dgnn.search.strategy import write_history


def _target(t, n_in: int, seed: int) -> Dataset:
    if t.dataset == "digits":
        return load_dataset(DatasetConfig(name="digits", classes=t.classes), seed)
    d = load_dataset(DatasetConfig(name="mnist1d", samples=t.samples, classes=t.classes), seed)
    pad = lambda a: np.concatenate([a, np.zeros((len(a), n_in - a.shape[1]))], 1)  # noqa: E731
    return Dataset(t.label, pad(d.x_train), d.y_train, pad(d.x_val), d.y_val, pad(d.x_test), d.y_test)


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/dyno_transfer.yaml", "outputs/dyno_transfer", argv)
    def check(study):
        make_strategy("dyno", **study.dyno)
        for t in study.targets:
            if t.dataset not in ("digits", "mnist1d"):
                raise ConfigError(f"targets.{t.label}.dataset: expected digits or mnist1d, found {t.dataset!r}")

    study = load_study(args.config, TransferStudy, check)
    if study is None:
        return 2
    dyno = make_strategy("dyno", **study.dyno)
    rows = []
    with h5py.File(args.out / "history.h5", "w") as h5:
        for seed in range(study.seeds):
            src = load_dataset(DatasetConfig(name="digits", classes=study.source_classes), seed)
            static = make_strategy("static_mlp", hidden=study.hidden, lr=dyno.lr, batch=dyno.batch)
            pre = static.fit(src, Budget(steps=study.pretrain_steps), seed)
            write_history(pre, h5.create_group(f"pretrain/seed{seed}"))
            for t in study.targets:
                data = _target(t, src.n_features, seed)
                tuned = make_strategy("dyno", **{**study.dyno, "every": 0})  # the same fine-tuning, no structure
                for name, strat in (("dyno", dyno), ("static", tuned)):
                    res = strat.fit(data, Budget(steps=study.steps), seed, progress=not args.quiet,
                                    model=copy.deepcopy(pre.model), source=src)
                    write_history(res, h5.create_group(f"{t.label}/{name}/seed{seed}"))
                    h = res.history
                    first = np.flatnonzero(h["pruned"].sum(1) + h["grown"].sum(1))
                    rows.append({"target": t.label, "method": name, "seed": seed, "accuracy": res.metrics["accuracy"],
                                 "widths": " ".join(map(str, h["widths"][-1])),
                                 "pruned": " ".join(map(str, h["pruned"].sum(0))),
                                 "grown": " ".join(map(str, h["grown"].sum(0))),
                                 "first_change_step": int(first[0]) if len(first) else "",
                                 "macs": res.metrics["macs"], "pretrain_accuracy": pre.metrics["accuracy"]})
                    if not args.quiet:
                        r = rows[-1]
                        print(f"{t.label:10s} {name:6s} seed {seed}: accuracy {r['accuracy']:.3f} widths {r['widths']} "
                              f"pruned {r['pruned']} grown {r['grown']}", flush=True)
    write_table(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
