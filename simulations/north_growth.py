"""NORTH* growth at reduced scale (seed 001 section 6.3): final widths against the number of independent features
of the toy task (Figure 28), and NORTH-Select on digits against static nets of its final and maximum widths,
with and without an energy budget.

    python simulations/north_growth.py [--config configs/north_growth.yaml] [--out outputs/north_growth] [--quiet]

Writes results.csv / results.json (toy rows: strategy x depth x n_f x seed with the final widths; digits rows:
grown, gated, static-final and static-max nets with accuracy and neurons) and history.h5 (every run's history).
"""
from __future__ import annotations


import h5py
from common import load_study, study_args, write_table
from dgnn.learn.config import DatasetConfig
from dgnn.learn.data import load_dataset
from dgnn.search import Budget, make_strategy
from dgnn.search.config import GrowthStudy
from dgnn.search.strategy import write_history


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/north_growth.yaml", "outputs/north_growth", argv)
    def check(study):
        study.build()
        if study.digits is not None:
            make_strategy(study.digits.strategy, **study.digits.options)
            if study.digits.gate is not None:
                make_strategy(study.digits.strategy, **study.digits.options, gate=study.digits.gate)

    study = load_study(args.config, GrowthStudy, check)
    if study is None:
        return 2
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    rows = []
    with h5py.File(args.out / "history.h5", "w") as h5:
        for label, entry in study.strategies.items():
            for depth in study.toy.depths:
                for n_f in study.toy.features:
                    for seed in range(study.seeds):
                        data = load_dataset(DatasetConfig(name="north_toy", features=n_f), seed)
                        opts = {"hidden": [4] * depth, **entry.options}
                        res = make_strategy(entry.strategy or label, **opts).fit(data, Budget(steps=study.toy.steps), seed)
                        write_history(res, h5.create_group(f"toy/{label}/depth{depth}/nf{n_f}/seed{seed}"))
                        widths = res.history["widths"][-1].tolist()
                        rows.append({"part": "toy", "strategy": label, "depth": depth, "n_f": n_f, "seed": seed,
                                     "widths": " ".join(map(str, widths)), "neurons": sum(widths),
                                     "accuracy": res.metrics["accuracy"], "seconds": res.metrics["train_seconds"]})
                        say(f"toy {label} depth {depth} n_f {n_f:2d} seed {seed}: widths {widths} "
                            f"accuracy {res.metrics['accuracy']:.3f}")
        d = study.digits
        if d is not None:
            for seed in range(d.seeds):
                data = load_dataset(DatasetConfig(name="digits"), seed)
                runs = {"grown": make_strategy(d.strategy, **d.options)}
                if d.gate is not None:
                    runs["gated"] = make_strategy(d.strategy, **d.options, gate=d.gate)
                results = {}
                for name, strat in runs.items():
                    results[name] = strat.fit(data, Budget(steps=d.steps), seed, progress=not args.quiet)
                final = results["grown"].history["widths"][-1].tolist()
                top = results["grown"].history["widths"].shape[1] * [runs["grown"].max_width]
                lr, batch = runs["grown"].lr, runs["grown"].batch
                for name, widths in (("static_final", final), ("static_max", top)):
                    results[name] = make_strategy("static_mlp", hidden=widths, lr=lr, batch=batch).fit(
                        data, Budget(steps=d.steps), seed)
                for name, res in results.items():
                    write_history(res, h5.create_group(f"digits/{name}/seed{seed}"))
                    widths = res.history["widths"][-1].tolist()
                    rows.append({"part": "digits", "strategy": name, "depth": len(widths), "n_f": "", "seed": seed,
                                 "widths": " ".join(map(str, widths)), "neurons": sum(widths),
                                 "accuracy": res.metrics["accuracy"], "seconds": res.metrics["train_seconds"]})
                    say(f"digits {name:12s} seed {seed}: widths {widths} accuracy {res.metrics['accuracy']:.3f} "
                        f"({res.metrics['train_seconds']:.0f} s)")
    write_table(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
