"""solve(field, y0, times, method=...): the native fixed-step loop or torchdiffeq; the method registry SOLVERS."""
from __future__ import annotations

import torch
import torchdiffeq
from torchdiffeq._impl.odeint import SOLVERS as _TORCHDIFFEQ_SOLVERS
from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver

from ..errors import SimulationFailed

from .methods import RK4, Euler, EulerMaruyama, Method, Midpoint, StochasticHeun

SOLVERS: dict[str, type[Method]] = {
    "euler": Euler,
    "midpoint": Midpoint,
    "rk4": RK4,
    "euler_maruyama": EulerMaruyama,
    "heun": StochasticHeun,
}
TORCHDIFFEQ_METHODS = tuple(sorted(_TORCHDIFFEQ_SOLVERS))
_FIXED_TORCHDIFFEQ = {"euler", "midpoint", "rk4", "explicit_adams", "implicit_adams", "heun3", "heun2"}
ADAPTIVE = tuple(sorted(k for k, v in _TORCHDIFFEQ_SOLVERS.items() if issubclass(v, RKAdaptiveStepsizeODESolver)))


class SolverStalled(SimulationFailed):
    """An adaptive solve that cannot advance: its step budget is spent (or its step size underflowed)."""


class _Guarded:
    """The field as an adaptive torchdiffeq solver sees it: steps counted against a budget (torchdiffeq calls
    callback_step before each attempted step) and held rows given zero drift (a row that failed must neither
    move nor, through non-finite values, spoil the batch)."""

    def __init__(self, field, budget: int | None, held: torch.Tensor | None, span: tuple[float, float], method: str):
        self.field, self.budget, self.held, self.span, self.method = field, budget, held, span, method
        self.steps = 0

    def __call__(self, t, y):
        f = self.field(t, y)
        return f if self.held is None else f.masked_fill(self.held[:, None], 0.0)  # (B, D)

    def callback_step(self, t0, y0, dt) -> None:
        self.steps += 1  # dt is read only on failure: no device sync per step
        if self.budget is not None and self.steps > self.budget:
            a, b = self.span
            raise SolverStalled(
                f"adaptive solver {self.method} cannot advance: {self.budget} steps between t={a:g} and t={b:g} "
                f"reached only t={float(t0):g} (step size {float(dt):.3g}); the system is too stiff or diverging for "
                f"it: check coupling and drive magnitudes, use a fixed-step method, or raise solver.max_steps")


def available_methods() -> tuple[str, ...]:
    return tuple(sorted(set(SOLVERS) | set(TORCHDIFFEQ_METHODS)))


def check_method(method: str, noisy: bool, backend: str = "auto") -> None:
    """Raise ValueError naming the valid choices when `method` is unknown or cannot integrate the noise asked for."""
    if method not in SOLVERS and method not in TORCHDIFFEQ_METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(available_methods())}")
    if backend == "torchdiffeq" and method not in TORCHDIFFEQ_METHODS:
        raise ValueError(f"{method!r} is not a torchdiffeq method; torchdiffeq has: {', '.join(TORCHDIFFEQ_METHODS)}")
    if backend == "native" and method not in SOLVERS:
        raise ValueError(f"{method!r} has no native implementation; native methods: {', '.join(sorted(SOLVERS))}")
    if noisy:
        sde = sorted(k for k, v in SOLVERS.items() if "additive" in v.noise)
        if method not in sde or backend == "torchdiffeq":
            raise ValueError(f"{method!r} cannot integrate noise; with noise use one of: {', '.join(sde)}")


def is_fixed_step(method: str) -> bool:
    return method in SOLVERS or method in _FIXED_TORCHDIFFEQ


def solve(
    field,
    y0: torch.Tensor,
    times,
    *,
    method: str = "rk4",
    dt: float | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    diffusion=None,
    noise=None,
    backend: str = "auto",
    project=None,
    max_steps: int | None = None,
    held: torch.Tensor | None = None,
) -> torch.Tensor:
    """Integrate dy = field(t, y) dt [+ diffusion dW] and return y at each of `times`: (len(times), *y0.shape).

    diffusion: None (ODE), a tensor broadcastable to y (additive noise) or a callable g(t, y) (diagonal noise).
    noise: a Brownian increment source `noise(t, dt, shape, dtype)` (GaussianIncrements, BrownianPath); needed with
    diffusion. Fixed-step methods need dt; the span between two output times must be a whole number of steps
    (a shorter last step is taken otherwise). backend: 'native' (dgnn's loop), 'torchdiffeq', or 'auto'.
    project: optional y -> y applied after every native step (constraints such as e >= 0), or at each output time
    for torchdiffeq methods.
    max_steps: adaptive methods (ADAPTIVE) only: the most steps, accepted or rejected, between two output times;
    past it SolverStalled is raised instead of stepping on for ever. None: no limit.
    held: adaptive methods only: (B,) bool rows of y0 held where they are (zero drift) and left out of the error
    norm, so that the other rows step as if they were alone. Native steps are independent per row anyway.
    """
    times = [float(t) for t in (times.tolist() if isinstance(times, torch.Tensor) else times)]
    noisy = diffusion is not None
    check_method(method, noisy, backend)
    if len(times) < 1 or any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError(f"times must be strictly increasing, found {times}")
    if noisy and noise is None:
        raise ValueError("diffusion given without a noise source; pass noise=GaussianIncrements(seed)")
    if is_fixed_step(method) and (dt is None or not dt > 0):
        raise ValueError(f"method {method!r} is fixed-step and needs dt > 0, found dt={dt}")
    use_native = method in SOLVERS and backend != "torchdiffeq"
    if not use_native:
        opts = {"step_size": dt} if method in _FIXED_TORCHDIFFEQ else None

        def stamps(ts):  # output times on y0's device, where torchdiffeq would otherwise copy them (with a warning)
            return torch.tensor(ts, dtype=torch.float64, device=y0.device)

        if project is None:
            return _odeint(field, y0, times, method, rtol, atol, opts, max_steps, held)
        out, y = [y0], y0
        for a, b in zip(times, times[1:]):
            y = project(_odeint(field, y, [a, b], method, rtol, atol, opts, max_steps, held)[-1])
            out.append(y)
        return torch.stack(out)
    stepper = SOLVERS[method]()
    out = [y0]
    y = y0
    for a, b in zip(times, times[1:]):
        n = max(1, round((b - a) / dt))
        for i in range(n):
            t = a + i * dt  # from the span start, not accumulated, so chunked and whole runs agree to the bit
            h = dt if i < n - 1 else b - t
            dw = noise(t, h, y.shape, y.dtype) if noisy else None
            y = stepper.step(field, t, y, h, diffusion, dw)
            if project is not None:
                y = project(y)
        out.append(y)
    return torch.stack(out)


def _odeint(field, y0, times, method, rtol, atol, opts, max_steps, held) -> torch.Tensor:
    """torchdiffeq's odeint; adaptive methods step under a budget and hold `held` rows (see solve)."""
    t = torch.tensor(times, dtype=torch.float64)
    if method not in ADAPTIVE or (max_steps is None and held is None):
        return torchdiffeq.odeint(field, y0, t, method=method, rtol=rtol, atol=atol, options=opts)
    budget = None if max_steps is None else max_steps * (len(times) - 1)
    guard = _Guarded(field, budget, held, (times[0], times[-1]), method)
    opts = dict(opts or {})
    if held is not None:
        live = ~held
        opts["norm"] = lambda x: x[live].abs().pow(2).mean().sqrt()  # torchdiffeq's RMS norm over the live rows
    try:
        return torchdiffeq.odeint(guard, y0, t, method=method, rtol=rtol, atol=atol, options=opts)
    except AssertionError as exc:  # torchdiffeq's own stops: step-size underflow, a non-finite state
        why = str(exc).split(":")[0]
        where = f"between t={times[0]:g} and t={times[-1]:g}"
        if why.startswith("non-finite"):
            raise SimulationFailed(f"state turned non-finite {where} (adaptive solver {method})") from None
        raise SolverStalled(f"adaptive solver {method} cannot advance {where}: {why}; check coupling and drive "
                            f"magnitudes or use a fixed-step method") from None
