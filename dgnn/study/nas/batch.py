"""`batch: K` in a search: the strategy asks K trials at a time (Optuna ask and tell on the same storage), the
candidates of one shape train as one batch (dgnn.learn.batched) and the rest alone, and each trial is measured,
recorded and told exactly as a one-by-one trial is. Every asked trial keeps a heartbeat until it is told, so a
killed worker's trials are run again; the budget is checked, and a stop flag obeyed, between batches."""
from __future__ import annotations

import warnings

import optuna
from optuna.trial import TrialState

from ..engine import Beats, UnitFailed
from .evaluate import evaluate_groups


def optimize_batched(study: optuna.Study, storage, objective, stop, heartbeat, catch: tuple, bar=None) -> None:
    """Batches of up to cfg.batch trials until the budget (stop: run.BudgetStop) is spent or its flag is set.
    objective: run.Objective (prepare, finish, fail); catch: its failure exceptions, recorded and passed over."""
    while not stop.done(study) and not (stop.should_stop is not None and stop.should_stop()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # queues a dead worker's trials; ask() takes those first
        n = min(objective.cfg.batch, _room(study, stop))
        if n <= 0:
            return  # the rest of the budget is running elsewhere (run.retry_stale waits for it)
        told = run_batch(study, storage, objective, ask(study, n), heartbeat, catch)
        if bar is not None:
            bar.update(told)


def ask(study: optuna.Study, n: int) -> list:
    """n new trials (the queued retries of a dead worker's trials first)."""
    with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for optimize(): Beats keeps them
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        return [study.ask() for _ in range(n)]


def _room(study, stop) -> int:
    """Trials the budget still has room for, counting those running (in other workers) as spent."""
    done, _ = stop.spent(study)
    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    return stop.budget.trials - done - running


def run_batch(study, storage, objective, trials: list, heartbeat, catch: tuple) -> int:
    """Prepare, train (grouped by shape), record and tell these asked trials; the number told."""
    told = 0
    with Beats(storage, [t._trial_id for t in trials], heartbeat.interval) as beats:
        def tell(trial, values=None) -> None:
            nonlocal told
            state = TrialState.COMPLETE if values is not None else TrialState.FAIL
            study.tell(trial, values, state=state, skip_if_finished=True)
            beats.drop(trial._trial_id)
            told += 1

        pending = list(trials)
        try:
            prepared = []
            for trial in trials:
                try:
                    prepared.append((trial, *objective.prepare(trial)))
                except catch:
                    pending.remove(trial)
                    tell(trial)
            for i, result in evaluate_groups([record for _, record, _ in prepared]):
                trial, _, folder = prepared[i]
                pending.remove(trial)
                try:
                    _finish(objective, trial, folder, result, catch, tell)
                finally:
                    beats.drop(trial._trial_id)
        except BaseException:
            for trial in pending:  # as study.optimize does with an exception it does not catch
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
    return told


def _finish(objective, trial, folder, result, catch, tell) -> None:
    """Record and tell one trained trial as run.Objective does; a trial judged stale meanwhile (and queued again
    elsewhere) is left to its copy."""
    try:
        if isinstance(result, UnitFailed):
            try:
                objective.fail(trial, str(result))
            except catch:
                tell(trial)
                return
        tell(trial, objective.finish(trial, folder, *result))
    except optuna.exceptions.UpdateFinishedTrialError:
        return
