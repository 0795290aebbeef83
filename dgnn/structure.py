"""Structural plasticity gated by the glial energy budget (MODEL.md 'Structural operators').

Every replica owns C neuron slots (the capacity), an activity mask and a dense synapse matrix W (B, C, C)
(target, source), so replicas grow and shrink on their own inside one batch. Every `structure.interval` a
controller reads the last `structure.window` of records and proposes:

- synaptogenesis: unconnected active pairs whose phase-locking value (PLV) exceeds a threshold;
- pruning: connected pairs whose PLV has fallen below a threshold;
- neurogenesis: domains whose [cos, sin] activity is high-dimensional for their size (participation-ratio
  effective dimension / (2 n_d) above a threshold, the NORTH* activation trigger phi_ED read on phases);
  the new neuron listens to its domain and sends nothing (zero outgoing coupling: function-preserving);
- neuron removal: redundant neurons (PLV with a domain mate above `redundancy`, as DYNO prunes by cosine
  similarity) and dormant ones (no synapse in or out), dormant first.

A proposal runs only if its domain's reserve covers cost + floor; it is paid from (and refunds go to) that
reserve through the energy ledger. Every proposal, accepted or rejected, becomes an event.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .config import Config, StructureConfig
from .coupling import Param, Trig, _cos, _sin, _zero

EVENT_DTYPE = np.dtype([
    ("time", "f8"), ("replica", "i4"), ("operator", "S16"), ("target", "i4"), ("source", "i4"), ("domain", "i4"),
    ("cost", "f8"), ("refund", "f8"), ("reserve_before", "f8"), ("reserve_after", "f8"), ("accepted", "?"),
    ("reason", "S48"),
])


class PlasticCoupling:
    """sum_j K_ij sum_m A_m sin(m (theta_j - theta_i - alpha)) with K = scale * W per replica (batched matmul)."""

    name = "plastic_dense"

    def __init__(self, w: torch.Tensor, scale: Param, harmonics, lag: Param):
        self.w = w  # (B, C, C), edited in place by the controller
        self.terms = [(m, scale * amp, _cos(m * lag), _sin(m * lag)) for m, amp in harmonics]

    def __call__(self, trig: Trig) -> torch.Tensor:
        out = None
        for m, ka, cl, sl in self.terms:
            c, s = trig(m)  # (B, C)
            ks, kc = torch.bmm(self.w, torch.stack([s, c], dim=2)).unbind(2)  # (B, C) each: W s, W c
            term = torch.addcmul(c * ks, s, kc, value=-1.0)
            if not (_zero(sl) and not isinstance(cl, torch.Tensor) and cl == 1.0):
                term = cl * term - sl * torch.addcmul(s * ks, c, kc)
            term = ka * term
            out = term if out is None else out + term
        return torch.zeros_like(trig.theta) if out is None else out


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


def participation_ratio(x: torch.Tensor) -> torch.Tensor:
    """Effective dimension (sum lambda)^2 / sum lambda^2 of the covariance of x (..., T, F) over T, via the Gram
    matrix (no eigendecomposition): tr(S)^2 / ||S||_F^2."""
    x = x - x.mean(dim=-2, keepdim=True)
    gram = x @ x.transpose(-1, -2)  # (..., T, T) has the covariance's nonzero spectrum
    tr = gram.diagonal(dim1=-2, dim2=-1).sum(-1)
    return tr * tr / (gram * gram).sum((-2, -1)).clamp_min(1e-300)


class Controller:
    """Reads activity windows and applies energy-gated structural operators to a plastic GlialNeuralField."""

    def __init__(self, cfg: Config, field, rng: np.random.Generator, undirected: bool):
        self.cfg: StructureConfig = cfg.structure
        self.base_cfg = cfg
        self.field = field
        self.rng = rng
        self.undirected = undirected
        self.window_records = int(round(self.cfg.window / cfg.record.every))
        self.interval_records = int(round(self.cfg.interval / cfg.record.every))
        self.buffer: list[torch.Tensor] = []  # wrapped theta (B, C) of the latest records

    # ------------------------------------------------------------------------------------------------ state
    @property
    def w(self) -> torch.Tensor:
        return self.field.neuron_coupling.w

    @property
    def active(self) -> torch.Tensor:
        return self.field.neuron_mask  # (B, C) 0/1

    @property
    def domain(self) -> torch.Tensor:
        return self.field.neuron_dom_index  # (B, C) int64

    def observe(self, theta: torch.Tensor) -> None:
        self.buffer.append(theta.clone())
        del self.buffer[: -self.window_records]

    def due(self, record: int) -> bool:
        return record % self.interval_records == 0 and len(self.buffer) >= self.window_records

    # ------------------------------------------------------------------------------------------------ triggers
    def propose(self, t: float) -> list[Proposal]:
        st = self.cfg
        z = torch.polar(torch.ones_like(self.buffer[0]), torch.stack(self.buffer))  # (T, B, C) complex
        plv = torch.einsum("tbi,tbj->bij", z, z.conj()).abs() / z.shape[0]  # (B, C, C)
        act = self.active > 0
        pair = act[:, :, None] & act[:, None, :]
        pair &= ~torch.eye(pair.shape[1], dtype=torch.bool, device=pair.device)
        if self.undirected:
            pair &= torch.ones_like(pair).triu(1)  # each undirected pair once
        same = self.domain[:, :, None] == self.domain[:, None, :]
        connected = self.w != 0
        props: list[Proposal] = []

        def top(score, mask, k, largest, op, cost, refund, reason):
            for b in range(score.shape[0]):
                idx = torch.nonzero(mask[b], as_tuple=False)
                if not len(idx) or k == 0:
                    continue
                vals = score[b][mask[b]]
                order = torch.argsort(vals, descending=largest)[:k]
                for o in order.tolist():
                    i, j = (int(v) for v in idx[o])
                    props.append(Proposal(op, b, i, j, int(self.domain[b, i]), cost, refund,
                                          f"{reason} {float(vals[o]):.3f}"))

        if st.synaptogenesis.enabled:
            op = st.synaptogenesis
            top(plv, pair & ~connected & (plv > op.threshold), op.max_per_interval, True, "synaptogenesis",
                op.cost, op.refund, "PLV >")
        if st.pruning.enabled:
            op = st.pruning
            top(plv, pair & connected & (plv < op.threshold), op.max_per_interval, False, "pruning",
                op.cost, op.refund, "PLV <")
        if st.neuron_removal.enabled:
            op = st.neuron_removal
            dormant = act & ~connected.any(2) & ~connected.any(1)  # (B, C): no synapse in or out
            for b in range(dormant.shape[0]):
                for i in torch.nonzero(dormant[b]).flatten()[: op.max_per_interval].tolist():
                    props.append(Proposal("neuron_removal", b, i, -1, int(self.domain[b, i]), op.cost, op.refund,
                                          "dormant: no synapses"))
            redundant = pair & same & (plv > op.redundancy)
            indeg = connected.sum(2)  # (B, C)
            for b in range(redundant.shape[0]):
                taken = sum(p.replica == b and p.op == "neuron_removal" for p in props)
                for i, j in torch.nonzero(redundant[b]).tolist()[: max(0, op.max_per_interval - taken)]:
                    victim = i if indeg[b, i] <= indeg[b, j] else j
                    props.append(Proposal("neuron_removal", b, victim, i + j - victim, int(self.domain[b, victim]),
                                          op.cost, op.refund, f"redundant: PLV {float(plv[b, i, j]):.4f}"))
        if st.neurogenesis.enabled:
            op = st.neurogenesis
            x = torch.cat([z.real, z.imag], dim=2).permute(1, 2, 0)  # (B, 2C, T)
            n_dom = self.field.n_domains
            for d in range(n_dom):
                member = (self.domain == d) & act  # (B, C)
                n_d = member.sum(1)  # (B,)
                feats = x * torch.cat([member, member], dim=1)[:, :, None]  # (B, 2C, T) zero outside the domain
                pr = participation_ratio(feats.transpose(1, 2))  # (B,)
                ratio = pr / (2 * n_d.clamp_min(1))
                for b in torch.nonzero((ratio > op.threshold) & (n_d > 0)).flatten().tolist():
                    if sum(p.replica == b and p.op == "neurogenesis" for p in props) >= op.max_per_interval:
                        continue
                    props.append(Proposal("neurogenesis", b, -1, -1, d, op.cost, 0.0,
                                          f"effective dim {float(pr[b]):.2f} / 2n = {float(ratio[b]):.2f}"))
        return props

    # ------------------------------------------------------------------------------------------------ apply
    def apply(self, t: float, y: torch.Tensor, props: list[Proposal]) -> tuple[torch.Tensor, np.ndarray]:
        """Gate each proposal on its domain's reserve, pay, edit the network; y is edited in place (phases of new
        neurons, the energy block). Returns y and the event records."""
        f = self.field
        met = f.metabolism
        ng = f.n_neurons + f.n_glia
        block = y[:, ng:]
        events = []
        removed: set[tuple[int, int]] = set()
        for p in props:
            before = float(block[p.replica, p.domain])
            ok, why = before - p.cost >= self.cfg.floor, p.reason
            if ok and p.op == "neurogenesis":
                free = torch.nonzero(self.active[p.replica] == 0).flatten()
                ok = len(free) > 0
                why = why if ok else "capacity full"
            if ok and p.op == "neuron_removal" and ((p.replica, p.target) in removed or self.active[p.replica, p.target] == 0):
                ok, why = False, "already removed"
            if ok and p.op in ("synaptogenesis", "pruning") and ((p.replica, p.target) in removed or (p.replica, p.source) in removed):
                ok, why = False, "endpoint removed"
            elif not ok and why == p.reason:
                why = f"reserve {before:.3g} - cost {p.cost:.3g} < floor {self.cfg.floor:.3g}"
            if ok:
                if p.cost:
                    met.book(block, p.replica, p.domain, p.cost, "structural")
                if p.refund:
                    met.book(block, p.replica, p.domain, p.refund, "refunded")
                if p.op == "synaptogenesis":
                    self._link(p.replica, p.target, p.source, 1.0)
                elif p.op == "pruning":
                    self._link(p.replica, p.target, p.source, 0.0)
                elif p.op == "neuron_removal":
                    self._remove(p.replica, p.target)
                    removed.add((p.replica, p.target))
                else:
                    p.target = self._create(p.replica, p.domain, y)
            after = float(block[p.replica, p.domain])
            events.append((t, p.replica, p.op.encode(), p.target, p.source, p.domain, p.cost, p.refund if ok else 0.0,
                           before, after, ok, why.encode()[:48]))
        if props:
            f.structure_changed()
        return y, np.array(events, dtype=EVENT_DTYPE)

    def _link(self, b: int, i: int, j: int, value: float) -> None:
        self.w[b, i, j] = value
        if self.undirected:
            self.w[b, j, i] = value

    def _remove(self, b: int, i: int) -> None:
        self.w[b, i, :] = 0.0
        self.w[b, :, i] = 0.0
        self.active[b, i] = 0.0
        self.field.omega[b, i] = 0.0  # frozen slot

    def _create(self, b: int, d: int, y: torch.Tensor) -> int:
        """Activate a free slot in domain d: phase at the domain's mean phase, a natural frequency drawn from the
        neuron distribution, synapses in from the domain's active neurons, none out (function-preserving)."""
        from .sampling import sample_frequencies

        f = self.field
        i = int(torch.nonzero(self.active[b] == 0).flatten()[0])
        mates = torch.nonzero((self.domain[b] == d) & (self.active[b] > 0)).flatten()
        theta = y[b, : f.n_neurons]
        mean = torch.polar(torch.ones_like(theta[mates]), theta[mates]).mean() if len(mates) else torch.tensor(1.0 + 0j)
        y[b, i] = float(torch.angle(mean)) if len(mates) else 0.0
        f.omega[b, i] = float(sample_frequencies(self.base_cfg.neurons.frequency, 1, 1, self.rng)[0, 0])
        self.domain[b, i] = d
        self.active[b, i] = 1.0
        self.w[b, i, :] = 0.0
        self.w[b, :, i] = 0.0
        self.w[b, i, mates] = 1.0  # listens to its domain; sends nothing until synaptogenesis links it
        return i

    # ------------------------------------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, np.ndarray]:
        f = self.field
        return {"structure_w": self.w.cpu().numpy(), "structure_active": self.active.cpu().numpy(),
                "structure_domain": self.domain.cpu().numpy(), "structure_omega": f.omega.cpu().numpy(),
                "structure_buffer": torch.stack(self.buffer).cpu().numpy() if self.buffer else np.zeros((0,) + tuple(self.active.shape)),
                "structure_rng": np.frombuffer(repr(self.rng.bit_generator.state).encode(), dtype=np.uint8)}

    def load_state_dict(self, state: dict) -> None:
        import ast

        f = self.field
        dev, dt = f.omega.device, f.omega.dtype
        self.w.copy_(torch.as_tensor(state["structure_w"], device=dev, dtype=dt))
        self.active.copy_(torch.as_tensor(state["structure_active"], device=dev, dtype=dt))
        self.domain.copy_(torch.as_tensor(state["structure_domain"], device=dev))
        f.omega.copy_(torch.as_tensor(state["structure_omega"], device=dev, dtype=dt))
        self.buffer = [torch.as_tensor(x, device=dev, dtype=dt) for x in state["structure_buffer"]]
        self.rng.bit_generator.state = ast.literal_eval(bytes(state["structure_rng"]).decode())
        f.structure_changed()


def make_plastic(field, cfg: Config, graph, strength: Param, harmonics, lag: Param, device, dtype) -> None:
    """Turn a built GlialNeuralField into a plastic one at capacity C (in place): slots N..C-1 start inactive."""
    n, b = cfg.neurons.count, field.omega.shape[0]
    cap = cfg.structure.capacity or 2 * n
    w = torch.zeros(b, cap, cap, device=device, dtype=dtype)
    tgt, src, wt = graph.edges()
    w[:, torch.as_tensor(tgt), torch.as_tensor(src)] = torch.as_tensor(wt, device=device, dtype=dtype)
    scale = strength / graph.normaliser  # the initial mean degree stays the normaliser: a synapse keeps its weight
    field.neuron_coupling = PlasticCoupling(w, scale, harmonics, lag)
    field.backend_name = PlasticCoupling.name
    pad = cap - n
    field.omega = torch.cat([field.omega, torch.zeros(b, pad, device=device, dtype=dtype)], dim=1)
    field.n_neurons = cap
    field.neuron_mask = torch.cat([torch.ones(b, n, device=device, dtype=dtype),
                                   torch.zeros(b, pad, device=device, dtype=dtype)], dim=1)
    dom = torch.as_tensor(np.concatenate([field.neuron_domain, np.zeros(pad, dtype=np.int64)]), device=device)
    field.neuron_dom_index = dom.expand(b, -1).clone()  # (B, C) per replica
    field.n_state = field.n_neurons + field.n_glia + (field.metabolism.size if field.metabolism is not None else 0)
    sigma = field.sigma.expand(b, -1) if field.sigma.dim() == 1 else field.sigma  # (B, N + G + block)
    slots = sigma[:, :1].expand(b, pad)  # new neurons get the neurons' noise once active
    field.sigma_template = torch.cat([sigma[:, :n], slots, sigma[:, n:]], dim=1)
    if field.drive is not None:
        field.drive = type(field.drive)(field.drive.amplitude, field.drive.frequency, field.drive.phase,
                                        torch.cat([field.drive.mask, torch.zeros(pad, device=device, dtype=dtype)]))
    field.structure_changed()
