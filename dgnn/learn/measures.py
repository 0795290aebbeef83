"""Information measures of trained classifiers (their energies are dgnn.energy's)."""
from __future__ import annotations

import math

import numpy as np



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
