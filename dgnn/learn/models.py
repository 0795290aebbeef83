"""Weight-based MLPs and phase-based oscillator networks settled by the core's solvers.

Oscillator network (the reference model's neurons, with the reference phase 0 as a clamped bias oscillator): inputs become
clamped phases phi_j = s tanh(x_j / w) ('clamp'), or input oscillators pinned to the reference and driven by their
input, phi_j' = s tanh(x_j / w) - sin(phi_j) ('drive', settling at asin(s tanh(x_j / w))). Unit h of layer l follows

    theta_h' = g_h sum_j m_hj [a sin(p_j - theta_h + alpha_hj) + 2 b sin(2 (p_j - theta_h + alpha_hj))]

over the previous layer's phases p (and the reference, and optionally its own layer), i.e. the gradient flow of
the HKB potential (a = 1; b = 0 is Kuramoto). 'weight' trains the magnitudes m (lags 0), 'phase' trains the lags
alpha (magnitudes fixed at coupling / sqrt(fan-in)). g_h is a trainable glial gain in (0, 2) when `glia` is on.
Each unit's total coupling is scaled down to at most min(max_rate, 2 / dt), so that rate x dt stays inside rk4's
stability region whatever training does to the weights. The readout is linear in [cos theta, sin theta] of the last layer.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..energy import settling_power, trapezoid
from ..errors import ConfigError
from ..solvers import solve
from .config import ModelConfig

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
               "gelu": nn.functional.gelu}


def _uniform(shape, bound: float, gen: torch.Generator, dtype) -> nn.Parameter:
    return nn.Parameter((torch.rand(shape, generator=gen, dtype=dtype) * 2.0 - 1.0) * bound)


class Readout(nn.Module):
    """Linear map; with norm > 0 every class row is projected to that L2 norm (a fixed-norm readout, so the
    hidden activity cannot shrink while the readout grows to hide energy)."""

    def __init__(self, n_in: int, n_out: int, gen: torch.Generator, dtype, norm: float = 0.0):
        super().__init__()
        self.norm = norm
        self.weight = _uniform((n_out, n_in), 1.0 / math.sqrt(n_in), gen, dtype)
        self.bias = nn.Parameter(torch.zeros(n_out, dtype=dtype))

    def effective(self) -> torch.Tensor:
        if not self.norm:
            return self.weight
        return self.norm * self.weight / self.weight.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.effective().T + self.bias


class MLP(nn.Module):
    """Fully connected net; forward returns logits and the list of hidden activations (B, H_l)."""

    kind = "mlp"

    def __init__(self, n_in: int, n_out: int, cfg: ModelConfig, gen: torch.Generator, dtype=torch.float32):
        super().__init__()
        self.act = ACTIVATIONS[cfg.activation]
        sizes = [n_in, *cfg.hidden]
        self.weights = nn.ParameterList([_uniform((b, a), 1.0 / math.sqrt(a), gen, dtype) for a, b in zip(sizes, sizes[1:])])
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(b, dtype=dtype)) for b in sizes[1:]])
        self.readout = Readout(sizes[-1], n_out, gen, dtype, cfg.readout_norm)

    def forward(self, x: torch.Tensor):
        acts = []
        h = x
        for w, b in zip(self.weights, self.biases):
            h = self.act(h @ w.T + b)
            acts.append(h)
        return self.readout(h), acts

    def macs(self) -> dict[str, float]:
        """Multiply-accumulates and transcendental calls per inference."""
        mac = sum(w.numel() for w in self.weights) + self.readout.weight.numel()
        trans = sum(b.numel() for b in self.biases) if self.act in (torch.tanh, torch.sigmoid) else 0
        return {"macs": float(mac), "transcendentals": float(trans)}


class OscillatorLayer(nn.Module):
    """Coupling of one layer's units to their sources (previous layer + the reference) and, optionally, to itself."""

    def __init__(self, n_in: int, n_out: int, cfg: ModelConfig, gen: torch.Generator, dtype):
        super().__init__()
        self.phase_param = cfg.parameterization == "phase"
        self.b = cfg.b if cfg.potential == "hkb" else 0.0
        # explicit RK methods are stable for a relaxation rate up to about 2.8 / dt (rk4) or 2 / dt (euler):
        # the cap follows the configured step, so a finer re-solve integrates the same model
        self.max_rate = min(cfg.max_rate, 2.0 / cfg.dt)
        fan = n_in + 1 + (n_out if cfg.recurrent else 0)
        self.fixed = cfg.coupling / math.sqrt(fan)
        if self.phase_param:  # trainable lags, fixed magnitudes
            self.lag = _uniform((n_out, n_in), math.pi, gen, dtype)
            self.bias_lag = _uniform((n_out,), math.pi, gen, dtype)
            self.rec_lag = _uniform((n_out, n_out), math.pi, gen, dtype) if cfg.recurrent else None
        else:  # trainable signed magnitudes, no lags
            self.mag = _uniform((n_out, n_in), cfg.coupling * math.sqrt(3.0 / fan), gen, dtype)
            self.bias_mag = _uniform((n_out,), cfg.coupling * math.sqrt(3.0 / fan), gen, dtype)
            self.rec_mag = _uniform((n_out, n_out), cfg.coupling * math.sqrt(3.0 / fan), gen, dtype) if cfg.recurrent else None
        self.glia = nn.Parameter(torch.zeros(n_out, dtype=dtype)) if cfg.glia else None

    def complex_weights(self, harmonic: int):
        """(Re, Im) of m e^{i k alpha} for the feed-forward, bias and recurrent couplings (k = harmonic); Im is
        None for the 'weight' parameterisation (no lags), so no product is spent on zeros."""
        def one(param):
            if param is None:
                return None
            if self.phase_param:
                return self.fixed * torch.cos(harmonic * param), self.fixed * torch.sin(harmonic * param)
            return param, None

        if self.phase_param:
            return one(self.lag), one(self.bias_lag), one(self.rec_lag)
        return one(self.mag), one(self.bias_mag), one(self.rec_mag)

    def total_coupling(self) -> torch.Tensor:
        """(H,) sum over sources of |m| x (a + 4|b|): bounds the unit's relaxation rate."""
        if self.phase_param:
            n_src = self.lag.shape[1] + 1 + (self.rec_lag.shape[1] if self.rec_lag is not None else 0)
            s = torch.full((self.lag.shape[0],), self.fixed * n_src, dtype=self.lag.dtype, device=self.lag.device)
        else:
            s = self.mag.abs().sum(1) + self.bias_mag.abs()
            if self.rec_mag is not None:
                s = s + self.rec_mag.abs().sum(1)
        return s * (1.0 + 4.0 * abs(self.b))

    def gain(self) -> torch.Tensor:
        """(H,) glial gain x the stability scaling (total coupling capped at max_rate)."""
        g = 2.0 * torch.sigmoid(self.glia) if self.glia is not None else torch.ones_like(self.total_coupling())
        rate = g * self.total_coupling()
        return g * torch.clamp(self.max_rate / rate.clamp_min(1e-12), max=1.0)


class OscillatorNet(nn.Module):
    """Phase-based classifier: settle the oscillator layers from theta = 0 for settle_time, read out [cos, sin]."""

    kind = "oscillator"

    def __init__(self, n_in: int, n_out: int, cfg: ModelConfig, gen: torch.Generator, dtype=torch.float32):
        super().__init__()
        self.cfg = cfg
        self.n_in = n_in
        sizes = [n_in, *cfg.hidden]
        self.layers = nn.ModuleList([OscillatorLayer(a, b, cfg, gen, dtype) for a, b in zip(sizes, sizes[1:])])
        self.readout = Readout(2 * sizes[-1], n_out, gen, dtype, cfg.readout_norm)
        self.offsets = torch.cumsum(torch.tensor([0] + sizes[1:]), 0).tolist()  # state layout of the layers
        self.drive = cfg.encoding == "drive"

    # ------------------------------------------------------------------------------------------------- dynamics
    def _field(self, x_phase: torch.Tensor):
        """The settling vector field for a batch of inputs: a closure over precomputed input couplings."""
        layers = self.layers
        gains = [layer.gain() for layer in layers]
        harmonics = (1, 2) if layers[0].b else (1,)
        weights = [{k: layer.complex_weights(k) for k in harmonics} for layer in layers]
        n_in = self.n_in
        first_const = None
        if not self.drive:  # clamped inputs: layer 1's input sums are constants of the settling
            first_const = {k: self._sums(torch.cos(k * x_phase), torch.sin(k * x_phase), *weights[0][k][0])
                           for k in harmonics}
        drive_rate = self.cfg.input_scale * torch.tanh(x_phase) if self.drive else None

        def field(t, y):  # y: (B, [inputs if drive] + sum H)
            out = []
            start = 0
            if self.drive:
                p_in = y[:, :n_in]
                out.append(drive_rate - torch.sin(p_in))  # input oscillators pinned to the reference
                start = n_in
            prev = p_in if self.drive else None
            for l, layer in enumerate(layers):
                lo, hi = start + self.offsets[l], start + self.offsets[l + 1]
                th = y[:, lo:hi]  # (B, H)
                d = 0.0
                for k in harmonics:
                    ck, sk = torch.cos(k * th), torch.sin(k * th)
                    ff, bias, rec = weights[l][k]
                    if l == 0 and first_const is not None:
                        zr, zi = first_const[k]
                    else:
                        zr, zi = self._sums(torch.cos(k * prev), torch.sin(k * prev), ff[0], ff[1])
                    zr = zr + bias[0]  # the reference oscillator at phase 0
                    if bias[1] is not None:
                        zi = zi + bias[1]
                    if rec is not None:
                        rr, ri = self._sums(ck, sk, rec[0], rec[1])
                        zr, zi = zr + rr, zi + ri
                    amp = 1.0 if k == 1 else 2.0 * layer.b
                    d = d + amp * (zi * ck - zr * sk)  # Im(Z_k e^{-i k theta})
                out.append(gains[l] * d)
                prev = th
            return torch.cat(out, dim=1)

        return field

    @staticmethod
    def _sums(c, s, wr, wi):
        """Re, Im of sum_j (wr + i wi)_hj e^{i p_j}: (B, n) phases -> (B, H); wi None means real weights."""
        if wi is None:
            return c @ wr.T, s @ wr.T
        return c @ wr.T - s @ wi.T, s @ wr.T + c @ wi.T

    def settle(self, x: torch.Tensor, dt: float | None = None, trajectory: bool = False):
        """Final state (B, S) of the settling, or the whole trajectory (n + 1, B, S) at every solver step."""
        return self._settle(x, dt, trajectory)[0]

    def _settle(self, x: torch.Tensor, dt: float | None, trajectory: bool):
        """The settling and the vector field it integrated."""
        cfg = self.cfg
        dt = cfg.dt if dt is None else dt
        x = x / cfg.input_width
        x_phase = cfg.input_scale * torch.tanh(x) if not self.drive else x
        field = self._field(x_phase)
        y0 = self._initial(field, x)
        steps = max(1, round(cfg.settle_time / dt))
        times = torch.linspace(0.0, cfg.settle_time, steps + 1) if trajectory else [0.0, cfg.settle_time]
        if cfg.adjoint:
            import torchdiffeq

            module = _FieldModule(field)
            opts = {"step_size": dt} if cfg.method in ("rk4", "euler", "midpoint") else None
            out = torchdiffeq.odeint_adjoint(module, y0, torch.as_tensor(times, dtype=torch.float64), method=cfg.method,
                                             options=opts, adjoint_params=tuple(self.parameters()))
        else:
            out = solve(field, y0, times, method=cfg.method, dt=dt, project=getattr(field, "project", None))
        return (out if trajectory else out[-1]), field

    def _initial(self, field, x: torch.Tensor) -> torch.Tensor:
        """The state every inference starts from: all phases 0 (B, S)."""
        n_state = self.offsets[-1] + (self.n_in if self.drive else 0)
        return torch.zeros(x.shape[0], n_state, dtype=x.dtype, device=x.device)

    def hidden_phases(self, y: torch.Tensor) -> list[torch.Tensor]:
        start = self.n_in if self.drive else 0
        return [y[:, start + a: start + b] for a, b in zip(self.offsets, self.offsets[1:])]

    def forward(self, x: torch.Tensor):
        return self._outputs(self.settle(x))

    def _outputs(self, y: torch.Tensor):
        """Logits and per-layer activations of a settled state."""
        phases = self.hidden_phases(y)
        last = phases[-1]
        logits = self.readout(torch.cat([torch.cos(last), torch.sin(last)], dim=1))
        # activations for the activation energy: each unit's phase relative to the reference, wrapped to (-pi, pi]
        acts = [torch.atan2(torch.sin(p), torch.cos(p)) for p in phases]
        return logits, acts

    # -------------------------------------------------------------------------------------------------- costs
    def metabolic_energy(self, x: torch.Tensor, dt: float | None = None) -> torch.Tensor:
        """(B,) the `metabolic` energy measure: the reference model's power P = sum_h [p_base + p_act theta_h'^2 + p_syn
        sum_j |K_hj|] (constants from the model's metabolism config) integrated over the settle time (trapezoid
        over the solver steps)."""
        traj, field = self._settle(x, dt, trajectory=True)  # (n + 1, B, S)
        drift = torch.stack([field(0.0, traj[k]) for k in range(traj.shape[0])])  # (n + 1, B, S)
        start = self.n_in if self.drive else 0
        act = (drift[..., start:] ** 2).sum(-1)  # (n + 1, B)
        syn = sum((layer.gain() * layer.total_coupling()).sum() for layer in self.layers)
        return trapezoid(settling_power(self.cfg.metabolism, self.offsets[-1], act, syn), self.cfg.settle_time)

    def macs(self) -> dict[str, float]:
        """Per inference: input sums once (clamped) or per stage, plus per-stage couplings and the readout."""
        cfg = self.cfg
        harmonics = 2 if self.layers[0].b else 1
        stages = {"euler": 1, "midpoint": 2, "rk4": 4}.get(cfg.method, 6)
        steps = max(1, round(cfg.settle_time / cfg.dt))
        sizes = [self.n_in, *cfg.hidden]
        cmplx = 4 if cfg.parameterization == "phase" else 2  # complex x real-or-complex weights
        ff = [cmplx * a * b for a, b in zip(sizes, sizes[1:])]
        rec = sum(cmplx * h * h for h in cfg.hidden) if cfg.recurrent else 0
        per_stage = (sum(ff[1:]) + rec + 4 * sum(cfg.hidden)) * harmonics
        first = ff[0] * harmonics * (steps * stages if self.drive else 1)
        mac = first + per_stage * steps * stages + self.readout.weight.numel()
        trans = (2 * sum(cfg.hidden) * harmonics + (2 * self.n_in if self.drive else 0)) * steps * stages
        trans += 2 * self.n_in * harmonics + 2 * sizes[-1]
        return {"macs": float(mac), "transcendentals": float(trans)}


class _FieldModule(nn.Module):
    """torchdiffeq's adjoint wants an nn.Module vector field; the parameters go in as adjoint_params."""

    def __init__(self, field):
        super().__init__()
        self.field = field

    def forward(self, t, y):
        return self.field(t, y)


MODEL_KINDS: dict[str, type] = {"mlp": MLP, "oscillator": OscillatorNet}  # ModelConfig.kind -> class


def register_model_kind(cls: type) -> type:
    """Decorator: build models of `kind: cls.kind` with cls (dgnn.learn imports every module that registers one)."""
    MODEL_KINDS[cls.kind] = cls
    return cls


def build_model(kind_cfg: ModelConfig, n_in: int, n_out: int, seed: int, dtype=torch.float32) -> nn.Module:
    if kind_cfg.kind not in MODEL_KINDS:
        raise ConfigError(f"kind {kind_cfg.kind}: no network of its own to build (buildable kinds: "
                          f"{', '.join(MODEL_KINDS)})")
    gen = torch.Generator().manual_seed(int(seed))
    return MODEL_KINDS[kind_cfg.kind](n_in, n_out, kind_cfg, gen, dtype)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def match_width(cfg: ModelConfig, target: int, n_in: int, n_out: int) -> ModelConfig:
    """The same architecture with every hidden width scaled by one factor so that its parameter count is as close
    as possible to `target`."""
    def count(f: float) -> tuple[int, list[int]]:
        widths = [max(1, round(h * f)) for h in cfg.hidden]
        c = cfg.model_copy(update={"hidden": widths, "match_parameters": None})
        return parameter_count(build_model(c, n_in, n_out, 0)), widths

    lo, hi = 1e-3, 64.0
    for _ in range(40):  # parameter count grows with the factor: bisection
        mid = math.sqrt(lo * hi)
        if count(mid)[0] < target:
            lo = mid
        else:
            hi = mid
    best = min((count(f) for f in (lo, hi)), key=lambda cw: abs(cw[0] - target))
    return cfg.model_copy(update={"hidden": best[1], "match_parameters": None})
