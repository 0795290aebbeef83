"""`dgnn compare`: datasets x models x lambda x seeds into one results table (CSV, JSON, HDF5), the factorial ANOVA
and the figures. Every (dataset, model, lambda, seed) run is a unit of the study engine: finished runs live in the
storage, so an interrupted comparison continues where it stopped, and workers on several machines share one."""
from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import config_to_yaml, load_config
from ..errors import ConfigError
from ..learn.anova import factorial_anova
from ..learn.config import DatasetConfig
from ..learn.data import load_dataset
from ..learn.models import build_model, match_width, parameter_count
from ..learn.train import fit, settle_gap
from ..search.objectives import pareto_front
from .config import CompareConfig
from .engine import Unit, UnitFailed, WorkQueue, run_workers
from .folders import atomic_write, claim_folder
from .storage import Heartbeat, resolve

KEY = ("dataset", "model", "lambda", "seed")
OWNED = ("config.yaml", "models", "results.csv", "summary.csv", "results.json", "results.h5", "accuracy_vs_energy.png",
         "lambda_sweep.png")


@dataclass
class CompareResult:
    out: Path
    rows: list[dict]
    summary: list[dict]
    anova: dict
    ran: int
    status: str  # complete | interrupted | failed
    study: str = ""
    storage: str = ""


def load_compare_config(path, overrides=None) -> CompareConfig:
    return load_config(path, overrides, model=CompareConfig)


def unit_key(dataset: str, model: str, lam: float, seed: int) -> str:
    return f"{dataset}|{model}|lambda={lam!r}|seed={seed}"


def plan_runs(cfg: CompareConfig) -> list[tuple[DatasetConfig, str, float, int]]:
    """Every run of the comparison in table order; a strategy has its own objective: it runs once per seed, at the
    first lambda."""
    return [(d, name, lam, seed) for d in cfg.datasets for name in cfg.models for lam in cfg.lambdas
            for seed in range(cfg.seeds) if lam == cfg.lambdas[0] or cfg.models[name].kind != "strategy"]


@functools.lru_cache(maxsize=2)
def _splits(dataset_json: str, seed: int):
    """One dataset's splits per seed, kept while every model and lambda of it runs (per process)."""
    return load_dataset(DatasetConfig.model_validate_json(dataset_json), seed)


@dataclass(frozen=True)
class CompareJob:
    """The engine's job for one comparison: a unit trains and tests one (dataset, model, lambda, seed)."""

    cfg: CompareConfig
    out: Path

    def run(self, unit: Unit, should_stop) -> dict:
        cfg, p = self.cfg, unit.params
        torch.set_num_threads(cfg.threads)
        dcfg = next(d for d in cfg.datasets if d.label == p["dataset"])
        data = _splits(dcfg.model_dump_json(), p["seed"])
        mcfg = _resolve_model(cfg, p["model"], data)
        dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        t0 = time.perf_counter()
        try:
            if mcfg.kind == "strategy":
                row, res = _fit_strategy(mcfg, data, p["seed"], cfg.energy_table)
            else:
                row, res = fit(mcfg, data, cfg.train, p["seed"], p["lambda"], cfg.energy, cfg.energy_table, dtype=dtype)
        except FloatingPointError as exc:
            raise UnitFailed(str(exc)) from None
        row = {"dataset": dcfg.label, "model": p["model"], "kind": mcfg.kind, "lambda": p["lambda"], "seed": p["seed"],
               "hidden": "-".join(map(str, mcfg.hidden)), **row,
               "phase_gap_rad": settle_gap(res.model, data.x_test[:256]),
               "wall_seconds": time.perf_counter() - t0, "history": res.history}
        ckpt = self.out / "models" / f"{dcfg.label}-{p['model']}-lambda{p['lambda']:g}-seed{p['seed']}.pt"
        ckpt.parent.mkdir(exist_ok=True)
        tmp = ckpt.with_name(f".{ckpt.name}.tmp")
        torch.save({"state_dict": res.model.state_dict(), "model": mcfg.model_dump(mode="json"),
                    "n_in": data.n_features, "n_out": data.n_classes}, tmp)
        tmp.replace(ckpt)
        row["checkpoint"] = str(ckpt.relative_to(self.out))
        return json.loads(json.dumps(row, default=float))  # what the storage keeps, exactly


def compare(cfg: CompareConfig | None, out: str | Path, *, resume: bool = False, overwrite: bool = False,
            progress: bool = True, should_stop=None, storage: str | None = None, study: str | None = None,
            workers: int = 1, heartbeat: Heartbeat = Heartbeat()) -> CompareResult:
    """Run every (dataset, model, lambda, seed) that the study's storage (`out`'s embedded one by default) does not
    hold finished; write the table, ANOVA and figures. resume=True reads the config stored in out/config.yaml."""
    out = Path(out)
    stored = out / "config.yaml"
    if resume:
        if not stored.is_file():
            raise ConfigError(f"resume {out}: no config.yaml there (not a dgnn compare folder)")
        cfg = load_compare_config(stored)
    if workers < 1:
        raise ConfigError(f"workers: expected >= 1, found {workers}")
    url, name = resolve(storage, out), study or f"compare-{cfg.name}"
    if not resume:
        claim_folder(out, overwrite, OWNED, url, name)
    jobs = plan_runs(cfg)
    units = [Unit(unit_key(d.label, name, lam, seed), {"dataset": d.label, "model": name, "lambda": lam, "seed": seed})
             for d, name, lam, seed in jobs]
    queue = WorkQueue.open(url, name, "compare", cfg.model_dump(mode="json"), units, overwrite=overwrite and not resume,
                           heartbeat=heartbeat)
    atomic_write(stored, config_to_yaml(cfg))
    before = set(queue.rows())
    run_workers(queue, CompareJob(cfg, out), workers, should_stop, progress, threads=cfg.threads, desc=cfg.name)
    done = queue.rows()
    rows = [done[u.key] for u in units if u.key in done]
    summary, anova = write_results(out, cfg, rows)
    if len(rows) == len(units):
        status = "complete"
    else:
        status = "interrupted" if should_stop is not None and should_stop() else "failed"
    return CompareResult(out, rows, summary, anova, len(set(done) - before), status, name, url)


def _fit_strategy(mcfg, data, seed: int, table):
    """A structural-learning strategy's fit as a results-table row (its history as lists for runs.jsonl)."""
    from types import SimpleNamespace

    from ..energy import mac_joules
    from ..search import Budget, make_strategy

    res = make_strategy(mcfg.strategy, **mcfg.options).fit(data, Budget(**mcfg.budget), seed)
    row = dict(res.metrics)
    row["joules_per_inference"] = mac_joules(res.model.macs(), row["parameters"], table)  # this comparison's table
    row["epochs"] = row["steps"]
    history = {k: np.asarray(v).tolist() for k, v in res.history.items()}
    return row, SimpleNamespace(model=res.model, history=history)


def _resolve_model(cfg: CompareConfig, name: str, data):
    """The model's config with widths matched to another model's parameter count on this dataset, if asked."""
    m = cfg.models[name]
    if m.match_parameters is None:
        return m
    ref = _resolve_model(cfg, m.match_parameters, data)
    target = parameter_count(build_model(ref, data.n_features, data.n_classes, 0))
    return match_width(m, target, data.n_features, data.n_classes)


METRICS = ("accuracy", "information_bits", "information_bound_bits", "activation_energy", "metabolic_energy",
           "readout_norm", "parameters", "macs", "joules_per_inference", "phase_gap_rad", "train_seconds", "epochs")


def summarize_rows(rows: list[dict]) -> list[dict]:
    """Mean and sd over seeds for each (dataset, model, lambda)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["model"], r["lambda"]), []).append(r)
    out = []
    for (d, m, lam), rs in groups.items():
        s = {"dataset": d, "model": m, "lambda": lam, "seeds": len(rs), "hidden": rs[0]["hidden"]}
        for k in METRICS:
            v = np.array([r[k] for r in rs], dtype=float)
            s[f"{k}_mean"] = float(v.mean())
            s[f"{k}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        out.append(s)
    return out


def anova_by_lambda(rows: list[dict]) -> dict:
    """Factorial ANOVA of accuracy over model x dataset, separately for each lambda (needs >= 2 seeds)."""
    out = {}
    for lam in sorted({r["lambda"] for r in rows}):
        sel = [r for r in rows if r["lambda"] == lam]
        if len({r["seed"] for r in sel}) < 2 or len({(r["model"], r["dataset"]) for r in sel}) < 2:
            continue
        try:
            out[str(lam)] = factorial_anova([r["accuracy"] for r in sel], [r["model"] for r in sel],
                                            [r["dataset"] for r in sel], ("model", "dataset"))
        except ValueError:
            continue
    return out


def write_results(out: Path, cfg: CompareConfig, rows: list[dict]) -> tuple[list[dict], dict]:
    """results.csv, summary.csv, results.json, results.h5 and the figures (each replaced atomically)."""
    import csv
    import io

    import h5py

    summary = summarize_rows(rows)
    anova = anova_by_lambda(rows)
    flat = [{k: v for k, v in r.items() if k != "history"} for r in rows]
    if flat:
        for name, table in (("results.csv", flat), ("summary.csv", summary)):
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in table for k in r)), lineterminator="\r\n")
            w.writeheader()
            w.writerows(table)
            atomic_write(out / name, buf.getvalue())
    atomic_write(out / "results.json", json.dumps({"config": cfg.model_dump(mode="json"), "runs": flat,
                                                   "summary": summary, "anova": anova}, indent=1))
    tmp = out / ".results.h5.tmp"
    with h5py.File(tmp, "w") as h5:
        h5.attrs["config"] = config_to_yaml(cfg)
        g = h5.create_group("runs")
        for k in dict.fromkeys(k for r in flat for k in r):  # a column some kinds lack (steps) is nan / "" there
            text = any(isinstance(r.get(k), str) for r in flat)
            vals = [r.get(k, "" if text else np.nan) for r in flat]
            g.create_dataset(k, data=np.array([str(v) for v in vals], dtype=h5py.string_dtype()) if text else np.array(vals))
        hg = h5.create_group("history")
        for i, r in enumerate(rows):
            run = hg.create_group(f"{i:05d}")
            run.attrs.update({k: r[k] for k in KEY})
            for k, v in r["history"].items():
                run.create_dataset(k, data=np.array(v))
        for lam, table in anova.items():
            a = h5.create_group(f"anova/lambda={lam}")
            for k in table[0]:
                vals = [row[k] for row in table]
                a.create_dataset(k, data=np.array(vals, dtype=h5py.string_dtype()) if k == "source" else np.array(vals))
    tmp.replace(out / "results.h5")
    if flat:
        write_figures(out, rows, summary)
    return summary, anova


def write_figures(out: Path, rows: list[dict], summary: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in rows})
    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        sel = [s for s in summary if s["dataset"] == d]
        for k, m in enumerate(models):
            pts = [(s["activation_energy_mean"], s["accuracy_mean"]) for s in sel if s["model"] == m]
            if pts:
                ax.scatter(*zip(*pts), color=f"C{k}", label=m)
        if sel:
            pts = np.array([(s["activation_energy_mean"], s["accuracy_mean"]) for s in sel])
            f = pareto_front(pts)
            ax.plot(pts[f, 0], pts[f, 1], "k--", lw=1, label="Pareto front")
        ax.set(xlabel="activation energy E", ylabel="test accuracy", title=d)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_energy.png", dpi=110)
    plt.close(fig)
    lams = sorted({s["lambda"] for s in summary})
    if len(lams) > 1:
        fig, axes = plt.subplots(2, len(datasets), figsize=(5 * len(datasets), 6), squeeze=False, sharex=True)
        for j, d in enumerate(datasets):
            for k, m in enumerate(models):
                sel = sorted((s for s in summary if s["dataset"] == d and s["model"] == m), key=lambda s: s["lambda"])
                if not sel:
                    continue
                x = [max(s["lambda"], min(v for v in lams if v > 0) / 10) for s in sel]  # lambda = 0 drawn a decade left
                base = sel[0]["activation_energy_mean"] or 1.0
                axes[0, j].errorbar(x, [s["accuracy_mean"] for s in sel], [s["accuracy_sd"] for s in sel],
                                    color=f"C{k}", marker="o", label=m)
                axes[1, j].plot(x, [s["activation_energy_mean"] / base for s in sel], color=f"C{k}", marker="o")
            axes[0, j].set(title=d, ylabel="test accuracy", xscale="log")
            axes[1, j].set(xlabel="lambda (lambda = 0 drawn at the left)", ylabel="E / E(lambda = 0)", xscale="log",
                           yscale="log")
            axes[0, j].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "lambda_sweep.png", dpi=110)
        plt.close(fig)
