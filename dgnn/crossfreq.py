"""Cross-frequency (n:m) coupling between neuron groups and state-dependent natural frequencies.

A fast and a slow oscillator coupled by two sine terms, slow -> fast  K  sin(n theta_s - m theta_f) and
fast -> slow  K' sin(m theta_f - n theta_s), have phi = m theta_f - n theta_s obeying the Adler equation
phi' = (m omega_f - n omega_s) - (m K + n K') sin(phi): they lock n:m iff |m omega_f - n omega_s| <= m K + n K'.
The pulse shape (a source firing a von Mises pulse at phase 0 onto a target with phase-response curve -sin) has
every harmonic of the source, so it opens p:1 tongues of width 2 K e^{-kappa} I_p(kappa) and, at higher order in K,
the p:q tongues of the Farey tree.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import Config
from .trig import Param


@dataclass(frozen=True)
class CrossTermOp:
    source: slice
    target: slice
    n_source: int
    n_target: int
    strength: Param  # float or (B, 1)
    shape: str
    sharpness: float


class CrossFrequency:
    """Sum of the configured cross terms as a (B, N) contribution to theta' - omega; O(N) per term (mean field)."""

    def __init__(self, terms: list[CrossTermOp], n: int):
        self.terms, self.n = terms, n

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(theta)  # (B, N)
        for t in self.terms:
            src = t.n_source * theta[:, t.source]  # (B, n_src)
            tgt = t.n_target * theta[:, t.target]  # (B, n_tgt)
            if t.shape == "sine":  # mean_j sin(x_j - y_i) = <sin x> cos y - <cos x> sin y
                zc = torch.cos(src).mean(1, keepdim=True)  # (B, 1)
                zs = torch.sin(src).mean(1, keepdim=True)
                term = zs * torch.cos(tgt) - zc * torch.sin(tgt)
            else:
                pulse = torch.exp(t.sharpness * (torch.cos(src) - 1.0)).mean(1, keepdim=True)  # (B, 1)
                term = -pulse * torch.sin(tgt)
            out[:, t.target] += t.strength * term
        return out

    @classmethod
    def from_points(cls, points: list[Config], par) -> "CrossFrequency | None":
        """Terms of the first config; strengths through `par` so that sweep points may differ in them."""
        cfg = points[0]
        if not cfg.coupling.cross:
            return None
        groups = cfg.neurons.group_slices()
        terms = [
            CrossTermOp(groups[c.source], groups[c.target], c.n_source, c.n_target,
                        par(f"coupling.cross.{name}.strength"), c.shape, c.sharpness)
            for name, c in cfg.coupling.cross.items()
        ]
        return cls(terms, cfg.neurons.count)


class FrequencySchedule:
    """Natural-frequency factor of every neuron in each behavioural state of the schedule (repeating epochs)."""

    def __init__(self, cfg: Config, schedule, device, dtype):
        self.schedule = schedule  # dgnn.metabolism.Schedule, shared with the metabolism
        groups = cfg.neurons.group_slices()
        factors = torch.ones(len(cfg.metabolism.schedule), cfg.neurons.count, device=device, dtype=dtype)  # (E, N)
        for i, epoch in enumerate(cfg.metabolism.schedule):
            for name, f in epoch.frequency.items():
                factors[i, groups[name]] = f
        self.factors = factors

    @classmethod
    def build(cls, cfg: Config, schedule, device, dtype) -> "FrequencySchedule | None":
        if not any(e.frequency for e in cfg.metabolism.schedule):
            return None
        return cls(cfg, schedule, device, dtype)

    def __call__(self, t: float) -> torch.Tensor:
        """(N,) factors in force at time t."""
        return self.factors[self.schedule.index(t)]
