"""What a search leaves in its folder: trials.csv (every trial of the strategy and of each baseline), pareto.csv
(the strategy's front), summary.json (counts, fronts, hypervolumes on shared reference points, scores) and the
figures. Everything is read back from the storage, so any worker's process can write it."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from ...search.objectives import hypervolume, pareto_front, reference_point, score
from ..engine import REASON, ROW
from ..folders import atomic_write
from ..storage import Heartbeat, open_storage
from .baselines import baseline_study
from .config import SearchConfig
from .run import SEED

FIRST = ("number", "strategy", "state")
MEASURES = ("energy", "energy_measure", "information_bits", "accuracy", "information_bits_test", "accuracy_test",
            "metabolic_energy", "joules_per_inference", "parameters", "macs", "epochs", "steps", "neurons", "seconds")


def _rows(study, strategy: str, cfg: SearchConfig) -> list[dict]:
    """One row per finished or failed trial of a study."""
    out = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in (TrialState.COMPLETE, TrialState.FAIL):
            continue
        row = t.user_attrs.get(ROW, {})
        params = t.params if t.params else t.system_attrs.get("fixed_params", {})
        r = {"number": t.number, "strategy": strategy, "state": t.state.name.lower(),
             **{f"params.{k}": v for k, v in sorted(params.items())},
             **{k: row.get(k, "") for k in MEASURES}, "seed": t.user_attrs.get(SEED, params.get("seed", "")),
             "reason": t.user_attrs.get(REASON, "")}
        if row and "information_bits" in row and isinstance(row.get("energy"), float):
            s = cfg.objectives.score
            r["score"] = score(row["information_bits"], row["energy"], s.kind, s.target, s.w)
            r["feasible"] = all(c <= 0 for c in t.user_attrs.get("constraints", []))
        out.append(r)
    return out


def collect(cfg: SearchConfig, url: str, name: str, heartbeat: Heartbeat) -> list[dict]:
    storage = open_storage(url, heartbeat)
    rows = _rows(optuna.load_study(study_name=name, storage=storage), cfg.strategy.name, cfg)
    for label in cfg.baselines:
        sname = baseline_study(name, label)
        if sname in optuna.get_all_study_names(storage):
            rows += _rows(optuna.load_study(study_name=sname, storage=storage), label, cfg)
    return rows


def _complete(rows: list[dict], column: str) -> list[dict]:
    return [r for r in rows if r["state"] == "complete" and isinstance(r.get(column), float)
            and math.isfinite(r[column])]


def plane(rows: list[dict], column: str, strategies: list[str]) -> dict:
    """Fronts and hypervolumes of every strategy on one (E, I) plane (E = `column`), on one shared reference."""
    pts = _complete(rows, column)
    ref = reference_point(np.array([r[column] for r in pts])) if pts else (1.0, 0.0)
    out = {"energy": column, "reference_point": list(ref), "strategies": {}}
    for s in strategies:
        mine = [r for r in pts if r["strategy"] == s]
        if not mine:
            continue
        xy = np.array([(r[column], r["information_bits"]) for r in mine])
        front = [mine[i] for i in pareto_front(xy)]
        out["strategies"][s] = {"trials": len(mine), "hypervolume": hypervolume(xy, ref),
                                "pareto": [{"number": r["number"], "energy": r[column],
                                            "information_bits": r["information_bits"], "accuracy": r["accuracy"],
                                            "accuracy_test": r["accuracy_test"]} for r in front]}
    return out


def write_csv(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys([*FIRST, *(k for r in rows for k in r)]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue())


def write_outputs(cfg: SearchConfig, url: str, name: str, out: Path, heartbeat: Heartbeat) -> tuple[list[dict], dict]:
    rows = collect(cfg, url, name, heartbeat)
    write_csv(out / "trials.csv", rows)
    strategies = [cfg.strategy.name, *cfg.baselines]
    main_column = {"metabolic": "metabolic_energy", "mac_joules": "joules_per_inference",
                   "ledger": "energy"}[cfg.objectives.energy]
    planes = {"objective": plane(rows, main_column, strategies)}
    if main_column == "metabolic_energy":
        planes["mac_joules"] = plane(rows, "joules_per_inference", strategies)
    mine = planes["objective"]["strategies"].get(cfg.strategy.name, {"trials": 0, "hypervolume": 0.0, "pareto": []})
    front_numbers = {p["number"] for p in mine["pareto"]}
    write_csv(out / "pareto.csv", [r for r in rows if r["strategy"] == cfg.strategy.name and r["number"] in front_numbers])
    done = [r for r in rows if r["strategy"] == cfg.strategy.name and r["state"] == "complete"]
    best = max(done, key=lambda r: r["score"]) if done else None
    summary = {"name": cfg.name, "study": name, "storage": url, "strategy": cfg.strategy.name,
               "objectives": cfg.objectives.use, "energy_measure": cfg.objectives.energy,
               "n_trials": len(done), "n_failed": sum(r["state"] == "fail" for r in rows if r["strategy"] == cfg.strategy.name),
               "hypervolume": mine["hypervolume"], "reference_point": planes["objective"]["reference_point"],
               "pareto": mine["pareto"], "planes": planes,
               "best_score": None if best is None else {"number": best["number"], "score": best["score"],
                                                         "kind": cfg.objectives.score.kind}}
    from .figures import write_figures

    summary["figures"] = write_figures(cfg, rows, planes, out / "figures", url, name, heartbeat)
    return rows, summary

