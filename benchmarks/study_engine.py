"""The study engine's costs, measured against references in the same run.

    python benchmarks/study_engine.py [--quick] [--postgres] [--out benchmarks/results/study_engine.json]

1. Cost per unit: units that sleep 1 s (so the machine's load does not enter), run by one worker; the engine's
   cost is (wall - units x 1 s) / units, for the journal file (the default) and SQLite.
2. Several local workers on one storage: 4 processes x many short units on the journal file and on SQLite: wall
   time, units lost or run twice, storage errors ("database is locked").
3. Throughput of local workers on a real sweep: 64 single-thread points of about a second each (max_batch 1), one
   worker against two, on this machine's cores.
4. PostgreSQL (--postgres starts a throwaway server, tests/postgres.py): 4 workers x 200 short units.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from study_jobs import DrawJob, units  # noqa: E402

from dgnn.study.engine import WorkQueue, run_workers  # noqa: E402
from dgnn.study.storage import Heartbeat  # noqa: E402

HB = Heartbeat(interval=2, grace=10)


def _queue(url: str, n: int, name: str) -> WorkQueue:
    return WorkQueue.open(url, name, "bench", {"n": n}, units(n), heartbeat=HB)


def per_unit_cost(url: str, n: int, folder: Path) -> dict:
    t0 = time.perf_counter()
    q = _queue(url, n, "cost")
    opened = time.perf_counter() - t0
    t1 = time.perf_counter()
    run_workers(q, DrawJob(folder, seconds=1.0), 1, progress=False)
    wall = time.perf_counter() - t1
    cost = (wall - n * 1.0) / n
    return {"units": n, "open_and_enqueue_s": opened, "wall_s": wall, "cost_per_unit_ms": 1e3 * cost,
            "share_of_1s_unit": cost / 1.0}


def many_workers(url: str, n: int, workers: int, folder: Path, seconds: float) -> dict:
    q = _queue(url, n, "many")
    t0 = time.perf_counter()
    error = ""
    try:
        run_workers(q, DrawJob(folder, seconds=seconds), workers, progress=False)
    except Exception as exc:  # what a storage raises under contention, recorded rather than hidden
        error = f"{type(exc).__name__}: {exc}"[:300]
    wall = time.perf_counter() - t0
    c = q.counts()
    done = len(q.rows())
    return {"units": n, "workers": workers, "unit_seconds": seconds, "wall_s": wall, "complete": c["complete"],
            "failed": c["fail"], "pruned_duplicates": c["pruned"], "lost": n - done, "error": error,
            "units_per_s": done / wall}


def sweep_throughput(root: Path, points: int) -> dict:
    from dgnn.config import config_from_dict
    from dgnn.study.sweep import sweep

    base = config_from_dict({"name": "bench", "neurons": {"count": 300}, "topology": {"kind": "erdos_renyi", "p": 0.1},
                             "solver": {"dt": 0.01, "duration": 15.0}, "record": {"every": 0.5},
                             "sweep": {"max_batch": 1}, "device": "cpu"})
    grid = {"coupling.strength": [0.5 + 0.05 * i for i in range(points)]}
    out = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        res = sweep(base, grid, root / f"w{workers}", progress=False, workers=workers, heartbeat=HB)
        out[workers] = time.perf_counter() - t0
        assert res.status == "complete", res.status
    same = (root / "w1" / "summary.csv").read_bytes() == (root / "w2" / "summary.csv").read_bytes()
    return {"points": points, "wall_1_worker_s": out[1], "wall_2_workers_s": out[2], "speedup": out[1] / out[2],
            "summaries_equal": same, "seconds_per_point_1_worker": out[1] / points}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer units (a smoke run)")
    ap.add_argument("--postgres", action="store_true", help="also 4 workers x 200 units on a throwaway PostgreSQL")
    ap.add_argument("--out", default="benchmarks/results/study_engine.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n_cost, n_many, n_sweep = (5, 40, 8) if args.quick else (30, 200, 64)
        for kind, url in (("journal", f"journal:///{root}/cost.journal"), ("sqlite", f"sqlite:///{root}/cost.db")):
            (root / kind).mkdir()
            res[f"cost_{kind}"] = per_unit_cost(url, n_cost, root / kind)
            print(kind, "cost", json.dumps(res[f"cost_{kind}"]), flush=True)
        for kind, url in (("journal", f"journal:///{root}/many.journal"), ("sqlite", f"sqlite:///{root}/many.db")):
            (root / f"m{kind}").mkdir()
            res[f"many_{kind}"] = many_workers(url, n_many, 4, root / f"m{kind}", 0.05)
            print(kind, "many", json.dumps(res[f"many_{kind}"]), flush=True)
        res["sweep"] = sweep_throughput(root / "sweep", n_sweep)
        print("sweep", json.dumps(res["sweep"]), flush=True)
        if args.postgres:
            from postgres import Server, find_bin

            server = Server(find_bin())
            url = server.start()
            try:
                (root / "pg").mkdir()
                res["postgres"] = many_workers(url, n_many, 4, root / "pg", 0.05)
                print("postgres", json.dumps(res["postgres"]), flush=True)
            finally:
                server.stop()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
