"""Memory a run needs, estimated from its config before anything is allocated, against what the device has free.

The estimate is the sum of parts, in bytes (constants measured on this code: peak resident memory of a build plus
a few records, see docs/inputs.md):
- state: the (B, N + G [+ energy]) state and the solver's and field's temporaries; set-up: the float64 arrays of
  the build (frequencies, initial phases);
- coupling: dense K matrices (N^2 per matrix and harmonic), sparse CSR (per edge); build: the float64 buffers a
  dense matrix is built in;
- graph: the networkx graph and edge lists of generated or file graphs (per node and expected edge), freed before
  the coupling is built, so only the larger of the two counts; edges: the graph's arrays, kept;
- structure: the per-replica synapse matrices and trigger masks of plastic networks (B C^2);
- records: the write buffer and the chunk a record is compressed in.
On a GPU the state, coupling and structure are device memory and the rest host memory; each pool is checked.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import torch

from .errors import ConfigError

GIB = float(1 << 30)
STATE_BYTES = 24  # per state element and byte of the dtype: RK stages, trig tables, drift terms (measured)
SETUP_BYTES = 40  # per state element: float64 frequencies, initial phases and their copies during the build
DENSE_BUILD_BYTES = 16  # per N^2: the float64 matrix and its transposed copy, alive while a K matrix is built
SPARSE_EDGE_BYTES = 96  # per directed edge and matrix: COO indices and values, coalesced copy, CSR
GRAPH_EDGE_BYTES = 300  # per undirected edge: networkx's dict-of-dicts plus the Python edge lists in the build
GRAPH_NODE_BYTES = 400  # per node of a networkx graph
EDGE_ARRAY_BYTES = 32  # per directed edge: the graph's source, target, weight and lag arrays
PLASTIC_BYTES = 6  # per B C^2 and byte of the dtype: W_b, its masks and penalties, the PLV tables of the triggers
FLUSH_BYTES = 8 << 20  # the writer's buffer between flushes (simulation.FLUSH_BYTES)


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Free memory on the device: CUDA's free memory, else MemAvailable within any cgroup limit; None if unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    known = [x for x in (_meminfo_available(), _cgroup_room()) if x is not None]
    return min(known) if known else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """Limit minus usage of this process's cgroup (v2, then v1), if there is a limit."""
    for limit_file, usage_file in (("memory.max", "memory.current"), ("memory.limit_in_bytes", "memory.usage_in_bytes")):
        for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/memory")):
            try:
                limit = (root / limit_file).read_text().strip()
                usage = int((root / usage_file).read_text().strip())
            except (OSError, ValueError):
                continue
            if limit.isdigit() and int(limit) < (1 << 60):
                return max(0, int(limit) - usage)
    return None


def expected_edges(cfg, n: int) -> float:
    """Expected undirected edges (directed ones for directed graphs) of the neuron graph; 0 for all_to_all."""
    t = cfg.topology
    pairs = n * (n - 1) / 2.0
    if t.kind == "erdos_renyi":
        return t.p * pairs * (2.0 if t.directed else 1.0)
    if t.kind == "watts_strogatz":
        return n * (t.k // 2)
    if t.kind == "barabasi_albert":
        return max(0, n - t.m) * t.m
    if t.kind == "modular":
        size = n / t.modules
        within = t.modules * size * (size - 1) / 2.0
        return t.p_in * within + t.p_out * (pairs - within)
    if t.kind in ("edgelist", "graphml"):
        return _file_edges(t.path, t.kind)
    return 0.0


def _file_edges(path: str, kind: str) -> float:
    """Edges in a graph file, bounded by its size: lines of an edge list, about 40 bytes per GraphML edge."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return 0.0  # the reader names the file
    if not stat.S_ISREG(info.st_mode):
        return 0.0  # a device or a pipe: the reader refuses it
    size = info.st_size
    if kind == "graphml":
        return size / 40.0
    lines = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(16 << 20):
            lines += chunk.count(b"\n")
    return float(lines + 1)


def estimate(cfg, points: int = 1, n: int | None = None, replicas: int | None = None) -> dict[str, float]:
    """Bytes a run of `cfg` (with `points` sweep points in its batch) needs, by part; n, replicas: what-ifs."""
    n = cfg.neurons.count if n is None else n
    b = (cfg.replicas if replicas is None else replicas) * points
    s = 8 if cfg.dtype == "float64" else 4
    g = int(round(cfg.glia.ratio * n))
    st = cfg.structure
    c = (st.capacity or (2 * n if st.neurogenesis.enabled else n)) if st.enabled else n
    gc = (st.glia_capacity or (2 * g if st.glia_creation.enabled else g)) if st.enabled else g
    domains = min(n, g) if not cfg.glia.domains else cfg.glia.domains
    energy = domains * 9 if cfg.metabolism.enabled else 0
    width = c + gc + energy
    parts = {"state": b * width * STATE_BYTES * s, "set-up": b * width * SETUP_BYTES}
    edges = expected_edges(cfg, n)
    directed = edges * (1.0 if cfg.topology.directed else 2.0)
    harmonics = 1 + (cfg.coupling.b != 0.0 or points > 1)
    matrices = harmonics * (2 if cfg.topology.kind in ("edgelist", "graphml") else 1)
    backend = cfg.coupling.backend
    if backend == "auto":
        density = directed / max(1.0, n * n)
        backend = "mean_field" if cfg.topology.kind == "all_to_all" else (
            "sparse" if n > 1024 and density < 0.05 else "dense")
    coupling = build = 0.0
    if backend == "dense" or st.enabled:
        coupling, build = matrices * n * n * s + (2 * c * c * s if st.enabled else 0.0), n * n * DENSE_BUILD_BYTES
    elif backend == "sparse":
        coupling = matrices * directed * SPARSE_EDGE_BYTES
    parts.update(coupling=coupling, build=build)
    parts["graph"] = (n * GRAPH_NODE_BYTES + edges * GRAPH_EDGE_BYTES) if cfg.topology.kind != "all_to_all" else 0.0
    parts["edges"] = directed * EDGE_ARRAY_BYTES
    parts["structure"] = b * c * c * s * PLASTIC_BYTES if st.enabled else 0.0
    row = b * (c + gc) * s if cfg.record.phases else 0
    parts["records"] = FLUSH_BYTES + 3 * row
    return parts


DEVICE_PARTS = ("state", "coupling", "structure")  # on the run's device; the rest is host memory


def total(parts: dict[str, float], device: str = "cpu") -> dict[str, float]:
    """Peak bytes per memory pool ({'cpu': ...}, plus 'cuda' for a GPU run). The graph build is freed before the
    coupling is built, so only the larger of the two counts."""
    if device == "cpu":
        rest = sum(v for k, v in parts.items() if k not in ("graph", "coupling", "build"))
        return {"cpu": rest + max(parts["graph"], parts["coupling"] + parts["build"])}
    host = sum(v for k, v in parts.items() if k not in DEVICE_PARTS + ("graph", "build"))
    return {device: sum(parts[k] for k in DEVICE_PARTS), "cpu": host + max(parts["graph"], parts["build"])}


def check_memory(cfg, points: int, device: torch.device) -> None:
    """Refuse, naming neurons.count or replicas, a run whose estimate exceeds the free memory of its device (and of
    the host, for a GPU run); say what would fit."""
    for pool, need in total(estimate(cfg, points), device.type).items():
        free = available_bytes(pool)
        if free is not None and need > free:
            _refuse(cfg, points, pool, need, free)


def _refuse(cfg, points: int, pool: str, need: float, free: float) -> None:
    device = "cuda" if pool != "cpu" else "cpu"
    fits = lambda **what: total(estimate(cfg, points, **what), device)[pool] <= free  # noqa: E731
    n, b = cfg.neurons.count, cfg.replicas
    fits_n = _largest(lambda x: fits(n=x), n)
    fits_b = _largest(lambda x: fits(replicas=x), b)
    what = []
    if fits_n:
        what.append(f"neurons.count <= {fits_n}" + (f" at replicas={b}" if b > 1 else ""))
    if fits_b:
        what.append(f"replicas <= {fits_b} at neurons.count={n}")
    parts = estimate(cfg, points)
    shown = ", ".join(f"{k} {v / GIB:.3g} GiB" for k, v in parts.items() if v >= 0.01 * need)
    batch = f" x {points} sweep points" if points > 1 else ""
    key = "replicas" if fits_b else "neurons.count"  # the one to change: replicas if fewer of them fit
    raise ConfigError(
        f"{key}: {n} neurons x {b} replicas{batch} need about {need / GIB:.3g} GiB of {pool} memory ({shown}) but "
        f"only {free / GIB:.3g} GiB are free; "
        + (" or ".join(what) + " would fit" if what else "not even one neuron and one replica fit"),
        key=key,
    )


def _largest(fits, upper: int) -> int:
    """The largest x in 1..upper - 1 with fits(x) (monotone), or 0."""
    lo, hi = 0, upper
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo
