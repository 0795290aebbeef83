"""File operations that a kill or a full disk cannot tear: atomic name swaps and replacements, and one-line disk-full
errors that name the disk."""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
from pathlib import Path

from .errors import DiskFull

_REASONS = {  # errno -> (how HDF5 writes it in its messages, what the user is told)
    errno.ENOSPC: ("errno = 28,", "no space left on the disk"),
    errno.EDQUOT: ("errno = 122,", "disk quota exceeded on the disk"),
    errno.EFBIG: ("errno = 27,", "file size limit reached (ulimit -f, or the file system's largest file) on the disk"),
}
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
try:
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
except (AttributeError, OSError):  # not glibc >= 2.28 (macOS, musl, Windows)
    _renameat2 = None


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            break
    return f"{n:.1f} {unit}"


def mount_point(path) -> Path:
    """The mount point of the file system holding `path` (or its nearest existing parent)."""
    p = Path(os.path.abspath(path))
    while not p.exists():
        p = p.parent
    dev = p.stat().st_dev
    while p.parent != p and p.parent.stat().st_dev == dev:
        p = p.parent
    return p


def full_reason(exc: BaseException | None) -> int | None:
    """The errno (ENOSPC, EDQUOT or EFBIG) when `exc`, or an exception it was raised from, says the disk, the quota
    or the file size limit is full; HDF5 errors carry the errno only in their text. None otherwise."""
    for _ in range(8):
        if exc is None:
            return None
        if isinstance(exc, OSError) and exc.errno in _REASONS:
            return exc.errno
        text = str(exc)
        for code, (marker, _) in _REASONS.items():
            if marker in text:
                return code
        exc = exc.__cause__ or exc.__context__
    return None


def is_disk_full(exc: BaseException | None) -> bool:
    return full_reason(exc) is not None


def disk_full(path, exc: BaseException | None = None, doing: str = "writing") -> DiskFull:
    """The one-line error for a full disk under `path`: the path, the mount point and what is free there."""
    mount = mount_point(path)
    try:
        use = shutil.disk_usage(mount)
        free = f"{_size(use.free)} free of {_size(use.total)}"
    except OSError:
        free = "free space unknown"
    what = _REASONS[full_reason(exc) or errno.ENOSPC][1]
    return DiskFull(f"{what} mounted at {mount} ({free}) {doing} {path}")


def write_text(path, text: str) -> None:
    """Write a text file atomically (a temporary name in the same folder, then a rename); DiskFull when full."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full(path, exc) from None
        raise


def remove(path) -> None:
    Path(path).unlink(missing_ok=True)


def swap(a, b, spare) -> bool:
    """Exchange the names `a` and `b` atomically, so that `b` names a whole file at every instant. Linux: one
    renameat2(RENAME_EXCHANGE). Elsewhere: link b as `spare`, rename a over b, rename spare to a. Returns False when
    the file that was `b` could not be kept (no exchange and no hard links): then `a` is gone."""
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE) == 0:
            return True
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(a))
    remove(spare)
    try:
        os.link(b, spare)
    except OSError:
        os.replace(a, b)
        return False
    os.replace(a, b)
    os.replace(spare, a)
    return True
