"""Output folders: created with their parents, or refused with one line naming the argument that gave the path."""
from __future__ import annotations

from pathlib import Path

from .disk import disk_full, is_disk_full
from .errors import ConfigError


def make_folder(path: str | Path, arg: str = "out") -> Path:
    """Create `path` (and its parents) if needed; a file in the way or a folder that cannot be made (permissions,
    a read-only or virtual file system) is a ConfigError (DiskFull on a full disk) starting with `arg` and the path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{arg} {path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(path, exc, "creating the folder") from None
        raise ConfigError(f"{arg} {path}: cannot create the folder ({exc.strerror or type(exc).__name__})") from None
    return path
