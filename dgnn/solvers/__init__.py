"""Solvers as plain functions over (vector field, initial state, times); methods registered by name."""
from __future__ import annotations

import torch
import torchdiffeq
from torchdiffeq._impl.odeint import SOLVERS as _TORCHDIFFEQ_SOLVERS

from .methods import RK4, Euler, EulerMaruyama, Method, Midpoint, StochasticHeun
from .noise import BrownianPath, GaussianIncrements

SOLVERS: dict[str, type[Method]] = {
    "euler": Euler,
    "midpoint": Midpoint,
    "rk4": RK4,
    "euler_maruyama": EulerMaruyama,
    "heun": StochasticHeun,
}
TORCHDIFFEQ_METHODS = tuple(sorted(_TORCHDIFFEQ_SOLVERS))
_FIXED_TORCHDIFFEQ = {"euler", "midpoint", "rk4", "explicit_adams", "implicit_adams", "heun3", "heun2"}


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
) -> torch.Tensor:
    """Integrate dy = field(t, y) dt [+ diffusion dW] and return y at each of `times`: (len(times), *y0.shape).

    diffusion: None (ODE), a tensor broadcastable to y (additive noise) or a callable g(t, y) (diagonal noise).
    noise: a Brownian increment source `noise(t, dt, shape, dtype)` (GaussianIncrements, BrownianPath); needed with
    diffusion. Fixed-step methods need dt; the span between two output times must be a whole number of steps
    (a shorter last step is taken otherwise). backend: 'native' (dgnn's loop), 'torchdiffeq', or 'auto'.
    project: optional y -> y applied after every native step (constraints such as e >= 0), or at each output time
    for torchdiffeq methods.
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
            return torchdiffeq.odeint(field, y0, stamps(times), method=method, rtol=rtol, atol=atol, options=opts)
        out, y = [y0], y0
        for a, b in zip(times, times[1:]):
            y = project(torchdiffeq.odeint(field, y, stamps([a, b]), method=method, rtol=rtol, atol=atol,
                                           options=opts)[-1])
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


from .graphs import CudaGraphLoop, graph_reason  # noqa: E402  (uses SOLVERS and solve above)

__all__ = [
    "SOLVERS", "TORCHDIFFEQ_METHODS", "available_methods", "check_method", "solve", "is_fixed_step",
    "GaussianIncrements", "BrownianPath", "Method", "CudaGraphLoop", "graph_reason",
]
