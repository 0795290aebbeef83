"""NORTH* growth at reduced scale (simulations/north_growth.py, seed 001 section 6.3): final widths on the toy task
against its number of independent features (Figure 28), and a growing strategy on digits against static nets of
its final and maximum widths, with and without an energy budget. Each toy fit and each digits seed is a unit of
the study engine."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..learn.config import DatasetConfig
from ..learn.data import load_dataset
from .config import GrowthStudy
from .engine import Unit
from .runner import finish_units, run_units, write_unit_history

OWNED = ("history.h5", "results.csv", "results.json")


def check(study: GrowthStudy) -> None:
    """Every strategy's keys (and the digits part's, gated or not) before any run starts."""
    from ..search import make_strategy

    study.build()
    if study.digits is not None:
        make_strategy(study.digits.strategy, **study.digits.options)
        if study.digits.gate is not None:
            make_strategy(study.digits.strategy, **study.digits.options, gate=study.digits.gate)


def plan(study: GrowthStudy) -> list[Unit]:
    units = [Unit(f"toy/{label}/depth{depth}/nf{n_f}/seed{seed}",
                  {"part": "toy", "strategy": label, "depth": depth, "n_f": n_f, "seed": seed})
             for label in study.strategies for depth in study.toy.depths for n_f in study.toy.features
             for seed in range(study.seeds)]
    if study.digits is not None:
        units += [Unit(f"digits/seed{seed}", {"part": "digits", "seed": seed}) for seed in range(study.digits.seeds)]
    return units


@dataclass(frozen=True)
class GrowthJob:
    study: GrowthStudy
    out: Path
    progress: bool = False

    def run(self, unit: Unit, should_stop) -> dict:
        return self._toy(unit) if unit.params["part"] == "toy" else self._digits(unit)

    def _toy(self, unit: Unit) -> dict:
        from ..search import Budget, make_strategy

        p = unit.params
        entry = self.study.strategies[p["strategy"]]
        data = load_dataset(DatasetConfig(name="north_toy", features=p["n_f"]), p["seed"])
        opts = {"hidden": [4] * p["depth"], **entry.options}
        res = make_strategy(entry.strategy or p["strategy"], **opts).fit(data, Budget(steps=self.study.toy.steps), p["seed"])
        write_unit_history(self.out, unit.key, {unit.key: (res.history, res.metrics)})
        widths = res.history["widths"][-1].tolist()
        self._say(f"toy {p['strategy']} depth {p['depth']} n_f {p['n_f']:2d} seed {p['seed']}: widths {widths} "
                  f"accuracy {res.metrics['accuracy']:.3f}")
        return {"rows": [{"part": "toy", "strategy": p["strategy"], "depth": p["depth"], "n_f": p["n_f"], "seed": p["seed"],
                          "widths": " ".join(map(str, widths)), "neurons": sum(widths),
                          "accuracy": res.metrics["accuracy"], "seconds": res.metrics["train_seconds"]}]}

    def _digits(self, unit: Unit) -> dict:
        """The grown (and gated) nets of one seed, then static nets of the grown net's final and maximum widths."""
        from ..search import Budget, make_strategy

        d, seed = self.study.digits, unit.params["seed"]
        data = load_dataset(DatasetConfig(name="digits"), seed)
        runs = {"grown": make_strategy(d.strategy, **d.options)}
        if d.gate is not None:
            runs["gated"] = make_strategy(d.strategy, **d.options, gate=d.gate)
        results = {name: strat.fit(data, Budget(steps=d.steps), seed, progress=self.progress) for name, strat in runs.items()}
        final = results["grown"].history["widths"][-1].tolist()
        top = results["grown"].history["widths"].shape[1] * [runs["grown"].max_width]
        lr, batch = runs["grown"].lr, runs["grown"].batch
        for name, widths in (("static_final", final), ("static_max", top)):
            results[name] = make_strategy("static_mlp", hidden=widths, lr=lr, batch=batch).fit(data, Budget(steps=d.steps), seed)
        write_unit_history(self.out, unit.key, {f"digits/{name}/seed{seed}": (res.history, res.metrics)
                                                for name, res in results.items()})
        rows = []
        for name, res in results.items():
            widths = res.history["widths"][-1].tolist()
            rows.append({"part": "digits", "strategy": name, "depth": len(widths), "n_f": "", "seed": seed,
                         "widths": " ".join(map(str, widths)), "neurons": sum(widths),
                         "accuracy": res.metrics["accuracy"], "seconds": res.metrics["train_seconds"]})
            self._say(f"digits {name:12s} seed {seed}: widths {widths} accuracy {res.metrics['accuracy']:.3f} "
                      f"({res.metrics['train_seconds']:.0f} s)")
        return {"rows": rows}

    def _say(self, line: str) -> None:
        if self.progress:
            print(line, flush=True)


def growth_study(study: GrowthStudy, out: Path, *, storage=None, name=None, workers=1, overwrite=False, progress=True,
                 should_stop=None) -> tuple[list[dict], str]:
    """Run (or continue) the study; write history.h5 and results.csv / results.json; (rows, status)."""
    check(study)
    units = plan(study)
    queue, ran = run_units(out, "growth", study.model_dump(mode="json"), units, GrowthJob(study, out, progress and workers == 1),
                      storage=storage, study=name, workers=workers, overwrite=overwrite, progress=progress,
                      should_stop=should_stop, owned=OWNED, name=f"growth-{out.name}")
    return finish_units(out, units, queue, should_stop)
