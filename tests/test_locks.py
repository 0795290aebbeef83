"""One process per run folder (RunLock), and readers of a live run: real writer processes next to this one."""
import os
import signal
import socket
import time

import h5py
import numpy as np
import pytest

import dgnn
import dgnn.simulation
from dgnn.cli import main
from dgnn.config import config_from_dict, config_to_yaml
from dgnn.locks import LOCK_NAME, RunLock, RunLocked, read_owner
from dgnn.traces import describe, read_trace
from test_faults import BASE, equal, prefix_of

CFG = {**BASE, "solver": {**BASE["solver"], "duration": 3.0}}  # 76 records


class Writer:
    """`dgnn.run(CFG, out)` in a forked process (a real second process, without a second import), paced by
    should_stop at 25 ms per record and flushing every 0.1 s: a few seconds of a live run."""

    def __init__(self, out):
        self.r, w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.r)
            try:
                dgnn.simulation.FLUSH_SECONDS = 0.1
                res = dgnn.run(config_from_dict(CFG), out, progress=False,
                               should_stop=lambda: time.sleep(0.025) or False)
                os.write(w, f"{res.status} {res.records}".encode())
            finally:
                os._exit(0)
        os.close(w)
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def result(self) -> list[str]:
        with os.fdopen(self.r) as fh:
            text = fh.read()
        if self.poll() is None:
            os.waitpid(self.pid, 0)
        return text.split()

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)
        self.result()


def _until(cond, proc, timeout=120.0):
    end = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, "the writer ended early"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    return read_trace(dgnn.run(config_from_dict(CFG), tmp_path_factory.mktemp("whole") / "r", progress=False).path)


def test_a_second_process_cannot_write_a_run_folder_in_use(tmp_path, whole, capsys):
    """`run --overwrite` and `run --resume` into a folder another process is writing exit 2 with one line naming
    the owner (pid, host, since when); the owner finishes undisturbed; once it exits the folder is free."""
    out = tmp_path / "r"
    (tmp_path / "c.yaml").write_text(config_to_yaml(config_from_dict(CFG)))
    writer = Writer(out)
    _until(lambda: (out / "trace.h5").exists() and read_owner(out) is not None, writer)
    owner = read_owner(out)
    assert owner.pid == writer.pid and owner.host == socket.gethostname() and owner.alive()
    for argv in (["run", str(tmp_path / "c.yaml"), "--out", str(out), "--overwrite", "--quiet", "--no-plots"],
                 ["run", "--resume", str(out), "--quiet", "--no-plots"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"in use by pid {writer.pid} on {owner.host} since {owner.since}" in err
    with pytest.raises(RunLocked) as info:
        dgnn.run(config_from_dict(CFG), out, overwrite=True, progress=False)
    assert info.value.owner == owner
    assert writer.poll() is None, "the writer finished before the checks: make the run longer"
    assert writer.result() == ["complete", str(whole.time.size)]
    equal(read_trace(out), whole)  # nothing was truncated or replaced
    assert not (out / LOCK_NAME).exists()
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(out), "--overwrite", "--quiet", "--no-plots"]) == 0


def test_readers_of_a_live_run_get_its_flushed_records(tmp_path, whole, capsys):
    """While a run writes, dgnn.read_trace, describe, `dgnn info` and plain h5py all read its last flush (whole
    records, equal to the finished run's); a reader that keeps the file open keeps an unchanged snapshot; the
    writer is not disturbed and its trace equals an unobserved run."""
    out = tmp_path / "r"
    writer = Writer(out)
    seen, held, first = [], None, None
    _until(lambda: (out / "trace.h5").exists(), writer)
    while writer.poll() is None:
        tr = read_trace(out)
        prefix_of(tr, whole)
        seen.append(tr.time.size)
        with h5py.File(out / "trace.h5", "r") as h5:  # plain h5py, default file locking
            t = h5["time"][:]
            assert np.array_equal(t, whole.time[:t.size]) and h5["neurons/phase"].shape[0] == t.size
        assert describe(out)["records"] >= tr.time.size
        assert main(["info", str(out)]) == 0
        text = capsys.readouterr().out
        assert "status: running" not in text or f"in progress: written by pid {writer.pid}" in text
        if held is None:
            held = h5py.File(out / "trace.h5", "r")
            first = held["neurons/phase"][:]
        time.sleep(0.05)
    assert writer.result() == ["complete", str(whole.time.size)]
    assert len(set(seen)) >= 3, seen  # several flushes observed while running
    assert np.array_equal(held["neurons/phase"][:], first)  # the inode a reader holds is never rewritten
    held.close()
    equal(read_trace(out), whole)


def test_info_says_when_no_process_owns_a_running_trace(tmp_path, whole, capsys):
    """A run killed mid-way leaves status running; `dgnn info` says nobody writes it and how to continue."""
    out = tmp_path / "r"
    writer = Writer(out)
    _until(lambda: (out / "trace.h5").exists() and describe(out)["records"] >= 3, writer)
    writer.kill()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "status: running" in text and "no process owns this run" in text and f"dgnn run --resume {out}" in text


def _hold(folder, r, w):
    """In a forked child: take the lock, report, then wait until killed."""
    os.close(r)
    RunLock(folder).acquire()
    os.write(w, b"1")
    time.sleep(60)


def _fork(fn, *args):
    pid = os.fork()
    if pid == 0:
        try:
            fn(*args)
        finally:
            os._exit(0)
    return pid


def test_a_lock_dies_with_its_owner_and_a_stale_lock_file_blocks_nobody(tmp_path):
    r, w = os.pipe()
    pid = _fork(_hold, tmp_path, r, w)
    os.close(w)
    assert os.read(r, 1) == b"1"
    with pytest.raises(RunLocked, match=f"in use by pid {pid} on "):
        RunLock(tmp_path).acquire()
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert read_owner(tmp_path).pid == pid and read_owner(tmp_path).alive() is False  # the file stays, stale
    with RunLock(tmp_path) as lock:
        assert lock.held and read_owner(tmp_path).pid == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_forked_child_does_not_keep_its_parents_lock(tmp_path):
    lock = RunLock(tmp_path).acquire()
    pid = _fork(time.sleep, 30)
    lock.release()  # the child is still alive, holding a copy of every fd but this lock's
    try:
        with RunLock(tmp_path):
            pass
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_one_process_cannot_take_a_folder_twice(tmp_path):
    with RunLock(tmp_path, name="out"):
        with pytest.raises(RunLocked, match=f"^out {tmp_path}: in use by pid {os.getpid()} on "):
            RunLock(tmp_path, name="out").acquire()
