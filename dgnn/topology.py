"""Graphs (networkx, seeded) -> a weighted coupling structure: edges j -> i with weight and optional per-edge lag."""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from .config import Topology
from .errors import ConfigError
from .textfiles import check_text, text_lines as read_lines


@dataclass(frozen=True)
class Graph:
    """Coupling structure of N nodes. Edge e drives target[e] from source[e]: K[target, source] = weight / D."""

    n: int
    kind: str
    target: np.ndarray | None  # (E,) int64; None for all_to_all (implicit: every i != j)
    source: np.ndarray | None  # (E,) int64
    weight: np.ndarray | None  # (E,) float, unnormalised; None = all ones
    lag: np.ndarray | None  # (E,) rad, or None (global lag from config)
    modules: np.ndarray | None  # (N,) int module label, or None
    normaliser: float  # D: N for all_to_all, mean (in-)degree otherwise

    @property
    def implicit(self) -> bool:
        """All-to-all with unit weights and no per-edge lag, never materialised: the mean-field identity applies."""
        return self.target is None

    @property
    def n_edges(self) -> int:
        return self.n * (self.n - 1) if self.implicit else int(self.target.size)

    @property
    def density(self) -> float:
        return self.n_edges / max(1, self.n * self.n)

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(target, source, weight) arrays, materialising all_to_all (N (N - 1) edges) when asked."""
        if not self.implicit:
            return self.target, self.source, self.weight
        idx = np.arange(self.n)
        tgt, src = np.meshgrid(idx, idx, indexing="ij")
        off = tgt != src
        return tgt[off], src[off], np.ones(int(off.sum()))


def _number(value, what: str, where: str | None, u, v) -> float:
    """A finite float from an edge attribute (files may hold strings, NaN or infinities: refused, naming the edge)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = None
    if x is None or isinstance(value, bool) or not np.isfinite(x):
        raise ConfigError(f"{where or 'graph'}: edge {u} -> {v}: {what} must be a finite number, found {value!r}")
    return x


def _from_nx(g: nx.Graph, n: int, kind: str, directed: bool, modules=None, where: str | None = None) -> Graph:
    src, tgt, w, lag = [], [], [], []
    has_lag = False
    for u, v, data in g.edges(data=True):
        if u == v:
            continue
        weight = _number(data.get("weight", 1.0), "weight", where, u, v)
        el = data.get("phase_lag", data.get("lag"))
        has_lag |= el is not None
        el = _number(el, "phase_lag", where, u, v) if el is not None else 0.0
        src.append(u), tgt.append(v), w.append(weight), lag.append(el)  # u drives v
        if not directed:
            src.append(v), tgt.append(u), w.append(weight), lag.append(el)
    source = np.asarray(src, dtype=np.int64)
    target = np.asarray(tgt, dtype=np.int64)
    # mean degree of the unweighted graph: in-degree for directed graphs, degree for undirected ones
    degree = source.size / n
    return Graph(
        n=n,
        kind=kind,
        target=target,
        source=source,
        weight=np.asarray(w, dtype=float),
        lag=np.asarray(lag, dtype=float) if has_lag else None,
        modules=modules,
        normaliser=degree if degree > 0 else 1.0,
    )


def _relabel(g: nx.Graph, n: int, where: str) -> nx.Graph:
    """Node ids from a file -> neurons 0..n-1: integer ids are neuron indices (each in range, each once); names
    (ids that are not all integers) are numbered in the order the file gives them."""
    nodes = list(g.nodes)
    ints = {}
    for x in nodes:
        try:
            ints[x] = int(str(x).strip())
        except ValueError:
            break
    if len(ints) == len(nodes):
        for x, i in ints.items():
            if not 0 <= i < n:
                raise ConfigError(f"{where}: node id {x!r} is out of range 0..{n - 1} (neurons.count={n})")
        if len(set(ints.values())) < len(ints):
            seen = {}
            for x, i in ints.items():
                if i in seen:
                    raise ConfigError(f"{where}: node ids {seen[i]!r} and {x!r} are both neuron {i}")
                seen[i] = x
        return nx.relabel_nodes(g, ints)
    if any(_is_int(x) for x in nodes):
        raise ConfigError(f"{where}: node ids mix integers and names ({next(x for x in nodes if not _is_int(x))!r}); "
                          f"use integers 0..{n - 1}, or names throughout (numbered in file order)")
    if len(nodes) > n:
        raise ConfigError(f"{where}: {len(nodes)} nodes but neurons.count is {n}")
    return nx.relabel_nodes(g, {x: i for i, x in enumerate(nodes)})


def _is_int(x) -> bool:
    try:
        int(str(x).strip())
        return True
    except ValueError:
        return False


def read_edgelist(path: str, n: int, directed: bool) -> nx.Graph:
    """Lines 'i j [weight [lag]]' ('#' comments); 'i j' means i drives j (both ways when undirected). An edge given
    twice must agree with itself (a second weight would silently replace the first)."""
    g = nx.DiGraph() if directed else nx.Graph()
    g.add_nodes_from(range(n))
    for lineno, line in read_lines(path, "edge list", "topology.path"):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.replace(",", " ").split()
        try:
            if len(parts) not in (2, 3, 4):
                raise ValueError(f"expected 'i j [weight [lag]]', found {len(parts)} fields")
            i, j = int(parts[0]), int(parts[1])
            vals = [float(x) for x in parts[2:]]
            if not all(np.isfinite(vals)):
                raise ValueError("weight and lag must be finite")
        except ValueError as exc:
            raise ConfigError(f"{path}:{lineno}: {exc}: {line.strip()!r}") from None
        if not (0 <= i < n and 0 <= j < n):
            raise ConfigError(f"{path}:{lineno}: node id out of range 0..{n - 1} (neurons.count={n}): {line.strip()!r}")
        attrs = {"weight": vals[0]} if vals else {}
        if len(vals) == 2:
            attrs["phase_lag"] = vals[1]
        if g.has_edge(i, j):
            old = g.get_edge_data(i, j)
            if old.get("weight", 1.0) != attrs.get("weight", 1.0) or old.get("phase_lag", 0.0) != attrs.get("phase_lag", 0.0):
                both = "" if directed else " (undirected: i j and j i are one edge)"
                raise ConfigError(f"{path}:{lineno}: edge {i} {j} was given before with weight "
                                  f"{old.get('weight', 1.0):g} and lag {old.get('phase_lag', 0.0):g}{both}; give each "
                                  f"edge once")
        g.add_edge(i, j, **attrs)
    return g


def read_graphml(path: str, n: int) -> nx.Graph:
    """A GraphML file (networkx's reader); anything it cannot parse is one line naming the file."""
    check_text(path, "GraphML file", "topology.path")  # no binary data or device for the XML parser
    try:
        g = nx.read_graphml(path)
    except Exception as exc:  # noqa: BLE001 - any failure of the third-party parser means the file is unreadable
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"topology.path: cannot read GraphML file {path} ({detail[:200]})",
                          key="topology.path") from None
    return _relabel(g, n, path)


def build_graph(topo: Topology, n: int, seed: int) -> Graph:
    """Build the neuron graph with networkx, seeded; file-based graphs carry weights and per-edge lags."""
    kind = topo.kind
    if kind == "all_to_all":
        return Graph(n, kind, None, None, None, None, None, float(n))
    modules = None
    if kind == "erdos_renyi":
        fn = nx.fast_gnp_random_graph if topo.p < 0.2 else nx.gnp_random_graph  # same law; fast one for sparse graphs
        g = fn(n, topo.p, seed=seed, directed=topo.directed)
    elif kind == "watts_strogatz":
        if topo.k >= n:
            raise ConfigError(f"topology.k: must be < neurons.count={n}, found {topo.k}", key="topology.k")
        g = nx.watts_strogatz_graph(n, topo.k, topo.p, seed=seed)
    elif kind == "barabasi_albert":
        if topo.m >= n:
            raise ConfigError(f"topology.m: must be < neurons.count={n}, found {topo.m}", key="topology.m")
        g = nx.barabasi_albert_graph(n, topo.m, seed=seed)
    elif kind == "modular":
        sizes = [n // topo.modules + (1 if i < n % topo.modules else 0) for i in range(topo.modules)]
        g = nx.random_partition_graph(sizes, topo.p_in, topo.p_out, seed=seed)
        modules = np.repeat(np.arange(topo.modules), sizes)
    elif kind == "edgelist":
        g = read_edgelist(topo.path, n, topo.directed)
    else:  # graphml
        g = read_graphml(topo.path, n)
        if not topo.directed and g.is_directed():
            g = g.to_undirected()
        g.add_nodes_from(range(n))
    return _from_nx(g, n, kind, topo.directed, modules, where=topo.path if kind in ("edgelist", "graphml") else None)


def domains(n: int, count: int, modules: np.ndarray | None) -> np.ndarray:
    """(n,) domain index in 0..count-1: contiguous blocks, taken along module order when the graph has modules."""
    if count <= 0:
        return np.zeros(n, dtype=np.int64)
    order = np.argsort(modules, kind="stable") if modules is not None else np.arange(n)
    dom = np.empty(n, dtype=np.int64)
    dom[order] = (np.arange(n) * count) // n
    return dom


def domain_graph(graph: Graph, neuron_domain: np.ndarray, glia_domain: np.ndarray, n_domains: int) -> Graph:
    """Glia graph: glia g, h are linked when a neuron edge joins their domains (or they share a domain)."""
    adjacent = np.ones((n_domains, n_domains), dtype=bool)  # all_to_all joins every pair of domains
    if not graph.implicit:
        adjacent[:] = False
        adjacent[neuron_domain[graph.target], neuron_domain[graph.source]] = True
        np.fill_diagonal(adjacent, True)
    linked = adjacent[np.ix_(glia_domain, glia_domain)]  # (G, G)
    np.fill_diagonal(linked, False)
    tgt, src = np.nonzero(linked)
    e, n = tgt.size, glia_domain.size
    return Graph(n, "domains", tgt.astype(np.int64), src.astype(np.int64), np.ones(e), None, None, e / n if e else 1.0)
