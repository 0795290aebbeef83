"""The performance estimate of an architecture search: minimum energy E and maximum information I (seed 000's
E_min x I_max), as a Pareto front, its hypervolume, and two scalar scores.

- Pareto front of (E, I): the points no other point beats in both (lower or equal E and higher or equal I, one
  strictly).
- Hypervolume: the area of the (E, I) plane that the front dominates, up to a reference point (E_ref, I_ref) that
  every counted point beats (E < E_ref, I > I_ref); units energy x bits.
- `bits_per_energy`: I / E (bits per unit of the chosen energy measure).
- `mnasnet`: MnasNet's soft-constrained reward I x (E / E_target)^w (Tan et al. 2019, with accuracy replaced by
  information and latency by energy); w < 0 trades information for energy, e.g. w = -0.07.
"""
from __future__ import annotations

import math

import numpy as np


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Indices (by ascending E) of the (E, I) points not dominated by another (lower E and higher I)."""
    points = np.asarray(points, dtype=float)
    if len(points) == 0:
        return np.zeros(0, dtype=int)
    order = np.lexsort((-points[:, 1], points[:, 0]))
    front, best = [], -np.inf
    for i in order:
        if points[i, 1] > best:
            front.append(i)
            best = points[i, 1]
    return np.array(front, dtype=int)


def hypervolume(points: np.ndarray, reference: tuple[float, float]) -> float:
    """Area dominated by the (E, I) points (E minimised, I maximised) and bounded by the reference (E_ref, I_ref)."""
    e_ref, i_ref = reference
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    pts = pts[(pts[:, 0] < e_ref) & (pts[:, 1] > i_ref)]
    if len(pts) == 0:
        return 0.0
    front = pts[pareto_front(pts)]  # ascending E, ascending I
    edges = np.append(front[1:, 0], e_ref)  # each front point dominates up to the next one's energy
    return float(np.sum((edges - front[:, 0]) * (front[:, 1] - i_ref)))


def reference_point(energies: np.ndarray, margin: float = 1.1) -> tuple[float, float]:
    """A reference point every finite point beats: (margin x the largest energy, 0 bits)."""
    e = np.asarray(energies, dtype=float)
    e = e[np.isfinite(e)]
    return (float(margin * e.max()) if len(e) else 1.0, 0.0)


def score(information: float, energy: float, kind: str = "bits_per_energy", target: float = 1.0,
          w: float = -0.07) -> float:
    """A scalar ranking of one candidate: I / E, or MnasNet's I x (E / target)^w."""
    if kind == "bits_per_energy":
        return information / energy if energy > 0 else math.inf
    if kind == "mnasnet":
        return information * (energy / target) ** w if energy > 0 else math.inf
    raise ValueError(f"score.kind: expected bits_per_energy or mnasnet, found {kind!r}")
