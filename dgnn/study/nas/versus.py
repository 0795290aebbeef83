"""Energy first against information first (seed 000's claim): on each task, the same space, budget and seed are
searched for (E min, I max) and for I alone; both arms' trials go on one (E, I) plane with one reference point,
and the comparison reads hypervolumes, the energy each arm pays for matched information, the cheapest net within
`match` of the information-first arm's best accuracy, and the glia:neuron ratios the energy-first arm chose."""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from ...config import StrictModel, config_from_dict
from ...learn.config import DatasetConfig
from ...search.objectives import hypervolume, pareto_front, reference_point
from ..folders import atomic_write
from ..storage import Heartbeat
from .command import search
from .config import SearchConfig

ARMS = {"energy_first": "energy_information", "information_first": "information"}
COLUMNS = {"metabolic": "metabolic_energy", "mac_joules": "joules_per_inference"}
RATIO = "params.model.glia_ratio"


class VersusStudy(StrictModel):
    """Tasks searched twice (energy first, information first) with one `search` config (dgnn search keys but the
    task and objectives.use, which the study sets)."""

    name: str = "energy_first"
    tasks: list[DatasetConfig]
    search: dict  # a SearchConfig without `task`; its baselines run in the energy-first arm only
    match: float = Field(0.01, ge=0.0, le=1.0)  # accuracy within this of the information-first best (1 point)
    match_bits: float = Field(0.05, ge=0.0)  # information within this many bits counts as matched

    def arm(self, task: DatasetConfig, arm: str) -> SearchConfig:
        """The search config of one arm on one task."""
        data = {k: v for k, v in self.search.items() if k != "task"}
        objectives = {**data.get("objectives", {}), "use": ARMS[arm]}
        baselines = data.get("baselines", {}) if arm == "energy_first" else {}
        data = {**data, "name": f"{self.name}-{task.label}-{arm}", "task": task.model_dump(mode="json"),
                "objectives": objectives, "baselines": baselines}
        return config_from_dict(data, f"search ({task.label}, {arm})", model=SearchConfig)

    def check(self) -> None:
        """Every arm's config and space on every task (ConfigError naming the key)."""
        for task in self.tasks:
            for arm in ARMS:
                self.arm(task, arm).search_space()


@dataclass
class VersusResult:
    out: Path
    rows: list[dict]  # one per task: the comparison
    status: str  # complete | interrupted


def versus(study: VersusStudy, out: str | Path, *, storage: str | None = None, workers: int = 1,
           overwrite: bool = False, progress: bool = True, should_stop=None,
           heartbeat: Heartbeat = Heartbeat()) -> VersusResult:
    """Run (or continue) both arms on every task; write comparison.csv, comparison.json and figures/versus-*.png."""
    out = Path(out)
    rows, planes = [], {}
    for task in study.tasks:
        found = {}
        for arm in ARMS:
            cfg = study.arm(task, arm)
            res = search(cfg, out / task.label / arm, storage=storage, study=f"{study.name}-{task.label}-{arm}",
                         workers=workers, overwrite=overwrite, progress=progress, should_stop=should_stop,
                         heartbeat=heartbeat)
            if res.status == "interrupted":
                return VersusResult(out, rows, "interrupted")
            found[arm] = [r for r in res.trials if r["strategy"] == cfg.strategy.name]
            if arm == "energy_first":  # the search beside every baseline, on the plane every family has
                mac = res.summary["planes"].get("mac_joules", res.summary["planes"]["objective"])
                on_plane = {f"mac_hypervolume.{s}": v["hypervolume"] for s, v in mac["strategies"].items()}
        measure = study.arm(task, "energy_first").objectives.energy
        row, plane = compare(found["energy_first"], found["information_first"], COLUMNS[measure], study.match,
                             study.match_bits)
        rows.append({"task": task.label, "energy_measure": measure, **row, **on_plane})
        planes[task.label] = plane
    _write_rows(out / "comparison.csv", rows)
    atomic_write(out / "comparison.json", json.dumps({"rows": rows, "planes": planes}, indent=2, default=float))
    _figures(planes, out / "figures")
    return VersusResult(out, rows, "complete")


def _write_rows(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue())


def _done(rows: list[dict], column: str) -> list[dict]:
    return [r for r in rows if r["state"] == "complete" and _number(r.get(column)) and _number(r.get("information_bits"))]


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _cheapest(rows: list[dict], column: str, keep) -> dict | None:
    ok = [r for r in rows if keep(r)]
    return min(ok, key=lambda r: r[column]) if ok else None


def compare(energy_first: list[dict], information_first: list[dict], column: str, match: float = 0.01,
            match_bits: float = 0.05) -> tuple[dict, dict]:
    """One task's comparison of the two arms' trial rows on the `column` energy: (row, plane)."""
    e, i = _done(energy_first, column), _done(information_first, column)
    if not e or not i:
        return {"note": "an arm has no complete trial"}, {}
    ref = reference_point(np.array([r[column] for r in e + i]))
    xy = {arm: np.array([(r[column], r["information_bits"]) for r in rs]) for arm, rs in (("e", e), ("i", i))}
    best = max(i, key=lambda r: (r["accuracy"], -r[column]))  # information first's pick: validation accuracy
    near = _cheapest(e, column, lambda r: r["accuracy"] >= best["accuracy"] - match)
    bits = min(xy["e"][:, 1].max(), xy["i"][:, 1].max()) - match_bits  # information both arms reach
    at_e = _cheapest(e, column, lambda r: r["information_bits"] >= bits)
    at_i = _cheapest(i, column, lambda r: r["information_bits"] >= bits)
    front = [e[k] for k in pareto_front(xy["e"])]
    ratios = [float(r[RATIO]) for r in front if r.get(RATIO, "") != ""]
    pick = max(e, key=lambda r: r["score"]) if all("score" in r for r in e) else None
    row = {
        "trials_energy_first": len(e), "trials_information_first": len(i), "reference_energy": ref[0],
        "hypervolume_energy_first": hypervolume(xy["e"], ref), "hypervolume_information_first": hypervolume(xy["i"], ref),
        "best_accuracy_information_first": best["accuracy"], "best_accuracy_test_information_first": best["accuracy_test"],
        "best_energy_information_first": best[column],
        "near_accuracy_energy_first": _get(near, "accuracy"), "near_accuracy_test_energy_first": _get(near, "accuracy_test"),
        "near_energy_energy_first": _get(near, column),
        "near_energy_share": _get(near, column) / best[column] if near else "",
        "matched_bits": bits, "matched_energy_energy_first": _get(at_e, column),
        "matched_energy_information_first": _get(at_i, column),
        "matched_energy_ratio": at_e[column] / at_i[column] if at_e and at_i else "",
        "front_glia_ratios": " ".join(f"{x:.2f}" for x in sorted(ratios)),
        "front_glia_ratio_median": float(np.median(ratios)) if ratios else "",
        "best_score_glia_ratio": _get(pick, RATIO), "best_score_kind": _get(pick, "params.model.kind"),
    }
    plane = {"energy": column, "reference_point": list(ref),
             "arms": {arm: [(r[column], r["information_bits"], r["accuracy"]) for r in rs]
                      for arm, rs in (("energy_first", e), ("information_first", i))}}
    return row, plane


def _get(row: dict | None, key: str):
    return "" if row is None else row.get(key, "")


def _figures(planes: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    for task, p in planes.items():
        if not p:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        for k, (arm, pts) in enumerate(p["arms"].items()):
            xy = np.array([(x, y) for x, y, _ in pts])  # (n, 2)
            f = xy[pareto_front(xy)]
            hv = hypervolume(xy, tuple(p["reference_point"]))
            ax.scatter(xy[:, 0], xy[:, 1], s=14, color=f"C{k}", alpha=0.6, label=f"{arm} (HV {hv:.3g})")
            ax.step(f[:, 0], f[:, 1], where="post", color=f"C{k}", lw=1)
        ax.set(xscale="log", xlabel=f"E ({p['energy']}, per inference)", ylabel="I(Y; Y_hat), bits (validation)",
               title=f"{task}: energy first against information first")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / f"versus-{task}.png", dpi=110)
        plt.close(fig)
