"""`dgnn compare`: datasets x models x lambda x seeds into one results table (CSV, JSON, HDF5), the factorial ANOVA
and the figures. Every finished run is appended to runs.jsonl at once, so an interrupted comparison resumes where
it stopped."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import config_to_yaml, load_config
from ..errors import ConfigError
from ..folders import make_folder
from ..progress import Progress
from .anova import factorial_anova
from .config import CompareConfig
from .data import load_dataset
from .models import build_model, match_width, parameter_count
from .train import fit, settle_gap

KEY = ("dataset", "model", "lambda", "seed")


@dataclass
class CompareResult:
    out: Path
    rows: list[dict]
    summary: list[dict]
    anova: dict
    ran: int
    status: str  # complete | interrupted


def load_compare_config(path, overrides=None) -> CompareConfig:
    return load_config(path, overrides, model=CompareConfig)


def _key(row: dict) -> tuple:
    return tuple(row[k] for k in KEY)


def compare(cfg: CompareConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False,
            progress: bool = True, should_stop=None) -> CompareResult:
    """Run every (dataset, model, lambda, seed) not yet in out/runs.jsonl; write the table, ANOVA and figures."""
    out = Path(out)
    runs = out / "runs.jsonl"
    stored = out / "config.yaml"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out {out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise ConfigError(f"--out {out}: folder is not empty; pass --resume to continue it or --overwrite to replace it")
    if resume:
        if not stored.is_file():
            raise ConfigError(f"--resume {out}: no config.yaml there (not a dgnn compare folder)")
        cfg = load_compare_config(stored)
    elif overwrite and runs.exists():
        runs.unlink()
    make_folder(out, "out")
    stored.write_text(config_to_yaml(cfg), encoding="utf-8")
    done = {}
    if runs.exists():
        for line in runs.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[_key(row)] = row
    torch.set_num_threads(cfg.threads)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    jobs = [(d, name, lam, seed) for d in cfg.datasets for name in cfg.models for lam in cfg.lambdas
            for seed in range(cfg.seeds) if lam == cfg.lambdas[0] or cfg.models[name].kind != "strategy"]
    # a strategy has its own objective: it runs once per seed, at the first lambda
    todo = [j for j in jobs if (j[0].label, j[1], j[2], j[3]) not in done]
    bar = Progress(total=len(jobs), initial=len(jobs) - len(todo), enabled=progress, unit="run", desc=cfg.name)
    ran, status = 0, "complete"
    cache: dict = {}
    with open(runs, "a", encoding="utf-8") as fh:
        for dcfg, name, lam, seed in todo:
            if should_stop is not None and should_stop():
                status = "interrupted"
                break
            if (dcfg.label, seed) not in cache:
                if any(label != dcfg.label for label, _ in cache):
                    cache.clear()  # one dataset's splits at a time: every model and lambda reuses them
                cache[(dcfg.label, seed)] = load_dataset(dcfg, seed)
            data = cache[(dcfg.label, seed)]
            mcfg = _resolve_model(cfg, name, data)
            t0 = time.perf_counter()
            if mcfg.kind == "strategy":
                row, res = _fit_strategy(mcfg, data, seed, cfg.energy_table)
            else:
                row, res = fit(mcfg, data, cfg.train, seed, lam, cfg.energy, cfg.energy_table, dtype=dtype)
            row = {"dataset": dcfg.label, "model": name, "kind": mcfg.kind, "lambda": lam, "seed": seed,
                   "hidden": "-".join(map(str, mcfg.hidden)), **row,
                   "phase_gap_rad": settle_gap(res.model, data.x_test[:256]),
                   "wall_seconds": time.perf_counter() - t0, "history": res.history}
            ckpt = out / "models" / f"{dcfg.label}-{name}-lambda{lam:g}-seed{seed}.pt"
            ckpt.parent.mkdir(exist_ok=True)
            torch.save({"state_dict": res.model.state_dict(), "model": mcfg.model_dump(mode="json"),
                        "n_in": data.n_features, "n_out": data.n_classes}, ckpt)
            row["checkpoint"] = str(ckpt.relative_to(out))
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            done[_key(row)] = row
            ran += 1
            bar.update(1)
    bar.close()
    rows = [done[(d.label, n, lam, s)] for d, n, lam, s in jobs if (d.label, n, lam, s) in done]
    summary, anova = write_results(out, cfg, rows)
    return CompareResult(out, rows, summary, anova, ran, status)


def _fit_strategy(mcfg, data, seed: int, table):
    """A structural-learning strategy's fit as a results-table row (its history as lists for runs.jsonl)."""
    from types import SimpleNamespace

    from ..search import Budget, make_strategy
    from .measures import joules

    res = make_strategy(mcfg.strategy, **mcfg.options).fit(data, Budget(**mcfg.budget), seed)
    row = dict(res.metrics)
    row["joules_per_inference"] = joules(res.model.macs(), row["parameters"], table)  # this comparison's table
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
    import csv

    import h5py

    summary = summarize_rows(rows)
    anova = anova_by_lambda(rows)
    flat = [{k: v for k, v in r.items() if k != "history"} for r in rows]
    if flat:
        for name, table in (("results.csv", flat), ("summary.csv", summary)):
            with open(out / name, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in table for k in r)))
                w.writeheader()
                w.writerows(table)
    (out / "results.json").write_text(json.dumps({"config": cfg.model_dump(mode="json"), "runs": flat,
                                                  "summary": summary, "anova": anova}, indent=1))
    with h5py.File(out / "results.h5", "w") as h5:
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
    if flat:
        write_figures(out, rows, summary)
    return summary, anova


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Indices of the points (energy, accuracy) not dominated by another (lower energy and higher accuracy)."""
    order = np.lexsort((-points[:, 1], points[:, 0]))
    front, best = [], -np.inf
    for i in order:
        if points[i, 1] > best:
            front.append(i)
            best = points[i, 1]
    return np.array(front, dtype=int)


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
