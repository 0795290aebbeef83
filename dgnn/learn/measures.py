"""Energy and information measures of trained classifiers."""
from __future__ import annotations

import math

import numpy as np
import torch

from .config import EnergyTable


def activation_energy(acts: list[torch.Tensor]) -> torch.Tensor:
    """Seed 002's E(theta, x): the sum over layers of the mean squared activation (batch and units)."""
    return sum((a * a).mean() for a in acts)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m


def mutual_information_bits(confusion: np.ndarray) -> float:
    """I(Y; Y_hat) in bits from a confusion matrix (rows: true class, columns: prediction)."""
    p = np.asarray(confusion, dtype=float)
    p = p / p.sum()
    py, pq = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log2(p[nz] / (py @ pq)[nz])).sum())


def entropy_bits(labels: np.ndarray, n_classes: int) -> float:
    p = np.bincount(np.asarray(labels), minlength=n_classes) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def information_bound_bits(labels: np.ndarray, n_classes: int, cross_entropy_nats: float) -> float:
    """The variational lower bound I(Y; X) >= H(Y) - CE / ln 2 (bits; CE is the mean test cross-entropy)."""
    return entropy_bits(labels, n_classes) - cross_entropy_nats / math.log(2.0)


def joules(costs: dict[str, float], n_parameters: int, table: EnergyTable, bytes_per_value: int = 4) -> float:
    """Estimated energy of one inference (J): MACs, transcendental calls and one read of every parameter."""
    pj = (costs["macs"] * table.mac_pj + costs["transcendentals"] * table.transcendental_pj
          + n_parameters * bytes_per_value * table.memory_pj_per_byte)
    return pj * 1e-12
