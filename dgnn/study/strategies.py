"""Strategy studies (simulations/search_digits.py): tasks x labelled strategies x seeds, each fit a unit of the
study engine, with results tables of the means and the paired difference of every strategy to the task's first."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from ..config import config_to_yaml
from ..learn.config import DatasetConfig
from ..learn.data import Dataset, load_dataset
from .config import StudyConfig, StudyTask
from .engine import Unit, UnitFailed, jsonable
from .folders import atomic_write
from .runner import merge_histories, run_units, study_status, write_unit_history
from .tables import write_table

OWNED = ("config.yaml", "history.h5", "results.csv", "results.json")


def task_data(task: StudyTask, seed: int) -> Dataset:
    """The dataset of a study task for one seed (the seed draws the split)."""
    return load_dataset(DatasetConfig(name=task.dataset, classes=task.classes, samples=task.samples), seed)


def paired(acc: np.ndarray, first: np.ndarray | None) -> dict:
    """Accuracy minus the task's first strategy's, seed by seed: mean, standard error and the two-sided paired
    t-test's p (blank for the first strategy itself, or with fewer than 2 seeds)."""
    if first is None or len(acc) < 2:
        return {"vs_first_mean": "", "vs_first_se": "", "vs_first_p": ""}
    d = acc - first
    se = float(np.std(d, ddof=1) / np.sqrt(len(d)))
    p = float(stats.ttest_rel(acc, first).pvalue) if se > 0 else (1.0 if d.mean() == 0 else 0.0)
    return {"vs_first_mean": float(d.mean()), "vs_first_se": se, "vs_first_p": p}


def run_key(task: StudyTask, strategy: str, seed: int) -> str:
    """A run's unit key, which is also its group in history.h5."""
    return f"{task.label}/{strategy}/seed{seed}"


@dataclass(frozen=True)
class FitJob:
    """One fit of a strategy on a task and seed; its history goes to its own file, its metrics to the storage."""

    study: StudyConfig
    out: Path
    progress: bool = False

    def run(self, unit: Unit, should_stop) -> dict:
        from ..search import Budget, make_strategy

        p = self.study_entry(unit)
        task, (name, options), seed = p
        t0 = time.perf_counter()
        try:
            res = make_strategy(name, **options).fit(task_data(task, seed), Budget(steps=task.steps, seconds=task.seconds),
                                                     seed, progress=self.progress)
        except FloatingPointError as exc:
            raise UnitFailed(str(exc)) from None
        write_unit_history(self.out, unit.key, {unit.key: (res.history, res.metrics)})
        if self.progress:
            m = res.metrics
            print(f"{unit.key}: accuracy {m['accuracy']:.3f} ({m['steps']} steps, {time.perf_counter() - t0:.0f} s)",
                  flush=True)
        return jsonable(res.metrics)

    def study_entry(self, unit: Unit):
        task = self.study.tasks[unit.params["task"]]
        entry = self.study.strategies[unit.params["strategy"]]
        return task, (entry.strategy or unit.params["strategy"], entry.options), unit.params["seed"]


@dataclass
class StudyResult:
    out: Path
    rows: list[dict]
    means: list[dict]
    status: str
    missing: list[str]


def strategy_study(study: StudyConfig, out: Path, *, storage=None, name=None, workers=1, overwrite=False,
                   progress=True, should_stop=None) -> StudyResult:
    """Run (or continue) every task x strategy x seed fit; write history.h5, results.csv and results.json. A study
    may be extended with more seeds; any other change of its config is refused."""
    strategies = study.build()  # validates every strategy's keys before any run starts
    keys = [(t, label, seed) for t in range(len(study.tasks)) for seed in range(study.seeds) for label in strategies]
    units = [Unit(run_key(study.tasks[t], label, seed), {"task": t, "strategy": label, "seed": seed}) for t, label, seed in keys]
    queue, ran = run_units(out, "strategies", study.model_dump(mode="json"), units, FitJob(study, out, progress and workers == 1),
                      storage=storage, study=name, workers=workers, overwrite=overwrite, progress=progress,
                      should_stop=should_stop, extendable=("seeds",), owned=OWNED, name=f"strategies-{out.name}")
    atomic_write(out / "config.yaml", config_to_yaml(study))
    metrics = queue.rows()
    done = [u.key for u in units if u.key in metrics]
    missing = merge_histories(out, done)
    rows = []
    for (t, name_, seed), u in zip(keys, units):  # in config order, whatever order the workers finished in
        if u.key not in metrics:
            continue
        task, m = study.tasks[t], metrics[u.key]
        rows.append({"task": task.label, "strategy": name_, "seed": seed,
                     "accuracy": m["accuracy"], "information_bits": m["information_bits"],
                     "steps": m["steps"], "seconds": m["train_seconds"], "macs": m["macs"],
                     "neurons": m.get("neurons", ""), "skip_share": m.get("skip_share", ""),
                     "alpha_spread": m.get("alpha_spread", ""), "paper": study.strategies[name_].paper.get(task.label, "")})
    means = strategy_means(study, list(strategies), rows)
    if rows:
        write_table(out, rows, {"means": means})
    return StudyResult(out, rows, means, study_status(done, units, should_stop), missing)


def strategy_means(study: StudyConfig, strategies: list[str], rows: list[dict]) -> list[dict]:
    """Mean and sd of accuracy per task x strategy, with the paired difference to the task's first strategy."""
    means = []
    for task in study.tasks:
        first = None
        for name in strategies:
            mine = [r for r in rows if r["task"] == task.label and r["strategy"] == name]
            if not mine:
                continue
            acc = np.array([r["accuracy"] for r in mine])  # (seeds,) in seed order
            skip = [r["skip_share"] for r in mine if r["skip_share"] != ""]
            means.append({"task": task.label, "strategy": name, "accuracy_mean": float(np.mean(acc)),
                          "accuracy_sd": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
                          "skip_share_mean": float(np.mean(skip)) if skip else "",
                          "paper": study.strategies[name].paper.get(task.label, ""),
                          **paired(acc, first if first is not None and len(first) == len(acc) else None)})
            first = acc if first is None else first
    return means
