"""`dgnn search`: the energy-first architecture search on the study engine's storage. The strategy's trials are
trials of one Optuna study (its sampler proposes, workers train and measure, the storage records); each baseline
runs as units of a sibling study in the same storage, under the same budget; running the command again continues
every study, and workers on other machines join with the same storage and study name."""
from __future__ import annotations

import json
import multiprocessing
import threading
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ...errors import ConfigError
from ..engine import CONFIG, KIND, REASON, ROW, UnitFailed, check_same, jsonable
from ..folders import atomic_write
from ..storage import Heartbeat, open_storage
from .config import SearchConfig
from .batch import ask, optimize_batched, run_batch
from .evaluate import evaluate_records, task_data
from .samplers import make_sampler

OWNED = ("trials", "trials.csv", "pareto.csv", "summary.json", "search.yaml", "figures")
CANDIDATE, SEED, STRATEGY = "dgnn:candidate", "dgnn:seed", "dgnn:strategy"


def directions(cfg: SearchConfig) -> list[str]:
    return ["minimize", "maximize"] if cfg.objectives.use == "energy_information" else ["maximize"]


def _stored(cfg: SearchConfig) -> dict:
    """What the strategy's study is checked against when it is opened again: everything but the budget (which may
    grow) and the baselines (each checked by its own study)."""
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k != "baselines"}


def open_study(cfg: SearchConfig, url: str, name: str, heartbeat: Heartbeat, overwrite: bool = False,
               worker: int = 0, storage=None) -> optuna.Study:
    """The strategy's Optuna study (made, or checked against the stored config), with its sampler (on `storage`,
    an open storage of url, or a new one)."""
    storage = storage if storage is not None else open_storage(url, heartbeat)
    sampler = make_sampler(cfg, worker)
    if overwrite and name in optuna.get_all_study_names(storage):
        optuna.delete_study(study_name=name, storage=storage)
    try:
        study = optuna.create_study(study_name=name, storage=storage, directions=directions(cfg), sampler=sampler)
        study.set_user_attr(KIND, "search")
        study.set_user_attr(CONFIG, json.dumps(_stored(cfg), sort_keys=True))
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        check_same(study, name, "search", _stored(cfg), extendable=("budget", "batch"))
    return study


class Objective:
    """One trial: sample a point, resolve and validate its candidate, train and measure it, record everything."""

    def __init__(self, cfg: SearchConfig, out: Path, strategy: str):
        self.cfg, self.out, self.strategy = cfg, Path(out), strategy
        self.space = cfg.search_space()

    def __call__(self, trial: optuna.Trial):
        record, folder = self.prepare(trial)
        try:
            row, history = evaluate_record(record, folder)
        except UnitFailed as exc:
            return self.fail(trial, str(exc))
        return self.finish(trial, folder, row, history)

    def prepare(self, trial: optuna.Trial) -> tuple[dict, Path]:
        """Sample the trial's point and write its record (candidate.yaml): (record, trial folder); TrialFailed
        when the candidate config rejects the point."""
        import torch

        cfg = self.cfg
        torch.set_num_threads(cfg.threads)
        point = self.space.sample(trial)
        frozen = trial.study.get_trials(deepcopy=False)[trial.number]  # a retried trial keeps the original's seed
        seed = cfg.seed + frozen.system_attrs.get("failed_trial", trial.number)
        trial.set_user_attr(SEED, seed)
        trial.set_user_attr(STRATEGY, self.strategy)
        try:
            candidate = cfg.candidate(point)
        except ConfigError as exc:
            return self.fail(trial, f"rejected by the candidate config: {exc}")
        trial.set_user_attr(CANDIDATE, candidate)
        record = trial_record(cfg, candidate, seed)
        folder = self.out / "trials" / f"{self.strategy}-{trial.number:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "candidate.yaml", config_to_yaml_dict(record))
        return record, folder

    def finish(self, trial: optuna.Trial, folder: Path, row: dict, history: dict):
        """Record a trained trial's history, row and constraints; its objective values."""
        cfg = self.cfg
        if history:  # a free-dynamics trial keeps its trace instead
            write_history(folder / "history.h5", history)
        trial.set_user_attr(ROW, jsonable(row))
        trial.set_user_attr("constraints", constraints(cfg, row))
        return [row["energy"], row["information_bits"]] if len(directions(cfg)) == 2 else row["information_bits"]

    def fail(self, trial, reason: str):
        trial.set_user_attr(REASON, reason)
        raise TrialFailed(reason)


class TrialFailed(Exception):
    """A trial that failed for a reason of its own (recorded; the search goes on)."""


def trial_record(cfg: SearchConfig, candidate: dict, seed: int) -> dict:
    """Everything a trial's result depends on: enough to run it again from this record alone."""
    if "run" in candidate:  # free dynamics: the run config holds its own seed
        candidate = {"run": {**candidate["run"], "seed": seed}}
        return {"candidate": candidate, "seed": seed, "attractor_trials": cfg.attractor_trials}
    return {"candidate": candidate, "seed": seed, "task": cfg.task.model_dump(mode="json") if cfg.task else None,
            "split_seed": cfg.seed, "penalty": cfg.penalty, "energy": cfg.objectives.energy,
            "energy_table": cfg.energy_table.model_dump(mode="json"), "dtype": cfg.dtype}


def evaluate_record(record: dict, folder: Path) -> tuple[dict, dict]:
    """Train and measure the candidate of a trial record (the same numbers whichever process runs it, on CPU);
    a free-dynamics candidate is simulated into `folder`."""
    if "run" in record["candidate"]:
        from .evaluate import evaluate_dynamics

        return evaluate_dynamics(record["candidate"]["run"], folder, record["attractor_trials"])
    if record["candidate"].get("strategy") == "developmental":  # a grown net: the strategy trains it
        from ...energy import EnergyTable
        from .developmental import fit_candidate

        data = task_data(json.dumps(record["task"], sort_keys=True), record["split_seed"])
        return fit_candidate(record["candidate"], data, record["seed"], record["energy"],
                             EnergyTable.model_validate(record["energy_table"]))
    result = evaluate_records([record])[0]
    if isinstance(result, UnitFailed):
        raise result
    return result


def rerun(out: str | Path, trial: str) -> dict:
    """Train trial `trial` (a folder name under out/trials, e.g. tpe-00003) again from its stored record; its row."""
    import yaml

    path = Path(out) / "trials" / trial / "candidate.yaml"
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError:
        raise ConfigError(f"trial {path}: not found") from None
    return evaluate_record(record, path.parent / "rerun")[0]


def config_to_yaml_dict(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=120)


def write_history(path: Path, history: dict) -> None:
    """A trial's per-epoch history (loss, energy, validation accuracy, ...) into its own HDF5 file."""
    import h5py
    import numpy as np

    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as h5:
        for k, v in history.items():
            h5.create_dataset(k, data=np.asarray(v))
    tmp.replace(path)


def constraints(cfg: SearchConfig, row: dict) -> list[float]:
    """Optuna's trial constraints (feasible when every value is <= 0)."""
    c = []
    if cfg.objectives.accuracy_min is not None:
        c.append(cfg.objectives.accuracy_min - row["accuracy"])
    if cfg.objectives.energy_max is not None:
        c.append(row["energy"] - cfg.objectives.energy_max)
    return c


class BudgetStop:
    """Stops the study once its budget is spent: finished trials (complete, or failed for a reason of their own)
    and the training seconds summed over them; or on a stop flag (SIGINT ends after the current trial)."""

    def __init__(self, cfg: SearchConfig, should_stop=None):
        self.budget, self.should_stop = cfg.budget, should_stop

    def spent(self, study) -> tuple[int, float]:
        done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE
                or (t.state == TrialState.FAIL and REASON in t.user_attrs)]
        return len(done), sum(t.user_attrs.get(ROW, {}).get("seconds", 0.0) for t in done)

    def done(self, study) -> bool:
        """No trial is left to start: the finished ones and those running in other workers fill the budget."""
        n, seconds = self.spent(study)
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        return n + running >= self.budget.trials or bool(self.budget.seconds and seconds >= self.budget.seconds)

    def __call__(self, study, trial) -> None:
        if self.done(study) or (self.should_stop is not None and self.should_stop()):
            study.stop()


def optimize(cfg: SearchConfig, url: str, name: str, out: Path, heartbeat: Heartbeat, should_stop=None,
             worker: int = 0, bar=None) -> None:
    """Run trials of the strategy until the budget is spent (this process's share of the workers)."""
    storage = open_storage(url, heartbeat)
    study = open_study(cfg, url, name, heartbeat, worker=worker, storage=storage)
    stop = BudgetStop(cfg, should_stop)
    callbacks = [stop] if bar is None else [stop, lambda s, t: bar.update(1)]
    objective = Objective(cfg, out, cfg.strategy.name)
    if cfg.batch > 1:
        optimize_batched(study, storage, objective, stop, heartbeat, (TrialFailed,), bar)
    elif not stop.done(study):
        study.optimize(objective, callbacks=callbacks, catch=(TrialFailed,), gc_after_trial=False,
                       show_progress_bar=False)
    retry_stale(study, objective, heartbeat, should_stop, storage)


def retry_stale(study, objective, heartbeat: Heartbeat, should_stop=None, storage=None) -> None:
    """Trials still running elsewhere: wait until they finish or go stale (their worker died), then run the
    retries the heartbeat queued, so that a killed worker's trial is run again before the search reports."""
    from optuna.storages import fail_stale_trials

    import warnings

    while not (should_stop is not None and should_stop()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if waiting and objective.cfg.batch > 1 and storage is not None:
            run_batch(study, storage, objective, ask(study, min(len(waiting), objective.cfg.batch)), heartbeat,
                      (TrialFailed,))
            continue
        if waiting:
            study.optimize(objective, n_trials=len(waiting), catch=(TrialFailed,), gc_after_trial=False)
            continue
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            return
        time.sleep(min(1.0, heartbeat.interval))


def _worker(cfg_json: str, url: str, name: str, out: str, heartbeat: Heartbeat, worker: int) -> None:
    import signal

    import torch

    torch.set_flush_denormal(True)
    flag = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *a: flag.set())
    optimize(SearchConfig.model_validate_json(cfg_json), url, name, Path(out), heartbeat, flag.is_set, worker)


def run_strategy(cfg: SearchConfig, url: str, name: str, out: Path, workers: int, heartbeat: Heartbeat,
                 should_stop=None, progress: bool = False) -> None:
    """The strategy's trials with `workers` local processes (each with its own sampler seed), or in this one."""
    from ...progress import Progress

    if workers > 1:
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(cfg.model_dump_json(), url, name, str(out), heartbeat, w))
                 for w in range(1, workers + 1)]
        for p in procs:
            p.start()
        for p in procs:
            while p.is_alive():
                p.join(timeout=0.5)
    if not (should_stop is not None and should_stop()):  # this process too: alone, or after a crashed worker
        bar = Progress(total=cfg.budget.trials, enabled=progress and workers == 1, unit="trial", desc=name)
        try:
            optimize(cfg, url, name, out, heartbeat, should_stop, bar=bar)
        finally:
            bar.close()
