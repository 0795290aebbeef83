"""DYNO transfer at reduced scale (simulations/dyno_transfer.py, seed 001 section 7): pre-train a static MLP on
digits 0-4, then fine-tune it on each target with DYNO grow-and-prune and, as the reference, with the architecture
fixed. One seed (its pre-training and every target) is a unit of the study engine."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..learn.config import DatasetConfig
from ..learn.data import Dataset, load_dataset
from .config import TransferStudy
from .engine import Unit
from .runner import finish_units, run_units, write_unit_history

OWNED = ("history.h5", "results.csv", "results.json")


def check(study: TransferStudy) -> None:
    from ..search import make_strategy

    make_strategy("dyno", **study.dyno)
    for t in study.targets:
        if t.dataset not in ("digits", "mnist1d"):
            raise ConfigError(f"targets.{t.label}.dataset: expected digits or mnist1d, found {t.dataset!r}")


def target_data(t, n_in: int, seed: int) -> Dataset:
    """A target task; MNIST-1D is zero-padded to the source's inputs."""
    if t.dataset == "digits":
        return load_dataset(DatasetConfig(name="digits", classes=t.classes), seed)
    d = load_dataset(DatasetConfig(name="mnist1d", samples=t.samples, classes=t.classes), seed)
    pad = lambda a: np.concatenate([a, np.zeros((len(a), n_in - a.shape[1]))], 1)  # noqa: E731
    return Dataset(t.label, pad(d.x_train), d.y_train, pad(d.x_val), d.y_val, pad(d.x_test), d.y_test)


@dataclass(frozen=True)
class TransferJob:
    study: TransferStudy
    out: Path
    progress: bool = False

    def run(self, unit: Unit, should_stop) -> dict:
        from ..search import Budget, make_strategy

        study, seed = self.study, unit.params["seed"]
        dyno = make_strategy("dyno", **study.dyno)
        src = load_dataset(DatasetConfig(name="digits", classes=study.source_classes), seed)
        static = make_strategy("static_mlp", hidden=study.hidden, lr=dyno.lr, batch=dyno.batch)
        pre = static.fit(src, Budget(steps=study.pretrain_steps), seed)
        groups = {f"pretrain/seed{seed}": (pre.history, pre.metrics)}
        rows = []
        for t in study.targets:
            data = target_data(t, src.n_features, seed)
            tuned = make_strategy("dyno", **{**study.dyno, "every": 0})  # the same fine-tuning, no structure
            for name, strat in (("dyno", dyno), ("static", tuned)):
                res = strat.fit(data, Budget(steps=study.steps), seed, progress=self.progress,
                                model=copy.deepcopy(pre.model), source=src)
                groups[f"{t.label}/{name}/seed{seed}"] = (res.history, res.metrics)
                h = res.history
                first = np.flatnonzero(h["pruned"].sum(1) + h["grown"].sum(1))
                rows.append({"target": t.label, "method": name, "seed": seed, "accuracy": res.metrics["accuracy"],
                             "widths": " ".join(map(str, h["widths"][-1])),
                             "pruned": " ".join(map(str, h["pruned"].sum(0))),
                             "grown": " ".join(map(str, h["grown"].sum(0))),
                             "first_change_step": int(first[0]) if len(first) else "",
                             "macs": res.metrics["macs"], "pretrain_accuracy": pre.metrics["accuracy"]})
                if self.progress:
                    r = rows[-1]
                    print(f"{t.label:10s} {name:6s} seed {seed}: accuracy {r['accuracy']:.3f} widths {r['widths']} "
                          f"pruned {r['pruned']} grown {r['grown']}", flush=True)
        write_unit_history(self.out, unit.key, groups)
        return {"rows": rows}


def transfer_study(study: TransferStudy, out: Path, *, storage=None, name=None, workers=1, overwrite=False,
                   progress=True, should_stop=None) -> tuple[list[dict], str]:
    """Run (or continue) the study; write history.h5 and results.csv / results.json; (rows, status)."""
    check(study)
    units = [Unit(f"seed{seed}", {"seed": seed}) for seed in range(study.seeds)]
    queue, ran = run_units(out, "transfer", study.model_dump(mode="json"), units, TransferJob(study, out, progress and workers == 1),
                      storage=storage, study=name, workers=workers, overwrite=overwrite, progress=progress,
                      should_stop=should_stop, owned=OWNED, name=f"transfer-{out.name}")
    return finish_units(out, units, queue, should_stop)
