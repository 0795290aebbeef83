"""Where a study lives: an Optuna storage, embedded in the run folder by default, or any Optuna storage URL
(PostgreSQL for many machines). Every storage dgnn opens has heartbeats, so a killed worker's unit is detected and
queued again: Optuna's own for RDB storages, the same interface implemented here for the journal file."""
from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from ..errors import ConfigError

DEFAULT_FILE = "study.journal"  # the embedded storage of a run folder (see docs: study engine, why journal)
HEARTBEAT_KEY = "dgnn:heartbeat"  # journal storages: the unit's last sign of life, seconds since the epoch


@dataclass(frozen=True)
class Heartbeat:
    """How often a running unit reports (s) and how long it may stay silent before it is failed and queued again (s)."""

    interval: int = 2
    grace: int = 10
    retries: int = 3  # times one unit is queued again after its worker died

    def __post_init__(self):
        if self.interval < 1 or self.grace <= self.interval:
            raise ConfigError(f"heartbeat: need interval >= 1 s and grace > interval, found {self.interval}, {self.grace}")


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with Optuna's heartbeat interface: the heartbeat is a trial system attribute, so
    `optuna.storages.fail_stale_trials` and RetryHeartbeatStaleTrialCallback work on it as on an RDB storage.
    Staleness is judged by the clock of the machine that checks (keep machines' clocks in sync, as NTP does)."""

    def __init__(self, path: str, heartbeat: Heartbeat):
        super().__init__(JournalFileBackend(path))  # Optuna's symlink lock: safe for local processes and NFS
        self.heartbeat = heartbeat
        self.callback = RetryHeartbeatStaleTrialCallback(max_retry=heartbeat.retries)

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_KEY, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            seen = t.system_attrs.get(HEARTBEAT_KEY, t.datetime_start.timestamp() if t.datetime_start else now)
            if now - seen > self.heartbeat.grace:
                stale.append(t._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat.interval

    def get_heartbeat_stale_trial_callback(self):
        return self.callback


def resolve(storage: str | Path | None, folder: Path | None) -> str:
    """The storage URL: a URL as given, a path to a journal file or a folder holding one, or None for the run
    folder's embedded default."""
    if storage is None:
        if folder is None:
            raise ConfigError("storage: give a storage URL or a run folder")
        return f"journal://{(Path(folder) / DEFAULT_FILE).resolve()}"
    text = str(storage)
    if "://" in text:
        return text
    path = Path(text)
    if path.is_dir():
        path = path / DEFAULT_FILE
    return f"journal://{path.resolve()}"


def open_storage(url: str, heartbeat: Heartbeat = Heartbeat()) -> BaseStorage:
    """An Optuna storage with heartbeats for `url`: journal:///path (file, safe with several local processes and
    on NFS), sqlite:///path, postgresql://..., mysql://..."""
    with warnings.catch_warnings():  # Optuna marks heartbeats experimental; dgnn relies on them on purpose
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _open(url, heartbeat)


def _open(url: str, heartbeat: Heartbeat) -> BaseStorage:
    if url.startswith("journal://"):
        path = url[len("journal://"):]  # journal:///abs/path: the path keeps its leading slash
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return HeartbeatJournalStorage(path, heartbeat)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat.interval, grace_period=heartbeat.grace,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=heartbeat.retries))
    except ImportError as exc:
        raise ConfigError(f"storage {url}: {exc}; install the database driver (pip install \"dgnn[postgres]\")") from None
    except Exception as exc:  # sqlalchemy's OperationalError and friends: a server that does not answer
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"storage {redact(url)}: cannot open ({first})") from None


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    cred, host = rest.rsplit("@", 1)
    return f"{scheme}://{cred.split(':', 1)[0]}:***@{host}"


def worker_name() -> str:
    """host:pid of this process, as units record who runs them."""
    return f"{socket.gethostname()}:{os.getpid()}"


def study_names(url: str) -> list[str]:
    return optuna.get_all_study_names(open_storage(url))
