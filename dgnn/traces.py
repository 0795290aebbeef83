"""HDF5 traces: an incremental writer (chunked, compressed, flushed with a checkpoint) and a reader returning arrays.

Layout (the public contract, see README): root attributes status, config, dgnn_version, created; /time (T);
/neurons/phase (T, B, N); /glia/phase (T, B, G); /metrics/* (T, B[, M]); static arrays; /checkpoint (resume state).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .errors import ConfigError

STATUSES = ("running", "complete", "interrupted", "failed")
EVENTS = "structure/events"
CHUNK_BYTES = 1 << 20


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Series:
    """A dataset that grows by one row per record: name '/group/name', per-record shape, dtype, attributes."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    attrs: dict = field(default_factory=dict)


class TraceWriter:
    """Appends records to an HDF5 file; `flush(checkpoint)` writes the buffer, the resume state and flushes the file."""

    def __init__(self, path: Path, h5: h5py.File, series: list[Series]):
        self.path, self.h5, self.series = Path(path), h5, series
        self.buffer: dict[str, list[np.ndarray]] = {s.name: [] for s in series}
        self.rows = h5["time"].shape[0]
        self.events: list[np.ndarray] = []  # structured event records (structure/events), written at flush

    # ---------------------------------------------------------------------------------------------- creation
    @classmethod
    def create(cls, path, *, config_text: str, version: str, series: list[Series], static: dict, attrs: dict):
        """New file: root attributes, static datasets {name: (array, attrs)} and empty growable series."""
        h5 = h5py.File(path, "w")
        h5.attrs.update({"status": "running", "config": config_text, "dgnn_version": version, "created": _now()})
        for key, value in attrs.items():
            h5.attrs[key] = value
        for name, (array, a) in static.items():
            ds = h5.create_dataset(name, data=array)
            ds.attrs.update(a)
        for s in series:
            row_bytes = max(1, int(np.prod(s.shape, dtype=np.int64)) * np.dtype(s.dtype).itemsize)
            rows = int(max(1, min(1024, CHUNK_BYTES // row_bytes)))
            ds = h5.create_dataset(
                s.name, shape=(0, *s.shape), maxshape=(None, *s.shape), dtype=s.dtype,
                chunks=(rows, *s.shape), compression="gzip", compression_opts=1, shuffle=True,
            )
            ds.attrs.update(s.attrs)
        h5.flush()
        return cls(path, h5, series)

    @classmethod
    def reopen(cls, path, series: list[Series], keep_rows: int):
        """Open an interrupted trace to continue it: rows and events past the last checkpoint are dropped."""
        h5 = h5py.File(path, "r+")
        for s in series:
            h5[s.name].resize(keep_rows, axis=0)
        if EVENTS in h5:
            h5[EVENTS].resize(int(h5["checkpoint"].attrs.get("events", 0)), axis=0)
        h5.attrs["status"] = "running"
        h5.attrs["resumed"] = int(h5.attrs.get("resumed", 0)) + 1
        if "message" in h5.attrs:
            del h5.attrs["message"]
        h5.flush()
        return cls(path, h5, series)

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

    def flush(self, checkpoint: dict[str, np.ndarray] | None = None) -> None:
        n = self.pending
        if n:
            for s in self.series:
                ds = self.h5[s.name]
                ds.resize(self.rows + n, axis=0)
                ds[self.rows:] = np.stack(self.buffer[s.name]).astype(s.dtype, copy=False)
                self.buffer[s.name].clear()
            self.rows += n
        if self.events:
            ev = np.concatenate(self.events)
            self.events = []
            if EVENTS not in self.h5:
                ds = self.h5.create_dataset(EVENTS, shape=(0,), maxshape=(None,), dtype=ev.dtype, chunks=(1024,),
                                            compression="gzip", compression_opts=1)
                ds.attrs["meaning"] = "every structural proposal, accepted or rejected; energy in ledger units"
            ds = self.h5[EVENTS]
            start = ds.shape[0]
            ds.resize(start + len(ev), axis=0)
            ds[start:] = ev
        if checkpoint is not None:
            grp = self.h5.require_group("checkpoint")
            for key, value in checkpoint.items():
                if key in grp:
                    del grp[key]
                grp.create_dataset(key, data=value)
            grp.attrs["rows"] = self.rows
            grp.attrs["events"] = self.h5[EVENTS].shape[0] if EVENTS in self.h5 else 0
        self.h5.flush()

    def set_status(self, status: str, message: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, found {status!r}")
        self.h5.attrs["status"] = status
        if message:
            self.h5.attrs["message"] = message
        if status != "running":
            self.h5.attrs["finished"] = _now()
        self.h5.flush()

    def close(self) -> None:
        if self.h5.id.valid:
            self.h5.close()


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


def _open(path) -> h5py.File:
    path = Path(path)
    if path.is_dir():
        path = path / "trace.h5"
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise ConfigError(f"{path}: trace not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: not a readable HDF5 trace ({exc})") from None


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
            attrs={k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()},
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


def describe(path) -> dict:
    """Status, attributes and dataset shapes of a trace without loading its arrays."""
    with _open(path) as h5:
        shapes = {}
        h5.visititems(lambda name, obj: shapes.__setitem__(name, tuple(obj.shape)) if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()}
        time = h5["time"][:] if _has_time(h5) else np.zeros(0)
        return {
            "path": str(h5.filename),
            "attrs": attrs,
            "datasets": shapes,
            "records": int(time.size),
            "time_span": [float(time[0]), float(time[-1])] if time.size else None,
        }
