"""The study engine: Optuna's storage as the one ledger and work queue of every multi-run command.

A command plans its units of work (a sweep's batch, a comparison's run, a study's fit), each with fixed parameters,
and enqueues them as WAITING trials of an Optuna study. Workers pop waiting trials (a trial runs in one worker: the
storage's state change is atomic), run them under a heartbeat and store each unit's result row in its trial.
Finished units are never run again, so running the same command again resumes it; a unit whose worker died goes
stale and is queued again, so every unit ends up exactly once in the summary.
"""
from __future__ import annotations

import json
import multiprocessing
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState

from ..errors import ConfigError
from ..progress import Progress
from .storage import Heartbeat, HeartbeatJournalStorage, open_storage, worker_name

KIND, CONFIG, UNIT, ROW, WORKER, REASON = "dgnn:kind", "dgnn:config", "dgnn:unit", "dgnn:row", "dgnn:worker", "dgnn:reason"
DUPLICATE = "dgnn:duplicate_of"
LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)  # a unit in one of these needs no new trial

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Unit:
    """One unit of work: a key unique in its study, and fixed parameters (scalars) shown as the trial's params."""

    key: str
    params: dict


class UnitFailed(Exception):
    """A unit that failed for a reason of its own (a diverging run, a non-finite loss): recorded, the study goes on."""


class Interrupted(Exception):
    """The unit stopped on SIGINT/SIGTERM; it is queued again when the command runs again."""


class Job(Protocol):
    """What a command hands the engine; picklable, so that local worker processes can run it too. A job may also
    define exhausted(queue) -> bool: no more units are started once it is true (a budget spent)."""

    def run(self, unit: Unit, should_stop: Callable[[], bool] | None) -> dict: ...  # the unit's JSON result row


def plain(x):
    """numpy scalars and arrays as JSON values (ints stay ints), for json.dumps(default=plain)."""
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def jsonable(row: dict) -> dict:
    """The row exactly as the storage will give it back."""
    return json.loads(json.dumps(row, default=plain))


def config_diff(old, new, prefix: str = "") -> list[str]:
    """Dotted key paths where two JSON-like configs differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in dict.fromkeys([*old, *new]):
            out += config_diff(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [k for i, (a, b) in enumerate(zip(old, new)) for k in config_diff(a, b, f"{prefix}.{i}" if prefix else str(i))]
    return [] if old == new else [prefix or "(whole config)"]


class WorkQueue:
    """An Optuna study used as a work queue of Units; `open` makes or checks it, `work` runs units until none is left."""

    def __init__(self, url: str, name: str, heartbeat: Heartbeat = Heartbeat()):
        self.url, self.name, self.heartbeat = url, name, heartbeat
        self.storage = open_storage(url, heartbeat)
        self.study = optuna.load_study(study_name=name, storage=self.storage)
        self.study_id = self.storage.get_study_id_from_name(name)

    @classmethod
    def open(cls, url: str, name: str, kind: str, config: dict, units: list[Unit], *, extendable: tuple = (),
             overwrite: bool = False, heartbeat: Heartbeat = Heartbeat()) -> "WorkQueue":
        """Make the study `name` for these units, or continue it: the stored kind and config must match (keys in
        `extendable` may change, e.g. more seeds), units not yet finished or queued are queued."""
        storage = open_storage(url, heartbeat)
        if overwrite and name in optuna.get_all_study_names(storage):
            optuna.delete_study(study_name=name, storage=storage)
        try:
            study = optuna.create_study(study_name=name, storage=storage, directions=["minimize"])
            study.set_user_attr(KIND, kind)
            study.set_user_attr(CONFIG, json.dumps(config, sort_keys=True))
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage)
            check_same(study, name, kind, config, extendable)
        queue = cls.__new__(cls)
        queue.url, queue.name, queue.heartbeat, queue.storage, queue.study = url, name, heartbeat, storage, study
        queue.study_id = storage.get_study_id_from_name(name)
        queue.enqueue(units)
        return queue

    def stored_config(self) -> dict:
        return json.loads(self.study.user_attrs[CONFIG])

    def enqueue(self, units: list[Unit]) -> int:
        """Queue every unit that has no waiting, running or finished trial; returns how many were queued."""
        live = {t.user_attrs.get(UNIT) for t in self.study.get_trials(deepcopy=False, states=LIVE)}
        todo = [u for u in units if u.key not in live]
        for u in todo:  # the parameters also as user attributes: what the dashboard shows of a unit
            self.study.enqueue_trial(u.params, user_attrs={**u.params, UNIT: u.key})
        return len(todo)

    # ------------------------------------------------------------------------------------------------- working
    def work(self, job: Job, should_stop: Callable[[], bool] | None = None, bar: Progress | None = None) -> int:
        """Run waiting units until none is left and none runs elsewhere (those finish or go stale); returns the
        number run here."""
        ran = 0
        exhausted = getattr(job, "exhausted", None)
        while not (should_stop is not None and should_stop()) and not (exhausted is not None and exhausted(self)):
            with warnings.catch_warnings():  # Optuna marks heartbeats experimental; dgnn relies on them on purpose
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(self.study)  # a dead worker's unit: failed and queued again (heartbeat)
            trial = self._pop()
            if trial is None:
                if not self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    break
                time.sleep(min(1.0, self.heartbeat.interval))  # units running elsewhere: wait for them or their staleness
                continue
            if self._run(trial, job, should_stop):
                ran += 1
                if bar is not None:
                    bar.update(1)
        return ran

    def _pop(self):
        """A waiting trial, now running here (a FrozenTrial of before the pop); a duplicate of a live unit (two
        processes queued it) is pruned. One read of the queue, one write per pop."""
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False, states=LIVE)
        live = {}
        for t in trials:
            if t.state != TrialState.WAITING:
                live.setdefault(t.user_attrs.get(UNIT), t.number)
        for t in trials:
            if t.state != TrialState.WAITING:
                continue
            try:
                if not self.storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            key = t.user_attrs.get(UNIT)
            if key in live:
                self.storage.set_trial_user_attr(t._trial_id, DUPLICATE, live[key])
                self.storage.set_trial_state_values(t._trial_id, state=TrialState.PRUNED)
                continue
            return t
        return None

    def _run(self, trial, job: Job, should_stop) -> bool:
        """Run one popped trial's unit under a heartbeat; True when it completed."""
        tid = trial._trial_id
        self.storage.set_trial_system_attr(tid, WORKER, worker_name())
        unit = Unit(trial.user_attrs[UNIT], trial.system_attrs.get("fixed_params", {}))
        t0 = time.perf_counter()
        try:
            with Beats(self.storage, [tid], self.heartbeat.interval):
                row = job.run(unit, should_stop)
        except Interrupted as exc:
            return self._tell(tid, TrialState.FAIL, reason=f"interrupted: {exc}")
        except UnitFailed as exc:
            return self._tell(tid, TrialState.FAIL, reason=str(exc))
        except BaseException as exc:
            self._tell(tid, TrialState.FAIL, reason=f"{type(exc).__name__}: {exc}")
            raise
        return self._tell(tid, TrialState.COMPLETE, row=row, seconds=time.perf_counter() - t0)

    def _tell(self, tid: int, state, row: dict | None = None, seconds: float = 0.0, reason: str = "") -> bool:
        try:
            if row is not None:
                self.storage.set_trial_user_attr(tid, ROW, jsonable(row))
            if reason:
                self.storage.set_trial_user_attr(tid, REASON, reason)
            self.storage.set_trial_state_values(tid, state, [seconds] if state == TrialState.COMPLETE else None)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False  # judged stale meanwhile and queued again elsewhere: that copy counts, not this one
        return state == TrialState.COMPLETE

    # ------------------------------------------------------------------------------------------------- reading
    def rows(self) -> dict[str, dict]:
        """The result row of every finished unit, by key (the first finished trial of a unit wins)."""
        out: dict[str, dict] = {}
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            out.setdefault(t.user_attrs[UNIT], t.user_attrs[ROW])
        return out

    def failures(self) -> dict[str, str]:
        """Units whose latest trial failed and that have no finished trial: key -> reason."""
        done = set(self.rows())
        out = {}
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            key = t.user_attrs.get(UNIT)
            if key not in done:
                out[key] = t.user_attrs.get(REASON, "worker died (heartbeat stale)")
        return out

    def counts(self) -> dict[str, int]:
        return count_states(self.study)


def count_states(study) -> dict[str, int]:
    """Trials per state, by lower-case state name (waiting, running, complete, fail, pruned)."""
    out = {s.name.lower(): 0 for s in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.FAIL,
                                       TrialState.PRUNED)}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
    return out


def check_same(study, name: str, kind: str, config: dict, extendable: tuple) -> None:
    stored_kind = study.user_attrs.get(KIND)
    if stored_kind != kind:
        raise ConfigError(f"study {name!r} is a {stored_kind or 'non-dgnn'} study, not a {kind}; choose another study "
                          f"name (study=...) or start over with overwrite=True")
    old = json.loads(study.user_attrs[CONFIG])
    diff = [k for k in config_diff(old, config) if k.split(".")[0] not in extendable]
    if diff:
        raise ConfigError(f"study {name!r} holds units of another config: {diff[0]} differs"
                          + (f" (and {len(diff) - 1} more)" if len(diff) > 1 else "")
                          + "; run the stored config, choose another study name (study=...) or start over with overwrite=True")
    if old != config:  # only extendable keys changed: the study now holds the extended config
        study.set_user_attr(CONFIG, json.dumps(config, sort_keys=True))


class Beats:
    """The heartbeats of running trials (a unit, or a batch of search trials): a daemon thread recording each live
    trial every `interval` seconds."""

    def __init__(self, storage, trial_ids: list[int], interval: float):
        self.storage, self.interval = storage, interval
        self.live, self.lock = set(trial_ids), threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def drop(self, trial_id: int) -> None:
        """A told trial needs no more beats."""
        with self.lock:
            self.live.discard(trial_id)

    def _beat(self) -> None:
        # the journal storage counts a trial's start as its first beat, so short units cost no write there; an RDB
        # storage only sees trials with a heartbeat row, so its first beat is at once
        if not isinstance(self.storage, HeartbeatJournalStorage):
            self._record()
        while not self.stop.wait(self.interval):
            self._record()

    def _record(self) -> None:
        with self.lock:
            live = sorted(self.live)
        for tid in live:
            try:
                self.storage.record_heartbeat(tid)
            except Exception:  # a storage hiccup must not kill the work; the next beat retries
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


# ----------------------------------------------------------------------------------------------- local workers
def run_workers(queue: WorkQueue, job: Job, workers: int, should_stop=None, progress: bool = True,
                threads: int = 1, desc: str = "") -> int:
    """Run the queue's units with `workers` local processes (one writer per unit's files), or in this process for
    workers = 1; then pick up what a dead worker left. Returns the units run by this command."""
    total = len(queue.study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))) \
        + len(queue.rows())
    bar = Progress(total=total, initial=len(queue.rows()), enabled=progress, unit="unit", desc=desc)
    done0 = len(queue.rows())
    try:
        if workers > 1:
            ctx = multiprocessing.get_context("spawn")
            procs = [ctx.Process(target=_worker, args=(queue.url, queue.name, queue.heartbeat, job, threads), daemon=False)
                     for _ in range(workers)]
            for p in procs:
                p.start()
            seen = done0
            while any(p.is_alive() for p in procs):
                for p in procs:
                    p.join(timeout=0.5)
                now = len(queue.rows())
                bar.update(now - seen)
                seen = now
            bar.update(len(queue.rows()) - seen)
        queue.work(job, should_stop, bar)  # this process too: the only worker, or the one that mops up after a crash
    finally:
        bar.close()
    return len(queue.rows()) - done0


def _worker(url: str, name: str, heartbeat: Heartbeat, job: Job, threads: int) -> None:
    """A worker process: one torch thread by default (the machine's cores are shared), SIGINT ends its unit."""
    import signal

    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *a: stop.set())
    WorkQueue(url, name, heartbeat).work(job, stop.is_set)
