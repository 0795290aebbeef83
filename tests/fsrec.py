"""Crash states from an fsrec log (tests/fsrec.c): build the LD_PRELOAD recorder, read its log, and replay any
prefix of the recorded operations (optionally with the next write cut at a page boundary) into a folder."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = 4096


def build(folder: Path) -> Path | None:
    """Compile the recorder into `folder`; None without a C compiler (or off Linux)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not Path("/proc/self").exists():
        return None
    out = folder / "fsrec.so"
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(HERE / "fsrec.c"), "-ldl"],
                       capture_output=True, text=True)
    return out if r.returncode == 0 else None


@dataclass(frozen=True)
class Op:
    kind: str  # O open, C close, W write, T truncate, R rename, X exchange, L link, U unlink
    a: str
    b: str
    offset: int
    data: bytes


def read_log(path) -> list[Op]:
    raw, ops, i = Path(path).read_bytes(), [], 0
    while i < len(raw):
        kind = chr(raw[i])
        la, lb = struct.unpack_from("<II", raw, i + 1)
        off, n = struct.unpack_from("<qq", raw, i + 9)
        i += 25
        a, b = raw[i:i + la].decode(), raw[i + la:i + la + lb].decode()
        i += la + lb
        data = raw[i:i + n] if kind == "W" else b""
        i += len(data)
        ops.append(Op(kind, a, b, off, data))
    return ops


class Replay:
    """Names -> inodes -> bytes, advanced one recorded operation at a time."""

    def __init__(self):
        self.names: dict[str, int] = {}
        self.fds: dict[int, int] = {}
        self.inodes: dict[int, bytearray] = {}

    def apply(self, op: Op, cut: int | None = None) -> None:
        if op.kind == "O":
            fd, flags = op.offset >> 32, op.offset & 0xFFFFFFFF
            if op.a not in self.names:
                self.names[op.a] = len(self.inodes)
                self.inodes[len(self.inodes)] = bytearray()
            if flags & os.O_TRUNC:
                self.inodes[self.names[op.a]].clear()
            self.fds[fd] = self.names[op.a]
        elif op.kind == "C":
            self.fds.pop(op.offset, None)
        elif op.kind == "W":
            buf, data = self.inodes[self.fds[int(op.b)]], op.data if cut is None else op.data[:cut]
            if len(buf) < op.offset:
                buf.extend(bytes(op.offset - len(buf)))
            buf[op.offset:op.offset + len(data)] = data
        elif op.kind == "T":
            buf = self.inodes[self.fds[int(op.b)]]
            del buf[op.offset:]
            buf.extend(bytes(op.offset - len(buf)))
        elif op.kind == "R":
            self.names[op.b] = self.names.pop(op.a)
        elif op.kind == "X":
            self.names[op.a], self.names[op.b] = self.names[op.b], self.names[op.a]
        elif op.kind == "L":
            self.names[op.b] = self.names[op.a]
        elif op.kind == "U":
            self.names.pop(op.a, None)

    def write_to(self, recorded: Path, folder: Path) -> None:
        """The files that were under `recorded`, as they stand now, written under `folder`."""
        for name, ino in self.names.items():
            rel = Path(name).relative_to(recorded)
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(bytes(self.inodes[ino]))


def crash_states(ops: list[Op]):
    """Every state a kill can leave: after each prefix of `ops`, and with the next write cut after its first page
    when it spans more than one. Yields (index, cut, Replay); the Replay is shared: copy what you keep."""
    fs = Replay()
    for k, op in enumerate(ops):
        yield k, None, fs
        if op.kind == "W" and len(op.data) > PAGE:
            trial = Replay()
            trial.names, trial.fds = dict(fs.names), dict(fs.fds)
            trial.inodes = {i: bytearray(b) for i, b in fs.inodes.items()}
            trial.apply(op, cut=PAGE - op.offset % PAGE)
            yield k, PAGE, trial
        fs.apply(op)
    yield len(ops), None, fs
