"""One owner per folder: `RunLock(folder)` is an flock on FOLDER/.dgnn.lock that holds the owner's pid, host and start
time. The kernel drops it when the owner exits or dies, so a stale lock file never blocks anyone; nothing else can
take it from a living owner.

    with RunLock(out, name="out"):   # a second process gets RunLocked: "out X: in use by pid 123 on host since ..."
        ...                          # write the folder

Locks are per open file: a second RunLock on the same folder in the same process is refused too. A child forked
while a lock is held does not inherit it (its copy is closed), so the lock never outlives its owner. POSIX only
(fcntl.flock); on NFS, Linux emulates flock with byte-range locks, which the server enforces.
"""
from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

LOCK_NAME = ".dgnn.lock"
NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)  # file systems without flock
_HELD: dict[int, int] = {}  # fd -> owning pid, for the fork hook


def _close_inherited() -> None:
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited)


@dataclass(frozen=True)
class Owner:
    """Who holds a folder: process id, host name and the UTC time it took the lock."""

    pid: int
    host: str
    since: str

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since}"

    def alive(self) -> bool | None:
        """True/False when the owner is on this host (by its pid), None when it is elsewhere."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            return True
        return True


class RunLocked(ConfigError):
    """Another process owns the folder; `owner` says who (None when its lock file could not be read)."""

    def __init__(self, message: str, owner: Owner | None):
        super().__init__(message)
        self.owner = owner


def _parse(text: str) -> Owner | None:
    try:
        d = json.loads(text)
        return Owner(int(d["pid"]), str(d["host"]), str(d["since"]))
    except (ValueError, KeyError, TypeError):
        return None


def read_owner(folder) -> Owner | None:
    """The owner recorded in FOLDER's lock file (without locking: it may be stale; see Owner.alive), or None."""
    try:
        return _parse((Path(folder) / LOCK_NAME).read_text(encoding="utf-8"))
    except OSError:
        return None


def flock(fd: int, how: int) -> None:
    """fcntl.flock, a no-op on file systems that do not support it (BlockingIOError when held elsewhere)."""
    try:
        fcntl.flock(fd, how)
    except OSError as exc:
        if isinstance(exc, BlockingIOError) or exc.errno not in NO_FLOCK:
            raise


def _exclusive(fd: int) -> bool:
    """Take fd's exclusive flock: False when another open file holds a lock. True also on file systems without
    flock, where ownership cannot be enforced."""
    try:
        flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        os.close(fd)
        raise
    return True


class RunLock:
    """Exclusive ownership of an existing folder by this process; `name` prefixes the refusal (e.g. "out")."""

    def __init__(self, folder, name: str = ""):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.name = name
        self._fd: int | None = None
        self._pid = 0

    def acquire(self) -> "RunLock":
        """Take the lock now or raise RunLocked naming the owner; never waits."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: already held by this RunLock")
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            if not _exclusive(fd):
                owner = _parse(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
                os.close(fd)
                who = str(owner) if owner else "another process (its lock file is being written)"
                prefix = f"{self.name} " if self.name else ""
                raise RunLocked(f"{prefix}{self.folder}: in use by {who}; a run folder is written by one process "
                                f"at a time", owner)
            try:  # the previous owner may have unlinked the file between our open and our lock: take the new one
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        since = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}).encode(), 0)
        except OSError:  # a full disk: give the lock back before saying so
            os.close(fd)
            raise
        self._fd, self._pid = fd, os.getpid()
        _HELD[fd] = self._pid
        return self

    def release(self) -> None:
        """Give the folder up (unlink the lock file, then unlock); a no-op in a forked child or when not held."""
        fd, self._fd = self._fd, None
        if fd is None or os.getpid() != self._pid:
            return
        _HELD.pop(fd, None)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None and os.getpid() == self._pid

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
