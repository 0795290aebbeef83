"""The baselines of a search, on the same (E, I) plane and under the same budget: each is a sibling study of units
(one fit per seed, or per lambda and seed for the MLP lambda sweep) in the search's storage. Every family has
MAC-joules, so baselines are placed by that measure (and by metabolic energy where they have one)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..engine import Unit, UnitFailed, WorkQueue, run_workers
from ..storage import Heartbeat
from .config import SearchConfig
from .evaluate import measure, task_data

LAMBDAS = (0.0, 0.01, 0.1, 0.3, 1.0, 3.0, 10.0)  # seed 002's sweep


def baseline_units(cfg: SearchConfig, label: str) -> list[Unit]:
    """The fits a baseline may run, in order, until the budget is spent: seeds, or lambdas x seeds."""
    b = cfg.baselines[label]
    n = cfg.budget.trials
    if b.strategy == "mlp_lambda":
        lams = b.options.get("lambdas", LAMBDAS)
        return [Unit(f"lambda={lam!r}|seed{s}", {"lambda": float(lam), "seed": s})
                for s in range(max(1, n // len(lams) + (n % len(lams) > 0))) for lam in lams][:n]
    return [Unit(f"seed{s}", {"seed": s}) for s in range(n)]


@dataclass(frozen=True)
class BaselineJob:
    cfg: SearchConfig
    label: str

    def run(self, unit: Unit, should_stop) -> dict:
        import torch

        from ...learn.config import ModelConfig
        from ...learn.models import build_model
        from ...learn.train import train
        from ...search import Budget, make_strategy

        cfg, b = self.cfg, self.cfg.baselines[self.label]
        torch.set_num_threads(cfg.threads)
        data = task_data(cfg.task.model_dump_json(), cfg.seed)
        seed = cfg.seed + unit.params["seed"]
        t0 = time.perf_counter()
        try:
            if b.strategy == "mlp_lambda":
                mcfg = ModelConfig(kind="mlp", hidden=b.options.get("hidden", [64]),
                                   activation=b.options.get("activation", "relu"))
                model = train(build_model(mcfg, data.n_features, data.n_classes, seed), data, cfg.train,
                              unit.params["lambda"], "activation", seed).model
            else:
                model = make_strategy(b.strategy, **b.options).fit(data, Budget(**b.budget), seed).model
        except FloatingPointError as exc:
            raise UnitFailed(str(exc)) from None
        row = measure(model, data, "mac_joules", cfg.energy_table)
        row.update(seconds=time.perf_counter() - t0, **unit.params)
        return row

    def exhausted(self, queue: WorkQueue) -> bool:
        """The search's budget of training seconds is spent by this baseline's finished fits."""
        seconds = self.cfg.budget.seconds
        return bool(seconds) and sum(r["seconds"] for r in queue.rows().values()) >= seconds


def baseline_study(name: str, label: str) -> str:
    return f"{name}/{label}"


def run_baselines(cfg: SearchConfig, url: str, name: str, out: Path, workers: int, heartbeat: Heartbeat,
                  should_stop=None, overwrite: bool = False, progress: bool = False) -> None:
    """Each baseline's fits until its units or the search's seconds budget run out (a progress bar per baseline)."""
    for label, b in cfg.baselines.items():
        if should_stop is not None and should_stop():
            return
        queue = WorkQueue.open(url, baseline_study(name, label), "baseline",
                               {"baseline": b.model_dump(mode="json"), "task": cfg.task.model_dump(mode="json"),
                                "seed": cfg.seed, "train": cfg.train.model_dump(mode="json")},
                               baseline_units(cfg, label), overwrite=overwrite, heartbeat=heartbeat)
        run_workers(queue, BaselineJob(cfg, label), workers, should_stop, progress=progress,
                    desc=f"{name}/{label}")
