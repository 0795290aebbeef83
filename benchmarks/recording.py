"""Recording throughput: the crash-safe TraceWriter against the in-place writer it replaced (dgnn 0.1.0 up to
6a5cee4, reproduced below as LegacyWriter), measured in the same run on the same simulation.

    python benchmarks/recording.py [--repeats 3] [--quick] [--threads N] [--out benchmarks/results]

Cases: the quickstart (configs/quickstart.yaml as it is) and heavy recording (N=500, B=16, euler_maruyama,
record.every=0.04, phases recorded, 1001 records). Each repeat runs the simulation once and hands
every record to both writers, in alternating order, through the loop of `dgnn run` (advance, snapshot, append,
flush every 2 s or 8 MiB with a checkpoint, status at the end), so both write the same records with the same
flushes and the machine's drift cancels. Recording throughput = records / (simulation + writer time); reports the
ratio crash-safe / legacy per repeat (median, min, max). Writes a markdown table and JSON under --out.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

import dgnn
from dgnn.config import config_from_dict, load_config
from dgnn.simulation import FLUSH_BYTES, FLUSH_SECONDS, Simulation
from dgnn.traces import TraceWriter

ROOT = Path(__file__).resolve().parents[1]


class LegacyWriter:
    """The writer before crash safety: one file written in place, HDF5's filters, flush = write + H5Fflush."""

    def __init__(self, path, h5, series):
        self.path, self.h5, self.series = Path(path), h5, series
        self.buffer = {s.name: [] for s in series}
        self.rows = 0

    @classmethod
    def create(cls, path, *, config_text, version, series, static, attrs):
        h5 = h5py.File(path, "w")
        h5.attrs.update({"status": "running", "config": config_text, "dgnn_version": version, **attrs})
        for name, (array, a) in static.items():
            h5.create_dataset(name, data=array).attrs.update(a)
        for s in series:
            h5.create_dataset(s.name, shape=(0, *s.shape), maxshape=(None, *s.shape), dtype=s.dtype,
                              chunks=(s.chunk_rows, *s.shape), compression="gzip", compression_opts=1, shuffle=True)
        h5.flush()
        return cls(path, h5, series)

    def append(self, record):
        for s in self.series:
            self.buffer[s.name].append(record[s.name])

    @property
    def pending_bytes(self):
        return sum(sum(a.nbytes for a in rows) for rows in self.buffer.values())

    def flush(self, checkpoint=None):
        n = len(self.buffer["time"])
        if n:
            for s in self.series:
                ds = self.h5[s.name]
                ds.resize(self.rows + n, axis=0)
                ds[self.rows:] = np.stack(self.buffer[s.name]).astype(s.dtype, copy=False)
                self.buffer[s.name].clear()
            self.rows += n
        if checkpoint is not None:
            grp = self.h5.require_group("checkpoint")
            for key, value in checkpoint.items():
                if key in grp:
                    del grp[key]
                grp.create_dataset(key, data=value)
            grp.attrs["rows"] = self.rows
        self.h5.flush()

    def set_status(self, status, message=None):
        self.h5.attrs["status"] = status
        self.h5.flush()

    def close(self):
        self.h5.close()


def heavy(duration: float):
    return config_from_dict({
        "name": "heavy", "seed": 3, "dtype": "float32", "replicas": 16, "device": "cpu",
        "neurons": {"count": 500, "frequency": {"distribution": "normal", "center": 1.0, "width": 0.3}},
        "glia": {"ratio": 0.1}, "topology": {"kind": "modular", "modules": 4, "p_in": 0.3, "p_out": 0.01},
        "noise": {"neurons": 0.05, "glia": 0.02},
        "solver": {"method": "euler_maruyama", "dt": 0.02, "duration": duration},
        "record": {"every": 0.04, "phases": True},
    })


def quickstart(duration: float):
    return load_config(ROOT / "configs" / "quickstart.yaml", [f"solver.duration={duration}", "device=cpu"])


def shared_run(cfg, folder: Path) -> dict:
    """One simulation whose records go to both writers (in alternating order), through the `dgnn run` loop: the
    same records, flushes and checkpoints for each; the time inside each writer and in the simulation."""
    spent = {label: 0.0 for label in WRITERS}

    def each(i, call):
        for label in (list(WRITERS) if i % 2 == 0 else list(WRITERS)[::-1]):
            t = time.perf_counter()
            call(label, writers.get(label))
            spent[label] += time.perf_counter() - t

    t0 = time.perf_counter()
    sim = Simulation(cfg, device="cpu")
    text, series, static = dgnn.config.config_to_yaml(cfg), sim.series(), sim.static()
    attrs = {"device": "cpu", "backend": sim.field.backend_name}
    sim_s = time.perf_counter() - t0
    writers = {}
    each(0, lambda label, _: writers.__setitem__(label, WRITERS[label].create(
        folder / label / "trace.h5", config_text=text, version=dgnn.__version__, series=series, static=static,
        attrs=attrs)))
    last, i = time.monotonic(), 0
    while True:
        t = time.perf_counter()
        if i:
            sim.advance()
        record = sim.snapshot()
        now = time.monotonic()
        flush = i == 0 or sim.record == cfg.n_records or now - last >= FLUSH_SECONDS
        state = sim.state_dict() if flush else None
        sim_s += time.perf_counter() - t
        each(i, lambda label, w: w.append(record))
        if flush or writers["legacy"].pending_bytes >= FLUSH_BYTES:
            state = state if state is not None else sim.state_dict()
            each(i, lambda label, w: w.flush(state))
            last = now
        if sim.record == cfg.n_records:
            break
        i += 1
    each(i, lambda label, w: (w.set_status("complete"), w.close()))
    out = {"records": cfg.n_records + 1, "sim_s": sim_s}
    for label in WRITERS:
        out[label] = {"writer_s": spent[label], "file_MB": (folder / label / "trace.h5").stat().st_size / 1e6}
    return out


WRITERS = {"legacy": LegacyWriter, "crash-safe": TraceWriter}


def bench(name: str, cfg, repeats: int, tmp: Path) -> dict:
    runs = []
    for i in range(repeats + 1):  # the first is a warm-up (imports, caches, allocator)
        folder = tmp / f"{name}-{i}"
        for label in WRITERS:
            (folder / label).mkdir(parents=True)
        runs.append(shared_run(cfg, folder))
    runs = runs[1:]
    ratio = [(r["sim_s"] + r["legacy"]["writer_s"]) / (r["sim_s"] + r["crash-safe"]["writer_s"]) for r in runs]
    out = {"case": name, "records": runs[0]["records"], "sim_s": statistics.median(r["sim_s"] for r in runs),
           "throughput_new_over_old": ratio}
    for label in WRITERS:
        out[label] = {"writer_s": statistics.median(r[label]["writer_s"] for r in runs),
                      "file_MB": runs[0][label]["file_MB"]}
    return out


def table(results: list[dict]) -> str:
    lines = ["| case | records | simulation | legacy writer | crash-safe writer | file (legacy, crash-safe) | "
             "recording throughput crash-safe / legacy (median, min-max) |", "|---|---|---|---|---|---|---|"]
    for r in results:
        q, old, new = r["throughput_new_over_old"], r["legacy"], r["crash-safe"]
        lines.append(f"| {r['case']} | {r['records']} | {r['sim_s']:.2f} s | {old['writer_s']:.2f} s | "
                     f"{new['writer_s']:.2f} s | {old['file_MB']:.2f}, {new['file_MB']:.2f} MB | "
                     f"{statistics.median(q):.3f} ({min(q):.3f}-{max(q):.3f}) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test of the benchmark)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: stable on shared machines)")
    ap.add_argument("--quickstart-duration", type=float, default=60.0, help="default: the config's own")
    ap.add_argument("--heavy-duration", type=float, default=40.0)
    ap.add_argument("--tmp", help="folder for the traces (default: a temporary folder)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    qd, hd = (2.0, 1.0) if args.quick else (args.quickstart_duration, args.heavy_duration)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        results = [bench("quickstart", quickstart(qd), args.repeats, Path(tmp)),
                   bench("heavy recording", heavy(hd), args.repeats, Path(tmp))]
    text = table(results)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "h5py": h5py.version.version, "hdf5": h5py.version.hdf5_version, "threads": args.threads}
    (out / "recording.md").write_text(text + "\n")
    (out / "recording.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
