"""Seed 001's Figure 19 at reduced scale (simulations/darts_checkpoints.py): the cell each DARTS-family search of a
finished strategy study would have returned had it stopped earlier, retrained and tested. Every retraining of a
distinct (task, seed, cell, evaluation setting) is a unit of the study engine, shared by the checkpoints that hold
that cell; more retrainings per cell extend the study."""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from ..errors import ConfigError
from ..search.darts import Darts, discretize, genotype_labels, parse_genotype
from .config import StudyConfig
from .engine import Unit
from .folders import atomic_write
from .runner import run_units
from .strategies import paired, run_key, task_data
from .tables import write_table

COUNTED = ("skip", "linear_relu", "linear_tanh", "oscillator")


def checkpoint_cells(alpha: np.ndarray, every: int, nodes: int, ops: tuple[str, ...]) -> list[tuple[int, str]]:
    """(step, cell) every `every` w steps and at the last; alpha: (steps, edges, ops) softmax; a cell is the
    history's genotype labels joined by '|'."""
    n = len(alpha)
    steps = sorted({*range(every, n + 1, every), n})
    # softmax(log p) = p: the stored softmax discretises exactly as the logits it came from
    return [(s, "|".join(genotype_labels(discretize(torch.log(torch.as_tensor(alpha[s - 1])), nodes, ops)).astype(str)))
            for s in steps]


def setting(strat: Darts) -> str:
    """What decides a retraining besides the cell and the seed: the evaluation network's settings."""
    return hashlib.sha1(repr((strat.width, strat.cells, strat.nodes, strat.ops, strat.lr, strat.batch,
                              strat.retrain_epochs, strat.osc)).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RetrainJob:
    """One retraining (index r) of one cell by a strategy entry (registered name, options)."""

    study: StudyConfig
    entries: dict  # strategy label -> (registered name, options)

    def run(self, unit: Unit, should_stop) -> dict:
        from ..search import make_strategy

        p = unit.params
        name, options = self.entries[p["strategy"]]
        strategy = make_strategy(name, **{**options, "retrain_seeds": p["retrain"] + 1})
        runs, _ = strategy.retrain(parse_genotype(p["cell"].split("|")), task_data(self.study.tasks[p["task"]], p["seed"]),
                                   p["seed"], first=p["retrain"])
        return {"accuracy": float(runs[0].metrics["accuracy"])}


@dataclass
class Checkpoints:
    rows: list[dict]
    means: list[dict]
    cells: int
    status: str
    ran: int  # retrainings run by this call


def scan(study: StudyConfig, h5_path: Path, every: int, strategies: dict) -> list[tuple]:
    """Every finished DARTS-family run's checkpoints: (task, label, seed, step, alpha steps so far, cell key)."""
    runs = []
    with h5py.File(h5_path, "r") as h5:
        for t, task in enumerate(study.tasks):
            for label, strat in strategies.items():
                for seed in range(study.seeds):
                    group = run_key(task, label, seed)
                    if group not in h5 or "alpha" not in h5[group]:
                        continue
                    taken = np.cumsum(h5[group]["alpha_step"][()])  # (steps,) alpha steps so far
                    for step, cell in checkpoint_cells(h5[group]["alpha"][()], every, strat.nodes, strat.ops):
                        runs.append((t, label, seed, step, int(taken[step - 1]), (t, seed, cell, setting(strat))))
    return runs


def darts_checkpoints(study_dir: Path, out: Path, *, every: int = 500, retrains: int = 1, storage=None, name=None,
                      workers: int = 1, overwrite: bool = False, progress: bool = True, should_stop=None) -> Checkpoints:
    """Retrain the checkpoint cells of a finished strategy study (its config.yaml and history.h5) and tabulate
    accuracy against search length: results.csv / results.json, and retrains.csv (every retraining)."""
    from ..config import load_config

    for f in ("config.yaml", "history.h5"):
        if not (study_dir / f).exists():
            raise ConfigError(f"study: {study_dir / f} not found; point it at a folder written by "
                              "simulations/search_digits.py")
    study = load_config(study_dir / "config.yaml", model=StudyConfig)
    strategies = {k: v for k, v in study.build().items() if isinstance(v, Darts)}
    if not strategies:
        raise ConfigError(f"study {study_dir / 'config.yaml'}: runs no DARTS-family strategy (darts, darts_cs10, "
                          "darts_fimt, darts_pr, darts_prime)")
    runs = scan(study, study_dir / "history.h5", every, strategies)
    if not runs:
        raise ConfigError(f"study {study_dir / 'history.h5'}: holds no finished DARTS-family run")
    cells: dict[tuple, str] = {}  # (task, seed, cell, setting) -> the first strategy label that holds it
    for _, label, *_, key in runs:
        cells.setdefault(key, label)
    units = [Unit(f"t{k[0]}|seed{k[1]}|{k[2]}|{k[3]}|r{r}", {"task": k[0], "seed": k[1], "cell": k[2], "setting": k[3],
                                                             "strategy": label, "retrain": r})
             for k, label in cells.items() for r in range(retrains)]
    entries = {label: (study.strategies[label].strategy or label, study.strategies[label].options) for label in strategies}
    config = {"study": study.model_dump(mode="json"), "every": every, "retrains": retrains}
    queue, ran = run_units(out, "checkpoints", config, units, RetrainJob(study, entries), storage=storage, study=name,
                      workers=workers, overwrite=overwrite, progress=progress, should_stop=should_stop,
                      extendable=("retrains",), owned=("retrains.csv", "results.csv", "results.json"),
                      name=f"checkpoints-{study_dir.name}")
    done = queue.rows()
    acc = {k: [done[u.key]["accuracy"] for u in units if u.params["retrain"] < retrains and u.key in done
               and (u.params["task"], u.params["seed"], u.params["cell"], u.params["setting"]) == k] for k in cells}
    _write_retrains(out, acc)
    rows = [_row(study, t, label, seed, step, steps, key, acc[key]) for t, label, seed, step, steps, key in runs
            if len(acc[key]) == retrains]
    means = _means(study, list(strategies), rows)
    if rows:
        write_table(out, rows, {"study": str(study_dir), "every": every, "retrains": retrains, "means": means})
    status = "complete" if len(done) >= len(units) else (
        "interrupted" if should_stop is not None and should_stop() else "failed")
    return Checkpoints(rows, means, len(cells), status, ran)


def _row(study, t, label, seed, step, alpha_steps, key, accs) -> dict:
    ops = [c.split(":")[1] for c in key[2].split("|")]
    return {"task": study.tasks[t].label, "strategy": label, "seed": seed, "step": step, "alpha_steps": alpha_steps,
            "cell": " ".join(ops), **{f"n_{op}": ops.count(op) for op in COUNTED}, "accuracy": float(np.mean(accs))}


def _write_retrains(out: Path, acc: dict) -> None:
    """retrains.csv: every cell's retraining accuracies (full precision), an export of the storage."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["task", "seed", "cell", "setting", "accuracy"], lineterminator="\r\n")
    w.writeheader()
    for (t, seed, cell, st), accs in acc.items():
        if accs:  # repr round-trips the floats exactly
            w.writerow({"task": t, "seed": seed, "cell": cell, "setting": st,
                        "accuracy": " ".join(repr(float(a)) for a in accs)})
    atomic_write(out / "retrains.csv", buf.getvalue())


def _means(study, strategies, rows) -> list[dict]:
    means = []
    for task in study.tasks:
        for step in sorted({r["step"] for r in rows if r["task"] == task.label}):
            first = None
            for label in strategies:
                mine = sorted((r for r in rows if r["task"] == task.label and r["strategy"] == label
                               and r["step"] == step), key=lambda r: r["seed"])
                if not mine:
                    continue
                acc = np.array([r["accuracy"] for r in mine])  # (seeds,)
                means.append({"task": task.label, "strategy": label, "step": step, "runs": len(mine),
                              "alpha_steps_mean": float(np.mean([r["alpha_steps"] for r in mine])),
                              "accuracy_mean": float(acc.mean()),
                              "accuracy_sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                              **{f"{k}_mean": float(np.mean([r[k] for r in mine])) for k in mine[0] if k.startswith("n_")},
                              **paired(acc, first if first is not None and len(first) == len(acc) else None)})
                first = acc if first is None else first
    return means
