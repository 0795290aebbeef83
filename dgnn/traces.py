"""HDF5 traces: a crash-safe incremental writer and a reader returning arrays.

Layout (the public contract, docs/traces.md): root attributes status, config, dgnn_version, created; /time (T);
/neurons/phase (T, B, N); /glia/phase (T, B, G); /metrics/* (T, B[, M]); static arrays; /checkpoint (resume state).

Crash safety (docs/reliability.md): the file named trace.h5 is never written in place. Each flush writes its
records, resume state and attributes into a twin (.trace.h5.twin, the previous version of the trace), closes it and
swaps the two names in one atomic step. So a kill, a full disk or an exception at any instant leaves trace.h5 a
closed, whole HDF5 file holding exactly the records of its last completed flush, and readers are never refused.
Records are compressed once per chunk (shuffle + gzip, as HDF5's own filters write them) and written to both files
as raw chunks.
"""
from __future__ import annotations

import datetime as _dt
import errno
import os
import shutil
import time as _time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .disk import disk_full, is_disk_full, remove, swap
from .h5io import first_line, open_shared, preallocate, try_lock
from .h5io import write as h5_write
from .errors import ConfigError

STATUSES = ("running", "complete", "interrupted", "failed")
EVENTS = "structure/events"
CHUNK_BYTES = 1 << 20
GZIP_LEVEL = 1
DURABLE = True  # fsync the twin before it takes the name: the swap then also survives a power cut
RESERVE_SLACK = 64 << 10  # bytes reserved beyond twice the largest flush (see TraceWriter._reserve)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def companions(path) -> list[Path]:
    """The writer's hidden files beside trace `path`: the twin, a spare name for swaps without renameat2, and the
    space reserve."""
    path = Path(path)
    return [path.with_name(f".{path.name}.{what}") for what in ("twin", "spare", "reserve")]


@dataclass(frozen=True)
class Series:
    """A dataset that grows by one row per record: name '/group/name', per-record shape, dtype, attributes."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    attrs: dict = field(default_factory=dict)

    @property
    def chunk_rows(self) -> int:
        """Records per chunk: about CHUNK_BYTES, at most 1024."""
        row_bytes = max(1, int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize)
        return int(max(1, min(1024, CHUNK_BYTES // row_bytes)))


def _compress(chunk: np.ndarray) -> bytes:
    """A whole chunk as HDF5's shuffle then deflate filters store it."""
    raw = np.ascontiguousarray(chunk).view(np.uint8)
    size = chunk.dtype.itemsize
    if size > 1:
        raw = raw.reshape(-1, size).T  # byte j of every element, then byte j + 1, ... (HDF5 shuffle)
    return zlib.compress(raw.tobytes(), GZIP_LEVEL)


@dataclass
class _Batch:
    """What one flush changes: series extent and chunks, events, checkpoint, root attributes (None deletes)."""

    rows: int | None = None
    chunks: dict[tuple[str, int], bytes] = field(default_factory=dict)  # (series, chunk index) -> compressed chunk
    events_rows: int | None = None  # cut /structure/events to this many rows first (resume)
    events: list[np.ndarray] = field(default_factory=list)
    checkpoint: dict | None = None
    checkpoint_attrs: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of data this batch writes (before HDF5's own metadata)."""
        n = sum(map(len, self.chunks.values())) + sum(e.nbytes for e in self.events)
        n += sum(len(str(v)) for v in self.attrs.values())
        return n + sum(np.asarray(v).nbytes for v in (self.checkpoint or {}).values())

    def then(self, later: "_Batch") -> "_Batch":
        """This batch followed by `later`, as one."""
        cut = later.events_rows is not None
        return _Batch(
            rows=later.rows if later.rows is not None else self.rows,
            chunks={**self.chunks, **later.chunks},
            events_rows=later.events_rows if cut else self.events_rows,
            events=later.events if cut else self.events + later.events,
            checkpoint=later.checkpoint if later.checkpoint is not None else self.checkpoint,
            checkpoint_attrs={**self.checkpoint_attrs, **later.checkpoint_attrs},
            attrs={**self.attrs, **later.attrs},
        )

    def apply(self, h5: h5py.File, series: list[Series]) -> None:
        for s in series:
            ds = h5[s.name]
            if self.rows is not None and ds.shape[0] != self.rows:
                ds.resize(self.rows, axis=0)
            zeros = (0,) * len(s.shape)
            for c in sorted(c for name, c in self.chunks if name == s.name):
                ds.id.write_direct_chunk((c * s.chunk_rows, *zeros), self.chunks[(s.name, c)])
        if self.events_rows is not None and EVENTS in h5:
            h5[EVENTS].resize(self.events_rows, axis=0)
        if self.events:
            _append_events(h5, np.concatenate(self.events))
        if self.checkpoint is not None:
            _write_checkpoint(h5.require_group("checkpoint"), self.checkpoint)
        if self.checkpoint_attrs:
            h5.require_group("checkpoint").attrs.update(self.checkpoint_attrs)
        for key, value in self.attrs.items():
            if value is not None:
                h5.attrs[key] = value
            elif key in h5.attrs:
                del h5.attrs[key]


def _write_checkpoint(grp: h5py.Group, state: dict) -> None:
    """Overwrite each state array in place where its shape and dtype are unchanged (this is the twin: nobody
    reads it), else replace the dataset."""
    for key, value in state.items():
        value = np.asarray(value)
        ds = grp.get(key)
        if ds is not None and ds.shape == value.shape and ds.dtype == value.dtype:
            ds[()] = value
            continue
        if ds is not None:
            del grp[key]
        grp.create_dataset(key, data=value)


def _skeleton(h5: h5py.File, config_text: str, version: str, series: list[Series], static: dict, attrs: dict) -> None:
    """Root attributes, static datasets and the empty growable series of a new trace."""
    h5.attrs.update({"status": "running", "config": config_text, "dgnn_version": version, "created": _now()})
    for key, value in attrs.items():
        h5.attrs[key] = value
    h5.create_group("checkpoint").attrs["config"] = config_text  # resume refuses an edited config
    for name, (array, a) in static.items():
        h5.create_dataset(name, data=array).attrs.update(a)
    for s in series:
        ds = h5.create_dataset(s.name, shape=(0, *s.shape), maxshape=(None, *s.shape), dtype=s.dtype,
                               chunks=(s.chunk_rows, *s.shape), compression="gzip", compression_opts=GZIP_LEVEL,
                               shuffle=True)
        ds.attrs.update(s.attrs)


def _append_events(h5: h5py.File, ev: np.ndarray) -> None:
    if EVENTS not in h5:
        ds = h5.create_dataset(EVENTS, shape=(0,), maxshape=(None,), dtype=ev.dtype, chunks=(1024,),
                               compression="gzip", compression_opts=GZIP_LEVEL)
        ds.attrs["meaning"] = "every structural proposal, accepted or rejected; energy in ledger units"
    ds = h5[EVENTS]
    start = ds.shape[0]
    ds.resize(start + len(ev), axis=0)
    ds[start:] = ev


class TraceWriter:
    """Appends records to a trace; `flush(checkpoint)` and `set_status` publish everything so far in one atomic step.
    `rows` counts the records in the published file. Build it with `create` or `reopen`."""

    def __init__(self, path, series: list[Series], rows: int, events_rows: int, tails: dict[str, np.ndarray],
                 published: bool):
        self.path, self.series = Path(path), series
        self.twin, self._spare, self._reserve_path = companions(self.path)
        self.buffer: dict[str, list[np.ndarray]] = {s.name: [] for s in series}
        self.events: list[np.ndarray] = []  # structured event records (structure/events), written at flush
        self.rows = rows if published else 0
        self._rows, self._events_rows, self._tails = rows, events_rows, tails
        self._published = published
        self._lag: _Batch | None = None if published else _Batch()  # what the twin lacks; None: copy the trace
        self._replace = not published  # the first publication replaces whatever held the name
        self._reserved, self._largest = 0, 0  # bytes held in reserve; the largest batch so far

    # ---------------------------------------------------------------------------------------------- creation
    @classmethod
    def create(cls, path, *, config_text: str, version: str, series: list[Series], static: dict, attrs: dict):
        """A new trace: root attributes, static datasets {name: (array, attrs)} and empty growable series, built in
        the twin; nothing carries the name `path` until the first flush (or set_status) publishes it."""
        path = Path(path)
        twin = companions(path)[0]

        def build(h5):
            static_bytes = sum(np.asarray(a).nbytes for a, _ in static.values())
            preallocate(twin, static_bytes + (4 << 10) * len(series) + RESERVE_SLACK)
            _skeleton(h5, config_text, version, series, static, attrs)

        try:
            h5_write(twin, True, build, fs_strategy="fsm", fs_persist=True, fs_threshold=1)
        except BaseException as exc:
            remove(twin)
            if is_disk_full(exc):
                raise disk_full(path, exc) from None
            raise
        tails = {s.name: np.zeros((s.chunk_rows, *s.shape), dtype=s.dtype) for s in series}
        return cls(path, series, 0, 0, tails, published=False)

    @classmethod
    def reopen(cls, path, series: list[Series], keep_rows: int):
        """Continue a trace: rows and events past the last checkpoint are dropped when this publishes (at once)."""
        path = Path(path)
        for leftover in companions(path):
            remove(leftover)
        tails = {}
        with _open(path) as h5:
            for s in series:
                r, ds = s.chunk_rows, h5[s.name]
                if ds.chunks != (r, *s.shape) or ds.compression != "gzip" or not ds.shuffle or ds.dtype != s.dtype:
                    raise ConfigError(f"{path}: /{s.name} is not laid out as this dgnn version writes it "
                                      f"(chunks {ds.chunks}, {ds.compression}); it cannot be continued")
                tail = np.zeros((r, *s.shape), dtype=s.dtype)
                start = keep_rows // r * r
                tail[: keep_rows - start] = h5[s.name][start:keep_rows]
                tails[s.name] = tail
            events_rows = int(h5["checkpoint"].attrs.get("events", 0))
            resumed = int(h5.attrs.get("resumed", 0)) + 1
        writer = cls(path, series, keep_rows, events_rows, tails, published=True)
        writer._publish(_Batch(rows=keep_rows, events_rows=events_rows,
                               attrs={"status": "running", "resumed": resumed, "message": None}))
        return writer

    # ---------------------------------------------------------------------------------------------- writing
    def append_events(self, events: np.ndarray) -> None:
        self.events.append(events)

    def append(self, record: dict[str, np.ndarray]) -> None:
        for s in self.series:
            self.buffer[s.name].append(record[s.name])

    @property
    def pending(self) -> int:
        return len(self.buffer["time"])

    @property
    def pending_bytes(self) -> int:
        return sum(sum(a.nbytes for a in rows) for rows in self.buffer.values())

    def _stage_rows(self, batch: _Batch) -> dict[str, np.ndarray]:
        """Move the buffered records into chunks, each touched chunk compressed once (the last, partial one again at
        every flush, as HDF5 itself does). Returns the new tails (committed only once the batch is published)."""
        n, tails = self.pending, {}
        for s in self.series:
            new = np.stack(self.buffer[s.name]).astype(s.dtype, copy=False)  # (n, *shape)
            self.buffer[s.name].clear()
            r, tail, row, i = s.chunk_rows, self._tails[s.name].copy(), self._rows, 0
            while i < n:
                c, off = divmod(row, r)
                take = min(r - off, n - i)
                tail[off: off + take] = new[i: i + take]
                batch.chunks[(s.name, c)] = _compress(tail)
                i, row = i + take, row + take
                if off + take == r:
                    tail[:] = 0  # the next chunk starts empty
            tails[s.name] = tail
        batch.rows = self._rows + n
        return tails

    def flush(self, checkpoint: dict[str, np.ndarray] | None = None) -> None:
        """Publish the buffered records and events, with `checkpoint` (the resume state after them) if given. On an
        error the trace stays as last published and the records buffered since are dropped."""
        batch, tails, events_rows = _Batch(), self._tails, self._events_rows
        if self.pending:
            tails = self._stage_rows(batch)
        if self.events:
            batch.events = [np.concatenate(self.events)]
            self.events = []
            events_rows += len(batch.events[0])
        if checkpoint is not None:
            batch.checkpoint = {k: np.array(v, copy=True) for k, v in checkpoint.items()}
            batch.checkpoint_attrs = {"rows": batch.rows if batch.rows is not None else self._rows,
                                      "events": events_rows}
        if batch.rows is not None or batch.events or batch.checkpoint is not None or not self._published:
            self._publish(batch)
        self._tails, self._events_rows = tails, events_rows

    def set_status(self, status: str, message: str | None = None) -> None:
        """Publish the status (and message). Raises DiskFull when even that does not fit: the trace then stays as
        last published (whole, saying running), never patched in place."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, found {status!r}")
        batch = _Batch(attrs={"status": status})
        if message:
            batch.attrs["message"] = message
        if status != "running":
            batch.attrs["finished"] = _now()
        self._publish(batch)

    # ---------------------------------------------------------------------------------------------- publishing
    def _publish(self, batch: _Batch) -> None:
        """Bring the twin up to date with `batch`, close it, then swap it with the trace's name. The space it needs
        is allocated first, so that a full disk is found before HDF5 writes (HDF5 cannot report some of its write
        errors: they surface while objects are freed, and end in chained errors or a crash)."""
        try:
            self._reserve(batch)
            fd, base = self._claim_twin()  # the twin is whole and lacks `base`
        except BaseException as exc:
            raise self._failure(exc) from None
        lag = base.then(batch)
        try:
            try:
                os.posix_fallocate(fd, 0, os.fstat(fd).st_size + 2 * lag.nbytes + RESERVE_SLACK)
            except (AttributeError, OSError) as exc:
                if is_disk_full(exc):
                    self._lag = base  # untouched: still whole
                    raise
            self._lag = None  # until the twin is whole again
            self._write_twin(fd, lag)
        except BaseException as exc:
            os.close(fd)  # unlocks
            raise self._failure(exc) from None
        os.close(fd)
        if self._replace:
            os.replace(self.twin, self.path)
        elif swap(self.twin, self.path, self._spare):
            self._lag = batch  # the twin is now the previous version: it lacks just this batch
        self._replace, self._published = False, True
        if batch.rows is not None:
            self._rows = self.rows = batch.rows

    def _write_twin(self, fd: int, lag: _Batch) -> None:
        h5_write(self.twin, False, lambda h5: lag.apply(h5, self.series))
        if DURABLE:
            os.fsync(fd)

    def _failure(self, exc: BaseException) -> BaseException:
        """What to raise for `exc`: a DiskFull line when the disk is full (after freeing the reserve, and the twin
        unless it is still whole, so that a final status fits), else `exc` itself."""
        if self._lag is None:
            remove(self.twin)  # half written: the next publication copies the trace
        if not is_disk_full(exc):
            return exc
        full = disk_full(self.path, exc)  # the free space as it failed
        remove(self._reserve_path)
        self._reserved = -1
        return full

    def _reserve(self, batch: _Batch) -> None:
        """Keep a reserve file of twice the largest batch (+ slack) allocated, so that when a full disk stops a
        publication, freeing it (and a half-written twin) leaves room to mark the trace failed: the trace grew by
        at most one batch since the twin last matched it. Skipped without posix_fallocate, and after a full disk."""
        if self._reserved < 0 or not hasattr(os, "posix_fallocate"):
            return
        self._largest = max(self._largest, batch.nbytes)
        need = 2 * self._largest + RESERVE_SLACK
        if need <= self._reserved:
            return
        fd = os.open(self._reserve_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.posix_fallocate(fd, 0, need)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            self._reserved = -1  # not supported here (EOPNOTSUPP), or over a file size limit: do without
            return
        finally:
            os.close(fd)
        self._reserved = need

    def _claim_twin(self) -> tuple[int, _Batch]:
        """An fd holding the twin's exclusive flock, and what the twin lacks. A twin that is missing, or that a
        reader still holds (HDF5 and dgnn readers take a shared flock), is replaced by a copy of the trace."""
        if self._lag is not None:
            fd = try_lock(self.twin)
            if fd is not None:
                return fd, self._lag
        if not self._published:
            raise RuntimeError(f"{self.path}: the new trace was lost before its first flush")
        self._lag = None
        remove(self.twin)  # a reader may keep the old inode: it is only unlinked
        shutil.copyfile(self.path, self.twin)
        fd = try_lock(self.twin)
        if fd is None:
            raise RuntimeError(f"{self.twin}: taken by another process while being written")
        self._lag = _Batch()
        return fd, self._lag

    def close(self) -> None:
        """Forget the twin and the reserve; the trace stays as last published."""
        for p in companions(self.path):
            remove(p)


# -------------------------------------------------------------------------------------------------- reading
@dataclass
class Trace:
    """A trace read into memory. Phases are unwrapped radians; `None` where the run did not record them."""

    path: Path
    attrs: dict
    time: np.ndarray  # (T,)
    neuron_phase: np.ndarray | None  # (T, B, N)
    glia_phase: np.ndarray | None  # (T, B, G)
    metrics: dict[str, np.ndarray]  # name -> (T, B[, M])
    static: dict[str, np.ndarray]  # neurons/frequency, neurons/module, ...
    checkpoint: dict[str, np.ndarray]
    metabolism: dict[str, np.ndarray] = field(default_factory=dict)  # reserve, ledger/<name>, power, epoch, ...

    @property
    def status(self) -> str:
        return str(self.attrs.get("status"))

    @property
    def config(self):
        from .config import config_from_yaml_text

        return config_from_yaml_text(self.attrs["config"], f"{self.path} (stored config)")

    def to_xarray(self):
        """Labelled view (needs the optional `xarray` package)."""
        try:
            import xarray as xr
        except ImportError:
            raise ImportError("Trace.to_xarray needs xarray: pip install xarray") from None
        data = {}
        if self.neuron_phase is not None:
            data["neuron_phase"] = (("time", "replica", "neuron"), self.neuron_phase)
        if self.glia_phase is not None:
            data["glia_phase"] = (("time", "replica", "glia"), self.glia_phase)
        for k, v in self.metrics.items():
            data[k] = (("time", "replica", "module")[: v.ndim], v)
        return xr.Dataset(data, coords={"time": self.time}, attrs={k: str(v) for k, v in self.attrs.items()})


def _trace_file(path) -> Path:
    path = Path(path)
    return path / "trace.h5" if path.is_dir() else path


def _missing(path: Path) -> str:
    if (path.parent / "config.yaml").is_file() or companions(path)[0].exists():
        return f"{path}: no trace yet: the run in {path.parent} has not finished its first record"
    return f"{path}: trace not found"


def _foreign(h5: h5py.File, name: str, link) -> str | None:
    """Why the object at /name reads other files (an external or user-defined link, external storage, a virtual
    dataset), or None."""
    if isinstance(link, h5py.ExternalLink):
        return f"/{name} is an external link to {link.filename}:{link.path}"
    if not isinstance(link, (h5py.HardLink, h5py.SoftLink)):
        return f"/{name} is a user-defined link"
    obj = h5.get(name) if isinstance(link, h5py.HardLink) else None
    if isinstance(obj, h5py.Dataset) and obj.external:
        return f"/{name} is stored in other files ({', '.join(str(f[0]) for f in obj.external)}: HDF5 external storage)"
    if isinstance(obj, h5py.Dataset) and obj.is_virtual:
        return f"/{name} is a virtual dataset mapping other files"
    return None


def _refuse_foreign(h5: h5py.File, path: Path) -> None:
    """Refuse a trace whose data live in other files: dgnn reads only what the trace itself holds."""
    why = h5.visititems_links(lambda name, link: _foreign(h5, name, link))  # the first reason found, or None
    if why:
        raise ConfigError(f"{path}: {why}; dgnn reads only self-contained traces")


@contextmanager
def _open(path):
    """Open a trace (file or run folder) for reading, also while a run writes it: the inode read is the published
    trace, held with a shared flock so that the writer never reuses it. Bad files give one ConfigError line."""
    path = _trace_file(path)
    for _ in range(1000):
        try:
            got = open_shared(path)
        except FileNotFoundError:
            raise ConfigError(_missing(path)) from None
        except OSError as exc:
            raise ConfigError(f"{path}: not a readable HDF5 trace ({first_line(exc)})") from None
        if got is not None:
            break
        _time.sleep(0.002)
    else:
        raise ConfigError(f"{path}: the trace kept changing while being opened; try again")
    h5, fd = got
    try:
        try:
            _refuse_foreign(h5, path)
            yield h5
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{path}: damaged trace ({first_line(exc)})") from None
    finally:
        h5.close()
        os.close(fd)


def read_trace(path, phases: bool = True) -> Trace:
    """Read a trace (file or run folder) into numpy arrays; phases=False skips the (T, B, N) arrays."""
    with _open(path) as h5:
        if not _has_time(h5) or "config" not in h5.attrs:
            raise ConfigError(f"{h5.filename}: not a dgnn trace (no /time series or config attribute)")
        rows = h5["time"].shape[0]
        get = lambda name: h5[name][:rows] if (phases and name in h5) else None  # noqa: E731
        metrics = {k: v[:rows] for k, v in h5["metrics"].items()} if "metrics" in h5 else {}
        static = {}
        if EVENTS in h5:
            static[EVENTS] = h5[EVENTS][:]
        if "structure/size" in h5:
            metrics["structure_size"] = h5["structure/size"][:rows]
            metrics["structure_active"] = h5["structure/active"][:rows]
            metrics["structure_glia_active"] = h5["structure/glia_active"][:rows]
        for grp in ("neurons", "glia", "topology"):
            if grp in h5:
                for k, v in h5[grp].items():
                    if not k == "phase":
                        static[f"{grp}/{k}"] = v[()]
        ckpt = {k: v[()] for k, v in h5["checkpoint"].items()} if "checkpoint" in h5 else {}
        metabolism = {}
        if "metabolism" in h5:
            h5["metabolism"].visititems(
                lambda name, obj: metabolism.__setitem__(name, obj[:rows]) if isinstance(obj, h5py.Dataset) else None
            )
        return Trace(
            path=Path(h5.filename),
            attrs=_attrs(h5),
            time=h5["time"][:rows],
            neuron_phase=get("neurons/phase"),
            glia_phase=get("glia/phase"),
            metrics=metrics,
            static=static,
            checkpoint=ckpt,
            metabolism=metabolism,
        )


def _has_time(h5: h5py.File) -> bool:
    """/time is a one-dimensional dataset (the record times)."""
    return isinstance(h5.get("time"), h5py.Dataset) and h5["time"].ndim == 1


def _attrs(h5: h5py.File) -> dict:
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()}


def describe(path) -> dict:
    """Status, attributes and dataset shapes of a trace without loading its arrays."""
    with _open(path) as h5:
        shapes = {}
        h5.visititems(lambda name, obj: shapes.__setitem__(name, tuple(obj.shape)) if isinstance(obj, h5py.Dataset) else None)
        time = h5["time"][:] if _has_time(h5) else np.zeros(0)
        return {
            "path": str(h5.filename),
            "attrs": _attrs(h5),
            "datasets": shapes,
            "records": int(time.size),
            "time_span": [float(time[0]), float(time[-1])] if time.size else None,
        }


@dataclass(frozen=True)
class ResumeState:
    """What `resume` needs from a trace: its status, stored config, checkpoint and the rows it covers."""

    status: str
    config: str
    checkpoint: dict[str, np.ndarray]
    rows: int
    started_config: str | None  # the config as the run started (None for traces older than this check)
    version: str  # the dgnn version that wrote the trace


def read_resume_state(path) -> ResumeState:
    """The resume state of a trace; ConfigError when it has none."""
    with _open(path) as h5:
        if "checkpoint" not in h5 or "config" not in h5.attrs:
            raise ConfigError(f"{h5.filename}: not a resumable dgnn trace (no checkpoint or config)")
        grp = h5["checkpoint"]
        started = grp.attrs.get("config")
        return ResumeState(
            status=str(_attrs(h5).get("status", "")),
            config=_attrs(h5)["config"],
            checkpoint={k: v[()] for k, v in grp.items()},
            rows=int(grp.attrs.get("rows", 0)),  # 0: published before its first record (a failed start)
            started_config=started.decode() if isinstance(started, bytes) else started,
            version=str(_attrs(h5).get("dgnn_version", "an unknown version")),
        )
