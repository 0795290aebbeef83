"""Seed 001's Figure 19 at reduced scale: the cell each DARTS-family search of a finished study would have returned
had it stopped earlier, retrained and tested, so that accuracy can be read against search length.

    python simulations/darts_checkpoints.py --study outputs/darts_mnist1d_5000 [--every 500] [--retrains 1]
        [--out STUDY/checkpoints] [--workers 2] [--storage URL] [--quiet]

The study's history.h5 holds softmax(alpha) after every w step; the cell at step s is its discretisation there
(the same Pi_S as the search's end; the last checkpoint is the study's own cell, and its retrain 0 the study's).
Like the thesis's extended trials, a checkpoint is a search cut short, not a search given that shorter budget:
the proximity term's c had not yet reached 1. Every retraining of a distinct (seed, cell) is a unit of dgnn's
study engine (dgnn.study.checkpoints), shared by the checkpoints that hold that cell: running the command again
continues it, and a larger --retrains adds retrainings. Writes results.csv / results.json (one row per run x
checkpoint, and `means` per strategy x checkpoint with the paired difference to the study's first strategy) and
retrains.csv (every retraining's accuracy).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import _guard, _stop_flag
from dgnn.study.checkpoints import darts_checkpoints


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", required=True, help="a finished search_digits.py results folder (config.yaml, history.h5)")
    ap.add_argument("--every", type=int, default=500, help="w steps between checkpoints (default 500)")
    ap.add_argument("--retrains", type=int, default=1, help="retrainings per cell (default 1)")
    ap.add_argument("--out", default=None, help="results folder (default STUDY/checkpoints)")
    ap.add_argument("--workers", "--jobs", dest="workers", type=int, default=1,
                    help="retrainings in parallel, one core each (default 1)")
    ap.add_argument("--storage", help="Optuna storage URL (default: the embedded journal file in --out)")
    ap.add_argument("--overwrite", action="store_true", help="start over: discard the retrainings in --out")
    ap.add_argument("--resume", action="store_true", help="continue the retrainings in --out (the default anyway)")
    ap.add_argument("--quiet", action="store_true", help="no progress or table on stdout")
    args = ap.parse_args(argv)
    for name in ("every", "retrains", "workers"):
        if getattr(args, name) < 1:
            ap.error(f"--{name}: expected >= 1, found {getattr(args, name)}")
    study = Path(args.study)
    out = Path(args.out) if args.out else study / "checkpoints"
    stop = _stop_flag()
    res = _guard(lambda: darts_checkpoints(study, out, every=args.every, retrains=args.retrains, storage=args.storage,
                                           workers=args.workers, overwrite=args.overwrite, progress=not args.quiet,
                                           should_stop=stop))
    if res is None:
        return 2
    if not args.quiet:
        print(f"{len(res.rows)} checkpoints, {res.cells} distinct cells, {res.ran} retrained now")
        for m in res.means:
            vs = (f"   vs first {100 * m['vs_first_mean']:+.1f} (SE {100 * m['vs_first_se']:.1f}, p {m['vs_first_p']:.2f})"
                  if m["vs_first_p"] != "" else "")
            comp = " ".join(f"{k[2:-5]} {m[k]:.2f}" for k in m if k.startswith("n_"))
            print(f"{m['task']:11s} {m['strategy']:12s} step {m['step']:6d}  {100 * m['accuracy_mean']:.1f} +/- "
                  f"{100 * m['accuracy_sd']:.1f}   {comp}{vs}")
    return {"complete": 0, "interrupted": 130}.get(res.status, 1)


if __name__ == "__main__":
    raise SystemExit(main())
