"""HDF5 files handled so that no I/O error reaches HDF5 and no reader meets a file being rewritten: writes through
a file object that turns the first failure into a memory overlay (HDF5 cannot survive failed writes: it crashes
closing such a file or at exit), errors HDF5 can only print collected instead, flocks, preallocation."""
from __future__ import annotations

import fcntl
import io
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import h5py

from .disk import is_disk_full
from .locks import flock


def preallocate(path, nbytes: int) -> None:
    """Allocate the first `nbytes` of `path` on disk now, so that a full disk shows here, before HDF5 writes;
    a no-op without posix_fallocate."""
    if hasattr(os, "posix_fallocate"):
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            os.posix_fallocate(fd, 0, nbytes)
        except OSError as exc:
            if is_disk_full(exc):
                raise
        finally:
            os.close(fd)


@contextmanager
def printed_errors():
    """The errors h5py can only print (HDF5 failing while objects are freed: Cython prints them through
    sys.excepthook and sys.unraisablehook), collected instead, so that they fail the publication."""
    lost, hooks = [], (sys.excepthook, sys.unraisablehook)
    sys.excepthook = lambda kind, value, tb: lost.append(value)
    sys.unraisablehook = lambda u: lost.append(u.exc_value) if u.exc_value is not None else None
    try:
        yield lost
    finally:
        sys.excepthook, sys.unraisablehook = hooks


class SafeFile(io.RawIOBase):
    """A file as HDF5 sees it through h5py's file-object driver. Writes go to the file until one fails (a full disk)
    or is interrupted (a second Ctrl-C); from then on they go to memory, where reads see them. So HDF5 never
    meets an I/O error, which it cannot survive (failed flushes leave it to crash on close or at exit), and
    `failure` keeps the first one for the caller to raise once the file is closed."""

    def __init__(self, path, create: bool):
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT | os.O_TRUNC if create else 0), 0o644)
        self.pos, self.failure = 0, None
        self._mem, self._spans, self._end = None, [], 0  # memory overlay: fd, written (start, end), logical size

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=0):
        size = max(os.fstat(self.fd).st_size, self._end)
        self.pos = pos if whence == 0 else self.pos + pos if whence == 1 else size + pos
        return self.pos

    def tell(self):
        return self.pos

    def readinto(self, b):
        data = os.pread(self.fd, len(b), self.pos)
        out = bytearray(data.ljust(len(b), b"\0")) if self._mem is not None else data
        for start, end in self._spans:  # what was written to memory wins
            lo, hi = max(start, self.pos), min(end, self.pos + len(b))
            if lo < hi:
                out[lo - self.pos: hi - self.pos] = os.pread(self._mem, hi - lo, lo)
        n = len(data) if self._mem is None else min(len(b), max(len(data), self._end - self.pos))
        b[:n] = out[:n]
        self.pos += n
        return n

    def write(self, b):
        b = bytes(b)
        if self._mem is None:
            try:
                done = 0
                while done < len(b):
                    done += os.pwrite(self.fd, b[done:], self.pos + done)
            except BaseException as exc:  # OSError (ENOSPC, EIO...) or an interrupt: go on in memory
                self.failure = exc
                self._mem = os.memfd_create("dgnn-twin") if hasattr(os, "memfd_create") else _unnamed()
        if self._mem is not None:
            os.pwrite(self._mem, b, self.pos)
            self._spans.append((self.pos, self.pos + len(b)))
            self._end = max(self._end, self.pos + len(b))
        self.pos += len(b)
        return len(b)

    def truncate(self, size=None):
        size = self.pos if size is None else size
        if self._mem is None:
            os.ftruncate(self.fd, size)
        self._end = size
        return size

    def flush(self):
        pass

    def close(self):
        for fd in (self.fd, self._mem):
            if fd is not None and fd >= 0:
                os.close(fd)
        self.fd = self._mem = -1
        super().close()


def _unnamed() -> int:
    """An unnamed temporary file's descriptor (where memfd_create is missing)."""
    import tempfile

    fd, name = tempfile.mkstemp(prefix="dgnn-twin-")
    os.unlink(name)
    return fd


def write(path, create: bool, fill, **kw) -> None:
    """Open `path` with h5py through a SafeFile, fill(h5), close; raise the first I/O failure (or interrupt), or an
    error HDF5 could only print, once the file is closed."""
    twin = SafeFile(path, create)
    try:
        with printed_errors() as lost:
            h5 = h5py.File(twin, "w" if create else "r+", **kw)
            try:
                fill(h5)
            finally:
                h5.close()
        if twin.failure is not None:
            raise twin.failure
        if lost:
            raise lost[0]
    finally:
        twin.close()


def try_lock(path) -> int | None:
    """An fd of `path` holding its exclusive flock, or None when the file is missing or someone holds a lock."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def open_shared(path: Path):
    """(h5, fd): `path` opened read-only with a shared flock (fd) on the very inode h5 reads, which still had the
    name once locked; None when it changed hands meanwhile (retry). FileNotFoundError when missing; OSError when
    not HDF5."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        ino = os.fstat(fd).st_ino
        if os.stat(path).st_ino != ino:  # swapped out between open and lock: the writer may reuse it
            os.close(fd)
            return None
        h5 = h5py.File(path, "r")
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError as exc:
        os.close(fd)
        if "unable to lock file" in str(exc):  # HDF5's own lock met the writer's: the name moved on
            return None
        raise
    if os.fstat(h5.id.get_vfd_handle()).st_ino != ino:
        h5.close()
        os.close(fd)
        return None
    return h5, fd


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (HDF5's run to several)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
