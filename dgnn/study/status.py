"""`dgnn study status`: the studies of a storage with their units per state."""
from __future__ import annotations

import optuna

from .engine import KIND, count_states
from .storage import open_storage, resolve

STATES = ("waiting", "running", "complete", "fail", "pruned")


def status(storage: str) -> list[dict]:
    """One row per study: name, kind and the count of its units in each state."""
    from pathlib import Path

    from ..errors import ConfigError

    if "://" not in storage and not Path(storage).exists():
        raise ConfigError(f"study status {storage}: no such file or folder (give a storage URL or a run folder)")
    opened = open_storage(resolve(storage, None))
    rows = []
    for name in sorted(optuna.get_all_study_names(opened)):
        study = optuna.load_study(study_name=name, storage=opened)
        rows.append({"study": name, "kind": study.user_attrs.get(KIND, "optuna"), **count_states(study)})
    return rows


def status_table(storage: str) -> str:
    rows = status(storage)
    if not rows:
        return f"{storage}: no studies"
    width = max(len(r["study"]) for r in rows)
    head = f"{'study':<{width}}  {'kind':<8}" + "".join(f" {s:>8}" for s in STATES)
    lines = [head] + [f"{r['study']:<{width}}  {r['kind']:<8}" + "".join(f" {r[s]:>8}" for s in STATES) for r in rows]
    return "\n".join(lines)
