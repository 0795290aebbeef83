"""Vector fields (drift and additive noise) over the state y = [theta (N), psi (G)] of B replicas, and their registry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch

from .config import Config
from .coupling import MeanField, join_backends, make_backend
from .errors import ConfigError
from .potentials import HKB, KURAMOTO
from .topology import Graph, build_graph, domain_graph, domains
from .trig import DomainMeans, Param, Trig, batched, is_zero, param_sin


class VectorField(Protocol):
    """What a registered model provides to Simulation: the drift, the additive noise amplitude and what the trace
    records about it. `from_config(cfg, device, dtype, rng)` builds it; `graph` and the domains may be None."""

    n_neurons: int
    n_glia: int
    sigma: torch.Tensor  # (N + G,) additive Ito noise amplitude
    omega: torch.Tensor  # (B, N) natural frequencies, rad/time
    nu: torch.Tensor  # (B, G)
    graph: Graph | None
    neuron_domain: np.ndarray | None  # (N,)
    glia_domain: np.ndarray | None  # (G,)
    backend_name: str
    # optional: n_state (default N + G; extra columns are not phases), project (y -> y after each step, or None),
    # metabolism (a dgnn.metabolism.Metabolism whose block follows the phases)

    def __call__(self, t: float, y: torch.Tensor) -> torch.Tensor: ...  # (B, N + G) -> (B, N + G)


VECTOR_FIELDS: dict[str, Callable] = {}


def register_vector_field(name: str):
    """Decorator: make `cls.from_config(cfg, device, dtype, rng)` available as `model: name` in configs."""

    def deco(cls):
        VECTOR_FIELDS[name] = cls
        return cls

    return deco


@dataclass(frozen=True)
class SinusoidDrive:
    """u_i(t) = amplitude * sin(frequency * t + phase) on a neuron mask (rad per time unit); frequency 0 = constant."""

    amplitude: float
    frequency: float
    phase: float
    mask: torch.Tensor  # (N,) 0/1

    def __call__(self, t: float) -> torch.Tensor:
        return (self.amplitude * param_sin(self.frequency * t + self.phase)) * self.mask  # (N,) or (B, N)

    def with_mask(self, mask: torch.Tensor) -> "SinusoidDrive":
        return SinusoidDrive(self.amplitude, self.frequency, self.phase, mask)


class PointDrives:
    """The drives of sweep points batched together, u = amplitude_p sin(frequency_p t + phase_p) on their shared
    mask: each point's value is computed as its own run computes it (in Python floats), then cast once."""

    def __init__(self, drives: list[SinusoidDrive], replicas: int):
        self.drives, self.replicas = drives, replicas
        self.mask = drives[0].mask  # (N,) 0/1

    def __call__(self, t: float) -> torch.Tensor:
        u = torch.tensor([d.amplitude * param_sin(d.frequency * t + d.phase) for d in self.drives],
                         device=self.mask.device, dtype=self.mask.dtype)  # (P,)
        return u.repeat_interleave(self.replicas).unsqueeze(1) * self.mask  # (P B, N)

    def with_mask(self, mask: torch.Tensor) -> "PointDrives":
        return PointDrives([SinusoidDrive(d.amplitude, d.frequency, d.phase, mask) for d in self.drives], self.replicas)




@register_vector_field("glial_neural")
class GlialNeuralField:
    """The model's drift (docs/model.md): neurons theta' = omega + H(theta) + c_gn <sin(psi - theta)>_domain + u(t);
    glia psi' = nu + k_gg sum Kg sin(psi_h - psi_g) + c_ng <sin(theta - psi)>_domain."""

    def __init__(
        self,
        omega: torch.Tensor,  # (B, N) rad/time
        nu: torch.Tensor,  # (B, G) rad/time
        neuron_coupling,  # backend: Trig -> (B, N)
        glia_coupling=None,  # backend: Trig -> (B, G), already scaled by k_gg
        neuron_domain: np.ndarray | None = None,  # (N,)
        glia_domain: np.ndarray | None = None,  # (G,)
        n_domains: int = 0,
        c_gn: Param = 0.0,
        c_ng: Param = 0.0,
        drive: Callable[[float], torch.Tensor] | None = None,
        sigma_neurons: Param = 0.0,
        sigma_glia: Param = 0.0,
        graph: Graph | None = None,
        metabolism=None,
        cross=None,  # dgnn.crossfreq.CrossFrequency: n:m coupling between neuron groups
        frequency_schedule=None,  # dgnn.crossfreq.FrequencySchedule: omega factors per behavioural state
        schedule=None,  # dgnn.metabolism.Schedule of behavioural states, or None without one
        glia_graph: Graph | None = None,  # the glia's own graph (glia.topology: domains), None for all-to-all glia
    ):
        self.omega, self.nu = omega, nu
        self.n_domains, self.schedule, self.glia_graph = n_domains, schedule, glia_graph
        self.cross, self.frequency_schedule = cross, frequency_schedule
        self.metabolism = metabolism
        self.graph = graph
        self.neuron_domain, self.glia_domain = neuron_domain, glia_domain
        self.backend_name = neuron_coupling.name
        self.n_neurons, self.n_glia = omega.shape[1], nu.shape[1]
        self.neuron_coupling, self.glia_coupling = neuron_coupling, glia_coupling
        self.c_gn, self.c_ng = c_gn, c_ng
        self.drive = drive
        dev, dt = omega.device, omega.dtype
        self.use_gn, self.use_ng = bool(self.n_glia) and not is_zero(c_gn), bool(self.n_glia) and not is_zero(c_ng)
        self.neuron_mask = None  # (B, N) 0/1 active slots of a plastic network; None = all active
        self.glia_mask = None  # (B, G) likewise for glial slots
        if self.use_gn or self.use_ng:
            self.neuron_dom = DomainMeans(neuron_domain, n_domains, dev, dt)
            self.glia_dom = DomainMeans(glia_domain, n_domains, dev, dt)
        self.n_state = self.n_neurons + self.n_glia + (metabolism.size if metabolism is not None else 0)
        self.project = self._project if metabolism is not None else None  # solver hook: None = no constraints
        ng = self.n_neurons + self.n_glia
        if isinstance(sigma_neurons, torch.Tensor) or isinstance(sigma_glia, torch.Tensor):
            self.sigma = torch.zeros(omega.shape[0], self.n_state, device=dev, dtype=dt)  # (B, n_state) per replica
        else:
            self.sigma = torch.zeros(self.n_state, device=dev, dtype=dt)  # (n_state,)
        self.sigma[..., : self.n_neurons] = sigma_neurons
        self.sigma[..., self.n_neurons: ng] = sigma_glia  # the energy block stays noise-free

    def __call__(self, t: float, y: torch.Tensor) -> torch.Tensor:
        n = self.n_neurons
        ng = n + self.n_glia
        trig = Trig(y[:, :n])  # theta (B, N)
        driven = self.neuron_coupling(trig)  # (B, N): everything but omega, i.e. theta' - omega
        if self.cross is not None:
            driven = driven + self.cross(y[:, :n])
        if self.metabolism is not None:
            driven = driven * self.metabolism.gate(y[:, ng:])
        if self.drive is not None:
            driven = driven + self.drive(float(t))
        if self.n_glia:
            gtrig = Trig(y[:, n:ng])  # psi (B, G)
            dpsi = self.nu if self.glia_coupling is None else self.nu + self.glia_coupling(gtrig)
            if self.use_gn or self.use_ng:
                c, s = trig(1)
                gc, gs = gtrig(1)
                if self.use_gn:  # mean over the domain's glia of sin(psi_g - theta_i) = Im(Zg e^{-i theta_i})
                    zx, zy = self.glia_dom(gc, gs)  # (B, D)
                    driven = driven + self.c_gn * (self.neuron_dom.gather(zy) * c - self.neuron_dom.gather(zx) * s)
                if self.use_ng:  # mean over the domain's (active) neurons of sin(theta_i - psi_g)
                    zx, zy = self.neuron_dom(c, s)
                    dpsi = dpsi + self.c_ng * (self.glia_dom.gather(zy) * gc - self.glia_dom.gather(zx) * gs)
        if self.neuron_mask is not None:
            driven = driven * self.neuron_mask  # inactive slots are frozen (their omega is 0 too)
        if self.glia_mask is not None and self.n_glia and not self.all_glia_active:
            dpsi = dpsi * self.glia_mask
        dtheta = self.omega_at(t) + driven
        if not self.n_glia:
            return dtheta
        if self.metabolism is None:
            return torch.cat([dtheta, dpsi], dim=1)  # (B, N + G)
        dblock = self.metabolism.drift(t, y[:, ng:], driven)
        return torch.cat([dtheta, dpsi, dblock], dim=1)  # (B, n_state)

    def structure_changed(self, incremental: bool = False) -> None:
        """Re-derive domain tables, noise and metabolic loads after a structural edit (plastic networks only);
        incremental: every W edit since the last call went through the coupling's touch()."""
        if self.neuron_mask is None:
            return
        self.neuron_coupling.refresh(full=not incremental, active=self.neuron_mask)
        self.all_glia_active = bool((self.glia_mask == 1).all())
        if self.use_gn or self.use_ng:
            self.neuron_dom.set(self.neuron_dom_index, self.neuron_mask)
            self.glia_dom.set(self.glia_dom.index, self.glia_mask)
        if self.glia_coupling is not None:
            self.glia_coupling.set_weight(self.glia_mask)
        rest = torch.ones(self.neuron_mask.shape[0], self.n_state - self.n_neurons - self.n_glia,
                          device=self.omega.device, dtype=self.omega.dtype)
        self.sigma = self.sigma_template * torch.cat([self.neuron_mask, self.glia_mask, rest], dim=1)  # (B, n_state)
        if self.metabolism is not None:
            self.metabolism.set_glia(self.glia_dom_index, self.glia_mask)
            load = self.neuron_coupling.abs_row_sums() / self.graph.normaliser  # (B, C); p_syn holds |strength|
            self.metabolism.set_layout(self.neuron_dom_index, self.neuron_mask, load)

    def _project(self, y: torch.Tensor) -> torch.Tensor:
        """After each solver step: clamp energy reserves to [0, e_max] (booked in the ledger)."""
        ng = self.n_neurons + self.n_glia
        return torch.cat([y[:, :ng], self.metabolism.project(y[:, ng:])], dim=1)

    def deviation(self, t: float, y: torch.Tensor) -> torch.Tensor:
        """theta' - omega (B, N): the coupling-, glia- and drive-driven part of the neuron drift."""
        return self(t, y)[:, : self.n_neurons] - self.omega_at(t)

    def omega_at(self, t: float) -> torch.Tensor:
        """Natural frequencies in force at time t (B, N): omega times the behavioural state's factors."""
        if self.frequency_schedule is None:
            return self.omega
        return self.omega * self.frequency_schedule(float(t))

    def make_plastic(self, points: list[Config], graph) -> None:
        """Become a plastic field at capacity C (slots N..C-1 start inactive): per-replica synapses W, activity masks
        and spare slots dealt to the glial domains. points: the sweep points batched in the field (one config for a
        plain run), each owning cfg.replicas replicas and its own coupling."""
        from .structure import PlasticCoupling, PointPlastic

        cfg, device, dtype = points[0], self.omega.device, self.omega.dtype
        n, b = cfg.neurons.count, self.omega.shape[0]
        cap = cfg.structure.capacity or (2 * n if cfg.structure.neurogenesis.enabled else n)  # spare slots only if used
        w = torch.zeros(b, cap, cap, device=device, dtype=dtype)
        tgt, src, wt = graph.edges()
        w[:, torch.as_tensor(tgt), torch.as_tensor(src)] = torch.as_tensor(wt, device=device, dtype=dtype)

        def coupling(p: Config, w_p: torch.Tensor, like=None) -> PlasticCoupling:
            # the initial mean degree stays the normaliser: a synapse keeps its weight
            scale = p.coupling.strength / graph.normaliser
            return PlasticCoupling(w_p, scale, HKB(p.coupling.a, p.coupling.b).harmonics, p.coupling.phase_lag,
                                   n_base=n, like=like)

        r = cfg.replicas
        first = coupling(cfg, w if len(points) == 1 else w[:r])
        self.neuron_coupling = first if len(points) == 1 else \
            PointPlastic(w, [first] + [coupling(p, w[i * r:(i + 1) * r], first) for i, p in enumerate(points) if i], r)
        self.backend_name = PlasticCoupling.name
        pad = cap - n
        self.omega = torch.cat([self.omega, torch.zeros(b, pad, device=device, dtype=dtype)], dim=1)
        self.n_neurons = cap
        self.neuron_mask = torch.cat([torch.ones(b, n, device=device, dtype=dtype),
                                      torch.zeros(b, pad, device=device, dtype=dtype)], dim=1)
        # spare slots are dealt to the domains in turn: a new neuron takes a free slot of the domain that asked for
        # it, so the slot -> domain map is shared by all replicas (fast index_add paths) while activity stays per replica
        spare = np.arange(pad, dtype=np.int64) % max(1, self.n_domains)
        self.neuron_dom_index = torch.as_tensor(np.concatenate([self.neuron_domain, spare]), device=device)  # (C,)
        self._plastic_glia(cfg, b, n, pad, device, dtype)
        if self.drive is not None:
            self.drive = self.drive.with_mask(torch.cat([self.drive.mask, torch.zeros(pad, device=device, dtype=dtype)]))
        self.structure_changed()

    def _plastic_glia(self, cfg: Config, b: int, n: int, pad: int, device, dtype) -> None:
        """Glial slots, domain tables and the noise template of a plastic field (part of make_plastic)."""
        g = self.n_glia
        gcap = cfg.structure.glia_capacity or (2 * g if cfg.structure.glia_creation.enabled else g)
        gpad = gcap - g
        self.nu = torch.cat([self.nu, torch.zeros(b, gpad, device=device, dtype=dtype)], dim=1)
        self.n_glia = gcap
        self.glia_mask = torch.cat([torch.ones(b, g, device=device, dtype=dtype),
                                    torch.zeros(b, gpad, device=device, dtype=dtype)], dim=1)
        self.glia_domain = np.concatenate([self.glia_domain, np.arange(gpad, dtype=np.int64) % max(1, self.n_domains)])
        self.glia_dom_index = torch.as_tensor(self.glia_domain, device=device)  # (Gc,)
        if self.use_gn or self.use_ng:
            self.glia_dom = DomainMeans(self.glia_domain, self.n_domains, device, dtype, self.glia_mask)
            self.neuron_dom = DomainMeans(self.neuron_dom_index, self.n_domains, device, dtype, self.neuron_mask)
        self.n_state = self.n_neurons + self.n_glia + (self.metabolism.size if self.metabolism is not None else 0)
        sigma = self.sigma.expand(b, -1) if self.sigma.dim() == 1 else self.sigma  # (B, N + G + block)
        slots = sigma[:, :1].expand(b, pad)  # new neurons get the neurons' noise once active
        gslots = sigma[:, n:n + 1].expand(b, gpad) if g else torch.zeros(b, gpad, device=device, dtype=dtype)
        self.sigma_template = torch.cat([sigma[:, :n], slots, sigma[:, n:n + g], gslots, sigma[:, n + g:]], dim=1)

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: Config, device, dtype, rng: np.random.Generator, graph: Graph | None = None):
        """Build from a validated config: graph, frequencies (seeded rng), domains, backends, drive."""
        return cls.from_points([cfg], device, dtype, [rng], graph)

    @classmethod
    def from_points(cls, points: list[Config], device, dtype, rngs: list[np.random.Generator], graph: Graph | None = None):
        """One field for several configs that differ only in numeric parameters (BATCHABLE): point p owns replicas
        p*B .. (p+1)*B - 1. A differing parameter becomes a (P*B, 1) tensor of the points' values; backends and
        derived constants are built per point as its own run builds them, then joined, so that every point
        computes with the very numbers of its own run."""
        from .crossfreq import CrossFrequency, FrequencySchedule
        from .sampling import sample_frequencies, sample_neuron_frequencies

        cfg = points[0]
        n, g, b = cfg.neurons.count, cfg.glia_count, cfg.replicas

        def par(path: str) -> Param:
            return batched([_get(p, path) for p in points], b, device, dtype)

        def per_point(build, keys: tuple[str, ...]):
            """build(point) for each point with its own scalar parameters, as its own run builds it (points equal
            in `keys` share one), joined into one backend for the batch."""
            made: dict = {}
            for p in points:
                key = tuple(_get(p, k) for k in keys)
                if key not in made:
                    made[key] = build(p)
            return join_backends([made[tuple(_get(p, k) for k in keys)] for p in points], b, device, dtype)

        graph = graph if graph is not None else build_graph(cfg.topology, n, cfg.seed)

        def coupling(p: Config):
            return make_backend(graph, p.coupling.strength, HKB(p.coupling.a, p.coupling.b).harmonics,
                                p.coupling.phase_lag, cfg.coupling.backend, device, dtype)

        # a plastic network replaces the backend by its own (per point) below
        neuron_coupling = coupling(cfg) if cfg.structure.enabled else per_point(
            coupling, ("coupling.strength", "coupling.a", "coupling.b", "coupling.phase_lag"))
        omega = np.concatenate([sample_neuron_frequencies(p.neurons, b, r) for p, r in zip(points, rngs)])
        nu = np.concatenate([sample_frequencies(p.glia.frequency, g, b, r) for p, r in zip(points, rngs)])
        n_domains = cfg.domain_count
        neuron_domain = domains(n, n_domains, graph.modules)
        glia_domain = domains(g, n_domains, None) if g else np.zeros(0, dtype=np.int64)
        glia_coupling, glia_graph = None, None
        if g and any(p.glia.coupling != 0.0 for p in points):
            glia_graph = None if cfg.glia.topology == "all_to_all" else \
                domain_graph(graph, neuron_domain, glia_domain, n_domains)

            def glia(p: Config):
                if glia_graph is None:
                    return MeanField(g, p.glia.coupling, KURAMOTO.harmonics, 0.0)
                return make_backend(glia_graph, p.glia.coupling, KURAMOTO.harmonics, 0.0, "auto", device, dtype)

            glia_coupling = per_point(glia, ("glia.coupling",))
        drive = None
        if cfg.drive.kind != "none":
            mask = torch.zeros(n, device=device, dtype=dtype)
            mask[cfg.drive.targets if cfg.drive.targets is not None else slice(None)] = 1.0
            constant = cfg.drive.kind == "constant"
            drives = [SinusoidDrive(p.drive.amplitude, 0.0 if constant else p.drive.frequency,
                                    np.pi / 2 if constant else p.drive.phase, mask) for p in points]  # sin(pi/2) = 1
            drive = drives[0] if len(drives) == 1 else PointDrives(drives, b)
        from .metabolism import Metabolism, Schedule

        schedule = Schedule(cfg.metabolism.schedule)  # one object: supply and frequencies switch together
        metabolism = None
        if cfg.metabolism.enabled:

            params = {k: par(f"metabolism.{k}")
                      for k in ("p_base", "p_act", "p_syn", "p_glia", "supply", "e_max", "e_init", "k_m")}
            params["p_syn"] = batched([p.metabolism.p_syn * abs(p.coupling.strength) for p in points], b, device, dtype)
            metabolism = Metabolism(cfg.metabolism, neuron_domain, glia_domain, n_domains, synaptic_load(graph, 1.0),
                                    device, dtype, params, schedule)
        field = cls(
            omega=torch.as_tensor(omega, device=device, dtype=dtype),
            nu=torch.as_tensor(nu, device=device, dtype=dtype),
            neuron_coupling=neuron_coupling,
            glia_coupling=glia_coupling,
            neuron_domain=neuron_domain,
            glia_domain=glia_domain,
            n_domains=n_domains,
            c_gn=par("glia.coupling_to_neurons"),
            c_ng=par("glia.coupling_from_neurons"),
            drive=drive,
            sigma_neurons=par("noise.neurons"),
            sigma_glia=par("noise.glia"),
            graph=graph,
            metabolism=metabolism,
            cross=CrossFrequency.from_points(points, par),
            frequency_schedule=FrequencySchedule.build(cfg, schedule, device, dtype),
            schedule=schedule if cfg.metabolism.schedule else None,
            glia_graph=glia_graph,
        )
        if cfg.structure.enabled:
            field.make_plastic(points, graph)
        return field


# numeric keys that may differ between sweep points run as one batch (everything else must be equal)
BATCHABLE = (
    "coupling.strength", "coupling.a", "coupling.b", "coupling.phase_lag",
    "glia.coupling_to_neurons", "glia.coupling_from_neurons", "glia.coupling",
    "neurons.frequency.center", "neurons.frequency.width", "glia.frequency.center", "glia.frequency.width",
    "noise.neurons", "noise.glia", "drive.amplitude", "drive.frequency", "drive.phase",
    "metabolism.p_base", "metabolism.p_act", "metabolism.p_syn", "metabolism.p_glia", "metabolism.supply",
    "metabolism.e_max", "metabolism.e_init", "metabolism.k_m",
)


def batchable_paths(cfg: Config) -> tuple[str, ...]:
    """BATCHABLE plus the numeric keys of this config's named neuron groups and cross-frequency terms."""
    extra = [f"neurons.groups.{g}.frequency.{k}" for g in cfg.neurons.groups for k in ("center", "width")]
    extra += [f"coupling.cross.{c}.strength" for c in cfg.coupling.cross]
    return BATCHABLE + tuple(extra)


def _get(cfg: Config, path: str):
    node = cfg
    for part in path.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def synaptic_load(graph: Graph, strength: float) -> np.ndarray:
    """(N,) sum_j |K_ij| over each neuron's incoming synapses."""
    if graph.implicit:
        return np.full(graph.n, abs(strength) * (graph.n - 1) / graph.normaliser)
    return np.bincount(graph.target, weights=np.abs(graph.weight), minlength=graph.n) * abs(strength) / graph.normaliser


def build_field(points: list[Config], device, dtype, rngs: list[np.random.Generator]):
    """Instantiate the registered vector field named by `model` for one config, or a batch of sweep points."""
    cfg = points[0]
    try:
        cls = VECTOR_FIELDS[cfg.model]
    except KeyError:
        raise ConfigError(f"model: unknown vector field {cfg.model!r}; registered: {', '.join(sorted(VECTOR_FIELDS))}") from None
    if len(points) == 1:
        return cls.from_config(cfg, device, dtype, rngs[0])
    if not hasattr(cls, "from_points"):
        raise ConfigError(f"model: {cfg.model!r} cannot batch sweep points (it has no from_points); set sweep.max_batch: 1")
    return cls.from_points(points, device, dtype, rngs)
