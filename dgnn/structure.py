"""Structural plasticity gated by the glial energy budget (docs/model.md 'Structural operators').

Every replica owns C neuron slots (the capacity), an activity mask and a dense synapse matrix W (B, C, C)
(target, source), so replicas grow and shrink on their own inside one batch. Every `structure.interval` a
controller reads the last `structure.window` of records and proposes:

- synaptogenesis: unconnected active pairs whose phase-locking value (PLV) exceeds a threshold;
- pruning: connected pairs whose PLV has fallen below a threshold;
- neurogenesis: domains whose [cos, sin] activity is high-dimensional for their size (participation-ratio
  effective dimension / (2 n_d) above a threshold, the NORTH* activation trigger phi_ED read on phases);
  the new neuron takes a free slot of its domain (spare slots are dealt to the domains in turn), listens to
  its domain and sends nothing (zero outgoing coupling: function-preserving);
- glia creation / removal: a domain whose mean reserve over the window stays below (above) a fraction of e_max
  gains (gives back) a glial cell, raising (lowering) its supply;
- neuron removal: redundant neurons (PLV with a domain mate above `redundancy`, as DYNO prunes by cosine
  similarity) and dormant ones (no synapse in or out), dormant first.

A proposal with a cost runs only if its domain's reserve covers cost + floor (free ones always run); it is paid
from (and refunds go to) that reserve through the energy ledger. Every proposal, accepted or rejected, becomes an event.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .config import Config, StructureConfig
from .trig import Param, Trig, batched, is_zero, param_cos, param_sin

EVENT_DTYPE = np.dtype([
    ("time", "f8"), ("replica", "i4"), ("operator", "S16"), ("target", "i4"), ("source", "i4"), ("domain", "i4"),
    ("cost", "f8"), ("refund", "f8"), ("reserve_before", "f8"), ("reserve_after", "f8"), ("accepted", "?"),
    ("reason", "S48"),
])


class PlasticCoupling:
    """sum_j K_ij sum_m A_m sin(m (theta_j - theta_i - alpha)) with K = scale * W_b, W_b per replica (B, C, C).

    Structural edits are sparse, so W_b = W0 + delta_b: one shared (2B, n) @ W0^T product (as the dense backend)
    plus an O(edits) correction: a gather / index_add for few edits on CPU, else a block-diagonal CSR SpMM (the
    gather's cost grows faster with the edit count; and index_add on CUDA adds with atomics, in no fixed order,
    where same-seed runs must be bit-equal). `w` is the dense truth the
    controller edits; `refresh()` re-derives the delta. With many edits a batched matmul over W_b^T is used instead.
    """

    name = "plastic_dense"
    DELTA_FRACTION = 1.0  # above this many edits per base synapse the batched matmul beats the sparse delta (measured)
    GATHER_MAX = 12288  # up to this many edits the gather / index_add beats the CSR SpMM on CPU (measured)

    def __init__(self, w: torch.Tensor, scale: Param, harmonics, lag: Param, n_base: int | None = None,
                 like: "PlasticCoupling | None" = None):
        """n_base: the initial neurons; W0 is the shared graph among them (spare slots start unconnected, so their
        synapses live in the delta and the shared product costs what the network without spare capacity costs).
        like: another point's coupling on the same graph, whose W0 this one shares (sweep points)."""
        self.w = w  # (B, C, C), edited in place by the controller
        b, c, _ = w.shape
        self.n_base = n_base = c if n_base is None else n_base
        if like is None:
            base = torch.zeros_like(w[0])
            base[:n_base, :n_base] = w[0, :n_base, :n_base]
            self.base_full = base  # (C, C) W0
            self.base_t = base[:n_base, :n_base].T.contiguous()  # (n, n): W0^T among the initial slots
            self.n_synapses = max(1, int((self.base_t != 0).sum()))
        else:
            self.base_full, self.base_t, self.n_synapses = like.base_full, like.base_t, like.n_synapses
        self.use_csr = w.device.type != "cpu"
        self.terms = [(m, scale * amp, param_cos(m * lag), param_sin(m * lag)) for m, amp in harmonics]
        self.refresh()

    def touch(self, flat: torch.Tensor) -> None:
        """Record W entries (flat indices into (B, C, C)) that an edit may have changed, for refresh(full=False)."""
        self._pending.append(flat.to(self.w.device))

    def refresh(self, full: bool = True, active: torch.Tensor | None = None) -> None:
        """Re-derive the delta from W. full=False reads only the entries known to differ from W0 plus those
        touched since (O(edits) instead of a pass over (B, C, C)); it is exact only if every edit was touched.

        active: (B, C) 0/1 slots. Inactive slots have no synapses, so the product masks their phases on the way in
        and the caller masks their drift on the way out; W0's entries in their rows and columns (which removal
        zeroed) then need no cancelling in the delta, which keeps it to the synapses really added or changed."""
        b, c, _ = self.w.shape
        self.active = active
        if full or getattr(self, "_known", None) is None:
            delta = self.w - self.base_full  # (B, C, C)
            flat = torch.nonzero(delta.reshape(-1)).flatten()
        else:
            flat = torch.unique(torch.cat([self._known, *self._pending]))  # sorted
            flat = flat[self.w.reshape(-1)[flat] != self.base_full.reshape(-1)[flat % (c * c)]]
        self._pending = []
        self._known = flat
        self._abs_rows = None
        self.batched_t = self.delta = self.csr = None
        rows, cols = flat // c, (flat // (c * c)) * c + flat % c  # (replica, target), (replica, source) in B C
        if active is not None:
            live = (active.reshape(-1)[rows] > 0) & (active.reshape(-1)[cols] > 0)
            flat, rows, cols = flat[live], rows[live], cols[live]
        if not flat.numel():
            return
        if flat.numel() > self.DELTA_FRACTION * b * self.n_synapses:
            self.batched_t = self.w.transpose(1, 2).contiguous()  # (B, C_source, C_target)
            return
        vals = self.w.reshape(-1)[flat] - self.base_full.reshape(-1)[flat % (c * c)]  # (E,)
        if not self.use_csr and flat.numel() <= self.GATHER_MAX:
            self.delta = (rows, cols, vals)
            return
        crow = torch.zeros(b * c + 1, dtype=torch.int64, device=flat.device)  # sorted flat: rows sorted
        crow[1:] = torch.bincount(rows, minlength=b * c).cumsum(0)
        with warnings.catch_warnings():  # CSR is marked beta; SpMM on it is what we need and is tested
            warnings.simplefilter("ignore", UserWarning)
            self.csr = torch.sparse_csr_tensor(crow, cols, vals, (b * c, b * c))

    def _sums(self, fn, dim: int) -> torch.Tensor:
        """sum of fn(W) over targets' rows (dim=1: per target) or columns (dim=0: per source), (B, C): W0's sums plus
        the change at the entries known to differ from W0, O(edits) instead of a pass over (B, C, C)."""
        b, c, _ = self.w.shape
        flat = self._known
        dt = self.w.dtype
        change = fn(self.w.reshape(-1)[flat]).to(dt) - fn(self.base_full.reshape(-1)[flat % (c * c)]).to(dt)  # (E,)
        slot = flat // c if dim == 1 else (flat // (c * c)) * c + flat % c  # (replica, target) or (replica, source)
        return fn(self.base_full).to(dt).sum(dim).repeat(b).index_add_(0, slot, change).view(b, c)

    def degrees(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Synapses in and out of each slot (B, C) each."""
        nonzero = lambda v: v != 0  # noqa: E731
        return self._sums(nonzero, 1).round().long(), self._sums(nonzero, 0).round().long()

    def abs_row_sums(self) -> torch.Tensor:
        """sum_j |W_ij| per replica (B, C), cached until the next refresh."""
        if self._abs_rows is None:
            self._abs_rows = self._sums(torch.abs, 1)
        return self._abs_rows

    def _apply(self, s: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(W s, W c) per replica, each (B, C)."""
        b, n = s.shape[0], self.n_base
        both = torch.stack([s, c])  # (2, B, C)
        if self.active is not None:
            both = both * self.active  # inactive slots send nothing
        if self.batched_t is not None:
            return torch.bmm(both.transpose(0, 1), self.batched_t).unbind(1)
        out = both.view(2 * b, -1)[:, :n] @ self.base_t  # (2B, n)
        if n < s.shape[1]:  # spare slots have no base synapses (padding beats a 25% wider product at large N)
            out = torch.nn.functional.pad(out, (0, s.shape[1] - n))  # (2B, C)
        if self.delta is not None:
            rows, cols, vals = self.delta
            out.view(2, -1).index_add_(1, rows, both.view(2, -1).index_select(1, cols) * vals)  # (2, B C)
        elif self.csr is not None:
            out = out + (self.csr @ both.view(2, -1).T).T.reshape(2 * b, -1)
        return out.view(2, b, -1).unbind(0)

    def __call__(self, trig: Trig) -> torch.Tensor:
        out = None
        for m, ka, cl, sl in self.terms:
            c, s = trig(m)  # (B, C)
            ks, kc = self._apply(s, c)
            term = torch.addcmul(c * ks, s, kc, value=-1.0)
            if not (is_zero(sl) and not isinstance(cl, torch.Tensor) and cl == 1.0):
                term = cl * term - sl * torch.addcmul(s * ks, c, kc)
            term = ka * term
            out = term if out is None else out + term
        return torch.zeros_like(trig.theta) if out is None else out


class PointPlastic:
    """The plastic coupling of sweep points batched together: one PlasticCoupling per point over its block of the
    batch's W (views), so that each point keeps its own run's products, delta paths and numbers to the bit; edits
    of the batch's W are routed to the point that owns them."""

    name = PlasticCoupling.name

    def __init__(self, w: torch.Tensor, parts: list[PlasticCoupling], replicas: int):
        self.w, self.parts, self.replicas = w, parts, replicas  # w: (P B, C, C); part i views w[i B:(i + 1) B]

    def _rows(self, i: int) -> slice:
        return slice(i * self.replicas, (i + 1) * self.replicas)

    def touch(self, flat: torch.Tensor) -> None:
        per = self.replicas * self.w.shape[1] * self.w.shape[2]  # W entries of one point
        flat = flat.to(self.w.device)
        owner = flat // per
        for i, part in enumerate(self.parts):
            mine = flat[owner == i]
            if mine.numel():
                part.touch(mine - i * per)

    def refresh(self, full: bool = True, active: torch.Tensor | None = None) -> None:
        for i, part in enumerate(self.parts):
            part.refresh(full, None if active is None else active[self._rows(i)])

    def degrees(self) -> tuple[torch.Tensor, torch.Tensor]:
        ins, outs = zip(*(part.degrees() for part in self.parts))
        return torch.cat(ins), torch.cat(outs)  # (P B, C) each

    def abs_row_sums(self) -> torch.Tensor:
        return torch.cat([part.abs_row_sums() for part in self.parts])  # (P B, C)

    def __call__(self, trig: Trig) -> torch.Tensor:
        for m in {t[0] for part in self.parts for t in part.terms}:
            trig(m)  # once for the batch; each point reads its rows
        r = self.replicas
        return torch.cat([part(trig.rows(i * r, (i + 1) * r)) for i, part in enumerate(self.parts)])  # (P B, C)


def _top_pairs(score: torch.Tensor, exclude: torch.Tensor, k: int, largest: bool):
    """Per replica the k largest (smallest) scores of a (B, C, K) array (K = C, or K sampled columns) plus the penalty `exclude` (0, or -inf
    (+inf) for excluded entries, which never pass a threshold): values and (i, j), each (B, k'). The k best entries
    lie in the k rows with the best row extremes, so one reduction over all entries and a topk over k rows replace
    a topk over C^2."""
    b, c, k_cols = score.shape
    masked = score + exclude  # (B, C, K); exclude is 0 or -inf (+inf for the smallest)
    best = masked.amax(2) if largest else masked.amin(2)  # (B, C)
    kk = min(k, c)
    rows = torch.topk(best, kk, dim=1, largest=largest).indices  # (B, kk)
    sub = masked.gather(1, rows[:, :, None].expand(b, kk, k_cols)).reshape(b, kk * k_cols)
    vals, idx = torch.topk(sub, min(k, kk * k_cols), dim=1, largest=largest)
    return vals, rows.gather(1, idx // k_cols), idx % k_cols


def _penalties(conn: torch.Tensor, pair: torch.Tensor, same: torch.Tensor, dtype) -> dict[str, torch.Tensor]:
    """Additive exclusions of the pair triggers from boolean connected / valid-pair / same-domain arrays (any
    shape): synaptogenesis needs an unconnected pair, pruning a connected one, redundancy a same-domain pair."""
    inf = float("inf")
    pen = lambda mask, value: torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(mask, value)  # noqa: E731
    return {"no_synaptogenesis": pen(conn | ~pair, -inf), "no_pruning": pen(~(conn & pair), inf),
            "no_redundancy": pen(~(pair & same), -inf)}


@dataclass
class Proposal:
    op: str
    replica: int
    target: int
    source: int
    domain: int
    cost: float
    refund: float
    reason: str


class Controller:
    """Reads activity windows and applies energy-gated structural operators to a plastic GlialNeuralField."""

    def __init__(self, cfg: Config, field, rngs: list[np.random.Generator], undirected: bool,
                 points: list[Config] | None = None):
        """rngs: one seeded generator per sweep point batched in the field (points, default [cfg]; point i owns
        replicas i R .. (i + 1) R - 1): each point draws its candidates and new cells from its own, as its own run."""
        self.cfg: StructureConfig = cfg.structure
        self.points = points or [cfg]
        self.field = field
        self.rngs = rngs
        self.replicas = cfg.replicas
        self.e_max = [p.metabolism.e_max for p in self.points for _ in range(cfg.replicas)]  # per replica
        self.undirected = undirected
        self.window_records = int(round(self.cfg.window / cfg.record.every))
        self.interval_records = int(round(self.cfg.interval / cfg.record.every))
        self.buffer: list[torch.Tensor] = []  # wrapped theta (B, C) of the latest records
        self.reserves: list[torch.Tensor] = []  # energy reserves (B, D) of the latest records

    # ------------------------------------------------------------------------------------------------ state
    @property
    def w(self) -> torch.Tensor:
        return self.field.neuron_coupling.w

    @property
    def active(self) -> torch.Tensor:
        return self.field.neuron_mask  # (B, C) 0/1

    @property
    def domain(self) -> torch.Tensor:
        return self.field.neuron_dom_index  # (C,) int64: each slot belongs to one domain in every replica

    @property
    def glia_active(self) -> torch.Tensor:
        return self.field.glia_mask  # (B, Gc) 0/1

    def observe(self, theta: torch.Tensor, reserve: torch.Tensor) -> None:
        self.buffer.append(theta.clone())
        self.reserves.append(reserve.clone())
        del self.buffer[: -self.window_records]
        del self.reserves[: -self.window_records]

    def due(self, record: int) -> bool:
        return record % self.interval_records == 0 and len(self.buffer) >= self.window_records

    # ------------------------------------------------------------------------------------------------ masks
    def invalidate(self) -> None:
        """Forget the cached synapse counts and masks (after editing w or the masks from outside)."""
        self._synapses = (self.w != 0).sum((1, 2))
        self._cache = None

    def _pairs_table(self) -> None:
        """(C, C) valid ordered pairs (i != j; i < j when undirected) and same-domain pairs, built once."""
        if getattr(self, "_pairs", None) is None:
            c = self.w.shape[1]
            eye = torch.eye(c, dtype=torch.bool, device=self.w.device)
            self._pairs = torch.ones_like(eye).triu(1) if self.undirected else ~eye  # undirected: each pair once
            self._same = self.domain[:, None] == self.domain[None, :]

    def _masks(self) -> dict[str, torch.Tensor]:
        """Candidate exclusions as (B, C, C) additive penalties (0 or an infinity: adding one is a fast
        elementwise pass, where a boolean select is not) and (B, C) degrees. Edits keep them current (rows and
        columns of created or removed slots, entries of linked pairs), so no evaluation rebuilds them from the
        O(B C^2) tensors."""
        if getattr(self, "_cache", None) is None:
            self._pairs_table()
            act = self.active > 0
            conn = self.w != 0
            pair = (act[:, :, None] & act[:, None, :]) & self._pairs
            self._cache = {"pair": pair, "connected": conn, **_penalties(conn, pair, self._same[None], self.w.dtype),
                           "indeg": conn.sum(2), "outdeg": conn.sum(1)}
            self._dirty_slots, self._dirty_pairs = [], []
            return self._cache
        m = self._cache
        if self._dirty_pairs:
            bs, rs, cs = (torch.as_tensor(v, device=self.w.device) for v in zip(*sorted(set(self._dirty_pairs))))
            conn, pair, old = self.w[bs, rs, cs] != 0, m["pair"][bs, rs, cs], m["connected"][bs, rs, cs]
            change = conn.long() - old.long()
            m["indeg"].index_put_((bs, rs), change, accumulate=True)
            m["outdeg"].index_put_((bs, cs), change, accumulate=True)
            m["connected"][bs, rs, cs] = conn
            for key, value in _penalties(conn, pair, torch.ones_like(pair), self.w.dtype).items():
                if key != "no_redundancy":  # a link leaves the same-domain pairs as they were
                    m[key][bs, rs, cs] = value
        if self._dirty_slots:
            # rows of every dirty slot at once, then columns: both read the truth (w, activity), so the order only
            # matters for degree changes at crossings, and the column pass sees those entries already current
            act = self.active > 0
            bs, ii = (torch.as_tensor(v, device=self.w.device) for v in zip(*dict.fromkeys(self._dirty_slots)))
            for rows in (True, False):  # row i (what i listens to), then column i (who listens to i)
                pairs = self._pairs[ii] if rows else self._pairs[:, ii].T  # (k, C)
                pair = act[bs, ii][:, None] & act[bs] & pairs
                conn = (self.w[bs, ii, :] if rows else self.w[bs, :, ii]) != 0  # (k, C)
                old = m["connected"][bs, ii, :] if rows else m["connected"][bs, :, ii]
                change = conn.long() - old.long()
                every = torch.arange(conn.shape[1], device=conn.device).expand_as(conn)
                own, other = ("indeg", "outdeg") if rows else ("outdeg", "indeg")
                m[own].index_put_((bs, ii), change.sum(1), accumulate=True)
                m[other].index_put_((bs[:, None].expand_as(conn), every), change, accumulate=True)
                same = self._same[ii]  # (k, C); symmetric
                for key, value in {"pair": pair, "connected": conn, **_penalties(conn, pair, same, self.w.dtype)}.items():
                    if rows:
                        m[key][bs, ii, :] = value
                    else:
                        m[key][bs, :, ii] = value
        self._dirty_slots, self._dirty_pairs = [], []
        return m

    def _sampled_pairs(self, x: torch.Tensor, y: torch.Tensor, m: int):
        """M distinct sources per replica (B, M), shared by its targets, drawn from the run's generator; the PLV
        products against them (B, C, M) and the trigger exclusions there, read from W and the activity."""
        b, c, _ = x.shape
        r = self.replicas
        cand = torch.as_tensor(np.concatenate([np.argsort(g.random((r, c)), axis=1)[:, :m] for g in self.rngs]),
                               device=x.device)  # (B, M)
        pick = lambda z: z.gather(1, cand[:, :, None].expand(-1, -1, z.shape[2])).transpose(1, 2)  # noqa: E731
        act = self.active > 0
        conn = self.w.gather(2, cand[:, None, :].expand(-1, c, -1)) != 0  # (B, C, M)
        pair = act[:, :, None] & act.gather(1, cand)[:, None, :] & self._pairs[:, cand].permute(1, 0, 2)
        same = (self.domain[:, None, None] == self.domain[cand][None]).permute(1, 0, 2)  # (B, C, M)
        return cand, x @ pick(x), x @ pick(y), _penalties(conn, pair, same, self.w.dtype)

    # ------------------------------------------------------------------------------------------------ triggers
    def propose(self, t: float) -> list[Proposal]:
        st = self.cfg
        theta = torch.stack(self.buffer).permute(1, 2, 0)  # (B, C, T)
        cs, sn = torch.cos(theta), torch.sin(theta)
        n_t = theta.shape[2]
        sampled = 0 < st.candidates < cs.shape[1] - 1
        m = None if sampled else self._masks()  # sampled triggers need no (B, C, C) exclusions
        self._pairs_table()
        # PLV^2 = |sum_t e^{i(theta_i - theta_j)}|^2 / T^2 from two real batched products over [cos, sin]:
        # Re = cos_i cos_j + sin_i sin_j, Im = sin_i cos_j - cos_i sin_j (cheaper than a complex product and abs)
        x, y = torch.cat([cs, sn], dim=2), torch.cat([-sn, cs], dim=2)  # (B, C, 2T)
        if sampled:  # M sampled sources per replica: O(B C M T) instead of O(B C^2 T)
            cand, re, im, pen = self._sampled_pairs(x, y, st.candidates)
        else:
            cand, pen = None, m
            re, im = x @ x.transpose(1, 2), x @ y.transpose(1, 2)  # (B, C, C)
        plv2 = torch.addcmul(re * re, im, im)  # (B, C, C) or (B, C, M): (T PLV)^2; thresholds are scaled to it
        scale = float(n_t * n_t)

        def pairs(exclude, k, largest):
            vals, ii, jj = _top_pairs(plv2, exclude, k, largest)
            if cand is not None:  # column -> sampled source
                jj = cand.gather(1, jj)
            return vals, ii, jj
        act = self.active > 0
        props: list[Proposal] = []

        def top(exclude, k, largest, threshold, op, cost, refund, reason):
            """Per replica, the k best PLVs beyond the threshold among pairs not excluded."""
            if k == 0:
                return
            vals, ii, jj = pairs(exclude, k, largest)
            good = vals > threshold * scale if largest else vals < threshold * scale
            for b, o in torch.nonzero(good).tolist():
                i, j = int(ii[b, o]), int(jj[b, o])
                props.append(Proposal(op, b, i, j, int(self.domain[i]), cost, refund,
                                      f"{reason} {math.sqrt(float(vals[b, o]) / scale):.3f}"))

        if st.synaptogenesis.enabled:
            op = st.synaptogenesis
            top(pen["no_synaptogenesis"], op.max_per_interval, True, op.threshold ** 2,
                "synaptogenesis", op.cost, op.refund, "PLV >")
        if st.pruning.enabled:
            op = st.pruning
            top(pen["no_pruning"], op.max_per_interval, False, op.threshold ** 2, "pruning", op.cost, op.refund, "PLV <")
            if op.reserve_below > 0:  # energy pressure: starved domains shed their weakest-locked synapses
                mean = torch.stack(self.reserves).mean(0)  # (B, D)
                low = self._per_point(lambda p: op.reserve_below * p.metabolism.e_max)
                starved = (mean < low)[:, self.domain]  # (B, C) by target
                fed = torch.where(starved, 0.0, float("inf")).to(plv2.dtype)[:, :, None]  # (B, C, 1)
                top(pen["no_pruning"] + fed, op.max_per_interval, False, float("inf"), "pruning",
                    op.cost, op.refund, "energy pressure, PLV")
        if st.neuron_removal.enabled:
            op = st.neuron_removal
            indeg, outdeg = self.field.neuron_coupling.degrees() if sampled else (m["indeg"], m["outdeg"])  # (B, C)
            dormant = act & (indeg == 0) & (outdeg == 0)  # no synapse in or out
            taken = [0] * act.shape[0]
            for b, i in torch.nonzero(dormant).tolist():
                if taken[b] < op.max_per_interval:
                    taken[b] += 1
                    props.append(Proposal("neuron_removal", b, i, -1, int(self.domain[i]), op.cost, op.refund,
                                          "dormant: no synapses"))
            # the most redundant pairs of each replica, at most the cap left after dormant removals (one topk)
            vals, ii, jj = pairs(pen["no_redundancy"], op.max_per_interval, True)
            for b, o in torch.nonzero(vals > op.redundancy ** 2 * scale).tolist():
                if taken[b] >= op.max_per_interval:
                    continue
                taken[b] += 1
                i, j = int(ii[b, o]), int(jj[b, o])
                victim = i if indeg[b, i] <= indeg[b, j] else j
                props.append(Proposal("neuron_removal", b, victim, i + j - victim, int(self.domain[victim]),
                                      op.cost, op.refund, f"redundant: PLV {math.sqrt(float(vals[b, o]) / scale):.4f}"))
        if st.neurogenesis.enabled:
            op = st.neurogenesis
            # participation ratio of each domain's centred [cos, sin] activity, every domain at once:
            # Gram_d = sum over the domain's active features of x_f x_f^T (T x T)
            x = torch.cat([cs, sn], dim=1)  # (B, 2C, T)
            x = x - x.mean(dim=2, keepdim=True)
            onehot = torch.nn.functional.one_hot(self.domain, self.field.n_domains).to(x.dtype)  # (C, D)
            member = act.to(x.dtype)[:, :, None] * onehot  # (B, C, D)
            member2 = torch.cat([member, member], dim=1)  # (B, 2C, D)
            gram = torch.einsum("bft,bfs,bfd->bdts", x, x, member2)  # (B, D, T, T)
            trace = gram.diagonal(dim1=-2, dim2=-1).sum(-1)  # (B, D)
            pr = trace * trace / (gram * gram).sum((-2, -1)).clamp_min(1e-300)
            n_d = member.sum(1)  # (B, D)
            ratio = pr / (2 * n_d.clamp_min(1))
            made = [0] * act.shape[0]
            for b, d in torch.nonzero((ratio > op.threshold) & (n_d > 0)).tolist():
                if made[b] < op.max_per_interval:
                    made[b] += 1
                    props.append(Proposal("neurogenesis", b, -1, -1, d, op.cost, 0.0,
                                          f"effective dim {float(pr[b, d]):.2f} / 2n = {float(ratio[b, d]):.2f}"))
        self._propose_glia(props)
        return props

    def _propose_glia(self, props: list[Proposal]) -> None:
        """Glia follow the energy: a domain short of energy over the window gets a glial cell (more supply); a
        domain that stays full gives one back."""
        st, f = self.cfg, self.field
        if not (st.glia_creation.enabled or st.glia_removal.enabled):
            return
        mean = torch.stack(self.reserves).mean(0)  # (B, D)
        slot_dom = torch.nn.functional.one_hot(f.glia_dom_index, f.n_domains).to(mean.dtype)  # (Gc, D)
        active_per_domain = self.glia_active @ slot_dom  # (B, D)
        free_per_domain = (1.0 - self.glia_active) @ slot_dom
        low = self._per_point(lambda p: st.glia_creation.threshold * p.metabolism.e_max)
        high = self._per_point(lambda p: st.glia_removal.threshold * p.metabolism.e_max)
        for op, name, cond in (
            (st.glia_creation, "glia_creation", (mean < low) & (free_per_domain > 0)),
            (st.glia_removal, "glia_removal", (mean > high) & (active_per_domain > 1)),
        ):
            if not op.enabled:
                continue
            made = [0] * mean.shape[0]
            for b, d in torch.nonzero(cond).tolist():
                if made[b] < op.max_per_interval:
                    made[b] += 1
                    props.append(Proposal(name, b, -1, -1, d, op.cost, op.refund,
                                          f"mean reserve {float(mean[b, d]):.3g} over the window"))

    # ------------------------------------------------------------------------------------------------ apply
    def apply(self, t: float, y: torch.Tensor, props: list[Proposal]) -> tuple[torch.Tensor, np.ndarray]:
        """Gate each proposal on its domain's reserve, pay, edit the network; y is edited in place (phases of new
        neurons, the energy block). Returns y and the event records.

        Reserves and ledger entries are booked on a host copy and written back once; synapse states are read in
        one gather, so a hundred proposals cost a few device round trips, not a few per proposal."""
        f = self.field
        met = f.metabolism
        ng = f.n_neurons + f.n_glia
        block = y[:, ng:]
        d = met.d
        reserve = block[:, :d].cpu().numpy().astype(np.float64)  # (B, D) host copy, booked as we go
        booked = {k: np.zeros_like(reserve) for k in ("structural", "refunded", "discarded")}
        e_max = self.e_max
        entries = {e for p in props if p.op in ("synaptogenesis", "pruning") for e in self._entries(p.replica, p.target, p.source)}
        synapse = {}  # (replica, target, source) -> exists now, for every entry a proposal may touch
        if entries:
            keys = sorted(entries)
            idx = torch.as_tensor(keys, device=self.w.device).T
            synapse = dict(zip(keys, (self.w[idx[0], idx[1], idx[2]] != 0).tolist()))
        synapse_change = [0] * reserve.shape[0]
        events = []
        removed: set[tuple[int, int]] = set()
        for p in props:
            before = float(reserve[p.replica, p.domain])
            ok, why = p.cost <= 0.0 or before - p.cost >= self.cfg.floor, p.reason  # free operators are not gated
            if ok and p.op == "neurogenesis":
                ok = bool(((self.active[p.replica] == 0) & (self.domain == p.domain)).any())
                why = why if ok else "no free slot in this domain (structure.capacity)"
            if ok and p.op == "glia_creation":
                ok = bool(((self.glia_active[p.replica] == 0) & (self.field.glia_dom_index == p.domain)).any())
                why = why if ok else "no free glial slot in this domain (structure.glia_capacity)"
            if ok and p.op == "glia_removal":
                ok = int(((self.glia_active[p.replica] > 0) & (self.field.glia_dom_index == p.domain)).sum()) > 1
                why = why if ok else "a domain keeps at least one glial cell"
            if ok and p.op == "neuron_removal" and ((p.replica, p.target) in removed or self.active[p.replica, p.target] == 0):
                ok, why = False, "already removed"
            now = synapse.get((p.replica, p.target, p.source))
            if ok and p.op in ("synaptogenesis", "pruning") and ((p.replica, p.target) in removed or (p.replica, p.source) in removed):
                ok, why = False, "endpoint removed"
            elif ok and p.op in ("synaptogenesis", "pruning") and now == (p.op == "synaptogenesis"):
                ok, why = False, "already done this interval"
            elif not ok and why == p.reason:
                why = f"reserve {before:.3g} - cost {p.cost:.3g} < floor {self.cfg.floor:.3g}"
            if ok:
                r = reserve[p.replica]
                if p.cost:
                    r[p.domain] -= p.cost
                    booked["structural"][p.replica, p.domain] += p.cost
                if p.refund:  # a refund that would overfill the reserve is discarded
                    r[p.domain] += p.refund
                    excess = max(0.0, r[p.domain] - e_max[p.replica])
                    r[p.domain] -= excess
                    booked["refunded"][p.replica, p.domain] += p.refund
                    booked["discarded"][p.replica, p.domain] += excess
                if p.op in ("synaptogenesis", "pruning"):
                    synapse_change[p.replica] += self._link(p.replica, p.target, p.source,
                                                            1.0 if p.op == "synaptogenesis" else 0.0, synapse)
                elif p.op == "neuron_removal":
                    self._remove(p.replica, p.target)
                    removed.add((p.replica, p.target))
                elif p.op == "neurogenesis":
                    p.target = self._create(p.replica, p.domain, y)
                elif p.op == "glia_creation":
                    p.target = self._create_glia(p.replica, p.domain, y)
                else:
                    p.target = self._remove_glia(p.replica, p.domain)
            after = float(reserve[p.replica, p.domain])
            events.append((t, p.replica, p.op.encode(), p.target, p.source, p.domain, p.cost, p.refund if ok else 0.0,
                           before, after, ok, why.encode()[:48]))
        if any(e[10] for e in events):  # something was accepted
            dev, dt = block.device, block.dtype
            block[:, :d] = torch.as_tensor(reserve, device=dev, dtype=dt)
            for name, amount in booked.items():
                if amount.any():
                    block[:, met.column(name)] += torch.as_tensor(amount, device=dev, dtype=dt)
            self.count_synapses().add_(torch.as_tensor(synapse_change, device=self._synapses.device))
            f.structure_changed(incremental=True)
        return y, np.array(events, dtype=EVENT_DTYPE)

    def count_synapses(self) -> torch.Tensor:
        """(B,) directed synapses (nonzero W entries; an undirected edge is two) per replica, kept by every edit."""
        if not hasattr(self, "_synapses"):
            self._synapses = (self.w != 0).sum((1, 2))
        return self._synapses

    def _mark(self, slots=(), pairs=()) -> None:
        if getattr(self, "_cache", None) is not None:
            self._dirty_slots.extend(slots)
            self._dirty_pairs.extend(pairs)

    def _entries(self, b: int, i: int, j: int) -> tuple[tuple[int, int, int], ...]:
        """W entries of the synapse i <- j: both directions when undirected."""
        return ((b, i, j), (b, j, i)) if self.undirected else ((b, i, j),)

    def _link(self, b: int, i: int, j: int, value: float, synapse: dict) -> int:
        """Set the synapse i <- j of replica b; `synapse` maps each W entry to whether it exists (kept current).
        Returns the change in the replica's synapse count."""
        entries = self._entries(b, i, j)
        bs, rs, cs = zip(*entries)
        self.w[list(bs), list(rs), list(cs)] = value
        c = self.w.shape[1]
        self.field.neuron_coupling.touch(torch.tensor([(x * c + y) * c + z for x, y, z in entries]))
        change = 0
        for e in entries:
            change += int(value != 0) - int(synapse[e])
            synapse[e] = value != 0
        self._mark(pairs=entries)
        return change

    def _touch_slot(self, b: int, i: int) -> None:
        """Row i and column i of replica b's W may change."""
        c = self.w.shape[1]
        ar = torch.arange(c)
        self.field.neuron_coupling.touch(torch.cat([(b * c + i) * c + ar, (b * c + ar) * c + i]))
        self._mark(slots=[(b, i)])

    def _remove(self, b: int, i: int) -> None:
        self._touch_slot(b, i)
        self.count_synapses()[b] -= int((self.w[b, i, :] != 0).sum() + (self.w[b, :, i] != 0).sum())
        self.w[b, i, :] = 0.0
        self.w[b, :, i] = 0.0
        self.active[b, i] = 0.0
        self.field.omega[b, i] = 0.0  # frozen slot

    def _create(self, b: int, d: int, y: torch.Tensor) -> int:
        """Activate a free slot in domain d: phase at the domain's mean phase, a natural frequency drawn from the
        neuron distribution, synapses in from the domain's active neurons, none out (function-preserving)."""
        from .sampling import sample_frequencies

        f = self.field
        i = int(torch.nonzero((self.active[b] == 0) & (self.domain == d)).flatten()[0])
        mates = torch.nonzero((self.domain == d) & (self.active[b] > 0)).flatten()
        theta = y[b, : f.n_neurons]
        mean = torch.polar(torch.ones_like(theta[mates]), theta[mates]).mean() if len(mates) else torch.tensor(1.0 + 0j)
        y[b, i] = float(torch.angle(mean)) if len(mates) else 0.0
        p = b // self.replicas
        f.omega[b, i] = float(sample_frequencies(self.points[p].neurons.frequency, 1, 1, self.rngs[p])[0, 0])
        self.active[b, i] = 1.0
        self.w[b, i, :] = 0.0
        self.w[b, :, i] = 0.0
        self.w[b, i, mates] = 1.0  # listens to its domain; sends nothing until synaptogenesis links it
        self.count_synapses()[b] += len(mates)
        self._touch_slot(b, i)
        return i

    def _create_glia(self, b: int, d: int, y: torch.Tensor) -> int:
        """Activate a free glial slot of domain d at the domain's glial mean phase, nu from glia.frequency."""
        from .sampling import sample_frequencies

        f = self.field
        dom = f.glia_dom_index
        k = int(torch.nonzero((self.glia_active[b] == 0) & (dom == d)).flatten()[0])
        mates = torch.nonzero((self.glia_active[b] > 0) & (dom == d)).flatten()
        psi = y[b, f.n_neurons: f.n_neurons + f.n_glia]
        y[b, f.n_neurons + k] = float(torch.angle(torch.polar(torch.ones_like(psi[mates]), psi[mates]).mean())) if len(mates) else 0.0
        p = b // self.replicas
        f.nu[b, k] = float(sample_frequencies(self.points[p].glia.frequency, 1, 1, self.rngs[p])[0, 0])
        self.glia_active[b, k] = 1.0
        return k

    def _remove_glia(self, b: int, d: int) -> int:
        f = self.field
        k = int(torch.nonzero((self.glia_active[b] > 0) & (f.glia_dom_index == d)).flatten()[-1])
        self.glia_active[b, k] = 0.0
        f.nu[b, k] = 0.0
        return k

    def _per_point(self, value) -> Param:
        """value(point) for each point, in Python floats as its own run computes it: a float, or (B, 1)."""
        w = self.w
        return batched([value(p) for p in self.points], self.replicas, w.device, w.dtype)

    # ------------------------------------------------------------------------------------------------ resume
    def _rng_state(self) -> np.ndarray:
        """The generators' states as bytes: (L,) for a plain run; for sweep points (B, L), one row per replica
        holding its point's state (space-padded), so a point's slice of the checkpoint is its own run's."""
        states = [repr(g.bit_generator.state).encode() for g in self.rngs]
        if len(states) == 1:
            return np.frombuffer(states[0], dtype=np.uint8)
        width = max(map(len, states))
        rows = [np.frombuffer(s.ljust(width), dtype=np.uint8) for s in states for _ in range(self.replicas)]
        return np.stack(rows)

    def state_dict(self) -> dict[str, np.ndarray]:
        f = self.field
        return {"structure_w": self.w.cpu().numpy(), "structure_active": self.active.cpu().numpy(),
                "structure_omega": f.omega.cpu().numpy(), "structure_synapses": self.count_synapses().cpu().numpy(),
                "structure_glia_active": self.glia_active.cpu().numpy(), "structure_nu": f.nu.cpu().numpy(),
                "structure_reserves": torch.stack(self.reserves).cpu().numpy() if self.reserves else np.zeros(0),
                "structure_buffer": torch.stack(self.buffer).cpu().numpy() if self.buffer else np.zeros((0,) + tuple(self.active.shape)),
                "structure_rng": self._rng_state()}

    def load_state_dict(self, state: dict) -> None:
        import ast

        f = self.field
        dev, dt = f.omega.device, f.omega.dtype
        self.w.copy_(torch.as_tensor(state["structure_w"], device=dev, dtype=dt))
        self.active.copy_(torch.as_tensor(state["structure_active"], device=dev, dtype=dt))
        f.omega.copy_(torch.as_tensor(state["structure_omega"], device=dev, dtype=dt))
        self.buffer = [torch.as_tensor(x, device=dev, dtype=dt) for x in state["structure_buffer"]]
        self._synapses = torch.as_tensor(state["structure_synapses"], device=dev)
        self.glia_active.copy_(torch.as_tensor(state["structure_glia_active"], device=dev, dtype=dt))
        f.nu.copy_(torch.as_tensor(state["structure_nu"], device=dev, dtype=dt))
        self.reserves = [torch.as_tensor(x, device=dev, dtype=dt) for x in state["structure_reserves"]]
        saved = np.atleast_2d(state["structure_rng"])  # (1, L) for a plain run, (B, L) rows for sweep points
        for i, g in enumerate(self.rngs):
            row = saved[min(i * self.replicas, len(saved) - 1)]
            g.bit_generator.state = ast.literal_eval(bytes(row).decode().strip())
        self._cache = None
        f.structure_changed()
