"""Coupling backends: sum_j K_ij sum_m A_m sin(m (theta_j - theta_i - alpha_ij)) for a (B, N) batch of phases.

All backends compute the same quantity; they differ in cost: mean field O(N) (all_to_all, unit weights, global lag),
dense matmul O(N^2), sparse CSR O(E). `make_backend` picks one by structure.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from .errors import ConfigError
from .topology import Graph
from .trig import Param, Trig, is_zero, param_cos, param_sin

DENSE_MAX_N = 1024  # at or below this size a dense matmul beats sparse bookkeeping whatever the density
DENSE_MIN_DENSITY = 0.05


class MeanField:
    """All-to-all with K_ij = k / N (i != j): sum_j sin(m(theta_j - theta_i - alpha)) = N Im(Z_m e^{-im(theta_i+alpha)}) - sin(-m alpha)."""

    name = "mean_field"

    def __init__(self, n: int, strength: Param, harmonics, lag: Param):
        self.n = n
        self.terms = [(m, strength * amp, param_cos(m * lag), param_sin(m * lag)) for m, amp in harmonics]
        # the identity includes the j = i term, A_m sin(-m alpha); K has no self-coupling, so take it back out
        self.self_sums = [sum((ka * sl for m, ka, _, sl in self.terms), 0.0)]  # per point
        self.replicas, self.device, self.dtype = 1, None, None
        self.set_weight(None)

    @classmethod
    def stack(cls, fields: list["MeanField"], replicas: int, device, dtype) -> "MeanField":
        """One mean field for sweep points built one by one with their scalar parameters: each constant becomes a
        (P * replicas, 1) tensor of the points' own values (a float where they agree), so every point computes
        with the very numbers of its own run. A harmonic that a point lacks has amplitude 0 there."""
        out = cls(fields[0].n, 0.0, (), 0.0)
        orders = sorted({m for f in fields for m, *_ in f.terms})
        out.replicas, out.device, out.dtype = replicas, device, dtype
        for m in orders:
            own = [next((t for t in f.terms if t[0] == m), (m, 0.0, 1.0, 0.0)) for f in fields]
            out.terms.append((m, *(_per_replica([t[i] for t in own], replicas, device, dtype) for i in (1, 2, 3))))
        out.self_sums = [f.self_sums[0] for f in fields]
        out.set_weight(None)
        return out

    def set_weight(self, weight: torch.Tensor | None) -> None:
        """(B, N) 0/1 active members of a plastic population (K = k / N_active among them), or None for all."""
        self.weight = weight
        count = self.n if weight is None else weight.sum(1, keepdim=True).clamp_min(1.0)  # (B, 1)
        if weight is None:  # each point's sum / n in its own float arithmetic
            self.self_term = _per_replica([s / count for s in self.self_sums], self.replicas, self.device, self.dtype)
        else:
            self.self_term = _per_replica(self.self_sums, self.replicas, self.device, self.dtype) / count
        self.count = count

    def __call__(self, trig: Trig) -> torch.Tensor:
        out = None
        for m, ka, cl, sl in self.terms:
            c, s = trig(m)  # (B, N)
            if self.weight is None:
                zx, zy = c.mean(dim=1, keepdim=True), s.mean(dim=1, keepdim=True)  # (B, 1) Re, Im of Z_m
            else:
                zx = (c * self.weight).sum(1, keepdim=True) / self.count
                zy = (s * self.weight).sum(1, keepdim=True) / self.count
            wx, wy = zx * cl + zy * sl, zy * cl - zx * sl  # Z_m e^{-i m alpha}
            term = (ka * wy) * c - (ka * wx) * s  # Im(W e^{-i m theta_i})
            out = term if out is None else out + term
        if out is None:
            return torch.zeros_like(trig.theta)
        return out if is_zero(self.self_term) else out + self.self_term


class Matrix:
    """K as a dense or sparse CSR matrix; a global lag folds into the rotation, per-edge lags use K cos(m a), K sin(m a).

    Scalar strength x amplitude is folded into the matrix; per-replica (B, 1) values multiply the result instead.
    Sweep points are stacked from their own backends instead (see stack), so that each keeps its own run's numbers.
    """

    points = 1  # sweep points stacked: point p owns rows p * replicas .. (p + 1) * replicas - 1
    replicas = 0

    def __init__(self, graph: Graph, strength: Param, harmonics, lag: Param, sparse: bool, device, dtype):
        self.name = "sparse" if sparse else "dense"
        self.n = graph.n
        self.sparse = sparse
        tgt, src, w = graph.edges()
        w = w / graph.normaliser
        self.terms = []
        for m, amp in harmonics:
            scale = strength * amp
            fold = 1.0 if isinstance(scale, torch.Tensor) else scale  # into the matrix, or applied per replica
            post = scale if isinstance(scale, torch.Tensor) else None
            if graph.lag is None:
                mats = (self._matrix(tgt, src, fold * w, device, dtype),)
                self.terms.append((m, mats, param_cos(m * lag), param_sin(m * lag), post))
            else:
                if isinstance(lag, torch.Tensor):
                    raise ConfigError("coupling.phase_lag: cannot vary per replica on a graph with per-edge lags")
                alpha = m * (graph.lag + lag)
                kc = self._matrix(tgt, src, fold * w * np.cos(alpha), device, dtype)
                ks = self._matrix(tgt, src, fold * w * np.sin(alpha), device, dtype)
                self.terms.append((m, (kc, ks), None, None, post))

    def _matrix(self, tgt, src, val, device, dtype):
        n = self.n
        if self.sparse:
            coo = torch.sparse_coo_tensor(
                torch.as_tensor(np.stack([tgt, src])), torch.as_tensor(val), (n, n), check_invariants=True
            ).coalesce()  # duplicate edges add up
            with warnings.catch_warnings():  # CSR is marked beta; spmm on it is what we need and is tested
                warnings.simplefilter("ignore", UserWarning)
                return coo.to_sparse_csr().to(device=device, dtype=dtype)
        k = np.zeros((n, n))
        np.add.at(k, (tgt, src), val)
        return torch.as_tensor(k.T.copy(), device=device, dtype=dtype)  # stored transposed: X @ K^T

    @classmethod
    def stack(cls, parts: list["Matrix"], replicas: int) -> "Matrix":
        """One backend for sweep points built one by one with their scalar parameters: each point's matrices
        (folded with its own strength and amplitudes) are stacked, and each point's rows are multiplied by its own
        in one batched product whose blocks have the shapes of the point's own run (BLAS kernels depend on the
        row count, so one product over the whole batch would round differently). A harmonic a point lacks has a
        zero matrix there. Points that share a backend share its matrix (expanded, not copied)."""
        out = cls.__new__(cls)
        first = parts[0]
        out.name, out.n, out.sparse, out.points, out.replicas = first.name, first.n, first.sparse, len(parts), replicas
        device, dtype = first.terms[0][1][0].device, first.terms[0][1][0].dtype
        out.terms = []
        for m in sorted({t[0] for part in parts for t in part.terms}):
            own = [next((t for t in part.terms if t[0] == m), None) for part in parts]
            shape = next(t for t in own if t is not None)
            mats = tuple(out._stacked([None if t is None else t[1][j] for t in own]) for j in range(len(shape[1])))
            if shape[2] is None:  # per-edge lags, in the matrices
                out.terms.append((m, mats, None, None, None))
            else:
                cl, sl = ([1.0 if t is None else t[i] for t in own] for i in (2, 3))
                out.terms.append((m, mats, _per_replica(cl, replicas, device, dtype),
                                  _per_replica(sl, replicas, device, dtype), None))
        return out

    def _stacked(self, mats: list):
        """(P, N, N) dense K^T of each point (zeros where None), or the block-diagonal (P N, P N) CSR."""
        if self.sparse:
            blocks = [(p, m.cpu().to_sparse_coo().coalesce()) for p, m in enumerate(mats) if m is not None]
            idx = torch.cat([k.indices() + p * self.n for p, k in blocks], dim=1)
            val = torch.cat([k.values() for _, k in blocks])
            size = self.points * self.n
            with warnings.catch_warnings():  # CSR is marked beta; spmm on it is what we need and is tested
                warnings.simplefilter("ignore", UserWarning)
                csr = torch.sparse_coo_tensor(idx, val, (size, size)).coalesce().to_sparse_csr()
            return csr.to(next(m for m in mats if m is not None).device)
        like = next(m for m in mats if m is not None)
        if all(m is like for m in mats):
            return like.expand(self.points, -1, -1)  # one matrix for every point
        return torch.stack([torch.zeros_like(like) if m is None else m for m in mats])

    def _apply(self, mat, x: torch.Tensor) -> torch.Tensor:
        """(R, N) -> (R, N): rows of x times K^T."""
        if self.sparse:
            return torch.sparse.mm(mat, x.T.contiguous()).T
        return x @ mat

    def _products(self, mat, s: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(K s, K c), (B, N) each; stacked points multiply their own rows [s_p; c_p] as their own runs do."""
        if self.points == 1:
            return self._apply(mat, torch.cat([s, c], dim=0)).split(s.shape[0])
        p, b, n = self.points, self.replicas, self.n
        x = torch.stack([s.reshape(p, b, n), c.reshape(p, b, n)], dim=1).reshape(p, 2 * b, n)  # (P, 2b, N)
        if self.sparse:  # block-diagonal K times the points' columns
            y = torch.sparse.mm(mat, x.transpose(1, 2).reshape(p * n, 2 * b)).reshape(p, n, 2 * b).transpose(1, 2)
        else:
            y = torch.bmm(x, mat)  # (P, 2b, N)
        y = y.reshape(p, 2, b, n)
        return y[:, 0].reshape(p * b, n), y[:, 1].reshape(p * b, n)

    def __call__(self, trig: Trig) -> torch.Tensor:
        out = None
        for m, mats, cl, sl, post in self.terms:
            c, s = trig(m)  # (B, N)
            if cl is not None:
                ks, kc = self._products(mats[0], s, c)  # (B, N) each: K s, K c
                if is_zero(sl) and not isinstance(cl, torch.Tensor) and cl == 1.0:
                    term = torch.addcmul(c * ks, s, kc, value=-1.0)
                else:
                    term = cl * torch.addcmul(c * ks, s, kc, value=-1.0) - sl * torch.addcmul(s * ks, c, kc)
            else:
                ps, pc = self._products(mats[0], s, c)  # Kc s, Kc c
                qs, qc = self._products(mats[1], s, c)  # Ks s, Ks c
                term = (c * ps - s * pc) - (c * qc + s * qs)
            if post is not None:
                term = term * post
            out = term if out is None else out + term
        return torch.zeros_like(trig.theta) if out is None else out


def join_backends(backends: list, replicas: int, device, dtype):
    """One backend for a batch of sweep points from each point's own (`replicas` consecutive replicas per point)."""
    if len(backends) == 1:
        return backends[0]
    if all(isinstance(k, MeanField) for k in backends):
        return MeanField.stack(backends, replicas, device, dtype)
    return Matrix.stack(backends, replicas)


def _per_replica(values: list, replicas: int, device, dtype) -> Param:
    """A float when every point agrees, else (P * replicas, 1): each point's value over its replicas."""
    if len(values) == 1 or all(not isinstance(v, torch.Tensor) and v == values[0] for v in values):
        return values[0]
    return torch.tensor([float(v) for v in values], device=device, dtype=dtype).repeat_interleave(replicas).unsqueeze(1)


def make_backend(graph: Graph, strength: float, harmonics, lag: float, choice: str, device, dtype):
    """Pick the coupling backend by structure ('auto') or as asked; refuse mean field where its identity fails."""
    if choice == "mean_field" or (choice == "auto" and graph.implicit):
        if not graph.implicit:
            raise ConfigError(
                f"coupling.backend: mean_field needs topology.kind: all_to_all without weights or per-edge lags, "
                f"found {graph.kind}; use auto, dense or sparse"
            )
        return MeanField(graph.n, strength, harmonics, lag)
    if choice == "auto":
        sparse = graph.n > DENSE_MAX_N and graph.density < DENSE_MIN_DENSITY
    else:
        sparse = choice == "sparse"
    if not sparse and graph.n > 40000:
        raise ConfigError(f"coupling.backend: dense needs an N x N matrix; N={graph.n} is too large, use sparse")
    return Matrix(graph, strength, harmonics, lag, sparse, device, dtype)
