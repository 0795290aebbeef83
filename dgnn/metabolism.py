"""Glial energy reserves per domain: supply with saturation, neuronal demand, coupling gated by the reserve, and a
ledger integrated alongside so that every unit of energy is accounted for.

    P_i   = p_base + p_act (theta_i' - omega_i)^2 + p_syn sum_j |K_ij|          (energy / time)
    e_d'  = S_d(t) (1 - e_d / e_max) - sum_{i in d} P_i - p_glia G_d,   S_d = supply x G_d x schedule factor(t)
    g_i   = e_d(i) / (e_d(i) + k_m)

with G_d the glia of domain d, each drawing its own base power p_glia. With p_glia = 0 (the default) the block
carries no consumed_glia column (it reads as zeros), so state, noise stream and trace are those of a model without it;
a model without structural operators may likewise leave out `structural` and `refunded` (structural=False).
The integrated ledger columns are cumulative integrals solved by the same solver as e, so for any Runge-Kutta
method the balance (`imbalance` below) holds to rounding. The others are booked when they happen: `unmet` and
`discarded` by clamping e to [0, e_max] after each step, `structural` and `refunded` by structural operators.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .config import MetabolismConfig
from .trig import DomainMeans, is_zero, replica_value

LEDGER = ("supplied", "consumed_base", "consumed_activity", "consumed_synapse", "consumed_glia", "unmet", "discarded",
          "structural", "refunded")
INTEGRATED = ("supplied", "consumed_base", "consumed_activity", "consumed_synapse", "consumed_glia")  # solved with e
INFLOW = ("supplied", "unmet", "refunded")  # e - e0 = sum(INFLOW) - sum(everything else)


def imbalance(e, ledger: dict):
    """e - e0 - (inflows - outflows) for arrays (T, ..., D) of reserve and cumulative ledger columns."""
    flow = sum(v if k in INFLOW else -v for k, v in ledger.items())
    return e - e[0] - flow


class Schedule:
    """Piecewise-constant supply factor over repeating epochs (e.g. quiet / active sleep)."""

    def __init__(self, epochs):
        self.names = [e.name for e in epochs]
        self.factors = [e.supply for e in epochs]
        self.ends = np.cumsum([e.duration for e in epochs]) if epochs else np.zeros(0)
        self.pinned: float | None = None  # while set, every t maps to the epoch in force at this time

    def index(self, t: float) -> int:
        if not self.names:
            return -1
        t = t if self.pinned is None else self.pinned
        phase = math.fmod(t, float(self.ends[-1]))
        return int(np.searchsorted(self.ends, phase, side="right"))

    def breaks(self, t0: float, t1: float) -> list[float]:
        """[t0, epoch boundaries strictly inside (t0, t1), t1]: integrate piece by piece with the epoch pinned at
        each piece's midpoint, so that no solver stage (an RK stage at a step's end) sees the next epoch."""
        if not self.names:
            return [t0, t1]
        period = float(self.ends[-1])
        starts = np.concatenate([[0.0], self.ends[:-1]])
        inner = []
        for c in range(int(math.floor(t0 / period)), int(math.floor(t1 / period)) + 1):
            inner += [c * period + float(s) for s in starts if t0 + 1e-9 < c * period + s < t1 - 1e-9]
        return [t0] + sorted(inner) + [t1]

    def factor(self, t: float) -> float:
        i = self.index(t)
        return 1.0 if i < 0 else self.factors[i]


class Metabolism:
    """State block [e (D) | ledger (L x D)] appended to the phases; drift, gate and clamping projection. The block
    carries L = len(self.columns) of the LEDGER columns: all but consumed_glia when the glia draw no power (p_glia a
    scalar 0), and all but structural and refunded with structural=False."""

    def __init__(self, cfg: MetabolismConfig, neuron_domain: np.ndarray, glia_domain: np.ndarray, n_domains: int,
                 synaptic_load: np.ndarray, device, dtype, params: dict | None = None, schedule: Schedule | None = None,
                 structural: bool = True):
        """synaptic_load: (N,) sum_j |K_ij|. params: per-replica (B, 1) tensors overriding numeric cfg fields.
        schedule: the behavioural-state schedule shared with the vector field (built from cfg if None).
        structural: whether structural operators book into this block (the structural and refunded columns)."""
        p = {k: getattr(cfg, k) for k in ("p_base", "p_act", "p_syn", "p_glia", "supply", "e_max", "e_init", "k_m")}
        p.update(params or {})
        self.p_act, self.e_max, self.e_init, self.k_m = p["p_act"], p["e_max"], p["e_init"], p["k_m"]
        self.d = n_domains
        absent = ({"consumed_glia"} if is_zero(p["p_glia"]) else set()) | (set() if structural else {"structural", "refunded"})
        self.columns = tuple(c for c in LEDGER if c not in absent)
        self.size = n_domains * (1 + len(self.columns))
        self.schedule = schedule if schedule is not None else Schedule(cfg.schedule)
        self.p_base, self.p_syn = p["p_base"], p["p_syn"]
        self.device, self.dtype = device, dtype
        self.p_supply, self.p_glia = p["supply"], p["p_glia"]
        glia = torch.as_tensor(np.bincount(glia_domain, minlength=n_domains), device=device, dtype=dtype)
        self.supply = p["supply"] * glia  # (D,) or (B, D)
        self.glia_base = p["p_glia"] * glia  # (D,) or (B, D): the glia's own base power
        self.set_layout(torch.as_tensor(neuron_domain, device=device), None,
                        torch.as_tensor(synaptic_load, device=device, dtype=dtype))

    def set_layout(self, neuron_domain: torch.Tensor, active: torch.Tensor | None, synaptic_load: torch.Tensor) -> None:
        """Neuron domains ((N,) or per replica (B, C)), active slots (B, C) or None, and sum_j |K_ij| ((N,) or
        (B, C)): base and synapse power per domain follow (plastic networks call this after every change)."""
        self.members = DomainMeans(neuron_domain, self.d, self.device, self.dtype, active)
        # one neuron per domain, in domain order (D = N): per-domain sums and gathers are identities, skipped
        self.identity = (active is None and neuron_domain.dim() == 1 and neuron_domain.numel() == self.d
                         and bool((neuron_domain == torch.arange(self.d, device=neuron_domain.device)).all()))
        ones = torch.ones(neuron_domain.shape, device=self.device, dtype=self.dtype)
        w = active if active is not None else ones
        load = synaptic_load if active is None else synaptic_load * active
        self.base = self.p_base * self._sum(w)  # (D,) or (B, D)
        self.synapse = self.p_syn * self._sum(load)

    def set_glia(self, glia_domain: torch.Tensor, active: torch.Tensor) -> None:
        """Supply and glial base power per domain follow its active glia: (Gc,) slot domains, (B, Gc) 0/1 activity."""
        counts = torch.zeros(active.shape[0], self.d, device=self.device, dtype=self.dtype).index_add_(1, glia_domain, active)
        self.supply = self.p_supply * counts  # (B, D)
        self.glia_base = self.p_glia * counts  # (B, D)

    def _sum(self, values: torch.Tensor) -> torch.Tensor:
        """Per-domain sums of per-neuron values: (N,) -> (D,) or (B, n) -> (B, D)."""
        if self.identity:
            return values
        idx = self.members.index
        if idx.dim() == 1 and values.dim() == 1:
            return torch.zeros(self.d, device=self.device, dtype=self.dtype).index_add_(0, idx, values)
        if idx.dim() == 1:
            return torch.zeros(values.shape[0], self.d, device=self.device, dtype=self.dtype).index_add_(1, idx, values)
        return torch.zeros(idx.shape[0], self.d, device=self.device, dtype=self.dtype).scatter_add_(1, idx, values.expand_as(idx))

    def initial(self, batch: int, device, dtype) -> torch.Tensor:
        y = torch.zeros(batch, self.size, device=device, dtype=dtype)
        y[:, : self.d] = self.e_init
        return y  # (B, (1 + L) D)

    def reserve(self, block: torch.Tensor) -> torch.Tensor:
        return block[:, : self.d]  # (B, D)

    def ledger(self, block: torch.Tensor) -> torch.Tensor:
        """Every LEDGER column, in LEDGER's order (zeros for one the block does not carry): (B, len(LEDGER), D)."""
        led = block[:, self.d:].reshape(block.shape[0], len(self.columns), self.d)  # (B, L, D)
        if len(self.columns) == len(LEDGER):
            return led
        zero = torch.zeros_like(led[:, :1])
        return torch.cat([led[:, self.columns.index(k)][:, None] if k in self.columns else zero for k in LEDGER],
                         dim=1)  # (B, len(LEDGER), D)

    def column(self, name: str) -> slice:
        """Where ledger column `name` lives inside the block."""
        i = self.columns.index(name)
        return slice((1 + i) * self.d, (2 + i) * self.d)

    def gate(self, block: torch.Tensor) -> torch.Tensor:
        """g_i = e / (e + k_m) of each neuron's domain, with e >= 0: (B, N)."""
        e = self.reserve(block).clamp_min(0.0)
        g = e / (e + self.k_m)  # (B, D)
        return g if self.identity else self.members.gather(g)

    def drift(self, t: float, block: torch.Tensor, deviation: torch.Tensor) -> torch.Tensor:
        """d/dt of the block, given theta' - omega (B, N)."""
        e = self.reserve(block)
        b = block.shape[0]
        supplied = (self.supply * self.schedule.factor(float(t))) * (1.0 - e / self.e_max)  # (B, D)
        activity = self._sum(self.p_act * deviation * deviation)  # (B, D)
        base, synapse, glia = self.base.expand(b, -1), self.synapse.expand(b, -1), self.glia_base.expand(b, -1)
        flows = {"supplied": supplied, "consumed_base": base, "consumed_activity": activity,
                 "consumed_synapse": synapse, "consumed_glia": glia}
        de = supplied - base - activity - synapse
        if "consumed_glia" in self.columns:  # the glia's own base power, where they draw any
            de = de - glia
        zero = torch.zeros_like(e)
        return torch.cat([de] + [flows[c] if c in INTEGRATED else zero for c in self.columns], dim=1)  # (B, (1 + L) D)

    def project(self, block: torch.Tensor) -> torch.Tensor:
        """Clamp e to [0, e_max] and book the difference as unmet demand or discarded supply."""
        e = self.reserve(block)
        low = (-e).clamp_min(0.0)  # energy that clamping at 0 adds back
        high = (e - self.e_max).clamp_min(0.0)  # energy that clamping at e_max removes
        out = block.clone()  # branch-free: a data-dependent early exit would sync the device every step
        out[:, : self.d] = e + low - high
        out[:, self.column("unmet")] += low
        out[:, self.column("discarded")] += high
        return out

    def book(self, block: torch.Tensor, replica: int, domain: int, amount: float, column: str) -> None:
        """In place: pay (column 'structural', amount > 0) or refund ('refunded') energy of one domain; a refund
        that would overfill the reserve books the excess as discarded."""
        sign = -1.0 if column == "structural" else 1.0
        before = float(block[replica, domain])
        after = before + sign * amount
        excess = max(0.0, after - float(replica_value(self.e_max, replica)))
        block[replica, domain] = after - excess
        block[replica, self.column(column).start + domain] += amount
        block[replica, self.column("discarded").start + domain] += excess

    def power(self, deviation: torch.Tensor) -> torch.Tensor:
        """Total power drawn by all neurons and glia (B,), energy / time."""
        act = (self.p_act * deviation * deviation).sum(1)
        total = act + self.base.sum(-1) + self.synapse.sum(-1)
        return total + self.glia_base.sum(-1) if "consumed_glia" in self.columns else total
