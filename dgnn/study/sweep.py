"""`dgnn sweep`: the product of a parameter grid, batched where points differ only in numeric keys, one metrics-only
trace per point and a summary table (CSV + JSON). Each batch is a unit of the study engine: workers (local
processes or other machines on the same storage) take batches until none is left, and running the command again
skips the finished ones."""
from __future__ import annotations

import copy
import csv
import io
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import yaml

from ..config import Config, load_value, config_from_dict, config_from_yaml_text, config_to_yaml
from ..errors import ConfigError
from ..model import batchable_paths
from ..simulation import Simulation, advance
from ..traces import TraceWriter
from ..version import __version__
from .engine import Interrupted, Unit, WorkQueue, run_workers
from .folders import atomic_write, claim_folder
from .storage import Heartbeat, resolve


@dataclass(frozen=True)
class Point:
    index: int
    values: dict[str, Any]  # grid key -> value of this point
    cfg: Config

    @property
    def label(self) -> str:
        return f"p{self.index:04d}"


def parse_grid(items: list[str]) -> dict[str, list]:
    """['coupling.strength=0.5,1,2', 'coupling.b=[0, 0.25]'] -> {key: [values]} (values parsed as YAML scalars)."""
    grid: dict[str, list] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"grid {item!r}: expected key.path=v1,v2,... (for example coupling.strength=0.5,1,2)")
        key, raw = (x.strip() for x in item.split("=", 1))
        try:
            load = lambda text: load_value(text, f"--grid {key}", key)  # noqa: E731
            values = load(raw) if raw.startswith("[") else [load(v) for v in raw.split(",")]
        except yaml.YAMLError:
            raise ConfigError(f"grid {key}: cannot parse values {raw!r}") from None
        if not isinstance(values, list) or not values or any(v is None or isinstance(v, (list, dict)) for v in values):
            raise ConfigError(f"grid {key}: expected a non-empty list of scalars, found {raw!r}")
        grid[key] = values
    return grid


def _set(data: dict, key: str, value) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"sweep.grid.{key}: {part} is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def expand(base: Config, grid: dict[str, list]) -> list[Point]:
    """Every combination of the grid as a validated config (errors name the point and the key)."""
    if not grid:
        raise ConfigError("grid: empty; give grid values (key=v1,v2,...) or a sweep.grid block in the config")
    data = base.model_dump(mode="python")
    data["sweep"] = {}
    keys = list(grid)
    points = []
    for i, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
        d = copy.deepcopy(data)
        values = dict(zip(keys, combo))
        for k, v in values.items():
            _set(d, k, v)
        d["name"] = f"{base.name}-p{i:04d}"
        where = ", ".join(f"{k}={v}" for k, v in values.items())
        points.append(Point(i, values, config_from_dict(d, f"sweep point {i} ({where})")))
    return points


def batch_key(cfg: Config) -> str:
    """Everything but the batchable numeric keys and the name: equal keys can share one batch."""
    d = cfg.model_dump(mode="json")
    d.pop("name")
    for path in batchable_paths(cfg):
        node = d
        *head, leaf = path.split(".")
        for part in head:
            node = node[part]
        node.pop(leaf)
    return json.dumps(d, sort_keys=True)


def plan(points: list[Point], max_batch: int) -> list[list[Point]]:
    """Group batchable points (in grid order), at most max_batch points per batch."""
    groups: dict[str, list[Point]] = {}
    for p in points:
        groups.setdefault(batch_key(p.cfg), []).append(p)
    return [g[i:i + max_batch] for g in groups.values() for i in range(0, len(g), max_batch)]


class MultiWriter:
    """Fans each batched record out to one trace per point (replica slice), so the run loop is shared with `run`.
    A point that fails alone is finished (records kept, status failed) and left out from then on."""

    def __init__(self, writers: list[TraceWriter], replicas: int):
        self.writers, self.replicas = writers, replicas
        self.live = list(range(len(writers)))  # points still written
        self.path = writers[0].path

    def _slice(self, i: int, record: dict) -> dict:
        lo, hi = i * self.replicas, (i + 1) * self.replicas
        return {k: (v[lo:hi] if np.ndim(v) >= 1 else v) for k, v in record.items()}

    def append(self, record: dict) -> None:
        for i in self.live:
            self.writers[i].append(self._slice(i, record))

    def append_events(self, events: np.ndarray) -> None:
        for i in self.live:
            mine = events[(events["replica"] >= i * self.replicas) & (events["replica"] < (i + 1) * self.replicas)].copy()
            mine["replica"] -= i * self.replicas
            if len(mine):
                self.writers[i].append_events(mine)

    def fail_points(self, failures: dict[int, str]) -> None:
        """Finish the traces of points that failed: every record so far kept, status failed with its message."""
        for i, message in failures.items():
            w = self.writers[i]
            w.flush()
            w.set_status("failed", message)
            w.close()
            self.live.remove(i)

    @property
    def rows(self) -> int:
        return self.writers[self.live[0] if self.live else 0].rows

    @property
    def pending_bytes(self) -> int:
        return sum(self.writers[i].pending_bytes for i in self.live)

    SHARED = ("record", "rng_state")  # batch-wide checkpoint entries (one noise stream: the points share its seed)
    PER_POINT = ("structure_rng",)  # one point: (L,) bytes, as a plain run's; several: (B, L), a row per replica
    TIME_FIRST = ("structure_buffer", "structure_reserves")  # (T, B, ...): the replica axis is 1

    def _checkpoint(self, i: int, ck: dict) -> dict:
        lo, hi = i * self.replicas, (i + 1) * self.replicas
        out = {}
        for k, v in ck.items():
            if k in self.SHARED or np.ndim(v) == 0 or (k in self.PER_POINT and np.ndim(v) == 1):
                out[k] = v
            elif k in self.TIME_FIRST:
                out[k] = v[:, lo:hi] if np.ndim(v) > 1 else v
            else:
                out[k] = v[lo:hi]
        return out

    def flush(self, checkpoint: dict | None = None) -> None:
        for i in self.live:
            self.writers[i].flush(None if checkpoint is None else self._checkpoint(i, checkpoint))

    def set_status(self, status: str, message: str | None = None) -> None:
        for i in self.live:
            self.writers[i].set_status(status, message)

    def close(self) -> None:
        for i in self.live:
            self.writers[i].close()


def _run_batch(batch: list[Point], out: Path, progress_bar, should_stop) -> str:
    """Simulate one batch of points, one trace per point under out/points/; returns the batch's status."""
    base = batch[0].cfg
    sim = Simulation(base, points=[p.cfg for p in batch])
    static = sim.static()
    b = base.replicas
    writers = []
    for i, p in enumerate(batch):
        d = out / "points" / p.label
        d.mkdir(parents=True, exist_ok=True)
        text = config_to_yaml(p.cfg)
        (d / "config.yaml").write_text(text, encoding="utf-8")
        own = {k: ((v[i * b:(i + 1) * b] if k.endswith(("frequency", "initial_phase")) else v), a) for k, (v, a) in static.items()}
        writers.append(TraceWriter.create(
            d / "trace.h5", config_text=text, version=__version__, series=sim.series(b), static=own,
            attrs={"device": str(sim.device), "backend": sim.field.backend_name, "sweep_point": p.index,
                   "sweep_batch_size": len(batch)},
        ))
    mw = MultiWriter(writers, b)
    mw.append(sim.snapshot())
    mw.flush(sim.state_dict())
    return advance(sim, mw, should_stop, progress=False, bar=progress_bar).status


def _status(path: Path) -> str:
    try:
        with h5py.File(path, "r") as h5:
            return str(h5.attrs.get("status", ""))
    except OSError:
        return "missing"


def _summary_row(p: Point, out: Path) -> dict:
    from ..analysis import summarize

    path = out / "points" / p.label / "trace.h5"
    row = {"point": p.index, **p.values, "status": _status(path), "trace": str(path.relative_to(out))}
    if row["status"] != "complete":
        return row
    s = summarize(path)
    n = s["neurons"]
    row.update(r_mean=n["order_parameter_mean"], r_final=n["order_parameter_final"], metastability=n["metastability"],
               natural_frequency_mean=n["natural_frequency_mean"])
    if "mean_frequency" in n:
        row["mean_frequency"] = n["mean_frequency"]
    if "glia" in s:
        row["glia_r_mean"] = s["glia"]["order_parameter_mean"]
    if "metabolism" in s:
        m = s["metabolism"]
        row.update(energy_supplied=m["total_supplied"], energy_consumed=m["total_consumed"],
                   energy_unmet=m["total_unmet"], reserve_final=m["reserve_final"])
    return row


@dataclass(frozen=True)
class SweepJob:
    """The engine's job for one sweep: unit b<i> simulates batch i of the plan (picklable for worker processes)."""

    out: Path
    batches: tuple[tuple[Point, ...], ...]

    def run(self, unit: Unit, should_stop) -> dict:
        batch = list(self.batches[int(unit.key[1:])])
        status = _run_batch(batch, self.out, None, should_stop)
        if status == "interrupted":
            raise Interrupted(f"batch {unit.key} stopped after its current record")
        return {"points": [_summary_row(p, self.out) for p in batch]}


def units(batches) -> list[Unit]:
    return [Unit(f"b{i:04d}", {"points": " ".join(p.label for p in b)}) for i, b in enumerate(batches)]


def write_summary(points: list[Point], out: Path, finished: dict[str, dict], batches) -> list[dict]:
    """summary.csv and summary.json: one row per point in grid order, from the storage's unit rows (unfinished
    points show their trace's status, or 'waiting')."""
    rows_by_point = {r["point"]: r for row in finished.values() for r in row["points"]}
    rows = []
    for p in points:
        if p.index in rows_by_point:
            rows.append(rows_by_point[p.index])
            continue
        status = _status(out / "points" / p.label / "trace.h5")
        rows.append({"point": p.index, **p.values, "status": "waiting" if status == "missing" else status,
                     "trace": str(Path("points") / p.label / "trace.h5")})
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(out / "summary.csv", buf.getvalue())
    atomic_write(out / "summary.json", json.dumps(rows, indent=2, default=float))
    return rows


@dataclass(frozen=True)
class SweepResult:
    out: Path
    status: str  # complete | interrupted | failed
    points: int
    ran: int  # points simulated in this call (finished ones are skipped when the command runs again)
    rows: list[dict]
    study: str = ""
    storage: str = ""


OWNED = ("points", "summary.csv", "summary.json", "sweep.yaml")


def sweep(base: Config, grid: dict[str, list] | None = None, out: str | Path | None = None, *, overwrite: bool = False,
          progress: bool = True, should_stop: Callable[[], bool] | None = None, resume: bool = False,
          storage: str | None = None, study: str | None = None, workers: int = 1,
          heartbeat: Heartbeat = Heartbeat()) -> SweepResult:
    """Run the product of `base.sweep.grid` and `grid` as units of the study engine; finished batches (in the
    storage: `out`'s embedded one by default) are skipped, so calling it again continues it."""
    from ..simulation import default_run_dir

    grid = {k: [v.item() if isinstance(v, np.generic) else v for v in vals]  # numpy scalars from API callers
            for k, vals in {**base.sweep.grid, **(grid or {})}.items()}
    if not base.sweep.phases:
        data = base.model_dump(mode="python")
        data["record"]["phases"] = False
        base = config_from_dict(data)
    points = expand(base, grid)
    batches = tuple(tuple(b) for b in plan(points, base.sweep.max_batch))  # of all points: units stable on resume
    out = Path(out) if out is not None else default_run_dir(base).with_name(default_run_dir(base).name + "-sweep")
    if workers < 1:
        raise ConfigError(f"workers: expected >= 1, found {workers}")
    url, name = resolve(storage, out), study or f"sweep-{base.name}"
    if not resume:
        claim_folder(out, overwrite, OWNED, url, name)
    stored = {"base": base.model_dump(mode="json"), "grid": grid}
    queue = WorkQueue.open(url, name, "sweep", stored, units(batches), overwrite=overwrite and not resume,
                           heartbeat=heartbeat)
    atomic_write(out / "sweep.yaml", yaml.safe_dump({"base": config_to_yaml(base), "grid": grid, "study": name,
                                                     "storage": url}, sort_keys=False))
    before = set(queue.rows())
    run_workers(queue, SweepJob(out, batches), workers, should_stop, progress, desc=f"sweep {name}")
    finished = queue.rows()
    rows = write_summary(points, out, finished, batches)
    ran = sum(len(r["points"]) for k, r in finished.items() if k not in before)
    if len(finished) == len(batches):
        status = "failed" if any(r["status"] == "failed" for r in rows) else "complete"
    else:  # units left: stopped by a signal, or failed beyond the engine's retries
        status = "interrupted" if should_stop is not None and should_stop() else "failed"
    return SweepResult(out, status, len(points), ran, rows, name, url)


def resume_sweep(out: str | Path, *, progress: bool = True, should_stop=None, workers: int = 1,
                 heartbeat: Heartbeat = Heartbeat()) -> SweepResult:
    """Continue a sweep folder: the stored config and grid are run again; finished batches are kept."""
    out = Path(out)
    try:
        meta = yaml.safe_load((out / "sweep.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"resume {out}: not a sweep folder (sweep.yaml: {exc.__class__.__name__})") from None
    if not (isinstance(meta, dict) and isinstance(meta.get("base"), str) and isinstance(meta.get("grid"), dict)):
        raise ConfigError(f"resume {out}: sweep.yaml is malformed (expected the keys base, grid, study, storage)")
    base = config_from_yaml_text(meta["base"], f"{out}/sweep.yaml")
    grid, name, url = meta["grid"], meta.get("study"), meta.get("storage")
    return sweep(base, grid, out, progress=progress, should_stop=should_stop, resume=True,
                 storage=None if url == resolve(None, out) else url, study=name, workers=workers, heartbeat=heartbeat)
