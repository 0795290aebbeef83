"""`dgnn search` as one call: the strategy's trials, then the baselines, then the outputs, all on one storage."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ...config import config_to_yaml
from ...errors import ConfigError
from ..folders import atomic_write, claim_folder
from ..storage import Heartbeat, resolve
from .baselines import run_baselines
from .config import SearchConfig
from .outputs import write_outputs
from .run import OWNED, open_study, run_strategy


@dataclass
class SearchResult:
    out: Path
    study: str
    storage: str
    trials: list[dict]
    summary: dict
    status: str  # complete | interrupted


def search(cfg: SearchConfig, out: str | Path | None = None, *, storage: str | None = None, study: str | None = None,
           workers: int = 1, trials: int | None = None, overwrite: bool = False, progress: bool = True,
           should_stop=None, heartbeat: Heartbeat = Heartbeat()) -> SearchResult:
    """Run (or continue) the search and its baselines; write trials.csv, pareto.csv, summary.json and figures."""
    from ...simulation import default_run_dir

    if trials is not None:
        cfg = cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"trials": trials})})
    if workers < 1:
        raise ConfigError(f"workers: expected >= 1, found {workers}")
    cfg.search_space()  # a bad space fails before anything is written
    out = Path(out) if out is not None else default_run_dir(cfg).with_name(default_run_dir(cfg).name + "-search")
    url, name = resolve(storage, out), study or f"search-{cfg.name}"
    claim_folder(out, overwrite, OWNED, url, name)
    open_study(cfg, url, name, heartbeat, overwrite=overwrite)
    atomic_write(out / "search.yaml", config_to_yaml(cfg))
    t0 = time.perf_counter()
    run_strategy(cfg, url, name, out, workers, heartbeat, should_stop, progress)
    run_baselines(cfg, url, name, out, workers, heartbeat, should_stop, overwrite, progress)
    rows, summary = write_outputs(cfg, url, name, out, heartbeat)
    summary["wall_seconds_this_call"] = time.perf_counter() - t0
    atomic_write(out / "summary.json", json.dumps(summary, indent=2, default=float))
    status = "interrupted" if should_stop is not None and should_stop() else "complete"
    return SearchResult(out, name, url, rows, summary, status)
