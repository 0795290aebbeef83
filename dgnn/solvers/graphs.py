"""CUDA-graph stepping: one record interval of a native fixed-step method captured once and replayed.

At small N a GPU step is bound by kernel launches (about 25 tensor ops per rk4 step, each launched from Python).
A CUDA graph replays the whole interval with one launch. It is exact, bit for bit, against the eager loop that it
captures, where three things hold:

- the drift does not depend on t (the graph bakes the Python floats it was captured with); `graph_reason` refuses
  time-dependent configs (sinusoidal drive, behavioural-state schedules) and structural plasticity (the controller
  replaces the network's tensors between records);
- the steps are the same: an interval of n steps is n - 1 steps of dt and a last one of b - (a + (n - 1) dt),
  which differs from dt by rounding and depends on a. One graph is kept per distinct (n, last step), a handful over
  a run (a new one appears where t crosses a power of two);
- the noise is the same stream: the run's torch.Generator is registered with each graph, so a replay draws exactly
  the increments the eager loop would draw from the generator's current state, and advances it as much.

Only tensors' values may change between replays (the state is copied into the graph's input), never their
identity: the field's parameters are read from where they were at capture.
"""
from __future__ import annotations

import warnings

import torch

from .integrate import SOLVERS, solve
from .noise import GaussianIncrements


def graph_reason(cfg, device: torch.device, noise) -> str | None:
    """Why a run of `cfg` on `device` integrates eagerly instead of replaying CUDA graphs; None when it replays.
    noise: the run's increment source, or None for a noise-free run."""
    s = cfg.solver
    if torch.device(device).type != "cuda":
        return "not on a CUDA device"
    if not s.cuda_graph:
        return "solver.cuda_graph is false"
    if s.method not in SOLVERS:
        return f"solver.method {s.method!r} is not a native fixed-step method"
    if s.backend == "torchdiffeq":
        return "solver.backend torchdiffeq: the steps are torchdiffeq's, not the native loop's"
    if cfg.model != "glial_neural":
        return f"model {cfg.model!r}: only the reference field is known not to depend on t"
    if cfg.structure.enabled:
        return "structure.enabled: the controller edits the network between records"
    if cfg.metabolism.schedule:
        return "metabolism.schedule: the drift depends on t"
    if cfg.drive.kind == "sinusoid":
        return "drive.kind sinusoid: the drift depends on t"
    if noise is not None and not isinstance(noise, GaussianIncrements):
        return f"noise source {type(noise).__name__} has no single generator to register with a graph"
    if noise is not None and not hasattr(torch.cuda.CUDAGraph, "register_generator_state"):
        return f"torch {torch.__version__} cannot register a generator with a CUDA graph"
    return None


class CudaGraphLoop:
    """Integrates [a, b] with `method` by replaying a captured CUDA graph; the eager loop it captures is the reference.

    Call it as loop(y, a, b) -> y(b). The first interval of each step layout runs eagerly (the capture's warm-up,
    on the capture stream) and is captured; later ones replay. If a capture fails, every later call runs eagerly
    and `failure` says why.
    """

    MAX_GRAPHS = 32  # distinct step layouts kept; a run has about log2(duration / record.every) + 5 of them

    def __init__(self, field, method: str, dt: float, diffusion=None, noise: GaussianIncrements | None = None,
                 project=None):
        self.field, self.method, self.dt = field, method, dt
        self.diffusion, self.noise, self.project = diffusion, noise, project
        self.graphs: dict[tuple[int, float], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.pool = None  # one pool for all graphs: a replay's output is cloned at once, so scratch may overlap it
        self.stream = None
        self.captures = self.replays = 0
        self.failure: str | None = None

    def eager(self, y: torch.Tensor, a: float, b: float) -> torch.Tensor:
        """The reference: solve's own native loop over [a, b]."""
        return solve(self.field, y, [a, b], method=self.method, dt=self.dt, diffusion=self.diffusion,
                     noise=self.noise, backend="native", project=self.project)[-1]

    def layout(self, a: float, b: float) -> tuple[int, float]:
        """(steps, last step) of [a, b], computed as solve computes them."""
        n = max(1, round((b - a) / self.dt))
        return n, b - (a + (n - 1) * self.dt)

    def __call__(self, y: torch.Tensor, a: float, b: float) -> torch.Tensor:
        key = self.layout(a, b)
        entry = self.graphs.get(key)
        if entry is None:
            if self.failure is not None or len(self.graphs) >= self.MAX_GRAPHS:
                return self.eager(y, a, b)
            return self._capture(key, y, a, b)
        graph, static_y, static_out = entry
        static_y.copy_(y)
        graph.replay()
        self.replays += 1
        return static_out.clone()

    def _capture(self, key, y: torch.Tensor, a: float, b: float) -> torch.Tensor:
        """Run [a, b] eagerly on the capture stream (warm-up and this interval's result), then capture it."""
        if self.stream is None:
            self.stream = torch.cuda.Stream(device=y.device)
        static_y = y.clone()  # (B, S) the graph's input, outside its pool
        current = torch.cuda.current_stream(y.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):  # warm up where the capture runs: cuBLAS handles are per stream
            result = self.eager(static_y, a, b)
        current.wait_stream(self.stream)
        result.record_stream(current)  # made on the capture stream, used on the current one
        static_y.record_stream(self.stream)
        graph = torch.cuda.CUDAGraph()
        if self.noise is not None:
            graph.register_generator_state(self.noise.generator)
        try:
            with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
                static_out = self.eager(static_y, a, b)
        except RuntimeError as exc:  # an op that cannot be captured: integrate eagerly from now on
            self.failure = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if self.noise is not None:
                self.noise.renew()  # a capture draws nothing: the stream goes on where the eager loop left it
            warnings.warn(f"CUDA graph capture failed, integrating eagerly: {self.failure}", RuntimeWarning,
                          stacklevel=3)
            return result
        if self.pool is None:
            self.pool = graph.pool()
        self.graphs[key] = (graph, static_y, static_out)
        self.captures += 1
        return result
