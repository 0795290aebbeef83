"""Phase trigonometry shared by the vector fields (a leaf module: it imports nothing from dgnn): the cos/sin cache
of one evaluation, scalar-or-per-replica parameters, and means of e^{i x} over glial domains."""
from __future__ import annotations

import math

import torch

Param = float | torch.Tensor  # a scalar, or (B, 1) per replica when a sweep batches points that differ in it


class Trig:
    """cos(m theta), sin(m theta) computed once per evaluation and shared by every term that needs them."""

    def __init__(self, theta: torch.Tensor):
        self.theta = theta  # (B, N)
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        if m not in self._cache:
            if m == 1:
                self._cache[1] = (torch.cos(self.theta), torch.sin(self.theta))
            elif m == 2:
                c, s = self(1)
                self._cache[2] = (c * c - s * s, 2.0 * c * s)  # double angle: no extra transcendental calls
            else:
                self._cache[m] = (torch.cos(m * self.theta), torch.sin(m * self.theta))
        return self._cache[m]

    def rows(self, lo: int, hi: int) -> "Trig":
        """The same terms for replicas lo..hi-1 (cached values sliced, not recomputed)."""
        out = Trig(self.theta[lo:hi])
        out._cache = {m: (c[lo:hi], s[lo:hi]) for m, (c, s) in self._cache.items()}
        return out


def param_cos(x: Param) -> Param:
    return torch.cos(x) if isinstance(x, torch.Tensor) else math.cos(x)


def param_sin(x: Param) -> Param:
    return torch.sin(x) if isinstance(x, torch.Tensor) else math.sin(x)


def is_zero(x: Param) -> bool:
    """True only for a scalar 0 (a per-replica tensor is never folded away)."""
    return not isinstance(x, torch.Tensor) and x == 0.0


def replica_value(x: Param, replica: int) -> float:
    """A per-replica (B, 1) parameter or a scalar, for one replica."""
    return float(x[replica, 0]) if isinstance(x, torch.Tensor) else float(x)


def batched(values: list[float], replicas: int, device, dtype) -> Param:
    """A float when every point agrees, else (P * replicas, 1): each point's value repeated over its replicas."""
    if all(v == values[0] for v in values):
        return float(values[0])
    return torch.tensor(values, device=device, dtype=dtype).repeat_interleave(replicas).unsqueeze(1)



class DomainMeans:
    """Mean of e^{i x} over each glial domain, (B, n) -> (B, D), by scatter-add (O(n)). The index is (n,) shared by
    all replicas, or (B, n) per replica (plastic networks) with an optional (B, n) 0/1 weight of active members."""

    def __init__(self, index, n_domains: int, device, dtype, weight: torch.Tensor | None = None):
        self.n_domains, self.device, self.dtype = n_domains, device, dtype
        self.set(index, weight)

    def set(self, index, weight: torch.Tensor | None = None) -> None:
        self.index = torch.as_tensor(index, device=self.device)
        if weight is not None and bool((weight == 1).all()):
            weight = None  # every member active: skip the weighting passes
        self.weight = weight
        self.weight2 = None if weight is None else torch.cat([weight, weight], dim=0)  # (2B, n) for [c; s]
        if weight is None and self.index.dim() == 1:
            counts = torch.bincount(self.index, minlength=self.n_domains).to(self.dtype)
        elif self.index.dim() == 1:
            counts = torch.zeros(weight.shape[0], self.n_domains, device=self.device, dtype=self.dtype)
            counts.index_add_(1, self.index, weight)
        else:
            w = weight if weight is not None else torch.ones(self.index.shape, device=self.device, dtype=self.dtype)
            counts = torch.zeros(w.shape[0], self.n_domains, device=self.device, dtype=self.dtype).scatter_add_(1, self.index, w)
        self.inv = 1.0 / counts.clamp_min(1.0)  # (D,) or (B, D); an empty domain has mean 0
        self.inv2 = self.inv if self.inv.dim() == 1 else torch.cat([self.inv, self.inv], dim=0)  # for [x; y]
        self.index2 = None if self.index.dim() == 1 else torch.cat([self.index, self.index], dim=0)  # (2B, n)

    def __call__(self, c: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = c.shape[0]
        both = torch.zeros(2 * b, self.n_domains, device=c.device, dtype=c.dtype)
        src = torch.cat([c, s], dim=0) if self.weight is None else torch.cat([c, s], dim=0) * self.weight2
        if self.index.dim() == 1:
            both.index_add_(1, self.index, src)
        else:
            both.scatter_add_(1, self.index2, src)
        return (both * self.inv2).split(b)  # (B, D) each

    def gather(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, n): each member's domain value."""
        return z.index_select(1, self.index) if self.index.dim() == 1 else z.gather(1, self.index)
