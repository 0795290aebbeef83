"""A simulation built from a config: state, record-by-record integration, metrics; and `run`/`resume` to a trace."""
from __future__ import annotations

import datetime as _dt
import math
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from .disk import disk_full, is_disk_full, write_text
from .config import Config, config_from_yaml_text, config_to_yaml
from .errors import ConfigError, DiskFull, SimulationFailed
from .folders import make_folder
from .locks import LOCK_NAME, RunLock
from .model import build_field
from .resources import check_memory
from .sampling import sample_phases
from .solvers import ADAPTIVE, CudaGraphLoop, PointIncrements, SolverStalled, graph_reason, solve
from .stability import check_points
from .traces import Series, TraceWriter, companions, read_resume_state
from .trig import DomainMeans
from .version import __version__

TWO_PI = 2.0 * math.pi
FLUSH_BYTES = 8 << 20  # write buffered records at least this often ...
FLUSH_SECONDS = 2.0  # ... or this often, whichever comes first


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {name!r}: not a device; use auto, cpu or cuda", key="device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: no CUDA device is available here; use auto or cpu", key="device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA devices here", key="device")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r}: only cpu and cuda are supported", key="device")
    return dev


class Simulation:
    """State y = [theta, psi] (B, N + G) kept in [-pi, pi) with whole turns counted apart, advanced record by record."""

    def __init__(self, cfg: Config, device: str | torch.device | None = None, points: list[Config] | None = None):
        """points: sweep points that differ from cfg only in numeric keys (model.BATCHABLE), simulated together;
        point p owns replicas p * cfg.replicas .. (p + 1) * cfg.replicas - 1. Each point draws its frequencies,
        initial phases and noise from its own seed (seed is not batchable: every point has cfg's), so a point
        follows the trajectory of its own run whatever its batch mates."""
        points = points or [cfg]
        if any(p.seed != cfg.seed or p.replicas != cfg.replicas for p in points):
            raise ConfigError("points: sweep points batched together must share seed and replicas (not batchable)")
        self.cfg, self.points = cfg, points
        self.device = resolve_device(str(device) if device is not None else cfg.device)
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        check_memory(cfg, len(points), self.device)  # before anything big is allocated
        streams = [np.random.SeedSequence(p.seed).spawn(3) for p in points]  # params, initial state, noise
        self.field = build_field(points, self.device, self.dtype, [np.random.default_rng(s[0]) for s in streams])
        check_points(points, self.field)  # a step outside the method's stability interval: refused before stepping
        self.n, self.g, self.b = self.field.n_neurons, self.field.n_glia, cfg.replicas * len(points)
        self.n_phase = self.n + self.g
        self.metabolism = getattr(self.field, "metabolism", None)
        blocks = []
        n0, g0 = cfg.neurons.count, cfg.glia_count  # slots beyond them (spare capacity) start inactive at phase 0
        for p, s in zip(points, streams):
            rng = np.random.default_rng(s[1])
            blocks.append(np.concatenate([sample_phases(p.neurons.initial_phase, n0, p.replicas, rng),
                                          np.zeros((p.replicas, self.n - n0)),
                                          sample_phases(p.glia.initial_phase, g0, p.replicas, rng),
                                          np.zeros((p.replicas, self.g - g0))], axis=1))
        y0 = np.concatenate(blocks, axis=0)
        self.y = torch.as_tensor(y0, device=self.device, dtype=self.dtype)  # (B, N + G [+ energy block])
        if self.metabolism is not None:
            self.y = torch.cat([self.y, self.metabolism.initial(self.b, self.device, self.dtype)], dim=1)
        self.turns = torch.zeros(self.b, self.n_phase, device=self.device, dtype=torch.int64)  # whole turns removed
        self._wrap()
        self.initial = self.unwrapped().cpu().numpy()  # (B, N + G) phases at t = 0
        self.noise = PointIncrements(int(streams[0][2].generate_state(1)[0]), len(points), self.device)
        self.noisy = bool((self.field.sigma > 0).any())
        s = cfg.solver
        self.max_steps = (s.max_steps or max(1000, 100 * cfg.steps_per_record)) if s.method in ADAPTIVE else None
        self.held = None  # (B,) bool: replicas of failed sweep points, held at their last finite state
        self.failed: dict[int, str] = {}  # point -> why it failed
        self._new_failures: dict[int, str] = {}
        self.record = 0  # index of the current record; t = record * record.every
        self.controller, self.events = None, []
        if cfg.structure.enabled:
            from .structure import Controller

            rngs = [np.random.default_rng(np.random.SeedSequence(p.seed).spawn(4)[3]) for p in points]  # one per point
            self.controller = Controller(cfg, self.field, rngs, undirected=not cfg.topology.directed, points=points)
        self.mask = getattr(self.field, "neuron_mask", None)  # (B, C) active slots, or None
        modules = self.field.graph.modules if self.field.graph is not None else None
        if modules is not None and self.mask is not None:  # a plastic network: a spare slot joins its domain's module
            dom = self.field.neuron_dom_index.cpu().numpy()  # (C,)
            module_of_domain = np.zeros(int(dom.max()) + 1, dtype=np.int64)
            module_of_domain[self.field.neuron_domain] = modules
            modules = module_of_domain[dom]
        self.modules = DomainMeans(modules, int(modules.max()) + 1, self.device, self.dtype) if modules is not None else None
        self.graphs: CudaGraphLoop | None = None  # built at the first advance() unless graph_reason says why not
        self.graph_reason: str | None = None

    # ------------------------------------------------------------------------------------------------ stepping
    @property
    def t(self) -> float:
        return self.record * self.cfg.record.every

    def _wrap(self) -> None:
        ph = self.y[:, : self.n_phase]  # (B, N + G); the energy block is not a phase
        k = torch.floor((ph + math.pi) / TWO_PI)
        self.y = torch.cat([ph - TWO_PI * k, self.y[:, self.n_phase:]], dim=1) if self.metabolism is not None else ph - TWO_PI * k
        self.turns += k.to(torch.int64)

    def advance(self) -> None:
        """Integrate one record interval (whole solver steps), then reduce phases to [-pi, pi).

        A state that turns non-finite (or an adaptive solve that stalls) fails the sweep points it reaches, alone:
        they are held at their last finite state and reported by take_failures(), the others go on. A plain run
        (one point) raises SimulationFailed instead."""
        t0, t1 = self.t, (self.record + 1) * self.cfg.record.every
        try:
            y = self._integrate(t0, t1, self.held)
        except SimulationFailed as exc:  # adaptive methods share their steps: find the points at fault one by one
            y = self._isolate(t0, t1, exc)
        else:
            if self.held is not None:
                y = torch.where(self.held[:, None], self.y, y)  # failed points stay where they failed
            if not bool(torch.isfinite(y).all()):
                y = self._fail_rows(t0, t1, y)
        self.y = y
        self.record += 1
        self._wrap()
        if self.controller is not None:
            self.controller.observe(self.y[:, : self.n], self.metabolism.reserve(self.y[:, self.n_phase:]))
            if self.controller.due(self.record):
                self.y, events = self.controller.apply(self.t, self.y.clone(), self.controller.propose(self.t))
                self.events.append(events)

    def _integrate(self, t0: float, t1: float, held: torch.Tensor | None) -> torch.Tensor:
        """The state at t1 from self.y at t0, piece by piece across behavioural-state boundaries; `held` (B,) rows
        do not move in adaptive solves (native steps are per row; the caller restores them)."""
        s = self.cfg.solver
        schedule = getattr(self.field, "schedule", None)
        cuts = schedule.breaks(t0, t1) if schedule is not None else [t0, t1]
        y = self.y
        graphs = self._graph_loop()
        for a, b in zip(cuts, cuts[1:]):  # one piece per behavioural state
            if schedule is not None:
                schedule.pinned = 0.5 * (a + b)
            try:
                if graphs is not None:  # the same steps, replayed as a CUDA graph (bit-equal to the loop below)
                    y = graphs(y, a, b)
                else:
                    y = solve(
                        self.field, y, [a, b], method=s.method, dt=s.dt, rtol=s.rtol, atol=s.atol,
                        diffusion=self.field.sigma if self.noisy else None, noise=self.noise if self.noisy else None,
                        backend=s.backend, project=getattr(self.field, "project", None),
                        max_steps=self.max_steps, held=held,
                    )[-1]
            finally:
                if schedule is not None:
                    schedule.pinned = None
        return y

    def _rows(self, p: int) -> slice:
        return slice(p * self.cfg.replicas, (p + 1) * self.cfg.replicas)

    def _fail_rows(self, t0: float, t1: float, y1: torch.Tensor) -> torch.Tensor:
        """Fail every point with a non-finite replica in y1; y1 with those points held at their state at t0."""
        bad = ~torch.isfinite(y1).all(1)  # (B,)
        for p in sorted({int(r) // self.cfg.replicas for r in torch.nonzero(bad).flatten().tolist()}):
            self._fail_point(p, self._message(t0, t1, p, y1))
        return torch.where(self.held[:, None], self.y, y1)

    def _isolate(self, t0: float, t1: float, exc: SimulationFailed) -> torch.Tensor:
        """After an adaptive solve failed: solve each running point alone (the others held); those that fail alone
        fail, the others take their own solution of the interval."""
        if len(self.points) == 1:
            if isinstance(exc, SolverStalled):
                raise exc
            self._fail_point(0, self._message(t0, t1, 0, None))
        y = self.y.clone()
        for p in [p for p in range(len(self.points)) if p not in self.failed]:
            held = torch.ones(self.b, dtype=torch.bool, device=self.device)
            held[self._rows(p)] = False
            try:
                alone = self._integrate(t0, t1, held)
            except SolverStalled as stalled:
                self._fail_point(p, str(stalled))
                continue
            except SimulationFailed:
                self._fail_point(p, self._message(t0, t1, p, None))
                continue
            if not bool(torch.isfinite(alone[self._rows(p)]).all()):
                self._fail_point(p, self._message(t0, t1, p, alone))
                continue
            y[self._rows(p)] = alone[self._rows(p)]
        return y

    def _fail_point(self, p: int, message: str) -> None:
        """Point p failed: a plain run raises; a sweep point is held (no drift, out of step control) and reported."""
        if len(self.points) == 1:
            raise SimulationFailed(message)
        if self.held is None:
            self.held = torch.zeros(self.b, dtype=torch.bool, device=self.device)
        self.held[self._rows(p)] = True
        self.failed[p] = self._new_failures[p] = message

    def take_failures(self) -> dict[int, str]:
        """Sweep points that failed since the last call: {point index: message naming its own replica}."""
        out, self._new_failures = self._new_failures, {}
        return out

    @property
    def running(self) -> bool:
        """Whether any point is still being simulated."""
        return len(self.failed) < len(self.points)

    def _graph_loop(self) -> CudaGraphLoop | None:
        """The CUDA-graph stepper of this run, decided at the first record; None where graph_reason says why not."""
        if self.graphs is None and self.graph_reason is None:
            noise = self.noise if self.noisy else None
            self.graph_reason = graph_reason(self.cfg, self.device, noise)
            if self.graph_reason is None:
                s = self.cfg.solver
                self.graphs = CudaGraphLoop(self.field, s.method, s.dt, self.field.sigma if self.noisy else None,
                                            noise, getattr(self.field, "project", None))
        return self.graphs

    def take_events(self) -> np.ndarray | None:
        """Structural events since the last call (None without structure)."""
        if self.controller is None:
            return None
        from .structure import EVENT_DTYPE

        out = np.concatenate(self.events) if self.events else np.zeros(0, dtype=EVENT_DTYPE)
        self.events = []
        return out

    def _message(self, t0: float, t1: float, p: int, y1: torch.Tensor | None) -> str:
        """Why point p failed: the populations of its replicas that went non-finite in y1 (None: unknown, an
        adaptive solve stopped) and its fastest component at the last finite state, its likely origin (within one
        step a non-finite value spreads to every coupled oscillator). Replica indices are the point's own."""
        rows = self._rows(p)
        pops = "state"
        if y1 is not None:
            bad = ~torch.isfinite(y1[rows])  # (R, N + G [+ energy])
            parts = (("neurons", bad[:, : self.n]), ("glia", bad[:, self.n: self.n_phase]),
                     ("metabolism", bad[:, self.n_phase:]))
            pops = " and ".join(name for name, part in parts if bool(part.any())) + " state"
            suspects = bad.any(1)  # (R,) the replicas that went non-finite
        speed = self.field(t0, self.y)[rows].abs().nan_to_num(nan=float("inf"))  # (R, N + G [+ energy])
        if y1 is not None:
            speed = torch.where(suspects[:, None], speed, -1.0)  # the fastest among the replicas that failed
        b, i = divmod(int(speed.argmax()), speed.shape[1])
        who = f"neuron {i}" if i < self.n else f"glia {i - self.n}" if i < self.n_phase else "energy reserve"
        return (f"{pops} turned non-finite between t={t0:g} and t={t1:g}; fastest at t={t0:g}: replica {b}, {who} "
                f"(|dphase/dt| = {float(speed[b, i]):.3g} rad/time); reduce solver.dt or check drive and coupling "
                f"magnitudes")

    def unwrapped(self) -> torch.Tensor:
        """(B, N + G) continuous phases in radians, float64."""
        return self.y[:, : self.n_phase].double() + TWO_PI * self.turns.double()

    # ------------------------------------------------------------------------------------------------ records
    def series(self, b: int | None = None) -> list[Series]:
        """What each record holds (the trace layout), for b replicas (default: the whole batch)."""
        cfg, n, g = self.cfg, self.n, self.g
        b = self.b if b is None else b
        dt = "float64" if self.dtype == torch.float64 else "float32"
        out = [Series("time", (), "float64", {"units": "time (dimensionless)"})]
        if cfg.record.phases:
            out.append(Series("neurons/phase", (b, n), dt, {"units": "rad", "wrapped": 0, "dims": "time, replica, neuron"}))
            if g:
                out.append(Series("glia/phase", (b, g), dt, {"units": "rad", "wrapped": 0, "dims": "time, replica, glia"}))
        r = {"units": "1", "dims": "time, replica"}
        psi = {"units": "rad", "dims": "time, replica"}
        out += [Series("metrics/order_parameter", (b,), dt, r), Series("metrics/mean_phase", (b,), dt, psi)]
        if g:
            out += [Series("metrics/glia_order_parameter", (b,), dt, r), Series("metrics/glia_mean_phase", (b,), dt, psi)]
        if self.modules is not None:
            out.append(
                Series("metrics/module_order_parameter", (b, self.modules.n_domains), dt,
                       {"units": "1", "dims": "time, replica, module"})
            )
        if self.controller is not None:
            out.append(Series("structure/size", (b, 3), "int64",
                              {"dims": "time, replica, (active neurons, directed synapses = nonzero W entries, glia)"}))
            out.append(Series("structure/active", (b, n), "uint8", {"dims": "time, replica, neuron slot"}))
            out.append(Series("structure/glia_active", (b, g), "uint8", {"dims": "time, replica, glial slot"}))
        if self.metabolism is not None:
            d = self.metabolism.d
            energy = {"units": "energy", "dims": "time, replica, domain"}
            out.append(Series("metabolism/reserve", (b, d), dt, energy))
            for name in self.metabolism.columns:  # consumed_glia only where the glia draw power (p_glia)
                out.append(Series(f"metabolism/ledger/{name}", (b, d), dt, {**energy, "cumulative": 1}))
            out.append(Series("metabolism/power", (b,), dt, {"units": "energy / time", "dims": "time, replica"}))
            out.append(Series("metabolism/supply_factor", (), "float64", {"units": "1", "dims": "time"}))
            out.append(Series("metabolism/epoch", (), "int32", {"units": "schedule epoch index (-1: no schedule)"}))
        return out

    def snapshot(self) -> dict[str, np.ndarray]:
        """The current record: time, unwrapped phases and order parameters."""
        n = self.n
        rec = {"time": np.float64(self.t)}
        if self.cfg.record.phases:
            un = self.unwrapped().to(self.dtype).cpu().numpy()
            rec["neurons/phase"] = un[:, :n]
            if self.g:
                rec["glia/phase"] = un[:, n:]

        def order(x, w=None):
            if w is None:
                z = torch.complex(torch.cos(x).mean(1), torch.sin(x).mean(1))  # (B,)
            else:  # active slots only
                k = w.sum(1).clamp_min(1.0)
                z = torch.complex((torch.cos(x) * w).sum(1) / k, (torch.sin(x) * w).sum(1) / k)
            return z.abs().cpu().numpy(), z.angle().cpu().numpy()

        rec["metrics/order_parameter"], rec["metrics/mean_phase"] = self._by_point(order, self.y[:, :n], self.mask)
        if self.controller is not None:
            syn = self.controller.count_synapses()
            glia = self.field.glia_mask
            rec["structure/size"] = torch.stack([self.mask.sum(1).long(), syn, glia.sum(1).long()], dim=1).cpu().numpy()
            rec["structure/active"] = self.mask.to(torch.uint8).cpu().numpy()
            rec["structure/glia_active"] = glia.to(torch.uint8).cpu().numpy()
        if self.g:
            rec["metrics/glia_order_parameter"], rec["metrics/glia_mean_phase"] = self._by_point(
                order, self.y[:, n: self.n_phase], getattr(self.field, "glia_mask", None))
        if self.modules is not None:
            th = self.y[:, :n]
            if self.mask is not None:
                self.modules.set(self.modules.index, self.mask)  # membership follows the current activity
            x, y = self.modules(torch.cos(th), torch.sin(th))
            rec["metrics/module_order_parameter"] = self._by_point(
                lambda x, y: torch.sqrt(x * x + y * y).cpu().numpy(), x, y)
        if self.metabolism is not None:
            from .metabolism import LEDGER

            met, block = self.metabolism, self.y[:, self.n_phase:]
            rec["metabolism/reserve"] = met.reserve(block).cpu().numpy()
            ledger = met.ledger(block).cpu().numpy()  # (B, len(LEDGER), D)
            for name in met.columns:
                rec[f"metabolism/ledger/{name}"] = ledger[:, LEDGER.index(name)]
            rec["metabolism/power"] = met.power(self.field.deviation(self.t, self.y)).cpu().numpy()
            rec["metabolism/supply_factor"] = np.float64(met.schedule.factor(self.t))
            rec["metabolism/epoch"] = np.int32(met.schedule.index(self.t))
        return rec

    def _by_point(self, fn, *xs):
        """fn over each sweep point's block of replicas (rows), concatenated: vectorised kernels (atan2, hypot) and
        reductions then see the shapes of the point's own run, so its records equal that run's to the bit."""
        if len(self.points) == 1:
            return fn(*xs)
        b = self.cfg.replicas
        parts = [fn(*(None if x is None else x[i * b:(i + 1) * b] for x in xs)) for i in range(len(self.points))]
        return tuple(map(np.concatenate, zip(*parts))) if isinstance(parts[0], tuple) else np.concatenate(parts)

    def static(self) -> dict[str, tuple[np.ndarray, dict]]:
        """Arrays fixed for the whole run, written once."""
        f = self.field
        out = {
            "neurons/frequency": (f.omega.cpu().numpy(), {"units": "rad / time", "dims": "replica, neuron"}),
            "neurons/initial_phase": (self.initial[:, : self.n], {"units": "rad"}),
        }
        if f.neuron_domain is not None:
            out["neurons/domain"] = (np.asarray(f.neuron_domain), {"units": "glial domain index"})
        if f.graph is not None and f.graph.modules is not None:
            out["neurons/module"] = (np.asarray(f.graph.modules), {"units": "module index"})
        if self.g:
            out["glia/frequency"] = (f.nu.cpu().numpy(), {"units": "rad / time", "dims": "replica, glia"})
            out["glia/initial_phase"] = (self.initial[:, self.n:], {"units": "rad"})
            if f.glia_domain is not None:
                out["glia/domain"] = (np.asarray(f.glia_domain), {"units": "glial domain index"})
        if f.graph is not None and not f.graph.implicit:
            edges = np.stack([f.graph.source, f.graph.target], axis=1)
            out["topology/edges"] = (edges, {"dims": "edge, (source, target)", "meaning": "source drives target"})
            out["topology/weight"] = (f.graph.weight, {"units": "1 (before strength / normaliser)"})
        return out

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        out = {
            "y": self.y.cpu().numpy(),
            "turns": self.turns.cpu().numpy(),
            "record": np.int64(self.record),
            "rng_state": self.noise.state().cpu().numpy(),
        }
        if self.controller is not None:
            out.update(self.controller.state_dict())
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.y = torch.as_tensor(state["y"], device=self.device, dtype=self.dtype)
        self.turns = torch.as_tensor(state["turns"], device=self.device, dtype=torch.int64)
        self.record = int(state["record"])
        self.noise.set_state(torch.as_tensor(state["rng_state"], dtype=torch.uint8))
        if self.controller is not None:
            self.controller.load_state_dict(state)


# ---------------------------------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class RunResult:
    path: Path  # the trace file
    status: str  # complete | interrupted | failed
    records: int  # rows in the trace
    message: str = ""


OWNED = ("trace.h5", "config.yaml", "summary.json")
HIDDEN = (LOCK_NAME, *(p.name for p in companions("trace.h5")), ".config.yaml.tmp")  # dgnn's bookkeeping files


def default_run_dir(cfg: Config, root: str | Path = "outputs") -> Path:
    """outputs/<name>-<timestamp>, with -2, -3... if that exists already."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{cfg.name}-{stamp}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    """Create the run folder; refuse a non-empty one unless overwrite (which removes only dgnn's own files)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out {out}: exists and is not a folder")
    if out.exists() and any(p.name not in HIDDEN for p in out.iterdir()):
        if not overwrite:
            raise ConfigError(f"out {out}: folder is not empty; pass overwrite=True to replace its run, or resume={out} to continue it")
        for name in OWNED + HIDDEN[1:]:  # never the lock: its owner (the caller) holds it
            (out / name).unlink(missing_ok=True)
        figs = out / "figures"
        if figs.is_dir():
            for png in figs.glob("*.png"):
                png.unlink()
    make_folder(out, "out")


def _own(folder: Path, name: str) -> RunLock:
    """Create `folder` if needed and take its RunLock; `name` is the argument that named it."""
    make_folder(folder, name)
    try:
        return RunLock(folder, name).acquire()
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(folder, exc, "creating the run folder") from None
        raise ConfigError(f"{name} {folder}: cannot write the run folder ({exc.strerror})") from None


def _fail(writer: TraceWriter, message: str) -> RunResult:
    """Mark the trace failed; on a disk too full even for that, it keeps its records and still says running."""
    try:
        writer.set_status("failed", message)
    except DiskFull:
        message += " (no room left to mark the trace failed: it still says running)"
    return RunResult(writer.path, "failed", writer.rows, message)


def advance(sim: Simulation, writer: TraceWriter, should_stop, progress: bool, bar=None) -> RunResult:
    """Advance to the end, appending and flushing records; statuses for stop, failure and completion.
    A caller's `bar` (a sweep's overall progress) is advanced but not closed."""
    from .progress import Progress

    total = sim.cfg.n_records
    own_bar = bar is None
    if own_bar:
        bar = Progress(total=total, initial=sim.record, enabled=progress, unit="rec", desc=sim.cfg.name)
    last_flush = _time.monotonic()
    try:
        while sim.record < total:
            sim.advance()
            lost = sim.take_failures()
            if lost:  # sweep points that failed alone (a plain run raises SimulationFailed instead)
                writer.fail_points(lost)
                if not sim.running:
                    writer.flush()
                    return RunResult(writer.path, "failed", writer.rows, "; ".join(lost.values()))
            writer.append(sim.snapshot())
            events = sim.take_events()
            if events is not None:  # appended even when empty: a structural run always has /structure/events
                writer.append_events(events)
            bar.update(1)
            now = _time.monotonic()
            stop = should_stop is not None and should_stop()
            if stop or writer.pending_bytes >= FLUSH_BYTES or now - last_flush >= FLUSH_SECONDS or sim.record == total:
                writer.flush(sim.state_dict())
                last_flush = now
            if stop and sim.record < total:
                writer.set_status("interrupted", f"stopped at t={sim.t:g} of {sim.cfg.solver.duration:g}; resume it with dgnn.resume(run_dir) (dgnn run --resume DIR)")
                return RunResult(writer.path, "interrupted", writer.rows, "interrupted")
        writer.set_status("complete")
        return RunResult(writer.path, "complete", writer.rows)
    except DiskFull as exc:
        return _fail(writer, f"{exc}; make room, then resume the run")
    except SimulationFailed as exc:
        try:
            writer.flush()  # keep every finite record so far
        except DiskFull as full:
            return _fail(writer, f"{exc}; then {full}")
        return _fail(writer, str(exc))
    except BaseException as exc:
        try:  # keep what can be kept; the error that stopped the run is the one to report
            writer.flush()
            writer.set_status("failed" if not isinstance(exc, KeyboardInterrupt) else "interrupted", f"{type(exc).__name__}: {exc}")
        except BaseException:
            pass
        raise
    finally:
        if own_bar:
            bar.close()
        writer.close()


def _start(sim: Simulation, out: Path, should_stop, progress: bool) -> RunResult:
    """Write config.yaml and a new trace with record 0 in the (owned, prepared) folder `out`, then run the loop."""
    text = config_to_yaml(sim.cfg)
    write_text(out / "config.yaml", text)
    writer = TraceWriter.create(
        out / "trace.h5", config_text=text, version=__version__, series=sim.series(), static=sim.static(),
        attrs={"device": str(sim.device), "backend": sim.field.backend_name},
    )
    try:
        writer.append(sim.snapshot())
        writer.flush(sim.state_dict())
    except BaseException as exc:  # a bug before the first record still leaves a trace that says so, if it can
        try:
            if not isinstance(exc, DiskFull):  # a full disk leaves no trace: resume starts from config.yaml
                writer.set_status("failed", f"{type(exc).__name__}: {exc}")
        except BaseException:
            pass
        writer.close()
        raise
    return advance(sim, writer, should_stop, progress)


def run(
    cfg: Config,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
    device: str | None = None,
) -> RunResult:
    """Simulate `cfg` into out/trace.h5 (default outputs/<name>-<timestamp>/), writing config.yaml beside it.
    The folder is owned by this call (RunLock): another process writing it makes this one refuse, and vice versa."""
    out = Path(out) if out is not None else default_run_dir(cfg)
    sim = Simulation(cfg, device=device)  # build first: a bad graph file must not leave an empty run folder
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out {out}: exists and is not a folder")
    lock = _own(out, "out")
    try:
        prepare_run_dir(out, overwrite)
        return _start(sim, out, should_stop, progress)
    finally:
        lock.release()


def _changed_keys(old: str, new: str) -> list[str]:
    """Dotted key paths whose values differ between two stored configs (YAML texts written by dgnn)."""
    def flat(d, prefix=""):
        out = {}
        for k, v in (d or {}).items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(yaml.safe_load(old)), flat(yaml.safe_load(new))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def resume(
    run_dir: str | Path, *, progress: bool = True, should_stop: Callable[[], bool] | None = None, device: str | None = None
) -> RunResult:
    """Continue an interrupted (or failed, or killed) run from its last checkpoint; the finished trace equals an
    uninterrupted one. A run killed before its first record starts again from its config.yaml."""
    run_dir = Path(run_dir)
    folder, path = (run_dir, run_dir / "trace.h5") if run_dir.is_dir() else (run_dir.parent, run_dir)
    if not folder.is_dir() or (not path.is_file() and not (folder / "config.yaml").is_file()):
        raise ConfigError(f"run_dir {run_dir}: no trace.h5 there")
    lock = _own(folder, "run_dir")
    try:
        if not path.is_file():
            stored = folder / "config.yaml"
            cfg = config_from_yaml_text(stored.read_text(encoding="utf-8"), str(stored))
            return _start(Simulation(cfg, device=device), folder, should_stop, progress)
        state = read_resume_state(path)
        if state.rows == 0 and state.status != "complete":  # failed before its first record: start it again
            cfg = config_from_yaml_text(state.config, f"{path} (stored config)")
            return _start(Simulation(cfg, device=device), folder, should_stop, progress)
        if state.status == "complete":
            raise ConfigError(f"run_dir {path}: the run is already complete")
        if state.started_config is not None and state.started_config != state.config:
            keys = ", ".join(_changed_keys(state.started_config, state.config)) or "formatting only"
            raise ConfigError(f"run_dir {path}: its stored config was edited after the run started ({keys}); "
                              f"resuming would mix two configs in one trace: start a new run instead")
        cfg = config_from_yaml_text(state.config, f"{path} (stored config)")
        sim = Simulation(cfg, device=device)
        y = state.checkpoint.get("y")
        if y is not None and y.shape[-1] != sim.y.shape[-1]:  # a foreign checkpoint: refuse before writing
            raise ConfigError(f"run_dir {path}: its checkpoint holds {y.shape[-1]} state columns where dgnn "
                              f"{__version__} builds {sim.y.shape[-1]} (written by dgnn {state.version}); run its "
                              "config.yaml again instead")
        try:
            sim.load_state_dict(state.checkpoint)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"run_dir {path}: damaged checkpoint ({type(exc).__name__}: {exc})") from None
        if state.rows != sim.record + 1:
            raise ConfigError(f"run_dir {path}: checkpoint (record {sim.record}) does not match {state.rows} stored rows")
        writer = TraceWriter.reopen(path, sim.series(), state.rows)
        return advance(sim, writer, should_stop, progress)
    finally:
        lock.release()
