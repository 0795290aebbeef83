"""Natural frequencies and initial phases for B replicas, from a seeded numpy Generator (never global state)."""
from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from .config import Distribution, InitialPhase, Neurons


def quantiles(count: int) -> np.ndarray:
    """Midpoint quantile levels (i + 1/2) / n, i = 0..n-1."""
    return (np.arange(count) + 0.5) / count


def sample_frequencies(dist: Distribution, count: int, replicas: int, rng: np.random.Generator) -> np.ndarray:
    """(B, count) natural frequencies in rad per time unit.

    sampling='quantile' uses the inverse CDF at midpoint levels (deterministic, so finite-N Kuramoto runs sit close to
    the infinite-N theory), shuffled per replica so that neuron index and frequency are not correlated on graphs.
    """
    shape = (replicas, count)
    if count == 0:
        return np.zeros(shape)
    c, w = dist.center, dist.width
    if dist.distribution == "constant":
        return np.full(shape, c)
    if dist.distribution == "values":
        return np.broadcast_to(np.asarray(dist.values, dtype=float), shape).copy()
    if dist.sampling == "quantile":
        q = quantiles(count)
        base = {
            "normal": lambda: c + w * ndtri(q),
            "lorentzian": lambda: c + w * np.tan(np.pi * (q - 0.5)),
            "uniform": lambda: c + w * (2.0 * q - 1.0),
        }[dist.distribution]()
        return np.stack([rng.permutation(base) for _ in range(replicas)])
    if dist.distribution == "normal":
        return rng.normal(c, w, size=shape)
    if dist.distribution == "lorentzian":
        return c + w * rng.standard_cauchy(size=shape)
    return rng.uniform(c - w, c + w, size=shape)


def sample_neuron_frequencies(neurons: Neurons, replicas: int, rng: np.random.Generator) -> np.ndarray:
    """(B, N) natural frequencies of all neurons: each named group from its own distribution, in group order."""
    if not neurons.groups:
        return sample_frequencies(neurons.frequency, neurons.count, replicas, rng)
    return np.concatenate([sample_frequencies(g.frequency, g.count, replicas, rng) for g in neurons.groups.values()],
                          axis=1)


def sample_phases(init: InitialPhase, count: int, replicas: int, rng: np.random.Generator) -> np.ndarray:
    """(B, count) initial phases in radians, in [-pi, pi) for 'uniform'."""
    shape = (replicas, count)
    if init.distribution == "uniform":
        return rng.uniform(-np.pi, np.pi, size=shape)
    if init.distribution == "constant":
        return np.full(shape, init.value)
    return np.broadcast_to(np.asarray(init.values, dtype=float), shape).copy()
