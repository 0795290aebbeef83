"""Glial energy reserves per domain: supply with saturation, neuronal demand, coupling gated by the reserve, and a
ledger integrated alongside so that every unit of energy is accounted for.

    P_i   = p_base + p_act (theta_i' - omega_i)^2 + p_syn sum_j |K_ij|          (energy / time)
    e_d'  = S_d(t) (1 - e_d / e_max) - sum_{i in d} P_i,   S_d = supply x (glia in d) x schedule factor(t)
    g_i   = e_d(i) / (e_d(i) + k_m)

The ledger columns are cumulative integrals solved by the same solver as e, so for any Runge-Kutta method
e - e0 = supplied - consumed_base - consumed_activity - consumed_synapse + unmet - discarded holds to rounding;
`unmet` and `discarded` book what clamping e to [0, e_max] after each step adds or removes.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .config import MetabolismConfig

LEDGER = ("supplied", "consumed_base", "consumed_activity", "consumed_synapse", "unmet", "discarded")
INTEGRATED = 4  # the first four columns are integrals of the drift; the last two are booked by clamping


class Schedule:
    """Piecewise-constant supply factor over repeating epochs (e.g. quiet / active sleep)."""

    def __init__(self, epochs):
        self.names = [e.name for e in epochs]
        self.factors = [e.supply for e in epochs]
        self.ends = np.cumsum([e.duration for e in epochs]) if epochs else np.zeros(0)

    def index(self, t: float) -> int:
        if not self.names:
            return -1
        phase = math.fmod(t, float(self.ends[-1]))
        return int(np.searchsorted(self.ends, phase, side="right"))

    def factor(self, t: float) -> float:
        i = self.index(t)
        return 1.0 if i < 0 else self.factors[i]


class Metabolism:
    """State block [e (D) | ledger (6 x D)] appended to the phases; drift, gate and clamping projection."""

    def __init__(self, cfg: MetabolismConfig, neuron_domain: np.ndarray, glia_domain: np.ndarray, n_domains: int,
                 synaptic_load: np.ndarray, device, dtype, params: dict | None = None):
        """synaptic_load: (N,) sum_j |K_ij|. params: per-replica (B, 1) tensors overriding numeric cfg fields."""
        p = {k: getattr(cfg, k) for k in ("p_base", "p_act", "p_syn", "supply", "e_max", "e_init", "k_m")}
        p.update(params or {})
        self.p_act, self.e_max, self.e_init, self.k_m = p["p_act"], p["e_max"], p["e_init"], p["k_m"]
        self.d = n_domains
        self.size = n_domains * (1 + len(LEDGER))
        self.schedule = Schedule(cfg.schedule)
        self.index = torch.as_tensor(neuron_domain, device=device)  # (N,)
        per_domain = lambda w: torch.as_tensor(np.bincount(w[0], weights=w[1], minlength=n_domains),  # noqa: E731
                                               device=device, dtype=dtype)
        self.supply = p["supply"] * per_domain((glia_domain, None))  # (D,) or (B, D)
        self.base = p["p_base"] * per_domain((neuron_domain, None))
        self.synapse = p["p_syn"] * per_domain((neuron_domain, synaptic_load))

    def initial(self, batch: int, device, dtype) -> torch.Tensor:
        y = torch.zeros(batch, self.size, device=device, dtype=dtype)
        y[:, : self.d] = self.e_init
        return y  # (B, 7 D)

    def reserve(self, block: torch.Tensor) -> torch.Tensor:
        return block[:, : self.d]  # (B, D)

    def ledger(self, block: torch.Tensor) -> torch.Tensor:
        return block[:, self.d:].reshape(block.shape[0], len(LEDGER), self.d)  # (B, 6, D)

    def gate(self, block: torch.Tensor) -> torch.Tensor:
        """g_i = e / (e + k_m) of each neuron's domain, with e >= 0: (B, N)."""
        e = self.reserve(block).clamp_min(0.0)
        return (e / (e + self.k_m))[:, self.index]

    def drift(self, t: float, block: torch.Tensor, deviation: torch.Tensor) -> torch.Tensor:
        """d/dt of the block, given theta' - omega (B, N)."""
        e = self.reserve(block)
        b = block.shape[0]
        supplied = (self.supply * self.schedule.factor(float(t))) * (1.0 - e / self.e_max)  # (B, D)
        activity = torch.zeros(b, self.d, device=block.device, dtype=block.dtype)
        activity.index_add_(1, self.index, self.p_act * deviation * deviation)  # (B, D)
        base, synapse = self.base.expand(b, -1), self.synapse.expand(b, -1)
        de = supplied - base - activity - synapse
        zero = torch.zeros_like(e)
        return torch.cat([de, supplied, base, activity, synapse, zero, zero], dim=1)  # (B, 7 D)

    def project(self, block: torch.Tensor) -> torch.Tensor:
        """Clamp e to [0, e_max] and book the difference as unmet demand or discarded supply."""
        e = self.reserve(block)
        low = (-e).clamp_min(0.0)  # energy that clamping at 0 adds back
        high = (e - self.e_max).clamp_min(0.0)  # energy that clamping at e_max removes
        if not bool((low > 0).any() or (high > 0).any()):
            return block
        d = self.d
        out = block.clone()
        out[:, :d] = e + low - high
        out[:, 5 * d: 6 * d] += low  # ledger column 4 (unmet) lives at block offset d + 4 d
        out[:, 6 * d: 7 * d] += high  # ledger column 5 (discarded)
        return out

    def power(self, deviation: torch.Tensor) -> torch.Tensor:
        """Total power drawn by all neurons (B,), energy / time."""
        act = (self.p_act * deviation * deviation).sum(1)
        return act + self.base.sum(-1) + self.synapse.sum(-1)
