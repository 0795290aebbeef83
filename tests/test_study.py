"""The study engine: Optuna storage as ledger and work queue. Every unit runs once and appears once; a killed
worker's unit is found by its heartbeat and run again; the same command resumes; other configs are refused; local
workers and workers of other processes (PostgreSQL) give the files of one worker."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import optuna
import pytest
from study_jobs import DrawJob, units

from dgnn.errors import ConfigError
from dgnn.study.engine import UNIT, WORKER, WorkQueue, config_diff, run_workers
from dgnn.study.status import status
from dgnn.study.storage import Heartbeat, resolve

FAST = Heartbeat(interval=1, grace=3, retries=3)


def _queue(tmp_path, n=6, name="draws", url=None, **kw):
    return WorkQueue.open(url or resolve(None, tmp_path), name, "test", {"n": n}, units(n), heartbeat=FAST, **kw)


def test_config_diff_names_every_changed_key_path():
    old = {"a": 1, "b": {"c": [1, {"d": 2}], "e": "x"}}
    new = {"a": 1, "b": {"c": [1, {"d": 3}], "e": "y"}, "f": 0}
    assert config_diff(old, new) == ["b.c.1.d", "b.e", "f"]
    assert config_diff(old, old) == []


def test_each_unit_runs_once_and_the_same_call_resumes(tmp_path):
    q = _queue(tmp_path)
    calls = iter(range(100))
    ran = run_workers(q, DrawJob(tmp_path), 1, should_stop=lambda: next(calls) >= 3, progress=False)
    assert ran == 3 and len(q.rows()) == 3
    again = _queue(tmp_path)  # the same command again: only the rest runs
    assert run_workers(again, DrawJob(tmp_path), 1, progress=False) == 3
    rows = again.rows()
    assert sorted(rows) == [f"s{i}" for i in range(6)]
    for i in range(6):
        assert rows[f"s{i}"]["sum"] == float(np.random.default_rng(i).standard_normal(1000).sum())
    assert _queue(tmp_path).enqueue(units(6)) == 0  # nothing left to queue
    assert run_workers(_queue(tmp_path), DrawJob(tmp_path), 1, progress=False) == 0


def test_another_config_is_refused_naming_the_key_and_more_seeds_extend(tmp_path):
    _queue(tmp_path, n=2)
    with pytest.raises(ConfigError, match=r"draws.*n differs.*overwrite=True"):
        _queue(tmp_path, n=3)
    q = WorkQueue.open(resolve(None, tmp_path), "draws", "test", {"n": 3}, units(3), extendable=("n",), heartbeat=FAST)
    assert q.stored_config() == {"n": 3} and len(q.study.trials) == 3
    with pytest.raises(ConfigError, match="is a test study, not a sweep"):
        WorkQueue.open(resolve(None, tmp_path), "draws", "sweep", {"n": 3}, units(3), heartbeat=FAST)
    fresh = _queue(tmp_path, n=4, overwrite=True)
    assert len(fresh.study.trials) == 4


def test_a_failing_unit_is_recorded_and_the_study_goes_on(tmp_path):
    q = _queue(tmp_path, n=4)
    run_workers(q, DrawJob(tmp_path, fail=2), 1, progress=False)
    assert sorted(q.rows()) == ["s0", "s1", "s3"] and q.failures() == {"s2": "seed 2 fails on purpose"}
    assert q.counts()["fail"] == 1 and q.counts()["complete"] == 3


def test_twice_queued_units_run_once(tmp_path):
    """Two processes that queue the same units at once (two machines starting together) leave duplicates; the
    second copy of a unit is pruned when popped, so each unit runs and appears once."""
    q = _queue(tmp_path, n=3)
    for u in units(3):
        q.study.enqueue_trial(u.params, user_attrs={UNIT: u.key})
    run_workers(q, DrawJob(tmp_path), 1, progress=False)
    c = q.counts()
    assert c["complete"] == 3 and c["pruned"] == 3 and len(q.rows()) == 3


def test_local_workers_share_the_queue_and_equal_one_worker(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    q1, q2 = _queue(one, n=8), _queue(two, n=8)
    run_workers(q1, DrawJob(one, seconds=0.2), 1, progress=False)
    run_workers(q2, DrawJob(two, seconds=0.2), 2, progress=False)
    r1, r2 = q1.rows(), q2.rows()
    assert {k: v["sum"] for k, v in r1.items()} == {k: v["sum"] for k, v in r2.items()}
    assert len({v["pid"] for v in r2.values()}) >= 2  # the units were shared out
    for i in range(8):
        assert (one / f"u{i}.npy").read_bytes() == (two / f"u{i}.npy").read_bytes()


def _wait_running(url: str, name: str, pid: int, timeout: float = 120.0) -> None:
    """Until a unit of study `name` runs in process `pid`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            study = optuna.load_study(study_name=name, storage=WorkQueue(url, name, FAST).storage)
            if any(t.system_attrs.get(WORKER, "").endswith(f":{pid}")
                   for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))):
                return
        except (KeyError, optuna.exceptions.StorageInternalError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"no unit started in process {pid} within {timeout} s")


SWEEP = ("name: s\nneurons: {count: 60}\ntopology: {kind: erdos_renyi, p: 0.2}\nsolver: {dt: 0.01, duration: 12.0}\n"
         "record: {every: 0.5}\nsweep: {max_batch: 1}\n")


def _sweep(cfg: Path, out: Path, *extra: str, wait: bool = True):
    cmd = [sys.executable, "-m", "dgnn", "sweep", str(cfg), "--grid", "coupling.strength=0.5,1,1.5,2,2.5,3",
           "--out", str(out), "--quiet", "--heartbeat", "1", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _kill_one_of_two(cfg: Path, out: Path, url: str | None, name: str) -> subprocess.CompletedProcess:
    """Two sweep processes on one study; the first is SIGKILLed mid-unit; the second finishes the study."""
    extra = ["--storage", url, "--study", name] if url else []
    a = _sweep(cfg, out, *extra, wait=False)
    _wait_running(url or resolve(None, out), name, a.pid)
    b = _sweep(cfg, out, *extra, wait=False)
    time.sleep(0.5)
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=30)
    err = b.communicate(timeout=600)[1]
    return subprocess.CompletedProcess(b.args, b.returncode, "", err)


def _same_sweep(ref: Path, out: Path) -> None:
    """Every trace's arrays and the summary table equal the reference's, bit for bit."""
    assert (ref / "summary.csv").read_bytes() == (out / "summary.csv").read_bytes()
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [r["status"] for r in rows] == ["complete"] * 6 and [int(r["point"]) for r in rows] == list(range(6))
    for r in rows:
        with h5py.File(ref / r["trace"]) as x, h5py.File(out / r["trace"]) as y:
            for k in ("time", "metrics/order_parameter", "metrics/mean_phase"):
                assert np.array_equal(x[k][()], y[k][()]), k


def _units_once(url: str, name: str) -> None:
    study = optuna.load_study(study_name=name, storage=WorkQueue(url, name, FAST).storage)
    done = [t.user_attrs[UNIT] for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    assert sorted(done) == [f"b{i:04d}" for i in range(6)]  # each batch finished exactly once
    assert any(t.state == optuna.trial.TrialState.FAIL for t in study.get_trials())  # the killed worker's unit


@pytest.fixture(scope="module")
def reference_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    cfg = root / "s.yaml"
    cfg.write_text(SWEEP)
    run = _sweep(cfg, root / "one")
    assert run.returncode == 0, run.stderr
    return cfg, root / "one"


def test_a_killed_worker_loses_nothing_on_the_embedded_storage(tmp_path, reference_sweep):
    cfg, ref = reference_sweep
    run = _kill_one_of_two(cfg, tmp_path / "two", None, "sweep-s")
    assert run.returncode == 0, run.stderr
    _same_sweep(ref, tmp_path / "two")
    _units_once(resolve(None, tmp_path / "two"), "sweep-s")


def test_postgres_two_workers_one_killed_mid_unit(tmp_path, reference_sweep, postgres_url):
    """The many-machines setup on one machine: two processes on one PostgreSQL study sharing --out."""
    cfg, ref = reference_sweep
    run = _kill_one_of_two(cfg, tmp_path / "pg", postgres_url, "kill-test")
    assert run.returncode == 0, run.stderr
    _same_sweep(ref, tmp_path / "pg")
    _units_once(postgres_url, "kill-test")
    rows = {r["study"]: r for r in status(postgres_url)}
    assert rows["kill-test"]["complete"] == 6 and rows["kill-test"]["kind"] == "sweep"


def test_postgres_four_workers_lose_no_unit(tmp_path, postgres_url):
    """Four processes popping one PostgreSQL queue at once: no unit lost, none run twice (the benchmark
    benchmarks/study_engine.py runs 200)."""
    q = WorkQueue.open(postgres_url, "many", "test", {"n": 40}, units(40), heartbeat=FAST)
    run_workers(q, DrawJob(tmp_path), 4, progress=False)
    c = q.counts()
    assert c["complete"] == 40 and c["fail"] == 0 and c["waiting"] == 0 and c["pruned"] == 0 and len(q.rows()) == 40


def test_study_status_lists_the_units_of_a_run_folder(tmp_path, capsys):
    from dgnn.cli import main

    q = _queue(tmp_path, n=3)
    run_workers(q, DrawJob(tmp_path, fail=1), 1, progress=False)
    assert main(["study", "status", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["study", "kind", "waiting", "running", "complete", "fail", "pruned"]
    assert out[1].split() == ["draws", "test", "0", "0", "2", "1", "0"]
    assert main(["study", "status", str(tmp_path / "nowhere")]) == 2
