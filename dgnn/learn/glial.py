"""Glial-neural oscillator nets: OscillatorNet's layers with the reference model's glia, funded and gated by glial reserves.

A layer of H units has G = round(glia_ratio H) glial cells in D = min(H, G) domains (contiguous blocks of units and
of glia, laid out by dgnn.topology.domains as for the simulator). With OscillatorNet's coupling C_i (the settling
drift of unit i without glia) and the simulator's metabolism (dgnn.metabolism.Metabolism, one block for all layers):

    theta_i' = g(e_d(i)) C_i(theta) + c_gn <sin(psi_g - theta_i)>_{g in d(i)}
    psi_g'   = nu + c_ng <sin(theta_i - psi_g)>_{i in d(g)}
    e_d'     = supply G_d (1 - e_d / e_max) - sum_{i in d} [p_base + p_act theta_i'^2 + p_syn sum_j |K_ij|] - p_glia G_d
    g(e)     = e / (e + k_m)

Every inference (each input of a batch is a replica) settles [theta, psi, e, ledger] from theta = psi = 0 and
e = e_init with one dgnn.solve, the reserves clamped to [0, e_max] after every step (Metabolism.project, booked in
the ledger). Its metabolic energy is the ledger's consumption over the settle time. glia_ratio 0 is OscillatorNet.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..energy import CONSUMED
from ..errors import ConfigError
from ..metabolism import LEDGER, Metabolism, imbalance
from ..topology import domains
from ..trig import DomainMeans
from .config import ModelConfig
from .models import OscillatorNet, register_model_kind

STAGES = {"euler": 1, "midpoint": 2, "rk4": 4}  # field evaluations per step (others counted as 6, as OscillatorNet)


@dataclass
class Inference:
    """One settling of a batch: outputs, final glial phases and each inference's reserve and ledger."""

    logits: torch.Tensor  # (B, C)
    acts: list[torch.Tensor]  # per layer (B, H_l), phases relative to the reference in (-pi, pi]
    psi: torch.Tensor  # (B, G) glial phases, rad
    reserve_initial: torch.Tensor  # (B, D) energy
    reserve: torch.Tensor  # (B, D) energy at the end of the settling
    ledger: dict[str, torch.Tensor]  # LEDGER name -> (B, D) cumulative energy over the settling
    energy: torch.Tensor  # (B,) the metabolic energy: base + activity + synapse + glia consumption, all domains

    def imbalance(self) -> torch.Tensor:
        """(B, D) e - e0 - (inflows - outflows): zero up to rounding."""
        e = torch.stack([self.reserve_initial, self.reserve])  # (2, B, D)
        return imbalance(e, {k: torch.stack([torch.zeros_like(v), v]) for k, v in self.ledger.items()})[-1]


class GlialField:
    """The settling vector field of a glial net for one batch, over [inputs if drive | theta | psi | block]."""

    def __init__(self, inner, met: Metabolism, layout: "GlialNet"):
        self.inner, self.met = inner, met  # OscillatorNet's field (coupling only) and this batch's metabolism
        self.s, self.n, self.g = layout.start, layout.offsets[-1], layout.n_glia
        self.c_gn, self.c_ng, self.nu = layout.cfg.c_gn, layout.cfg.c_ng, layout.cfg.nu
        dev, dt, d = met.device, met.dtype, layout.n_domains
        # D = min(H, G) per layer, so one side is always one member per domain: its means and gathers are identities
        self.neurons = DomainMeans(layout.neuron_domain, d, dev, dt) if d < self.n else None  # domain means of units
        self.glia = DomainMeans(layout.glia_domain, d, dev, dt) if d < self.g else None  # ... and of glia

    def __call__(self, t, y: torch.Tensor) -> torch.Tensor:
        s, n, g = self.s, self.n, self.g
        base = self.inner(t, y)  # (B, s + N): reads only the input and neuron columns
        th, psi, block = y[:, s:s + n], y[:, s + n:s + n + g], y[:, s + n + g:]  # (B, N), (B, G), (B, (1 + L) D)
        dth = base[:, s:] * self.met.gate(block)  # (B, N) coupling gated by each unit's domain reserve
        dpsi = torch.full_like(psi, self.nu)  # (B, G)
        if (self.c_gn or self.c_ng) and self.neurons is None and self.glia is None:  # one unit, one glial cell
            lag = torch.sin(psi - th)  # (B, N): the domain means are the single members
            dth = dth + self.c_gn * lag if self.c_gn else dth
            dpsi = dpsi - self.c_ng * lag if self.c_ng else dpsi
        elif self.c_gn or self.c_ng:
            c, sn, gc, gs = torch.cos(th), torch.sin(th), torch.cos(psi), torch.sin(psi)
            if self.c_gn:  # <sin(psi_g - theta_i)> over the domain's glia = Im(Z_glia e^{-i theta_i})
                zx, zy = _means(self.glia, gc, gs)  # (B, D)
                dth = dth + self.c_gn * (_gather(self.neurons, zy) * c - _gather(self.neurons, zx) * sn)
            if self.c_ng:  # <sin(theta_i - psi_g)> over the domain's units
                zx, zy = _means(self.neurons, c, sn)  # (B, D)
                dpsi = dpsi + self.c_ng * (_gather(self.glia, zy) * gc - _gather(self.glia, zx) * gs)
        return torch.cat([base[:, :s], dth, dpsi, self.met.drift(t, block, dth)], dim=1)

    def project(self, y: torch.Tensor) -> torch.Tensor:
        """After each solver step: clamp the reserves to [0, e_max], booking what clamping changes."""
        k = self.s + self.n + self.g
        return torch.cat([y[:, :k], self.met.project(y[:, k:])], dim=1)


def _means(members: DomainMeans | None, c: torch.Tensor, s: torch.Tensor):
    """Domain means of (cos, sin), (B, n) -> (B, D); None: one member per domain, in domain order."""
    return (c, s) if members is None else members(c, s)


def _gather(members: DomainMeans | None, z: torch.Tensor) -> torch.Tensor:
    """Each member's domain value, (B, D) -> (B, n); None: one member per domain, in domain order."""
    return z if members is None else members.gather(z)


@register_model_kind
class GlialNet(OscillatorNet):
    """OscillatorNet whose layers hold glial cells, domains and reserves (the reference model's glia); see the module doc."""

    kind = "glial"

    def __init__(self, n_in: int, n_out: int, cfg: ModelConfig, gen: torch.Generator, dtype=torch.float32):
        super().__init__(n_in, n_out, cfg, gen, dtype)  # the same parameters, drawn in the same order
        self.start = n_in if self.drive else 0
        self.glia_per_layer = cfg.glia_counts()
        if cfg.glia_ratio and min(self.glia_per_layer) == 0:  # a copied config (e.g. match_width) skips validation
            raise ConfigError(f"glia_ratio: {cfg.glia_ratio} leaves a layer of {cfg.hidden} without glia; every layer "
                              "has glia or none does")
        neuron_domain, glia_domain, first = [], [], 0
        for h, g in zip(cfg.hidden, self.glia_per_layer):
            d = min(h, g)
            neuron_domain.append(domains(h, d, None) + first if d else np.zeros(0, dtype=np.int64))
            glia_domain.append(domains(g, d, None) + first if d else np.zeros(0, dtype=np.int64))
            first += d
        self.neuron_domain = np.concatenate(neuron_domain)  # (N,) global domain of each unit
        self.glia_domain = np.concatenate(glia_domain)  # (G,)
        self.n_glia, self.n_domains = int(self.glia_domain.size), first
        self.n_phases = self.start + self.offsets[-1] + self.n_glia  # columns before the energy block

    # ------------------------------------------------------------------------------------------------- dynamics
    def _field(self, x_phase: torch.Tensor):
        inner = super()._field(x_phase)
        if not self.n_glia:
            return inner  # no glia, no reserves: OscillatorNet's settling
        return GlialField(inner, self._metabolism(x_phase.device, x_phase.dtype), self)

    def _metabolism(self, device, dtype) -> Metabolism:
        """This batch's reserves: the simulator's Metabolism with each unit's capped coupling as its synaptic load."""
        met = Metabolism(self.cfg.metabolism, self.neuron_domain, self.glia_domain, self.n_domains,
                         np.zeros(self.offsets[-1]), device, dtype, structural=False)
        load = torch.cat([layer.gain() * layer.total_coupling() for layer in self.layers])  # (N,) differentiable
        met.set_layout(torch.as_tensor(self.neuron_domain, device=device), None, load)
        return met

    def _initial(self, field, x: torch.Tensor) -> torch.Tensor:
        y0 = super()._initial(field, x)  # (B, s + N) phases 0
        if not self.n_glia:
            return y0
        psi0 = torch.zeros(x.shape[0], self.n_glia, dtype=x.dtype, device=x.device)
        return torch.cat([y0, psi0, field.met.initial(x.shape[0], x.device, x.dtype)], dim=1)

    def settle(self, x: torch.Tensor, dt: float | None = None, trajectory: bool = False):
        """Final phases [inputs if drive | theta | psi] (B, S), or at every solver step (n + 1, B, S)."""
        return self._settle(x, dt, trajectory)[0][..., : self.n_phases]

    def infer(self, x: torch.Tensor, dt: float | None = None) -> Inference:
        """Settle a batch once: outputs, glial phases, and every inference's reserve and ledger (differentiable)."""
        y, field = self._settle(x, dt, trajectory=False)
        logits, acts = self._outputs(y)
        b = x.shape[0]
        if not self.n_glia:  # no reserves, no ledger: OscillatorNet's energy of the same power
            none = y.new_zeros(b, 0)
            return Inference(logits, acts, none, none, none, {k: none for k in LEDGER},
                             super().metabolic_energy(x, dt))
        met = field.met
        block = y[:, self.n_phases:]
        led = met.ledger(block)  # (B, len(LEDGER), D)
        ledger = {k: led[:, i] for i, k in enumerate(LEDGER)}
        return Inference(logits, acts, y[:, self.n_phases - self.n_glia: self.n_phases],
                         met.reserve(met.initial(b, y.device, y.dtype)), met.reserve(block), ledger,
                         sum(ledger[k].sum(-1) for k in CONSUMED))

    # -------------------------------------------------------------------------------------------------- costs
    def metabolic_energy(self, x: torch.Tensor, dt: float | None = None) -> torch.Tensor:
        """(B,) the `metabolic` energy: the ledger's consumption (neurons and glia) over one inference's settling;
        without glia (glia_ratio 0), OscillatorNet's measure of the same power."""
        if not self.n_glia:
            return super().metabolic_energy(x, dt)
        return self.infer(x, dt).energy

    def ledger(self, x: torch.Tensor, dt: float | None = None) -> dict[str, torch.Tensor]:
        """Each inference's ledger at the end of its settling: LEDGER name -> (B, D) cumulative energy."""
        return self.infer(x, dt).ledger

    def macs(self) -> dict[str, float]:
        """OscillatorNet's count plus, per field evaluation, the gate, the glia-neuron terms and the reserve drift,
        and per step the clamping projection."""
        out = super().macs()
        if not self.n_glia:
            return out
        cfg = self.cfg
        n, g, d = self.offsets[-1], self.n_glia, self.n_domains
        glial = bool(cfg.c_gn) or bool(cfg.c_ng)
        mac = n + d  # gate: e + k_m, then its value times each unit's coupling
        mac += 2 * n + 6 * d  # p_act theta'^2 summed per domain; supply (1 - e / e_max) and de
        trans = d  # the gate's division
        if glial and n == g == d:  # one unit, one glial cell per domain: sin(psi - theta) once per pair
            mac += n + (n if cfg.c_gn else 0) + (2 * g if cfg.c_ng else 0)  # psi - theta; c_gn x; nu + c_ng x
            trans += n
        elif glial:
            mac += (2 * g + 2 * d + 3 * n) if cfg.c_gn else 0  # glia means, c_gn (zy cos - zx sin)
            mac += (2 * n + 2 * d + 4 * g) if cfg.c_ng else 0  # unit means, nu + c_ng (zy cos - zx sin)
            trans += 2 * n + 2 * g  # cos, sin of theta and psi
        steps = max(1, round(cfg.settle_time / cfg.dt))
        evals = steps * STAGES.get(cfg.method, 6)
        out["macs"] += mac * evals + 4 * d * steps  # projection: two clamps and two bookings per domain
        out["transcendentals"] += trans * evals
        return out
