"""The output folder of a multi-run command: claimed once (a non-empty folder of something else is refused), and
exports written atomically (a kill mid-write leaves the previous file, never half of one)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..errors import ConfigError
from ..folders import make_folder
from .storage import DEFAULT_FILE, redact


def atomic_write(path: Path, text: str) -> None:
    """Write text to path through a temporary file renamed into place (fsynced first)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


MARKER = ".dgnn-study.json"  # which study's files a folder holds: {"storage": url, "study": name}


def claim_folder(out: Path, overwrite: bool, owned: tuple[str, ...], url: str, study: str) -> None:
    """Make `out` the folder of study `study` in storage `url`. A folder that already holds that study's files (its
    marker, or the embedded storage) is continued, by this process or by workers elsewhere sharing the folder (the
    engine checks the config); any other non-empty folder is refused unless overwrite, which removes only `owned`
    names, the marker and the embedded storage."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out {out}: exists and is not a folder")
    mine = {"storage": redact(url), "study": study}
    if out.exists() and any(out.iterdir()):
        if overwrite:
            for name in (*owned, DEFAULT_FILE, MARKER):
                p = out / name
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink(missing_ok=True)
        elif _marker(out) != mine and not (out / DEFAULT_FILE).exists():
            raise ConfigError(f"out {out}: folder is not empty and holds no files of study {study!r}; pass "
                              "overwrite=True to replace its contents, or choose another folder")
    make_folder(out, "out")
    if _marker(out) != mine:
        atomic_write(out / MARKER, json.dumps(mine))


def _marker(out: Path) -> dict | None:
    try:
        return json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
