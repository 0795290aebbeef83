"""Result tables of the study commands: results.csv (one row per run or point) and results.json (meta + rows)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .folders import atomic_write


def write_table(out: Path, rows: list[dict], meta: dict | None = None) -> None:
    """results.csv and results.json, each replaced atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(Path(out) / "results.csv", buf.getvalue())
    atomic_write(Path(out) / "results.json", json.dumps({**(meta or {}), "rows": rows}, indent=2))
