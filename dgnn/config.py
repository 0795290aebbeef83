"""Typed, frozen run configuration: YAML (safe loader only) -> validated models, with dotted key paths in errors."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .textfiles import SafeLoader, parse, read_text, show_key
from .errors import ConfigError


class StrictModel(BaseModel):
    """A config model: frozen, strictly typed, finite; an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


NAME_MAX_BYTES = 200  # a folder name holds the name plus a timestamp and suffix; file systems allow 255 bytes


def _folder_name(value: str) -> str:
    if (not value or value.startswith(".") or ".." in value or any(c in value for c in "/\\")
            or not value.isprintable() or len(value.encode("utf-8", "surrogatepass")) > NAME_MAX_BYTES):
        raise ValueError(f"must be a non-empty folder-name-safe string (no '/', '\\', '..', leading '.' or control "
                         f"characters; at most {NAME_MAX_BYTES} bytes)")
    return value


FolderName = Annotated[str, AfterValidator(_folder_name)]  # a name that becomes a folder name under outputs/


class Distribution(StrictModel):
    """Natural frequencies (rad per time unit): how N values are drawn."""

    distribution: Literal["constant", "normal", "lorentzian", "uniform", "values"] = "constant"
    center: float = 0.0
    width: float = Field(0.0, ge=0.0, description="sd (normal), half-width gamma (lorentzian), half-range (uniform)")
    values: list[float] | None = None
    sampling: Literal["random", "quantile"] = "random"

    @model_validator(mode="after")
    def _check(self):
        if self.distribution == "values" and not self.values:
            raise ValueError("distribution 'values' needs a non-empty 'values' list")
        if self.distribution != "values" and self.values is not None:
            raise ValueError(f"'values' is only used with distribution: values (found distribution: {self.distribution})")
        if self.distribution in ("normal", "lorentzian", "uniform") and self.width == 0.0:
            raise ValueError(f"distribution '{self.distribution}' needs width > 0 (use distribution: constant for identical values)")
        return self


class InitialPhase(StrictModel):
    """Initial phases in radians."""

    distribution: Literal["uniform", "constant", "values"] = "uniform"
    value: float = 0.0
    values: list[float] | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.distribution == "values" and not self.values:
            raise ValueError("distribution 'values' needs a non-empty 'values' list")
        return self


class Group(StrictModel):
    """A named population of neurons with its own natural frequencies; groups take contiguous indices in order."""

    count: int = Field(ge=1)
    frequency: Distribution = Distribution(distribution="normal", center=1.0, width=0.1)


class Neurons(StrictModel):
    count: int = Field(100, ge=1)
    frequency: Distribution = Distribution(distribution="normal", center=1.0, width=0.1)
    initial_phase: InitialPhase = InitialPhase()
    groups: dict[str, Group] = {}  # named populations (e.g. cardiac, respiratory); count = their sum

    @model_validator(mode="before")
    @classmethod
    def _count_from_groups(cls, data):
        if isinstance(data, dict) and data.get("groups") and "count" not in data:
            groups = data["groups"]
            if isinstance(groups, dict) and all(isinstance(g, dict) and isinstance(g.get("count"), int)
                                                for g in groups.values()):
                data = {**data, "count": sum(g["count"] for g in groups.values())}
        return data

    @model_validator(mode="after")
    def _check_groups(self):
        if not self.groups:
            return self
        total = sum(g.count for g in self.groups.values())
        if total != self.count:
            raise ValueError(f"count={self.count} but the groups hold {total} neurons; drop count or make them agree")
        if self.frequency != type(self).model_fields["frequency"].default:
            raise ValueError("frequency is not used when groups are given; set each group's frequency instead")
        return self

    def group_slices(self) -> dict[str, slice]:
        """Neuron index range of each group; without groups one group named 'all'."""
        if not self.groups:
            return {"all": slice(0, self.count)}
        out, start = {}, 0
        for name, g in self.groups.items():
            out[name] = slice(start, start + g.count)
            start += g.count
        return out


class Glia(StrictModel):
    ratio: float = Field(0.0, ge=0.0, description="glia per neuron; G = round(ratio * N)")
    frequency: Distribution = Distribution(distribution="constant", center=0.1)
    initial_phase: InitialPhase = InitialPhase()
    coupling_to_neurons: float = 0.0  # c_gn
    coupling_from_neurons: float = 0.0  # c_ng
    coupling: float = 0.0  # k_gg
    topology: Literal["all_to_all", "domains"] = "all_to_all"
    domains: int = Field(0, ge=0)  # number of glial domains; 0 = min(N, G) (one astrocyte per domain when G <= N)


class Topology(StrictModel):
    kind: Literal[
        "all_to_all", "erdos_renyi", "watts_strogatz", "barabasi_albert", "modular", "edgelist", "graphml"
    ] = "all_to_all"
    p: float | None = Field(None, ge=0.0, le=1.0)
    k: int | None = Field(None, ge=1)
    m: int | None = Field(None, ge=1)
    modules: int | None = Field(None, ge=1)
    p_in: float | None = Field(None, ge=0.0, le=1.0)
    p_out: float | None = Field(None, ge=0.0, le=1.0)
    path: str | None = None
    directed: bool = False

    @field_validator("path")
    @classmethod
    def _path(cls, v):
        if v is not None and (not v or "\0" in v):
            raise ValueError("must be a non-empty file path without NUL characters")
        return v

    @model_validator(mode="after")
    def _check(self):
        need = {
            "erdos_renyi": ("p",),
            "watts_strogatz": ("k", "p"),
            "barabasi_albert": ("m",),
            "modular": ("modules", "p_in", "p_out"),
            "edgelist": ("path",),
            "graphml": ("path",),
        }.get(self.kind, ())
        missing = [key for key in need if getattr(self, key) is None]
        if missing:
            raise ValueError(f"kind '{self.kind}' needs {', '.join(missing)}")
        if self.directed and self.kind not in ("erdos_renyi", "edgelist", "graphml"):
            raise ValueError(f"directed: true is supported for erdos_renyi, edgelist and graphml, not '{self.kind}'")
        return self


class Coupling(StrictModel):
    strength: float = 1.0  # k
    a: float = 1.0
    b: float = 0.0
    phase_lag: float = 0.0  # rad; per-edge lags come from edgelist/graphml files
    backend: Literal["auto", "mean_field", "dense", "sparse"] = "auto"
    cross: dict[str, "CrossTerm"] = {}  # cross-frequency coupling between neuron groups, by name


class CrossTerm(StrictModel):
    """n:m coupling from group `source` to group `target` (rad/time), added to each target neuron i:
    sine:  strength * mean_{j in source} sin(n_source theta_j - n_target theta_i)
    pulse: strength * mean_{j in source} exp(sharpness (cos(n_source theta_j) - 1)) * (-sin(n_target theta_i))
    (a source that fires a pulse at phase 0 and a target with phase-response curve -sin: Winfree coupling)."""

    source: str
    target: str
    n_source: int = Field(1, ge=1)
    n_target: int = Field(1, ge=1)
    strength: float = 0.0
    shape: Literal["sine", "pulse"] = "sine"
    sharpness: float = Field(2.0, ge=0.0)  # kappa of the von Mises pulse (pulse shape only)


Coupling.model_rebuild()


class Noise(StrictModel):
    neurons: float = Field(0.0, ge=0.0)
    glia: float = Field(0.0, ge=0.0)


class Drive(StrictModel):
    """External drive u_i(t) = amplitude * sin(frequency * t + phase) on the target neurons (rad/time)."""

    kind: Literal["none", "constant", "sinusoid"] = "none"
    amplitude: float = 0.0
    frequency: float = 0.0
    phase: float = 0.0
    targets: list[int] | None = None  # neuron indices; None = all

    @field_validator("targets")
    @classmethod
    def _nonneg(cls, v):
        if v is not None and any(i < 0 for i in v):
            raise ValueError("neuron indices must be >= 0")
        return v


class Epoch(StrictModel):
    """One behavioural state of the metabolic schedule: supply is multiplied by `supply` for `duration`."""

    name: str = "state"
    duration: float = Field(gt=0.0)
    supply: float = Field(1.0, ge=0.0)
    frequency: dict[str, float] = {}  # natural-frequency factor per neuron group ('all' without groups); default 1

    @field_validator("frequency")
    @classmethod
    def _positive(cls, v):
        bad = {k: x for k, x in v.items() if not x > 0}
        if bad:
            raise ValueError(f"frequency factors must be > 0, found {bad}")
        return v


class MetabolismConfig(StrictModel):
    """Glial energy budget (docs/model.md 'Metabolism'); energy units are arbitrary but consistent."""

    enabled: bool = False
    p_base: float = Field(0.01, ge=0.0, description="power per neuron at rest")
    p_act: float = Field(0.1, ge=0.0, description="power per (rad/time)^2 of drift deviation (theta' - omega)")
    p_syn: float = Field(0.01, ge=0.0, description="power per unit of sum_j |K_ij|")
    p_glia: float = Field(0.0, ge=0.0, description="base power per glial cell, drawn from its domain's reserve")
    supply: float = Field(1.0, ge=0.0, description="supply rate per glial cell")
    e_max: float = Field(10.0, gt=0.0, description="reserve capacity per domain")
    e_init: float = Field(5.0, ge=0.0, description="initial reserve per domain")
    k_m: float = Field(1.0, gt=0.0, description="half-saturation reserve of the coupling gate")
    schedule: list[Epoch] = []

    @model_validator(mode="after")
    def _check(self):
        if self.e_init > self.e_max:
            raise KeyedError("metabolism.e_init", f"must be <= metabolism.e_max={self.e_max}, found {self.e_init}")
        return self


class SynapseOp(StrictModel):
    enabled: bool = True
    threshold: float = Field(ge=0.0, le=1.0)  # PLV over the window
    cost: float = Field(0.0, ge=0.0)
    refund: float = Field(0.0, ge=0.0)
    max_per_interval: int = Field(4, ge=0)  # per replica
    # pruning only: energy pressure. A domain whose mean reserve over the window is below reserve_below x e_max
    # also prunes its most weakly locked synapses (lowest PLV), whatever their PLV: maintenance power is saved
    reserve_below: float = Field(0.0, ge=0.0, le=1.0)


class NeurogenesisOp(StrictModel):
    enabled: bool = True
    threshold: float = Field(0.5, gt=0.0, le=1.0)  # effective dimension / (2 x active neurons) of a domain
    cost: float = Field(1.0, ge=0.0)
    max_per_interval: int = Field(1, ge=0)  # per replica


class NeuronRemovalOp(StrictModel):
    enabled: bool = True
    redundancy: float = Field(0.999, gt=0.0, le=1.0)  # PLV above which two neurons of a domain are duplicates
    cost: float = Field(0.0, ge=0.0)
    refund: float = Field(0.5, ge=0.0)
    max_per_interval: int = Field(1, ge=0)


class GliaOp(StrictModel):
    """Glia creation (removal): a domain whose mean reserve over the window is below (above) `threshold` x e_max."""

    enabled: bool = False
    threshold: float = Field(ge=0.0, le=1.0)
    cost: float = Field(0.0, ge=0.0)
    refund: float = Field(0.0, ge=0.0)
    max_per_interval: int = Field(1, ge=0)  # per replica


class StructureConfig(StrictModel):
    """Energy-gated structural plasticity (docs/model.md 'Structural operators'); needs metabolism."""

    enabled: bool = False
    interval: float = Field(1.0, gt=0.0)  # time between controller evaluations
    window: float = Field(5.0, gt=0.0)  # activity the triggers read
    capacity: int = Field(0, ge=0)  # neuron slots per replica; 0 = 2 x neurons.count with neurogenesis, else neurons.count
    floor: float = Field(0.0, ge=0.0)  # reserve that must remain after paying a cost
    # pair triggers read M sampled sources per target each evaluation, O(B C M T) instead of all pairs
    # O(B C^2 T); 0 = all pairs (exact). For large networks (C above a few hundred) where the PLV dominates
    candidates: int = Field(0, ge=0)
    synaptogenesis: SynapseOp = SynapseOp(threshold=0.95, cost=0.05)
    pruning: SynapseOp = SynapseOp(threshold=0.2, cost=0.0, refund=0.02)
    neurogenesis: NeurogenesisOp = NeurogenesisOp()
    neuron_removal: NeuronRemovalOp = NeuronRemovalOp()
    glia_capacity: int = Field(0, ge=0)  # glial slots per replica; 0 = 2 x glia count with glia_creation, else the glia count
    glia_creation: GliaOp = GliaOp(threshold=0.2, cost=0.5)
    glia_removal: GliaOp = GliaOp(threshold=0.9, refund=0.2)


class Solver(StrictModel):
    method: str = "rk4"
    dt: float = Field(0.01, gt=0.0)
    duration: float = Field(10.0, gt=0.0)
    rtol: float = Field(1e-6, gt=0.0)
    atol: float = Field(1e-8, gt=0.0)
    backend: Literal["auto", "native", "torchdiffeq"] = "auto"
    cuda_graph: bool = True  # on CUDA, replay each record interval as a captured graph where exact (dgnn.solvers.graphs)
    # adaptive methods: most steps (accepted or rejected) per record interval before the run fails as stalled;
    # 0 = 100 x record.every / dt, at least 1000
    max_steps: int = Field(0, ge=0)


class Record(StrictModel):
    every: float = Field(0.1, gt=0.0)
    phases: bool = True


class Sweep(StrictModel):
    """`dgnn sweep`: the grid (dotted key -> values) whose product is run; CLI --grid entries add to it."""

    grid: dict[str, list[Union[bool, int, float, str]]] = {}
    phases: bool = False  # keep (T, B, N) phase arrays in every point's trace
    max_batch: int = Field(32, ge=1)  # most points simulated together as one batch


class Config(StrictModel):
    """A whole run. Every key is documented in docs/config.md."""

    name: FolderName = "run"
    seed: int = Field(0, ge=0)  # numpy's SeedSequence takes non-negative integers
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float64"] = "float64"
    replicas: int = Field(1, ge=1)
    model: str = "glial_neural"
    neurons: Neurons = Neurons()
    glia: Glia = Glia()
    topology: Topology = Topology()
    coupling: Coupling = Coupling()
    noise: Noise = Noise()
    drive: Drive = Drive()
    metabolism: MetabolismConfig = MetabolismConfig()
    structure: StructureConfig = StructureConfig()
    solver: Solver = Solver()
    record: Record = Record()
    sweep: Sweep = Sweep()

    @model_validator(mode="after")
    def _cross(self):
        self._check_ranges()
        n = self.neurons.count
        g = self.glia_count
        for path, dist, count in (
            ("neurons.frequency", self.neurons.frequency, n),
            ("glia.frequency", self.glia.frequency, g),
        ):
            if dist.distribution == "values" and count > 0 and len(dist.values) != count:
                raise KeyedError(f"{path}.values", f"expected {count} values (one per oscillator), found {len(dist.values)}")
        for path, init, count in (
            ("neurons.initial_phase", self.neurons.initial_phase, n),
            ("glia.initial_phase", self.glia.initial_phase, g),
        ):
            if init.distribution == "values" and count > 0 and len(init.values) != count:
                raise KeyedError(f"{path}.values", f"expected {count} values (one per oscillator), found {len(init.values)}")
        groups = self.neurons.group_slices()
        for name, grp in self.neurons.groups.items():
            dist = grp.frequency
            if dist.distribution == "values" and len(dist.values) != grp.count:
                raise KeyedError(f"neurons.groups.{name}.frequency.values",
                             f"expected {grp.count} values (one per neuron of the group), found {len(dist.values)}")
        for name, term in self.coupling.cross.items():
            for side in ("source", "target"):
                if getattr(term, side) not in groups:
                    raise KeyedError(f"coupling.cross.{name}.{side}", f"unknown neuron group {getattr(term, side)!r}; "
                                                                   f"groups: {', '.join(groups)}")
        for i, epoch in enumerate(self.metabolism.schedule):
            unknown = [k for k in epoch.frequency if k not in groups]
            if unknown:
                raise KeyedError(f"metabolism.schedule.{i}.frequency", f"unknown neuron group {unknown[0]!r}; "
                                                                   f"groups: {', '.join(groups)}")
        if self.structure.enabled and (self.neurons.groups or self.coupling.cross):
            raise KeyedError("structure.enabled", "structural plasticity does not support neurons.groups or coupling.cross yet")
        if self.drive.targets is not None and any(i >= n for i in self.drive.targets):
            raise KeyedError("drive.targets", f"neuron index out of range: neurons.count is {n}")
        from .solvers import check_method, is_fixed_step

        noisy = self.noise.neurons > 0 or (self.noise.glia > 0 and self.glia_count > 0)
        try:
            check_method(self.solver.method, noisy, self.solver.backend)
        except ValueError as exc:
            raise KeyedError("solver.method", str(exc)) from None
        steps = self.record.every / self.solver.dt
        if abs(steps - round(steps)) > 1e-9 * max(1.0, steps) or round(steps) < 1:
            raise KeyedError("record.every", f"must be a whole multiple of solver.dt={self.solver.dt}, found {self.record.every}")
        if self.n_records < 1:
            raise KeyedError("solver.duration", f"must be at least record.every={self.record.every}, found {self.solver.duration}")
        if self.glia.domains and self.glia.domains > min(n, self.glia_count):
            raise KeyedError("glia.domains", f"must be <= min(neurons.count, glia count) = {min(n, self.glia_count)}, "
                                         f"found {self.glia.domains}")
        if self.metabolism.enabled and self.glia_count == 0:
            raise KeyedError("metabolism.enabled", "needs glia (glia.ratio > 0): the energy reserves are glial")
        if self.metabolism.enabled and is_fixed_step(self.solver.method):
            # the reserve relaxes to e_max at rate S_d / e_max; explicit steps are unstable past rate * dt ~ 2
            met = self.metabolism
            glia_per_domain = math.ceil(self.glia_count / self.domain_count)
            peak = max([e.supply for e in met.schedule], default=1.0)
            rate = met.supply * glia_per_domain * peak / met.e_max
            if rate * self.solver.dt > 1.0:
                raise KeyedError(
                    "metabolism.supply",
                    f"reserve relaxation rate supply x glia per domain x peak schedule factor / e_max = {rate:.3g} "
                    f"times solver.dt={self.solver.dt} is {rate * self.solver.dt:.3g} > 1: explicit steps go unstable; "
                    f"reduce solver.dt below {1.0 / rate:.3g}, lower the supply or raise e_max",
                )
        if self.structure.enabled:
            st = self.structure
            if not self.metabolism.enabled:
                raise KeyedError("structure.enabled", "needs metabolism.enabled: operators are paid from glial reserves")
            for key in ("interval", "window"):
                ratio = getattr(st, key) / self.record.every
                if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio) or round(ratio) < 1:
                    raise KeyedError(f"structure.{key}", f"must be a whole multiple of record.every={self.record.every} "
                                                     f"(at least one), found {getattr(st, key)}")
            if st.capacity and st.capacity < n:
                raise KeyedError("structure.capacity", f"must be >= neurons.count={n} (or 0 for 2 x N), found {st.capacity}")
            if self.topology.kind == "all_to_all" and self.coupling.backend == "mean_field":
                raise KeyedError("coupling.backend", "structure needs per-synapse weights; use auto or dense")
            if st.glia_capacity and st.glia_capacity < self.glia_count:
                raise KeyedError("structure.glia_capacity", f"must be >= the glia count {self.glia_count} (or 0 for 2 x G)")
            if (st.glia_creation.enabled or st.glia_removal.enabled) and self.glia.topology != "all_to_all":
                raise KeyedError("structure.glia_creation", "glia operators need glia.topology: all_to_all")
        self._check_topology()
        if self.topology.kind == "all_to_all" and self.model == "glial_neural":
            from .stability import step_problem

            # exact here; graphs from generators or files are checked when built, before the first step
            problem = step_problem(self, (n - 1) / n, max(0, self.glia_count - 1) / max(1, self.glia_count))
            if problem:
                raise KeyedError("solver.dt", problem)
        return self

    def _check_ranges(self) -> None:
        """Ratios the run turns into counts must be finite, schedule epochs must span a step, and phases must keep
        their precision (a 1e-320 step, 1e308 glia per neuron or a 1e308 frequency would otherwise overflow)."""
        if not math.isfinite(self.glia.ratio * self.neurons.count):
            raise KeyedError("glia.ratio", f"glia.ratio x neurons.count is not finite, found {self.glia.ratio}")
        if not math.isfinite(self.record.every / self.solver.dt):
            key = "solver.dt" if self.solver.dt < 1e-300 else "record.every"
            raise KeyedError(key, f"record.every / solver.dt is not finite ({self.record.every:g} / {self.solver.dt:g})")
        if not math.isfinite(self.solver.duration / self.record.every):
            raise KeyedError("solver.duration", f"solver.duration / record.every is not finite, found {self.solver.duration}")
        for i, epoch in enumerate(self.metabolism.schedule):
            if epoch.duration < self.solver.dt:
                raise KeyedError(f"metabolism.schedule.{i}.duration", f"an epoch must last at least solver.dt="
                                                                 f"{self.solver.dt} (one step), found {epoch.duration}")
        eps = 2.0 ** -52 if self.dtype == "float64" else 2.0 ** -23
        factor = max([f for e in self.metabolism.schedule for f in e.frequency.values()] + [1.0])
        dists = [("neurons.frequency", self.neurons.frequency, self.neurons.count)] if not self.neurons.groups else [
            (f"neurons.groups.{k}.frequency", grp.frequency, grp.count) for k, grp in self.neurons.groups.items()]
        dists.append(("glia.frequency", self.glia.frequency, max(1, self.glia_count)))
        for key, dist, count in dists:
            speed = _max_abs(dist, count) * factor  # rad / time
            step = speed * self.solver.dt
            if step * eps > 1e-3 or speed * self.solver.duration > 2.0 ** 50:
                raise KeyedError(key, f"frequencies up to {speed:.3g} rad/time advance phases by {step:.3g} rad per step "
                                  f"and {speed * self.solver.duration:.3g} rad in all, beyond what {self.dtype} holds "
                                  f"to 1e-3 rad; lower them, or solver.dt and solver.duration")

    def _check_topology(self) -> None:
        topo, n = self.topology, self.neurons.count
        if topo.kind == "modular" and topo.modules > n:
            raise KeyedError("topology.modules", f"must be <= neurons.count={n}, found {topo.modules}")
        if topo.kind == "watts_strogatz":
            if topo.k >= n:
                raise KeyedError("topology.k", f"must be < neurons.count={n}, found {topo.k}")
            if topo.k % 2:
                raise KeyedError("topology.k", f"must be even (each neuron joins k / 2 neighbours on each side of the ring; "
                                           f"networkx would silently use k - 1), found {topo.k}")
        if topo.kind == "barabasi_albert" and topo.m >= n:
            raise KeyedError("topology.m", f"must be < neurons.count={n}, found {topo.m}")

    @staticmethod
    def resolve_paths(data: dict, folder: Path) -> None:
        """In place, before validation: topology.path relative to the config file's folder."""
        topo = data.get("topology")
        if isinstance(topo, dict) and "path" in topo:
            topo["path"] = resolve_path(topo["path"], folder)

    @property
    def glia_count(self) -> int:
        return int(round(self.glia.ratio * self.neurons.count))

    @property
    def domain_count(self) -> int:
        g = self.glia_count
        return min(self.neurons.count, g) if not self.glia.domains else self.glia.domains

    @property
    def steps_per_record(self) -> int:
        return int(round(self.record.every / self.solver.dt))

    @property
    def n_records(self) -> int:
        """Records after the initial one: floor(duration / every)."""
        return int(math.floor(self.solver.duration / self.record.every + 1e-9))


def _max_abs(dist: Distribution, count: int) -> float:
    """The largest |value| a frequency distribution gives `count` oscillators (rad / time; 8 sd for normal, the
    extreme quantile for lorentzian)."""
    c, w = abs(dist.center), dist.width
    return {
        "constant": c,
        "values": max((abs(v) for v in dist.values or [0.0]), default=0.0),
        "uniform": c + w,
        "normal": c + 8.0 * w,
        "lorentzian": c + w * math.tan(math.pi / 2 - math.pi / (2 * max(1, count))),
    }[dist.distribution]


class KeyedError(ValueError):
    """A cross-field error that names its own key path."""

    def __init__(self, key: str, msg: str):
        super().__init__(msg)
        self.key = key
        self.msg = msg


# ----------------------------------------------------------------------------------------------- loading
SafeLoader = SafeLoader


def load_value(text: str, source: str = "<yaml>", prefix: str = ""):
    """YAML text -> data (safe loader; duplicate keys and exploding aliases refused); prefix: see parse."""
    return parse(text, source, prefix)[0]


@dataclass(frozen=True)
class Override:
    """One 'key.path=value' override: the key path it sets and the text it came from."""

    path: tuple[str, ...]
    text: str

    @property
    def key(self) -> str:
        return ".".join(self.path)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b.c=value' -> (['a','b','c'], value parsed as a YAML scalar)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key.path=value (for example coupling.strength=2.0)")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(p.strip() for p in parts):
        raise ConfigError(f"override {text!r}: empty key in path {key!r}")
    value = load_value(raw, f"override {text}", ".".join(p.strip() for p in parts)) if raw.strip() else None
    return [p.strip() for p in parts], value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set each 'key.path=value' into a nested dict (copying), creating mappings as needed; a number indexes a list."""
    import copy

    data = copy.deepcopy(data)
    for text in overrides or []:
        parts, value = parse_override(text)
        node = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not (part.isdigit() and int(part) < len(node)):
                    raise ConfigError(f"override {text}: {'.'.join(parts[:i])} is a list of {len(node)}; "
                                      f"{part!r} is not an index of it")
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"override {text}: {'.'.join(parts[:i])} is a value, not a section")
            if last:
                node[part] = value
            else:
                nxt = node.get(part) if isinstance(node, dict) else node[part]
                if nxt is None:
                    nxt = node[part] = {}
                node = nxt
    return data


def _blame(key: str, overrides: list[Override]) -> Override | None:
    """The override that set `key` (or a section holding it, or a key inside it): the last and most specific."""
    best, score = None, -1
    for o in overrides:
        k = o.key
        if k == key:
            s = 3
        elif key.startswith(k + "."):
            s = 2
        elif k.startswith(key + "."):
            s = 1
        else:
            continue
        if s >= score:
            best, score = o, s
    return best


def locate(key: str, source: str, lines: dict[str, int], overrides: list[Override] = ()) -> str:
    """Where a key was set: 'override key=value', else 'file:line' (or the file when the key took its default)."""
    o = _blame(key, list(overrides))
    if o is not None:
        return f"override {o.text}"
    line = lines.get(key)
    return f"{source}:{line}" if line else source


def _format_validation(exc: ValidationError, source: str, lines: dict[str, int], overrides=()) -> ConfigError:
    msgs = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith("function-after")]
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, KeyedError):
            key, msg = ctx_err.key, ctx_err.msg
        else:
            named = loc[-1:] == ["[key]"]  # a mapping's key (a name) failed, not its value
            loc = loc[:-2] if named else loc
            key = ".".join(loc) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if named:
                msg = f"name {_short(err['input'])}: {msg}"
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling against the config reference)"
            elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict) and not named:
                msg = f"{msg}, found {_short(err['input'])}"
        msgs.append(f"{locate(key, source, lines, overrides)}: {show_key(key)}: {msg}")
    return ConfigError(msgs[0] + (f" (and {len(msgs) - 1} more)" if len(msgs) > 1 else ""))


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def config_from_dict(data: dict, source: str = "<config>", text: str | None = None, model: type = None, *,
                     lines: dict[str, int] | None = None, overrides: list[Override] = ()):
    """Validate a plain dict into a Config (or another config `model`); errors name the dotted key path and where
    it was set (the line when the YAML text or its key lines are given, or the override)."""
    model = Config if model is None else model
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, found {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        if lines is None and text:
            lines = parse(text, source)[1]
        raise _format_validation(exc, source, lines or {}, overrides) from None
    except RecursionError:  # a self-referencing value (a recursive YAML alias built outside the loader)
        raise ConfigError(f"{source}: a value refers to itself") from None


def read_config(path: str | Path) -> tuple[dict, dict[str, int]]:
    """A YAML config file -> (top-level mapping, key lines)."""
    path = Path(path)
    data, lines = parse(read_text(path, "config"), str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, found {type(data).__name__}")
    return data, lines


def load_config(path: str | Path, overrides: list[str] | None = None, model: type = None):
    """Read a YAML file (safe loader), apply 'key.path=value' overrides and validate into `model` (Config).
    File paths inside are taken relative to the config file's folder (the model's `resolve_paths`)."""
    path = Path(path)
    data, lines = read_config(path)
    parsed = [Override(tuple(parse_override(t)[0]), t) for t in overrides or []]
    data = apply_overrides(data, overrides or [])
    model = Config if model is None else model
    if hasattr(model, "resolve_paths"):  # models holding file paths resolve them against the config's folder
        model.resolve_paths(data, path.parent)
    return config_from_dict(data, str(path), model=model, lines=lines, overrides=parsed)


def config_location(path: str | Path, key: str, overrides: list[str] | None = None) -> str:
    """Where `key` of the config file at `path` was set ('file:line', 'override k=v' or the file), for errors raised
    after validation (building a run); best effort."""
    try:
        lines = read_config(path)[1]
        parsed = [Override(tuple(parse_override(t)[0]), t) for t in overrides or []]
    except ConfigError:
        return str(path)
    return locate(key, str(path), lines, parsed)


def resolve_path(value, folder: Path):
    """A file path from a config: relative paths are taken from the config file's folder (stored absolute)."""
    if not isinstance(value, str) or "\0" in value:
        return value  # validation names the bad value
    try:
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (folder / p).resolve())
    except (OSError, RuntimeError, ValueError):
        return value


def config_to_yaml(cfg: Config) -> str:
    """The fully resolved config as YAML text (every default written out)."""
    return yaml.safe_dump(cfg.model_dump(mode="python"), sort_keys=False, default_flow_style=False, width=120)


def config_from_yaml_text(text: str, source: str = "<stored config>", model: type = None):
    """A config stored as YAML text (a trace attribute, a run folder's config.yaml)."""
    data, lines = parse(text, source)
    return config_from_dict(data, source, model=model, lines=lines)
