"""DYNO transfer at reduced scale (seed 001 section 7): pre-train a static MLP on digits 0-4, then fine-tune it on
each target with DYNO grow-and-prune and, as the reference, with the architecture fixed.

    python simulations/dyno_transfer.py [--config configs/dyno_transfer.yaml] [--out outputs/dyno_transfer] [--quiet]
        [--workers N] [--storage URL]

Targets: the source classes themselves (no shift), digits 5-9 (new classes, same pixels) and MNIST-1D zero-padded
to 64 inputs (a new input distribution). Each seed is a unit of dgnn's study engine (dgnn.study.transfer). Writes
results.csv / results.json (per target x seed: accuracy, final widths, neurons pruned and grown per layer, MACs for
DYNO and static fine-tuning) and history.h5.
"""
from __future__ import annotations

from common import load_study, study_args
from dgnn.study.config import TransferStudy
from dgnn.study.transfer import check, transfer_study


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/dyno_transfer.yaml", "outputs/dyno_transfer", argv, workers=True)
    study = load_study(args.config, TransferStudy, check)
    if study is None:
        return 2
    res = args.guard(lambda: transfer_study(study, args.out, storage=args.storage, name=args.study, workers=args.workers,
                                            overwrite=args.overwrite, progress=not args.quiet, should_stop=args.stop))
    return 2 if res is None else args.exit_code(res[1])


if __name__ == "__main__":
    raise SystemExit(main())
