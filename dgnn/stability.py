"""Step-size stability of explicit methods: a bound on the drift's fastest relaxation rate, from the model, against
the method's stability interval on the negative real axis.

Linearised about a locked state, neuron i relaxes at |d theta_i' / d theta_i| = |k f'(0)| sum_j |w_ij| / D, with
f'(phi) = -a cos(phi) - 4 b cos(2 phi) bounded by |a| + 4 |b|. That rate is the diagonal of -k (a + 4 b) L / D (L the
weighted graph Laplacian), so the Laplacian's largest eigenvalue is at least it: an explicit step with rate x dt
beyond the interval makes the locked state numerically unstable, and the run reports garbage as `complete`.
Glial couplings add |c_gn| to a neuron's rate, |k_gg| x (glia load) + |c_ng| to a glial cell's; a cross-frequency
term adds |strength| x n_target to its target group. Drive and additive noise do not move the eigenvalues.
"""
from __future__ import annotations

import math

import numpy as np

# largest x with |R(-x)| <= 1, R the method's stability polynomial (y' = -lam y, x = lam dt)
STABILITY_INTERVAL = {
    "euler": 2.0,  # R = 1 + z
    "euler_maruyama": 2.0,  # its drift step is Euler's
    "midpoint": 2.0,  # R = 1 + z + z^2 / 2
    "heun": 2.0,  # stochastic Heun's drift is the trapezoidal predictor-corrector: R = 1 + z + z^2 / 2
    "heun2": 2.0,
    "heun3": 2.5127453266183286,  # R = 1 + z + z^2 / 2 + z^3 / 6 (every 3-stage third-order Runge-Kutta method)
    "rk4": 2.7852935634052822,  # R = 1 + z + z^2 / 2 + z^3 / 6 + z^4 / 24
}


def interval(method: str) -> float | None:
    """The method's stability interval on the negative real axis; None for adaptive and multistep methods."""
    return STABILITY_INTERVAL.get(method)


def graph_load(graph) -> float:
    """max_i sum_j |w_ij| / D: the largest coupling row sum of a dgnn.topology.Graph in units of the strength."""
    if graph is None:
        return 0.0
    if graph.implicit:
        return (graph.n - 1) / graph.normaliser
    if graph.target.size == 0:
        return 0.0
    w = np.abs(graph.weight) if graph.weight is not None else None
    return float(np.bincount(graph.target, weights=w, minlength=graph.n).max() / graph.normaliser)


def relaxation_rate(cfg, load: float, glia_load: float) -> float:
    """Bound of the fastest relaxation rate (1/time) of neurons and glia, from the config and the graphs' loads."""
    c = cfg.coupling
    neuron = abs(c.strength) * (abs(c.a) + 4.0 * abs(c.b)) * load
    groups = cfg.neurons.group_slices()
    cross = {name: 0.0 for name in groups}
    for term in c.cross.values():
        cross[term.target] += abs(term.strength) * term.n_target
    neuron += max(cross.values(), default=0.0)
    if cfg.metabolism.enabled:  # the reserve gates neuron coupling by g = e / (e + k_m) <= e_max / (e_max + k_m)
        neuron *= cfg.metabolism.e_max / (cfg.metabolism.e_max + cfg.metabolism.k_m)
    glia = 0.0
    if cfg.glia_count:
        neuron += abs(cfg.glia.coupling_to_neurons)
        glia = abs(cfg.glia.coupling) * glia_load + abs(cfg.glia.coupling_from_neurons)
    return max(neuron, glia)


def step_problem(cfg, load: float, glia_load: float) -> str | None:
    """None when solver.dt keeps the bound inside the method's interval, else why not and the largest safe dt."""
    limit = interval(cfg.solver.method)
    if limit is None:
        return None
    rate = relaxation_rate(cfg, load, glia_load)
    dt = cfg.solver.dt
    if not rate * dt > limit:
        return None
    every = cfg.record.every
    steps = math.ceil(every * rate / limit * (1 + 1e-12))  # the largest dt <= limit / rate dividing record.every
    divide = f" (dividing record.every={every:g}: {every:g} / {steps} = {every / steps:.6g})" if steps < 1e6 else ""
    return (f"{dt:g} is outside {cfg.solver.method}'s stability interval: the coupling relaxes at up to {rate:.4g} "
            f"per time unit and {rate:.4g} x {dt:g} = {rate * dt:.3g} > {limit:.4g}; use solver.dt <= "
            f"{limit / rate:.4g}{divide} or an adaptive method such as dopri5")


def glia_load(cfg, glia_graph=None) -> float:
    """The glial coupling's largest row sum in units of glia.coupling: (G - 1) / G for all-to-all glia, else that
    of the glia's own graph (the field's glia_graph)."""
    g = cfg.glia_count
    if not g:
        return 0.0
    return (g - 1) / g if glia_graph is None else graph_load(glia_graph)


def check_points(points: list, field) -> None:
    """Refuse (ConfigError naming solver.dt) a run whose step would be unstable, for each point of a built field."""
    from .errors import ConfigError

    if points[0].model != "glial_neural":  # the bound is this model's; a registered field owns its own
        return
    graph = getattr(field, "graph", None)
    load = graph_load(graph) if graph is not None else (points[0].neurons.count - 1) / points[0].neurons.count
    gload = 0.0
    if any(p.glia.coupling != 0.0 for p in points):
        gload = glia_load(points[0], getattr(field, "glia_graph", None))
    for p in points:
        problem = step_problem(p, load, gload)
        if problem:
            where = "" if len(points) == 1 else f"sweep point {p.name}: "
            raise ConfigError(f"{where}solver.dt: {problem}", key="solver.dt")
