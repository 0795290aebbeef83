"""The energy vocabulary: every energy dgnn reports, penalises or searches on is named and computed here, and one
config key (`energy`) picks among these names wherever an energy is chosen.

    activation  seed 002's E: the sum over layers of the mean squared activation (dimensionless; differentiable)
    metabolic   the reference model's power P = p_base + p_act theta'^2 + p_syn sum_j |K_ij| integrated over one inference's
                settling (energy units of the metabolism config; differentiable; phase-based nets only); for glial
                nets (dgnn.learn.glial) the ledger's consumption of one inference, glial base power included
    mac_joules  joules per inference from MACs, transcendental calls and one read of every parameter (Horowitz,
                ISSCC 2014, 45 nm); every model family has it, so it compares across families
    ledger      the energy the neurons and glia of a free-running network drew from the glial reserves (the
                simulator's ledger: base + activity + synapse + glia consumption; `dgnn run` with metabolism)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field

from .config import MetabolismConfig, StrictModel


@dataclass(frozen=True)
class EnergyMeasure:
    name: str
    units: str
    differentiable: bool  # usable as a training penalty
    column: str  # the results-table column that holds it
    meaning: str


MEASURES = {m.name: m for m in (
    EnergyMeasure("activation", "1", True, "activation_energy", "sum over layers of the mean squared activation"),
    EnergyMeasure("metabolic", "energy", True, "metabolic_energy", "the model's power integrated over the settling"),
    EnergyMeasure("mac_joules", "J", False, "joules_per_inference", "MACs, transcendentals and parameter reads"),
    EnergyMeasure("ledger", "energy", False, "energy_consumed", "the simulator's consumed energy (ledger)"),
)}
Energy = Literal["activation", "metabolic", "mac_joules", "ledger"]  # the `energy` config key's values
PENALTIES = tuple(name for name, m in MEASURES.items() if m.differentiable)  # what a loss may penalise


class EnergyTable(StrictModel):
    """Per-operation energies in picojoules (defaults: Horowitz, ISSCC 2014, 45 nm, 32-bit float)."""

    mac_pj: float = Field(4.6, ge=0.0)  # 32-bit float multiply (3.7 pJ) + add (0.9 pJ)
    transcendental_pj: float = Field(20.0, ge=0.0)  # sin / cos / exp / tanh by polynomial: about 4 MACs (assumed)
    memory_pj_per_byte: float = Field(1.25, ge=0.0)  # 8 kB SRAM read: 10 pJ per 64-bit word


def activation_energy(acts: list[torch.Tensor]) -> torch.Tensor:
    """Seed 002's E(theta, x): the sum over layers of the mean squared activation (batch and units)."""
    return sum((a * a).mean() for a in acts)


def mac_joules(costs: dict[str, float], n_parameters: int, table: EnergyTable, bytes_per_value: int = 4) -> float:
    """Energy of one inference (J): MACs, transcendental calls and one read of every parameter."""
    pj = (costs["macs"] * table.mac_pj + costs["transcendentals"] * table.transcendental_pj
          + n_parameters * bytes_per_value * table.memory_pj_per_byte)
    return pj * 1e-12


def settling_power(met: MetabolismConfig, units: int, drift_sq: torch.Tensor, load: torch.Tensor) -> torch.Tensor:
    """The reference model's power of a settling net (energy / time): p_base per unit, p_act per (rad/time)^2 of summed
    theta'^2 (drift_sq, any shape), p_syn per unit of summed coupling magnitude (load)."""
    return met.p_base * units + met.p_act * drift_sq + met.p_syn * load


def trapezoid(power: torch.Tensor, duration: float) -> torch.Tensor:
    """Integral over [0, duration] of power sampled at n + 1 equal steps along dim 0 (energy)."""
    h = duration / (power.shape[0] - 1)
    return h * (power[0] / 2 + power[1:-1].sum(0) + power[-1] / 2)


CONSUMED = ("consumed_base", "consumed_activity", "consumed_synapse", "consumed_glia")  # drawn from the reserves


def ledger_consumed(ledger: dict) -> float:
    """The `ledger` measure: energy the neurons and glia drew over a run, from cumulative ledger columns (T, B, D):
    the last record's base + activity + synapse + glia consumption, summed over domains, mean over replicas.
    A column that is absent (consumed_glia where the glia draw no power) counts as zero."""
    return sum(float(ledger[k][-1].sum(-1).mean()) for k in CONSUMED if k in ledger)
