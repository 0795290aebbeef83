"""Information of free dynamics as log2 of the number of distinct attractors reached from random initial conditions
(docs/model.md 'Measures'), for a network as a structural run left it."""
from __future__ import annotations

import math

import numpy as np
import torch

from .config import Config, config_from_dict
from .simulation import Simulation


def _frozen(cfg: Config, trials: int, settle: float, seed: int) -> Config:
    data = cfg.model_dump(mode="python")
    data.update(replicas=trials, seed=seed, name=f"{cfg.name}-attractors")
    data["noise"] = {"neurons": 0.0, "glia": 0.0}
    data["solver"] = {**data["solver"], "method": "rk4", "duration": settle}
    data["record"] = {"every": data["solver"]["dt"] * round(1.0 / data["solver"]["dt"]), "phases": False}
    data["neurons"]["initial_phase"] = {"distribution": "uniform"}
    data["glia"]["initial_phase"] = {"distribution": "uniform"}
    st = data["structure"]
    for op in ("synaptogenesis", "pruning", "neurogenesis", "neuron_removal", "glia_creation", "glia_removal"):
        st[op]["enabled"] = False
    data["sweep"] = {}
    return config_from_dict(data)


def _pattern(theta: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Phases relative to the first active oscillator (rotation removed), wrapped: (B, C). A reference oscillator,
    not the mean phase, which is undefined in splay and anti-phase states (r = 0)."""
    ref = theta.gather(1, active.argmax(1, keepdim=True))  # (B, 1)
    return torch.remainder(theta - ref + math.pi, 2 * math.pi) - math.pi


def attractor_information(cfg: Config, checkpoint: dict, replica: int, trials: int = 32, settle: float = 60.0,
                          tol: float = 0.2, seed: int = 12345, frequencies: tuple | None = None) -> dict:
    """Freeze replica `replica` of a run as it ended (a structural run's synapses, active slots, frequencies and
    glia; the reserves with metabolism; a run without structure is its config's network with that replica's
    frequencies: (omega (N,), nu (G,)) of that replica, from its trace), start `trials` random initial conditions
    as one batch, settle, and count distinct phase-locked
    patterns (max circular difference < tol rad relative to the first active oscillator). Runs whose pattern still
    moves after 5 more time units are non-stationary and count as one class. Returns count, bits = log2(classes)
    <= log2(trials), and the locked fraction."""
    frozen = _frozen(cfg, trials, settle, seed)
    sim = Simulation(frozen, device="cpu")
    ctl, f = sim.controller, sim.field
    dev, dt = f.omega.device, f.omega.dtype
    take = lambda key: torch.as_tensor(checkpoint[key][replica], device=dev, dtype=dt)  # noqa: E731
    if ctl is not None:
        ctl.w.copy_(take("structure_w").expand_as(ctl.w))
        ctl.active.copy_(take("structure_active").expand_as(ctl.active))
        f.omega.copy_(take("structure_omega").expand_as(f.omega))
        ctl.glia_active.copy_(take("structure_glia_active").expand_as(ctl.glia_active))
        f.nu.copy_(take("structure_nu").expand_as(f.nu))
        f.structure_changed()
        ctl.invalidate()
        act = ctl.active  # (B, C)
    else:
        if frequencies is not None:
            f.omega.copy_(torch.as_tensor(frequencies[0], device=dev, dtype=dt).expand_as(f.omega))
            f.nu.copy_(torch.as_tensor(frequencies[1], device=dev, dtype=dt).expand_as(f.nu))
        act = torch.ones(trials, sim.n, device=dev, dtype=dt)
    block = torch.as_tensor(checkpoint["y"][replica, sim.n_phase:], device=dev, dtype=dt)
    rng = np.random.default_rng(seed)
    phases = torch.as_tensor(rng.uniform(-math.pi, math.pi, (trials, sim.n_phase)), device=dev, dtype=dt)
    sim.y = torch.cat([phases, block.expand(trials, -1)], dim=1)
    while sim.record < frozen.n_records:
        sim.advance()
    first = _pattern(sim.y[:, : sim.n], act)
    for _ in range(5):
        sim.advance()
    second = _pattern(sim.y[:, : sim.n], act)
    moved = (torch.remainder(second - first + math.pi, 2 * math.pi) - math.pi).abs().mul(act).amax(1)  # (B,)
    locked = (moved < tol).cpu().numpy()
    reps: list[torch.Tensor] = []
    for b in np.flatnonzero(locked):
        p = first[b]
        if not any(float(((torch.remainder(p - q + math.pi, 2 * math.pi) - math.pi).abs() * act[b]).max()) < tol for q in reps):
            reps.append(p)
    classes = len(reps) + int((~locked).any())
    return {"attractors": len(reps), "classes": classes, "bits": math.log2(max(classes, 1)),
            "locked_fraction": float(locked.mean()), "trials": trials}
