"""Nothing is lost: a kill at any instant, a full disk or a file size limit leave a trace that opens with whole
records and resumes bit for bit to the uninterrupted run."""
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dgnn
import dgnn.simulation
import fsrec
from dgnn.config import config_from_dict, config_to_yaml
from dgnn.errors import ConfigError
from dgnn.traces import read_trace

BASE = {
    "name": "f", "replicas": 2, "seed": 7,
    "neurons": {"count": 12, "frequency": {"distribution": "normal", "center": 1.0, "width": 0.2}},
    "glia": {"ratio": 0.25, "coupling_to_neurons": 0.5, "coupling_from_neurons": 0.5, "coupling": 0.2},
    "topology": {"kind": "modular", "modules": 2, "p_in": 0.6, "p_out": 0.1},
    "coupling": {"strength": 1.5, "b": 0.1}, "noise": {"neurons": 0.3, "glia": 0.1},
    "solver": {"method": "euler_maruyama", "dt": 0.02, "duration": 0.4}, "record": {"every": 0.04},
}

# `dgnn ARGS` flushing after every record (FLUSH_SECONDS = 0)
DGNN = """
import sys
import dgnn.simulation
from dgnn.cli import main
dgnn.simulation.FLUSH_SECONDS = 0.0
sys.exit(main(sys.argv[1:]))
"""


def data(**over):
    return {**BASE, **over}


def prefix_of(tr, whole) -> None:
    """tr holds whole records only, each equal to the uninterrupted run's, and a checkpoint right after them."""
    n = tr.time.size
    assert 1 <= n <= whole.time.size
    assert np.array_equal(tr.time, whole.time[:n])
    assert np.array_equal(tr.neuron_phase, whole.neuron_phase[:n])
    assert np.array_equal(tr.glia_phase, whole.glia_phase[:n])
    assert tr.metrics.keys() == whole.metrics.keys()
    for k, v in tr.metrics.items():
        assert np.array_equal(v, whole.metrics[k][:n]), k
    assert int(tr.checkpoint["record"]) == n - 1


def equal(tr, whole) -> None:
    assert tr.status == "complete" and tr.time.size == whole.time.size
    prefix_of(tr, whole)


@pytest.fixture(scope="module")
def recorder(tmp_path_factory):
    so = fsrec.build(tmp_path_factory.mktemp("fsrec"))
    if so is None:
        pytest.skip("the write recorder needs a C compiler on Linux")
    return so


def _dgnn_run(recorder, cfg_file: Path, out: Path, **env) -> subprocess.CompletedProcess:
    """`dgnn run` (flushing after every record) into `out` under the recorder; env: FSREC_LOG, FSREC_ENOSPC_AT."""
    env = {**os.environ, "LD_PRELOAD": str(recorder), "FSREC_MATCH": str(out), **env}
    return subprocess.run([sys.executable, "-c", DGNN, "run", str(cfg_file), "--out", str(out), "--quiet",
                           "--no-plots"], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def recorded(recorder, tmp_path_factory):
    """One recorded run of BASE: (its folder, the operations, the uninterrupted trace)."""
    tmp = tmp_path_factory.mktemp("recorded")
    whole = read_trace(dgnn.run(config_from_dict(BASE), tmp / "whole", progress=False).path)
    r = _dgnn_run(recorder, _yaml(tmp, BASE), tmp / "run", FSREC_LOG=str(tmp / "ops.log"))
    assert r.returncode == 0, r.stderr
    return tmp / "run", fsrec.read_log(tmp / "ops.log"), whole


def test_a_kill_at_any_write_leaves_a_whole_trace_that_resumes_bit_for_bit(tmp_path, recorded):
    """Replays every state a SIGKILL can leave (each prefix of the run's file-system operations, big writes also cut
    at a page): trace.h5 is absent only before the first record, else it opens with whole records, and resuming
    from each distinct state gives the uninterrupted trace."""
    out, ops, whole = recorded
    assert sum(op.kind == "X" for op in ops) >= whole.time.size - 2  # one atomic swap per flush
    read, resumed, states = {}, {}, 0  # trace digest -> status; crash state -> resumed
    for k, cut, fs in fsrec.crash_states(ops):
        states += 1
        ino = fs.names.get(str(out / "trace.h5"))
        trace = bytes(fs.inodes[ino]) if ino is not None else None
        digest = hashlib.sha1(trace).hexdigest() if trace is not None else None
        key = (digest, frozenset(Path(n).name for n in fs.names))
        if key in resumed:
            continue
        folder = tmp_path / f"state{len(resumed)}"
        folder.mkdir()
        fs.write_to(out, folder)
        if trace is None:
            assert sum(op.kind in "XR" and op.b.endswith("/trace.h5") for op in ops[:k]) == 0
        elif digest not in read:
            tr = read_trace(folder)
            assert tr.status in ("running", "complete")
            prefix_of(tr, whole)
            read[digest] = tr.status
        if trace is None and not (folder / "config.yaml").exists():
            with pytest.raises(ConfigError, match="no trace.h5 there"):  # killed before anything was written
                dgnn.resume(folder, progress=False)
        elif trace is not None and read[digest] == "complete":
            with pytest.raises(ConfigError, match="already complete"):
                dgnn.resume(folder, progress=False)
        else:
            assert dgnn.resume(folder, progress=False).status == "complete"
            equal(read_trace(folder), whole)
        resumed[key] = True
        shutil.rmtree(folder)
    assert len(read) >= whole.time.size  # every flush published a distinct, readable trace
    assert states > len(ops)  # some writes were also cut at a page


def _spawn(fn):
    """Run fn() in a forked child (dgnn already imported here) that exits without cleanup; returns its pid."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn()
        except BaseException:
            code = 1
        os._exit(code)
    return pid


def test_sigkill_at_random_moments_never_loses_the_run(tmp_path, monkeypatch):
    """Real SIGKILLs at spread-out moments of a run that flushes after every record (so most land inside a
    flush): each time the trace opens with whole records (or does not exist yet) and resumes to the
    uninterrupted result."""
    cfg = config_from_dict(data(solver={**BASE["solver"], "duration": 1.2}))
    with monkeypatch.context() as m:
        m.setattr(dgnn.simulation, "FLUSH_SECONDS", 0.0)
        t0 = time.perf_counter()
        whole = read_trace(dgnn.run(cfg, tmp_path / "whole", progress=False).path)
        span = time.perf_counter() - t0
    rng = np.random.default_rng(5)
    statuses = []

    def flushing_run(out):
        dgnn.simulation.FLUSH_SECONDS = 0.0  # in the child only
        dgnn.run(cfg, out, progress=False)

    for i, delay in enumerate(np.sort(rng.uniform(0.0, span, 10))):
        out = tmp_path / f"k{i}"
        pid = _spawn(lambda: flushing_run(out))
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if (out / "trace.h5").exists():
            tr = read_trace(out)
            prefix_of(tr, whole)
            statuses.append(tr.status)
        if statuses and statuses[-1] == "complete":
            continue
        if (out / "config.yaml").exists() or (out / "trace.h5").exists():
            assert dgnn.resume(out, progress=False).status == "complete"
            equal(read_trace(out), whole)
    assert statuses.count("running") >= 5  # most kills landed mid-run


def _limited_run(cfg, out, limit: int) -> dict:
    """dgnn.run, flushing after every record, in a child whose files may not grow past `limit` bytes
    (RLIMIT_FSIZE: writes fail with EFBIG, as on a full disk); returns its RunResult as a dict, or its error."""
    r, w = os.pipe()

    def child():
        os.close(r)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        dgnn.simulation.FLUSH_SECONDS = 0.0
        try:
            res = dgnn.run(cfg, out, progress=False)
            msg = {"status": res.status, "records": res.records, "message": res.message}
        except dgnn.SimulationFailed as exc:
            msg = {"status": "raised", "message": str(exc)}
        os.write(w, json.dumps(msg).encode())

    pid = _spawn(child)
    os.close(w)
    with os.fdopen(r) as fh:
        text = fh.read()
    os.waitpid(pid, 0)
    return json.loads(text)


def test_a_write_that_fails_midway_leaves_a_failed_trace_that_resumes(tmp_path):
    """A file size limit makes writes fail inside a flush, at a different flush for each limit: the run fails with
    one message naming the limit, the disk and the trace; the trace says failed and holds only whole records
    (or, failing at the first record, does not exist); resuming without the limit gives the uninterrupted trace."""
    big = {"neurons": {"count": 128}, "replicas": 4, "dtype": "float64"}  # 4 KiB a record
    cfg = config_from_dict(data(**big, solver={**BASE["solver"], "duration": 2.0}))
    whole_res = dgnn.run(cfg, tmp_path / "whole", progress=False)
    whole = read_trace(whole_res.path)
    first = dgnn.run(config_from_dict(data(**big, solver={**BASE["solver"], "duration": 0.04})), tmp_path / "first",
                     progress=False).path.stat().st_size
    last = whole_res.path.stat().st_size
    kept = []
    for i, frac in enumerate((0.0, 0.5, 0.7, 0.9, 1.1)):
        out = tmp_path / f"lim{i}"
        res = _limited_run(cfg, out, int(first + frac * (last - first)))
        assert "file size limit reached" in res["message"] and str(out / "trace.h5") in res["message"]
        assert "\n" not in res["message"]
        if res["status"] == "raised":  # the first record did not fit: no trace, the run starts again
            assert not (out / "trace.h5").exists()
        else:
            assert res["status"] == "failed", res
            tr = read_trace(out)
            if tr.status != "failed":  # no room even for the status: the trace is left as last published
                assert tr.status == "running" and "it still says running" in res["message"]
            else:
                assert tr.attrs["message"] == res["message"]
            prefix_of(tr, whole)
            assert tr.time.size == res["records"]
            kept.append(res["records"])
        assert dgnn.resume(out, progress=False).status == "complete"
        equal(read_trace(out), whole)
    assert len(set(kept)) >= 2 and max(kept) < whole.time.size


@pytest.fixture
def tmpfs(tmp_path):
    """A folder for a small tmpfs in a private mount namespace (skips where unprivileged mounts are not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            f"mount -t tmpfs -o size=512k tmpfs {disk}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("mounting a tmpfs needs unshare and unprivileged user namespaces")
    return disk


def test_a_full_disk_fails_the_run_with_one_line_and_resume_completes_it(tmp_path, tmpfs):
    """A real ENOSPC: `dgnn run` into a 512 KiB tmpfs exits 1 with one line naming the mount point, the free space
    and the trace; the trace says failed with whole records; with space (the folder copied to a roomy disk),
    resuming completes it to the uninterrupted result."""
    cfg = data(neurons={"count": 64}, replicas=4, dtype="float64", solver={**BASE["solver"], "duration": 4.0})
    whole = read_trace(dgnn.run(config_from_dict(cfg), tmp_path / "whole", progress=False).path)
    run, kept = tmpfs / "run", tmp_path / "kept"
    script = f"""
mount -t tmpfs -o size=512k tmpfs {tmpfs}
{sys.executable} -m dgnn run {_yaml(tmp_path, cfg)} --out {run} --quiet --no-plots 2> {tmp_path / 'err'}
echo $? > {tmp_path / 'rc'}
cp -r {run} {kept}
"""
    subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], check=True, timeout=300)
    err = (tmp_path / "err").read_text()
    assert (tmp_path / "rc").read_text().strip() == "1", err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"no space left on the disk mounted at {tmpfs} (" in err and str(run / "trace.h5") in err
    failed = read_trace(kept)
    assert failed.status == "failed" and "no space left" in failed.attrs["message"]
    prefix_of(failed, whole)
    assert dgnn.resume(kept, progress=False).status == "complete"
    equal(read_trace(kept), whole)


def test_disk_full_injected_at_chosen_writes(tmp_path, recorder, recorded):
    """ENOSPC from the k-th low-level write on (while creating the trace, inside a mid-run flush): the run exits 1
    with one line, and whatever trace there is holds whole records and resumes to the uninterrupted run."""
    _, ops, whole = recorded
    for k in (3, sum(op.kind == "W" for op in ops) // 2):
        out = tmp_path / f"full{k}"
        r = _dgnn_run(recorder, _yaml(tmp_path, BASE), out, FSREC_ENOSPC_AT=str(k))
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
        assert "no space left on the disk mounted at" in r.stderr and str(out / "trace.h5") in r.stderr
        if (out / "trace.h5").exists():
            prefix_of(read_trace(out), whole)
        assert dgnn.resume(out, progress=False).status == "complete"
        equal(read_trace(out), whole)


def _yaml(tmp_path, cfg) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(config_to_yaml(config_from_dict(cfg)))
    return p
