"""Pair potentials V(phi) of the relative phase phi = theta_i - theta_j, written as Fourier harmonics of the force."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class HKB:
    """V(phi) = -a cos(phi) - b cos(2 phi) (Haken-Kelso-Bunz); a = 1, b = 0 is Kuramoto."""

    a: float = 1.0
    b: float = 0.0

    def potential(self, phi: float) -> float:
        """V(phi), dimensionless."""
        return -self.a * math.cos(phi) - self.b * math.cos(2 * phi)

    def force(self, phi: float) -> float:
        """f(phi) = -dV/dphi = -a sin(phi) - 2 b sin(2 phi), rad per time unit per unit coupling."""
        return -self.a * math.sin(phi) - 2 * self.b * math.sin(2 * phi)

    @property
    def harmonics(self) -> tuple[tuple[int, float], ...]:
        """((m, A_m), ...) with f(theta_i - theta_j) = sum_m A_m sin(m (theta_j - theta_i)); zero terms dropped.

        a and b may be (B, 1) tensors (one value per replica); a term is kept if any replica needs it."""
        terms = ((1, self.a), (2, 2.0 * self.b))
        return tuple((m, amp) for m, amp in terms if isinstance(amp, torch.Tensor) or amp != 0.0)


KURAMOTO = HKB(1.0, 0.0)
