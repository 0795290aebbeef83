"""The output folder of a multi-run command: claimed once (a non-empty folder of something else is refused), and
exports written atomically (a kill mid-write leaves the previous file, never half of one)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import ConfigError
from .storage import DEFAULT_FILE


def atomic_write(path: Path, text: str) -> None:
    """Write text to path through a temporary file renamed into place (fsynced first)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def claim_folder(out: Path, overwrite: bool, owned: tuple[str, ...], embedded: bool) -> None:
    """Make `out` the command's folder. A folder holding this command's embedded storage is continued (the engine
    checks the config); any other non-empty folder is refused unless overwrite, which removes only `owned` names
    (and the embedded storage)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out {out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if overwrite:
            for name in (*owned, DEFAULT_FILE):
                p = out / name
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink(missing_ok=True)
        elif not (embedded and (out / DEFAULT_FILE).exists()):
            raise ConfigError(f"out {out}: folder is not empty and holds no dgnn study; pass overwrite=True to replace "
                              "its contents, or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
