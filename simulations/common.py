"""What every study script shares: its command line and its results table (CSV + JSON)."""
from __future__ import annotations

import argparse
import csv
import json
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path


def study_args(doc: str, config: str, out: str, argv=None, jobs: bool = False,
               resume: bool = False) -> argparse.Namespace:
    """--config, --out (created) and --quiet (and --jobs, --resume if asked), with the script's docstring as help."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--config", default=config, help=f"base config (default {config})")
    ap.add_argument("--out", default=out, help=f"results folder (default {out})")
    ap.add_argument("--quiet", action="store_true", help="no progress or table on stdout")
    if jobs:
        ap.add_argument("--jobs", type=int, default=1,
                        help="runs in parallel, one core each (default 1; keep 1 for time budgets, which parallel "
                             "runs would share)")
    if resume:
        ap.add_argument("--resume", action="store_true",
                        help="keep the runs already finished in --out and run the rest (same config; more seeds allowed)")
    args = ap.parse_args(argv)
    if jobs and args.jobs < 1:
        ap.error(f"--jobs: expected >= 1, found {args.jobs}")
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def load_study(path, model, check=None):
    """The study config of type `model`, validated (check(study) may raise ConfigError too); a ConfigError is
    printed as one line and gives None (the script then exits 2). Pins torch to one thread, flushes denormals."""
    import sys

    import torch
    from dgnn.config import load_config
    from dgnn.errors import ConfigError

    try:
        study = load_config(path, model=model)
        if check is not None:
            check(study)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    return study


def write_table(out: Path, rows: list[dict], meta: dict | None = None) -> None:
    """results.csv (one row per point) and results.json (meta + rows)."""
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "results.json").write_text(json.dumps({**(meta or {}), "rows": rows}, indent=2))


def run_jobs(calls: dict, fn, record, jobs: int = 1) -> None:
    """fn(*calls[key]) for every key, in this process (jobs 1) or in `jobs` worker processes; record(key, result)
    runs here as each call finishes, so the caller can store it at once."""
    if jobs == 1:
        for key, args in calls.items():
            record(key, fn(*args))
        return
    with ProcessPoolExecutor(jobs) as pool:
        futures = {pool.submit(fn, *args): key for key, args in calls.items()}
        for fut in as_completed(futures):
            record(futures[fut], fut.result())
