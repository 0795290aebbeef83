"""Strategies x tasks x seeds, beside the source paper's numbers (seed 004's Tables 1 and 2, seed 001's Table 5,
at reduced scale).

    python simulations/search_digits.py [--config configs/nne_digits.yaml] [--out outputs/nne_digits] [--quiet]
    python simulations/search_digits.py --config configs/dnn_digits.yaml --out outputs/dnn_digits
    python simulations/search_digits.py --config configs/darts_digits.yaml --out outputs/darts_digits --workers 2

Tasks are digits (a class subset) or MNIST-1D. Every fit is a unit of dgnn's study engine (dgnn.study.strategies):
running the same command again continues the study (finished fits are kept; the config may add seeds), --workers N
runs N fits at a time in worker processes (step budgets give the same numbers either way, time budgets do not: the
runs share cores), and --storage URL / --study NAME put the study where workers on other machines join it. Writes
results.csv / results.json (one row per task x strategy x seed, and means) and history.h5 (per-run histories).
"""
from __future__ import annotations

from common import load_study, study_args
from dgnn.study.config import StudyConfig
from dgnn.study.strategies import strategy_study


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/nne_digits.yaml", "outputs/nne_digits", argv, workers=True)
    study = load_study(args.config, StudyConfig, StudyConfig.build)
    if study is None:
        return 2
    res = args.guard(lambda: strategy_study(study, args.out, storage=args.storage, name=args.study,
                                            workers=args.workers, overwrite=args.overwrite, progress=not args.quiet,
                                            should_stop=args.stop))
    if res is None:
        return 2
    if not args.quiet:
        for m in res.means:
            skip = f"   skip share {m['skip_share_mean']:.2f}" if m["skip_share_mean"] != "" else ""
            vs = (f"   vs first {100 * m['vs_first_mean']:+.1f} (SE {100 * m['vs_first_se']:.1f}, p {m['vs_first_p']:.2f})"
                  if m["vs_first_p"] != "" else "")
            print(f"{m['task']:11s} {m['strategy']:20s} {100 * m['accuracy_mean']:.1f} +/- {100 * m['accuracy_sd']:.1f}"
                  f"{skip}{vs}   (paper: {m['paper'] or '-'})")
    return args.exit_code(res.status)


if __name__ == "__main__":
    raise SystemExit(main())
