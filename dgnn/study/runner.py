"""What the study commands share: running a planned set of units on the engine into an output folder, per-unit
history files (one writer each) merged into one HDF5 file at the end, and JSON-exact result rows."""
from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np

from .engine import Job, Unit, WorkQueue, run_workers
from .folders import claim_folder
from .storage import Heartbeat, resolve
from .tables import write_table

UNITS = "units"  # the folder of per-unit files inside a study's output folder


def run_units(out: Path, kind: str, config: dict, units: list[Unit], job: Job, *, storage: str | None = None,
              study: str | None = None, workers: int = 1, overwrite: bool = False, progress: bool = True,
              should_stop=None, extendable: tuple = (), owned: tuple = (), heartbeat: Heartbeat = Heartbeat(),
              name: str = "") -> tuple[WorkQueue, int]:
    """Claim `out`, open (or continue) the study and run its units: (the queue, which holds every finished unit's
    row; the number of units run by this call)."""
    url, study = resolve(storage, out), study or name or kind
    claim_folder(out, overwrite, (*owned, UNITS), url, study)
    queue = WorkQueue.open(url, study, kind, config, units, extendable=extendable, overwrite=overwrite,
                           heartbeat=heartbeat)
    finished = len(queue.rows())
    if progress and finished:
        print(f"resuming: {finished} of {len(units)} units already finished in {queue.url}", flush=True)
    return queue, run_workers(queue, job, workers, should_stop, progress, desc=study)


def unit_file(out: Path, key: str) -> Path:
    """The HDF5 file of one unit's arrays (a file-name-safe form of its key)."""
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", key).strip("_") or "unit"
    path = Path(out) / UNITS / f"{safe}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_unit_history(out: Path, key: str, groups: dict[str, tuple[dict, dict]]) -> None:
    """One unit's histories {group: (arrays, attrs)} into its own file, replaced atomically."""
    path = unit_file(out, key)
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as h5:
        for group, (arrays, attrs) in groups.items():
            g = h5.create_group(group)
            for k, v in arrays.items():
                g.create_dataset(k, data=v)
            for k, v in attrs.items():
                if isinstance(v, (int, float, np.floating, np.integer)):
                    g.attrs[k] = v
    tmp.replace(path)


def merge_histories(out: Path, keys: list[str], target: str = "history.h5") -> list[str]:
    """Copy every unit file's groups, in `keys` order, into out/target (replaced atomically); returns the keys
    whose file is missing (a unit finished on a machine that does not share this folder)."""
    tmp = Path(out) / f".{target}.tmp"
    missing = []
    with h5py.File(tmp, "w") as dst:
        for key in keys:
            path = unit_file(out, key)
            if not path.exists():
                missing.append(key)
                continue
            with h5py.File(path, "r") as src:
                src.visit(lambda name: _copy(src, dst, name))
    tmp.replace(Path(out) / target)
    return missing


def _copy(src: h5py.File, dst: h5py.File, name: str) -> None:
    obj = src[name]
    if isinstance(obj, h5py.Dataset):
        src.copy(obj, dst.require_group(obj.parent.name), name=name.rsplit("/", 1)[-1])
    else:
        g = dst.require_group(name)
        g.attrs.update(dict(obj.attrs))


def study_status(done: dict, units: list[Unit], should_stop=None) -> str:
    """complete when every unit finished; else interrupted (the stop flag is up) or failed."""
    if len(done) == len(units):
        return "complete"
    return "interrupted" if should_stop is not None and should_stop() else "failed"


def finish_units(out: Path, units: list[Unit], queue: WorkQueue, should_stop=None) -> tuple[list[dict], str]:
    """The finished units' histories merged into history.h5 and their rows (in unit order) into results.csv /
    results.json; (rows, status)."""
    done = queue.rows()
    merge_histories(out, [u.key for u in units if u.key in done])
    rows = [r for u in units if u.key in done for r in done[u.key]["rows"]]
    if rows:
        write_table(out, rows)
    return rows, study_status(done, units, should_stop)
