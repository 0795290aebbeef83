"""Two-way factorial ANOVA (type II sums of squares by nested least squares; equal to types I and III when the
design is balanced) with F, p and partial eta squared, as seed 002 reports them."""
from __future__ import annotations

import numpy as np
from scipy import stats


def _dummies(labels: np.ndarray) -> np.ndarray:
    """Treatment coding: (n, levels - 1) indicator columns, first level as reference."""
    levels, idx = np.unique(labels, return_inverse=True)
    return np.eye(len(levels))[idx][:, 1:]


def _rss(y: np.ndarray, *blocks: np.ndarray) -> tuple[float, int]:
    x = np.column_stack([np.ones(len(y)), *[b for b in blocks if b.shape[1]]])
    beta, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    r = y - x @ beta
    return float(r @ r), int(rank)


def factorial_anova(y, a, b, names: tuple[str, str] = ("A", "B")) -> list[dict]:
    """Rows {source, ss, df, ms, F, p, partial_eta2} for A, B, A:B and the residual. A factor with one level is
    left out (and the interaction with it)."""
    y = np.asarray(y, dtype=float)
    da, db = _dummies(np.asarray(a)), _dummies(np.asarray(b))
    inter = np.einsum("ni,nj->nij", da, db).reshape(len(y), -1)
    rss_full, rank_full = _rss(y, da, db, inter)
    rss_ab, _ = _rss(y, da, db)
    df_res = len(y) - rank_full
    if df_res <= 0:
        raise ValueError("ANOVA needs replicates: more observations than cells (use more seeds)")
    ms_res = rss_full / df_res
    terms = []
    if da.shape[1]:
        terms.append((names[0], _rss(y, db)[0] - rss_ab, da.shape[1]))
    if db.shape[1]:
        terms.append((names[1], _rss(y, da)[0] - rss_ab, db.shape[1]))
    if da.shape[1] and db.shape[1]:
        terms.append((f"{names[0]}:{names[1]}", rss_ab - rss_full, inter.shape[1]))
    rows = []
    for source, ss, df in terms:
        f = (ss / df) / ms_res if ms_res > 0 else float("inf")
        rows.append({"source": source, "ss": ss, "df": df, "ms": ss / df, "F": f,
                     "p": float(stats.f.sf(f, df, df_res)) if np.isfinite(f) else 0.0,
                     "partial_eta2": ss / (ss + rss_full) if ss + rss_full > 0 else 0.0})
    rows.append({"source": "residual", "ss": rss_full, "df": df_res, "ms": ms_res, "F": float("nan"),
                 "p": float("nan"), "partial_eta2": float("nan")})
    return rows
