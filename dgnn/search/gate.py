"""Metabolic gating of growth and pruning in trained networks: the simulator's glial energy reserve
(dgnn.metabolism.Metabolism, the same equations, ledger and config) with one glial domain per hidden layer.

Each optimisation step advances the reserve by dt (explicit Euler, which keeps the ledger balance exact):

    e_l' = supply x glia (1 - e_l / e_max) - sum_{i in l} [p_base + p_act a_i^2 + p_syn sum_j |W_ij|]

with a_i the RMS activation of neuron i over the minibatch (a trained net's activity in place of the oscillators'
drift deviation). Adding a neuron costs `grow_cost` from its layer's reserve and runs only if the reserve stays at
or above `floor` (free operators always run); removing one costs `prune_cost` and refunds `prune_refund`, booked in
the ledger's `structural` and `refunded` columns exactly as the simulator's structural controller books them.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import Field

from ..config import MetabolismConfig, StrictModel
from ..metabolism import LEDGER, Metabolism


class GateConfig(StrictModel):
    """Energy budget for structural operators (docs/search.md)."""

    metabolism: MetabolismConfig = MetabolismConfig(enabled=True)  # p_base, p_act, p_syn, supply, e_max, e_init
    glia: int = Field(1, ge=0)  # glial cells per layer domain: supply per domain = metabolism.supply x glia
    dt: float = Field(0.01, gt=0.0)  # time units per optimisation step
    floor: float = Field(0.0, ge=0.0)  # reserve that must remain after paying a cost (structure.floor)
    grow_cost: float = Field(1.0, ge=0.0)  # per neuron added (structure.neurogenesis.cost)
    prune_cost: float = Field(0.0, ge=0.0)  # per neuron removed (structure.neuron_removal.cost)
    prune_refund: float = Field(0.5, ge=0.0)  # per neuron removed (structure.neuron_removal.refund)


class EnergyGate:
    """Per-layer reserves that fund activity and gate growth / pruning of a GrowingMLP."""

    def __init__(self, cfg: GateConfig, widths: list[int], glia: list[int] | None = None):
        """glia: glial cells per layer (default cfg.glia in every layer)."""
        self.cfg = cfg
        self.layers = len(widths)
        glia = np.repeat(np.arange(self.layers), cfg.glia if glia is None else glia)
        self.met = Metabolism(cfg.metabolism, self._domains(widths), glia, self.layers, np.zeros(sum(widths)),
                              torch.device("cpu"), torch.float64)
        self.block = self.met.initial(1, torch.device("cpu"), torch.float64)  # (1, 9 L)
        self.t = 0.0
        self.requested = np.zeros(self.layers)  # neurons the triggers asked for
        self.granted = np.zeros(self.layers)

    @staticmethod
    def _domains(widths: list[int]) -> np.ndarray:
        return np.repeat(np.arange(len(widths)), widths)

    @torch.no_grad()
    def step(self, model, acts: list[torch.Tensor]) -> None:
        """Advance the reserves by one optimisation step of `model`, whose batch activations were `acts`."""
        load = torch.cat([w.detach().abs().sum(1) for w in model.weights])  # (N,)
        rms = torch.cat([a.detach().double().pow(2).mean(0).sqrt() for a in acts])  # (N,)
        self.advance(model.widths, load, rms)

    @torch.no_grad()
    def advance(self, widths: list[int], load: torch.Tensor, activity: torch.Tensor) -> None:
        """Advance the reserves by one step of a net of these layer widths: load (N,) sum_j |K_ij| and activity
        (N,) the units' RMS activity (the drift deviation of the power law), units in layer order."""
        self.met.set_layout(torch.as_tensor(self._domains(widths)), None, load.detach().double())
        dev = activity.detach().double()[None]  # (1, N)
        self.block = self.met.project(self.block + self.cfg.dt * self.met.drift(self.t, self.block, dev))
        self.t += self.cfg.dt

    def set_glia(self, glia: list[int]) -> None:
        """Glial cells per layer from now on (supply per layer = metabolism.supply x its glia)."""
        domain = torch.as_tensor(np.repeat(np.arange(self.layers), glia), dtype=torch.long)
        self.met.set_glia(domain, torch.ones(1, len(domain), dtype=torch.float64))

    def reserve(self) -> np.ndarray:
        return self.met.reserve(self.block)[0].numpy().copy()  # (L,)

    def _afford(self, layer: int, k: int, cost: float) -> int:
        if k <= 0 or cost <= 0:
            return max(k, 0)
        spare = float(self.block[0, layer]) - self.cfg.floor
        return max(0, min(k, math.floor(spare / cost + 1e-12)))

    def grow(self, layer: int, k: int) -> int:
        """How many of k requested neurons the layer's reserve pays for (they are paid now)."""
        n = self._afford(layer, k, self.cfg.grow_cost)
        self.requested[layer] += max(k, 0)
        self.granted[layer] += n
        if n and self.cfg.grow_cost:
            self.met.book(self.block, 0, layer, n * self.cfg.grow_cost, "structural")
        return n

    def prune(self, layer: int, k: int) -> int:
        """How many of k requested removals are paid for; their refunds are booked."""
        n = self._afford(layer, k, self.cfg.prune_cost)
        if n and self.cfg.prune_cost:
            self.met.book(self.block, 0, layer, n * self.cfg.prune_cost, "structural")
        if n and self.cfg.prune_refund:
            self.met.book(self.block, 0, layer, n * self.cfg.prune_refund, "refunded")
        return n

    def ledger(self) -> dict[str, np.ndarray]:
        """Cumulative ledger columns (L,) each."""
        led = self.met.ledger(self.block)[0].numpy()
        return {k: led[i].copy() for i, k in enumerate(LEDGER)}
