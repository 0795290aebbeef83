"""Fixed-step methods. Each class declares its order and the noise it supports (as torchsde's methods do)."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch

_THIRD = 1.0 / 3.0


class Method(ABC):
    """One step y(t) -> y(t + dt) of dy = f dt + g dW; g is None (ODE), a (D,) tensor (additive) or a callable (diagonal)."""

    order: float = 1.0  # deterministic order
    strong_order: float | None = None  # for SDEs with diagonal (multiplicative) noise; additive noise given below
    strong_order_additive: float | None = None
    noise: tuple[str, ...] = ("none",)
    sde_type: str | None = None

    @abstractmethod
    def step(self, f, t: float, y: torch.Tensor, dt: float, g=None, dw=None) -> torch.Tensor:
        """The state after one step of size dt from (t, y)."""


class Euler(Method):
    order = 1.0

    def step(self, f, t, y, dt, g=None, dw=None):
        return torch.add(y, f(t, y), alpha=dt)


class Midpoint(Method):
    order = 2.0

    def step(self, f, t, y, dt, g=None, dw=None):
        half = 0.5 * dt
        return y + dt * f(t + half, y + half * f(t, y))


class RK4(Method):
    """Kutta's 3/8 rule, the same tableau as torchdiffeq's 'rk4', so both give the same numbers."""

    order = 4.0

    def step(self, f, t, y, dt, g=None, dw=None):
        # fused adds (y + alpha * k in one call): fewer tensor ops per step matters at small N
        k1 = f(t, y)
        k2 = f(t + dt * _THIRD, torch.add(y, k1, alpha=dt * _THIRD))
        k3 = f(t + dt * 2 * _THIRD, torch.add(y, torch.add(k2, k1, alpha=-_THIRD), alpha=dt))
        k4 = f(t + dt, torch.add(y, (k1 - k2).add_(k3), alpha=dt))
        return torch.add(y, torch.add(k1, torch.add(k2, k3), alpha=3.0).add_(k4), alpha=0.125 * dt)


def _noise_term(g, t, y, dw):
    return g * dw if isinstance(g, torch.Tensor) else g(t, y) * dw


class EulerMaruyama(Method):
    """Ito: y + f dt + g dW. Strong order 1/2 (1 for additive noise)."""

    order = 1.0
    strong_order = 0.5
    strong_order_additive = 1.0
    noise = ("none", "additive", "diagonal")
    sde_type = "ito"

    def step(self, f, t, y, dt, g=None, dw=None):
        y1 = torch.add(y, f(t, y), alpha=dt)
        return y1 if dw is None else y1.add_(_noise_term(g, t, y, dw))


class StochasticHeun(Method):
    """Predictor-corrector (trapezoidal) step. Converges to the Stratonovich solution; with additive noise that is
    also the Ito one. Strong order 1 for additive and commutative diagonal noise; deterministic order 2."""

    order = 2.0
    strong_order = 1.0
    strong_order_additive = 1.0
    noise = ("none", "additive", "diagonal")
    sde_type = "stratonovich"

    def step(self, f, t, y, dt, g=None, dw=None):
        f0 = f(t, y)
        if dw is None:
            pred = y + dt * f0
            return y + (0.5 * dt) * (f0 + f(t + dt, pred))
        if isinstance(g, torch.Tensor):
            noise = g * dw
            pred = y + dt * f0 + noise
            return y + (0.5 * dt) * (f0 + f(t + dt, pred)) + noise
        g0 = g(t, y)
        pred = y + dt * f0 + g0 * dw
        return y + (0.5 * dt) * (f0 + f(t + dt, pred)) + 0.5 * (g0 + g(t + dt, pred)) * dw
