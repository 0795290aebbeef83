"""The search's figures: the (E, I) plane with the strategy's front and every baseline, hypervolume against
trials, parameter importances, and E and I against the glia ratio."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...search.objectives import hypervolume, pareto_front


def write_figures(cfg, rows: list[dict], planes: dict, folder: Path, url: str, name: str, heartbeat) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    made = [_plane(plt, rows, planes, folder), _hypervolume(plt, cfg, rows, planes, folder)]
    made.append(_importances(plt, cfg, url, name, heartbeat, folder))
    made.append(_glia(plt, cfg, rows, planes, folder))
    return [str(p.name) for p in made if p is not None]


def _points(rows, column, strategy):
    return [r for r in rows if r["strategy"] == strategy and r["state"] == "complete"
            and isinstance(r.get(column), float) and math.isfinite(r[column])]


def _plane(plt, rows, planes, folder):
    fig, axes = plt.subplots(1, len(planes), figsize=(5.5 * len(planes), 4.2), squeeze=False)
    for ax, (label, p) in zip(axes[0], planes.items()):
        column = p["energy"]
        for k, s in enumerate(p["strategies"]):
            pts = _points(rows, column, s)
            xy = np.array([(r[column], r["information_bits"]) for r in pts])
            ax.scatter(xy[:, 0], xy[:, 1], s=14, color=f"C{k}", alpha=0.6,
                       label=f"{s} (HV {p['strategies'][s]['hypervolume']:.3g})")
            f = xy[pareto_front(xy)]
            ax.step(f[:, 0], f[:, 1], where="post", color=f"C{k}", lw=1)
            ax.scatter(f[:, 0], f[:, 1], s=30, facecolors="none", edgecolors=f"C{k}")  # the front
        ax.set(xscale="log", xlabel=f"E ({column}, per inference)", ylabel="I(Y; Y_hat), bits (validation)",
               title=f"{label} plane")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = folder / "plane.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _hypervolume(plt, cfg, rows, planes, folder):
    p = planes["objective"]
    column, ref = p["energy"], tuple(p["reference_point"])
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for k, s in enumerate(p["strategies"]):
        pts = sorted(_points(rows, column, s), key=lambda r: r["number"])
        xy = np.array([(r[column], r["information_bits"]) for r in pts])
        ax.plot(range(1, len(xy) + 1), [hypervolume(xy[:i], ref) for i in range(1, len(xy) + 1)], color=f"C{k}",
                label=s)
    ax.set(xlabel="trials", ylabel=f"hypervolume ({column} x bits)", title="hypervolume against trials")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = folder / "hypervolume.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _importances(plt, cfg, url, name, heartbeat, folder):
    import optuna

    from ..storage import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat))
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 3 or not any(t.params for t in complete):
        return None
    targets = [("E", 0), ("I", 1)] if len(study.directions) == 2 else [("I", 0)]
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 3.6), squeeze=False)
    for ax, (label, i) in zip(axes[0], targets):
        try:
            imp = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), target=lambda t, i=i: t.values[i])
        except (RuntimeError, ValueError):  # too few distinct values to fit the forest
            continue
        keys = list(imp)[::-1]
        ax.barh(keys, [imp[k] for k in keys], color="C0")
        ax.set(xlabel="importance (fANOVA)", title=f"parameter importance for {label}")
    fig.tight_layout()
    path = folder / "importances.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _glia(plt, cfg, rows, planes, folder):
    key = ("params.developmental.glia_ratio" if cfg.strategy.name == "developmental" else
           "params.glia.ratio" if cfg.dynamics is not None else "params.model.glia_ratio")
    pts = [r for r in _points(rows, planes["objective"]["energy"], cfg.strategy.name) if key in r and r[key] != ""]
    if not pts:
        return None
    column = planes["objective"]["energy"]
    x = np.array([r[key] for r in pts], dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].scatter(x, [r[column] for r in pts], s=14)
    axes[0].set(xlabel="glia : neuron ratio", ylabel=f"E ({column})", yscale="log", title="energy against glia ratio")
    axes[1].scatter(x, [r["information_bits"] for r in pts], s=14, color="C1")
    axes[1].set(xlabel="glia : neuron ratio", ylabel="I, bits (validation)", title="information against glia ratio")
    fig.tight_layout()
    path = folder / "glia.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
