"""NORTH* growth at reduced scale (seed 001 section 6.3): final widths against the number of independent features
of the toy task (Figure 28), and NORTH-Select on digits against static nets of its final and maximum widths,
with and without an energy budget.

    python simulations/north_growth.py [--config configs/north_growth.yaml] [--out outputs/north_growth] [--quiet]
        [--workers N] [--storage URL]

Every toy fit and every digits seed is a unit of dgnn's study engine (dgnn.study.growth): running the command again
continues it. Writes results.csv / results.json (toy rows: strategy x depth x n_f x seed with the final widths;
digits rows: grown, gated, static-final and static-max nets with accuracy and neurons) and history.h5.
"""
from __future__ import annotations

from common import load_study, study_args
from dgnn.study.config import GrowthStudy
from dgnn.study.growth import check, growth_study


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/north_growth.yaml", "outputs/north_growth", argv, workers=True)
    study = load_study(args.config, GrowthStudy, check)
    if study is None:
        return 2
    res = args.guard(lambda: growth_study(study, args.out, storage=args.storage, name=args.study, workers=args.workers,
                                          overwrite=args.overwrite, progress=not args.quiet, should_stop=args.stop))
    return 2 if res is None else args.exit_code(res[1])


if __name__ == "__main__":
    raise SystemExit(main())
