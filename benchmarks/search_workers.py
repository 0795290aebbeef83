"""Trials per hour of `dgnn search` with 2 local workers against 1, on the same config and budget, in one run.

    python benchmarks/search_workers.py [--config configs/search_quickstart.yaml] [--trials 12] [--out FILE]

Each setting runs the strategy's trials only (no baselines), one torch thread per worker, into a fresh folder;
trials per hour counts completed trials over the wall time of the search call (process start-up of the workers
included).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def run(config: str, trials: int, workers: int, root: Path) -> dict:
    from dgnn.config import load_config
    from dgnn.study.nas.command import search
    from dgnn.study.nas.config import SearchConfig

    cfg = load_config(config, ["baselines={}"], model=SearchConfig)
    t0 = time.perf_counter()
    res = search(cfg, root / f"w{workers}", workers=workers, trials=trials, progress=False)
    wall = time.perf_counter() - t0
    n = res.summary["n_trials"]
    return {"workers": workers, "trials": n, "wall_s": wall, "trials_per_hour": 3600 * n / wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/search_quickstart.yaml")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--out", default="benchmarks/results/search_workers.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(args.config, args.trials, w, Path(tmp)) for w in (1, 2)]
    res = {"config": args.config, "rows": rows, "speedup": rows[1]["trials_per_hour"] / rows[0]["trials_per_hour"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    for r in rows:
        print(f"{r['workers']} worker(s): {r['trials']} trials in {r['wall_s']:.1f} s = {r['trials_per_hour']:.0f} trials/hour")
    print(f"speedup {res['speedup']:.2f}x (target >= 1.7x); results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
