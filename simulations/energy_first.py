"""Energy first against information first (seed 000's claim, issue 16's first study): on digits, MNIST-1D and the
NORTH* toy task, the same space, budget and seed searched for (E min, I max) and for I alone.

    python simulations/energy_first.py [--config configs/energy_first.yaml] [--out outputs/energy_first] [--quiet]

Each arm is a `dgnn search` (dgnn.study.nas.versus) in OUT/<task>/<arm>, with its trials.csv, pareto.csv, summary
and figures; the energy-first arm also runs the config's baselines on the MAC-joules plane. OUT/comparison.csv
has one row per task: both hypervolumes on one reference point, the information-first arm's best net and the
cheapest energy-first net within `match` of its accuracy, the energy each arm pays for matched information, and
the glia:neuron ratios the energy-first front chose. Running the same command again continues every search.
"""
from __future__ import annotations

from common import load_study, study_args
from dgnn.study.nas.versus import VersusStudy, versus


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/energy_first.yaml", "outputs/energy_first", argv, workers=True)
    study = load_study(args.config, VersusStudy, VersusStudy.check)
    if study is None:
        return 2
    res = args.guard(lambda: versus(study, args.out, storage=args.storage, workers=args.workers,
                                    overwrite=args.overwrite, progress=not args.quiet, should_stop=args.stop))
    if res is None:
        return 2
    if not args.quiet:
        for r in res.rows:
            if "note" in r:
                print(f"{r['task']:12s} {r['note']}")
                continue
            share = f"{100 * r['near_energy_share']:.0f}%" if r["near_energy_share"] != "" else "none within match"
            print(f"{r['task']:12s} HV energy first {r['hypervolume_energy_first']:.4g} vs information first "
                  f"{r['hypervolume_information_first']:.4g}; best accuracy {100 * r['best_accuracy_information_first']:.1f}%"
                  f" at E {r['best_energy_information_first']:.3g}, energy first within {100 * study.match:.0f} point: "
                  f"{share} of it; glia ratio chosen {r['best_score_glia_ratio']}")
        print(f"results: {res.out}/comparison.csv, comparison.json, figures/versus-*.png")
    return args.exit_code(res.status)


if __name__ == "__main__":
    raise SystemExit(main())
