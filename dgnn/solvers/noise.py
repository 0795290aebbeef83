"""Brownian increments as seeded objects passed to the solvers (never global RNG state)."""
from __future__ import annotations

import math

import torch


class GaussianIncrements:
    """dW ~ N(0, dt) independently per component and step, from a seeded torch.Generator.

    Noise enters as sigma * dW with dW = sqrt(dt) * xi, xi ~ N(0, 1): the variance of a free phase grows as
    sigma^2 t whatever dt is. `state()` / `set_state()` make runs resumable to the bit.
    """

    def __init__(self, seed: int, device="cpu"):
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def __call__(self, t: float, dt: float, shape, dtype) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.device, dtype=dtype) * math.sqrt(dt)

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.cpu() if self.device.type == "cpu" else state)

    def renew(self) -> None:
        """Continue the same stream on a fresh generator (a failed CUDA-graph capture can leave the old one
        registered in capture mode)."""
        state = self.state()
        self.generator = torch.Generator(device=self.device)
        self.set_state(state)


class PointIncrements(GaussianIncrements):
    """dW for `points` sweep points of equal seed batched as consecutive blocks of replicas: each point gets the
    increments of its own run, drawn once per step from the shared seed's stream and repeated for every point.

    A point's noise is then a function of its config alone, whatever its batch mates; with one point this is
    GaussianIncrements, draw for draw.
    """

    def __init__(self, seed: int, points: int, device="cpu"):
        super().__init__(seed, device)
        self.points = points

    def __call__(self, t: float, dt: float, shape, dtype) -> torch.Tensor:
        if self.points == 1:
            return super().__call__(t, dt, shape, dtype)
        one = super().__call__(t, dt, (shape[0] // self.points, *shape[1:]), dtype)  # (B, ...) of one point
        return one.expand(self.points, *one.shape).reshape(shape)  # (P B, ...): one copy (faster than repeat)


class BrownianPath:
    """A fixed Brownian path sampled on a fine grid: increments over [t, t + dt] are sums of the fine ones.

    Lets one path be integrated at several step sizes (strong convergence tests).
    """

    def __init__(self, t0: float, fine_dt: float, increments: torch.Tensor):
        self.t0, self.fine_dt = t0, fine_dt
        self.cumulative = torch.cat([torch.zeros_like(increments[:1]), increments.cumsum(0)])  # (S + 1, ...)

    def _index(self, t: float) -> int:
        i = round((t - self.t0) / self.fine_dt)
        if abs(i * self.fine_dt - (t - self.t0)) > 1e-9 * max(1.0, abs(t)):
            raise ValueError(f"t={t} is not on the Brownian path's grid (fine_dt={self.fine_dt})")
        return i

    def __call__(self, t: float, dt: float, shape, dtype) -> torch.Tensor:
        return (self.cumulative[self._index(t + dt)] - self.cumulative[self._index(t)]).to(dtype)
