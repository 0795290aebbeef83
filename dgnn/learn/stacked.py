"""K models of one shape as one stack: parameters stacked (K, ...) and one batched forward whose every candidate's
numbers are those of its own model's forward, to the bit on CPU.

Bit equality holds because every operation is the one the model performs, on the same values, laid out so that
each candidate's block goes through the same kernel path: batched products run one BLAS product per candidate (as
the model's do), and the few elementwise kernels whose vector and scalar paths round differently (sigmoid, atan2,
gelu's backward) run per candidate unless each candidate's block is a whole number of vector iterations.
Candidates of one stack may differ in their initialisation and in the per-candidate constants of VARYING_MODEL
(coupling scale, readout norm, HKB b, input scale and width, rate cap); everything else that shapes the
computation is the same (batch_key). A model kind joins with a Stack subclass of its own (register_stack), whose
forward equals its model's candidate by candidate (the glial kind can build on StackedOscillatorNet's field).
"""
from __future__ import annotations

import json

import torch
from torch import nn

from ..energy import settling_power
from ..solvers import solve
from .config import ModelConfig, TrainConfig
from .models import MLP, OscillatorNet

BLOCK_BYTES = 128  # two AVX-512 vectors: an elementwise kernel's iteration on CPU (AVX2 uses 64)
ALIGN_BYTES = 64  # the alignment of a fresh CPU tensor, which BLAS results depend on
SMALL_PRODUCT = 400  # torch.bmm runs products of contraction x rows x cols below this in its own loop, not in BLAS
FIXED_STEP = ("euler", "midpoint", "rk4")  # the native solvers: the same steps whatever the batch holds
VARYING_MODEL = ("coupling", "readout_norm", "b", "input_scale", "input_width", "max_rate", "match_parameters",
                 "train")  # free within a stack (b within HKB nets with b != 0: the harmonics are the shape)
VARYING_TRAIN = ("lr", "weight_decay", "epochs", "patience", "max_seconds")  # per-candidate in the batched trainer


def batch_key(model: ModelConfig, train: TrainConfig) -> str | None:
    """The shape of a candidate: candidates with equal keys train as one batch; None: it trains alone (a kind
    without a stack, the adjoint, or an adaptive solver, whose steps would depend on the whole batch)."""
    if model.kind not in STACKS or model.adjoint or (model.kind != "mlp" and model.method not in FIXED_STEP):
        return None
    opt = train.model_dump(mode="json", exclude=set(VARYING_TRAIN))
    return json.dumps([STACKS[model.kind].shape(model), opt], sort_keys=True)


def per_candidate(fn, *ts: torch.Tensor) -> torch.Tensor:
    """fn over stacked tensors (K, ...): one call when each candidate's block is whole vector iterations, else one
    call per candidate (what the candidate's own model computes, whose tail runs the scalar path)."""
    block = ts[0][0].numel() * ts[0].element_size()
    if block % BLOCK_BYTES == 0 and all(t.is_contiguous() for t in ts):
        return fn(*ts)
    return torch.stack([fn(*parts) for parts in zip(*(t.unbind(0) for t in ts))])


def aligned(t: torch.Tensor) -> torch.Tensor:
    """(K, r, c) with each candidate's matrix row-major and 64-byte aligned, as a fresh tensor of its own is (BLAS
    rounds by the alignment of its operands): t itself when it already is, else a copy in padded blocks."""
    unit = max(1, ALIGN_BYTES // t.element_size())
    block = t[0].numel()
    if t.is_contiguous() and block % unit == 0 and t.data_ptr() % ALIGN_BYTES == 0:
        return t
    padded = -(-block // unit) * unit
    out = torch.empty(t.shape[0], padded, dtype=t.dtype, device=t.device)
    return out.as_strided(t.shape, (padded, t.shape[2], 1)).copy_(t)


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(K, m, n) @ (K, n, p) of aligned operands (or transposes of aligned ones), each candidate's product computed
    as torch.mm computes it alone: by BLAS (torch.bmm runs small products in a loop of its own), into an aligned
    block."""
    k, m, n = a.shape
    p = b.shape[2]
    if m * n * p < SMALL_PRODUCT:
        return torch.stack([x @ w for x, w in zip(a.unbind(0), b.unbind(0))])
    unit = max(1, ALIGN_BYTES // a.element_size())
    block = -(-m * p // unit) * unit
    out = torch.empty(k, block, dtype=a.dtype, device=a.device).as_strided((k, m, p), (block, p, 1))
    return torch.bmm(a, b, out=out)


class _Linear(torch.autograd.Function):
    """a @ w^T per candidate, forward and backward as torch.mm computes the model's `a @ w.T`: w.T is column-major,
    so its gradient is computed as (g^T a) (torch.bmm's own backward computes a^T g, which rounds differently)."""

    @staticmethod
    def forward(ctx, a, w):  # a (K, m, n), w (K, H, n)
        a, w = aligned(a), aligned(w)
        ctx.save_for_backward(a, w)
        return bmm(a, w.transpose(1, 2))  # (K, m, H)

    @staticmethod
    def backward(ctx, g):  # g (K, m, H)
        a, w = ctx.saved_tensors
        g = aligned(g)
        ga = bmm(g, w) if ctx.needs_input_grad[0] else None
        gw = bmm(g.transpose(1, 2), a) if ctx.needs_input_grad[1] else None
        return ga, gw


def linear(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(K, m, n), (K, H, n) -> (K, m, H): each candidate's `a @ w.T`, forward and backward, as its model computes it."""
    return _Linear.apply(a, w)


def _times(k: int, t: torch.Tensor) -> torch.Tensor:
    """k x t as the model computes it: a product of its own for every use (the autograd graph then sums the
    gradients in the model's order), except k = 1, whose product is the identity and passes its gradient on."""
    return t if k == 1 else k * t


def _column(values, like: torch.Tensor, dims: int) -> torch.Tensor:
    """(K, 1, ..., 1) per-candidate constants in like's dtype, rounded as a Python scalar in an op would be."""
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, *([1] * dims))


class Stack:
    """Stacked parameters (K, ...) of K models of one shape (by the names of model.named_parameters())."""

    kind = ""

    def __init__(self, models: list[nn.Module]):
        self.names = [n for n, _ in models[0].named_parameters()]
        self.params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).requires_grad_()
                       for n in self.names}  # (K, ...) leaves
        like = self.params[self.names[0]]
        self.const: dict[str, torch.Tensor] = {}  # per-candidate constants (K, 1, ...), in like's dtype
        if models[0].readout.norm:
            self.const["norm"] = _column([m.readout.norm for m in models], like, 2)

    @classmethod
    def shape(cls, cfg: ModelConfig) -> dict:
        """The config keys that shape this kind's computation (candidates of a stack agree on them)."""
        return {"kind": cfg.kind, "hidden": list(cfg.hidden), "readout_normed": cfg.readout_norm > 0}

    @classmethod
    def signature(cls, model: nn.Module) -> str:
        """What must be equal for models to share a stack: parameter names and shapes, and what shapes the math."""
        return json.dumps([[n, list(p.shape)] for n, p in model.named_parameters()] + [bool(model.readout.norm)])

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def take(self, rows: list[int]) -> None:
        """Keep only these candidates (in this order)."""
        idx = torch.as_tensor(rows, device=next(iter(self.params.values())).device)
        self.params = {n: p.detach().index_select(0, idx).requires_grad_() for n, p in self.params.items()}
        self.const = {n: c.index_select(0, idx) for n, c in self.const.items()}

    def state(self, i: int) -> dict[str, torch.Tensor]:
        """Candidate i's parameters as its model's state dict (copies)."""
        return {n: p[i].detach().clone() for n, p in self.params.items()}

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """(K, B, F) -> logits (K, B, C): Readout.forward per candidate."""
        w = self.params["readout.weight"]  # (K, C, F)
        if "norm" in self.const:
            w = self.const["norm"] * w / w.norm(dim=2, keepdim=True).clamp_min(1e-12)
        return linear(h, w) + self.params["readout.bias"][:, None, :]

    def energy(self, x: torch.Tensor, acts: list[torch.Tensor], penalty: str) -> torch.Tensor:
        """(K,) the training penalty of a minibatch, as dgnn.learn.train computes it per model."""
        return sum((a * a).mean((1, 2)) for a in acts)  # activation_energy, candidate by candidate


class StackedMLP(Stack):
    kind = "mlp"

    def __init__(self, models: list[MLP]):
        super().__init__(models)
        self.act = models[0].act
        self.layers = len(models[0].weights)

    @classmethod
    def shape(cls, cfg):
        return {**super().shape(cfg), "activation": cfg.activation}

    @classmethod
    def signature(cls, model):
        return super().signature(model) + model.act.__name__

    def forward(self, x: torch.Tensor):
        """x (K, B, F) -> logits (K, B, C), hidden activations [(K, B, H_l)]: MLP.forward per candidate."""
        acts, h = [], x
        smooth = self.act in (torch.sigmoid, nn.functional.gelu)  # kernels whose vector tail rounds differently
        for i in range(self.layers):
            w, b = self.params[f"weights.{i}"], self.params[f"biases.{i}"]
            z = linear(h, w) + b[:, None, :]  # (K, B, H)
            h = per_candidate(self.act, z) if smooth else self.act(z)
            acts.append(h)
        return self.readout(h), acts


class StackedOscillatorNet(Stack):
    """OscillatorNet's settling for K candidates at once: the state is (K, B, S) and the field mirrors
    OscillatorNet._field operation by operation."""

    kind = "oscillator"

    def __init__(self, models: list[OscillatorNet]):
        super().__init__(models)
        m0 = models[0]
        self.cfg, self.n_in, self.offsets, self.drive = m0.cfg, m0.n_in, m0.offsets, m0.drive
        self.phase, self.recurrent, self.glia = m0.layers[0].phase_param, m0.cfg.recurrent, m0.cfg.glia
        self.hkb = bool(m0.layers[0].b)
        like = self.params[self.names[0]]

        def col(values, dims):
            return _column(values, like, dims)

        c = self.const
        c["max_rate"] = col([m.layers[0].max_rate for m in models], 1)  # (K, 1): the same in every layer
        c["coupling_factor"] = col([1.0 + 4.0 * abs(m.layers[0].b) for m in models], 1)
        c["amp2"] = col([2.0 * m.layers[0].b for m in models], 2)  # the second harmonic's weight
        c["input_width"] = col([m.cfg.input_width for m in models], 2)
        c["input_scale"] = col([m.cfg.input_scale for m in models], 2)
        for l in range(len(m0.layers)):
            c[f"fixed{l}"] = col([m.layers[l].fixed for m in models], 2)
            if self.phase:  # each unit's constant total coupling: fixed x sources, as OscillatorLayer's
                c[f"full{l}"] = col([m.layers[l].fixed * self._sources(m.layers[l]) for m in models], 1)

    @classmethod
    def shape(cls, cfg):
        keys = cfg.model_dump(mode="json", exclude=set(VARYING_MODEL))
        return {**keys, **super().shape(cfg), "second_harmonic": cfg.b != 0}

    @classmethod
    def signature(cls, model):
        return super().signature(model) + json.dumps(cls.shape(model.cfg), sort_keys=True)

    @staticmethod
    def _sources(layer) -> int:
        return layer.lag.shape[1] + 1 + (layer.rec_lag.shape[1] if layer.rec_lag is not None else 0)

    # ------------------------------------------------------------------------------------------ layer pieces
    def _p(self, l: int, name: str) -> torch.Tensor | None:
        return self.params.get(f"layers.{l}.{name}")

    def _total_coupling(self, l: int) -> torch.Tensor:
        """(K, H) OscillatorLayer.total_coupling per candidate."""
        if self.phase:
            s = self.const[f"full{l}"].expand(-1, self._p(l, "lag").shape[1])
        else:
            s = self._p(l, "mag").abs().sum(2) + self._p(l, "bias_mag").abs()
            if self.recurrent:
                s = s + self._p(l, "rec_mag").abs().sum(2)
        return s * self.const["coupling_factor"]

    def _gain(self, l: int) -> torch.Tensor:
        """(K, H) OscillatorLayer.gain per candidate (a factor of exactly one is left out: x * 1 == x)."""
        total = self._total_coupling(l)
        if self.glia:
            g = 2.0 * per_candidate(torch.sigmoid, self._p(l, "glia"))
            rate = g * total
            return g * torch.clamp(rate.clamp_min(1e-12).reciprocal() * self.const["max_rate"], max=1.0)
        return torch.clamp(total.clamp_min(1e-12).reciprocal() * self.const["max_rate"], max=1.0)

    def _complex(self, l: int, k: int):
        """OscillatorLayer.complex_weights(k) per candidate: ((Re, Im) of ff, bias, rec); Im None for weights."""
        def one(name, fixed):
            p = self._p(l, name)
            if p is None:
                return None
            if not self.phase:
                return p, None
            return fixed * torch.cos(_times(k, p)), fixed * torch.sin(_times(k, p))

        f = self.const[f"fixed{l}"]  # (K, 1, 1)
        if self.phase:
            return one("lag", f), one("bias_lag", f[:, 0]), one("rec_lag", f)
        return one("mag", f), one("bias_mag", f), one("rec_mag", f)

    @staticmethod
    def _sums(c, s, wr, wi):
        """OscillatorNet._sums over the stack: (K, B, n) phases -> (K, B, H)."""
        if wi is None:
            return linear(c, wr), linear(s, wr)
        return linear(c, wr) - linear(s, wi), linear(s, wr) + linear(c, wi)

    # ------------------------------------------------------------------------------------------------ dynamics
    def _field(self, x_phase: torch.Tensor):
        """OscillatorNet._field for (K, B, ...) states."""
        n_layers = len(self.offsets) - 1
        gains = [self._gain(l)[:, None, :] for l in range(n_layers)]  # (K, 1, H)
        harmonics = (1, 2) if self.hkb else (1,)
        weights = [{k: self._complex(l, k) for k in harmonics} for l in range(n_layers)]
        n_in, drive, offsets, amp2 = self.n_in, self.drive, self.offsets, self.const["amp2"]
        first = None
        if not drive:
            first = {k: self._sums(torch.cos(_times(k, x_phase)), torch.sin(_times(k, x_phase)), *weights[0][k][0])
                     for k in harmonics}
        drive_rate = self.const["input_scale"] * torch.tanh(x_phase) if drive else None

        def field(t, y):  # y: (K, B, [inputs if drive] + sum H)
            out, start, prev = [], 0, None
            if drive:
                prev = y[:, :, :n_in]
                out.append(drive_rate - torch.sin(prev))
                start = n_in
            for l in range(n_layers):
                th = y[:, :, start + offsets[l]: start + offsets[l + 1]]  # (K, B, H)
                d = None
                for k in harmonics:
                    ck, sk = torch.cos(_times(k, th)), torch.sin(_times(k, th))
                    ff, bias, rec = weights[l][k]
                    if l == 0 and first is not None:
                        zr, zi = first[k]
                    else:
                        zr, zi = self._sums(torch.cos(_times(k, prev)), torch.sin(_times(k, prev)), ff[0], ff[1])
                    zr = zr + bias[0][:, None, :]  # the reference oscillator at phase 0
                    if bias[1] is not None:
                        zi = zi + bias[1][:, None, :]
                    if rec is not None:
                        rr, ri = self._sums(ck, sk, rec[0], rec[1])
                        zr, zi = zr + rr, zi + ri
                    term = zi * ck - zr * sk  # Im(Z_k e^{-i k theta}); the model's 1.0 x and 0.0 + are exact
                    # (up to the sign of an exact zero, which no later operation reads)
                    d = term if k == 1 else d + amp2 * term
                out.append(gains[l] * d)
                prev = th
            return torch.cat(out, dim=2)

        return field

    def _settle(self, x: torch.Tensor, trajectory: bool):
        cfg = self.cfg
        x = x / self.const["input_width"]
        x_phase = self.const["input_scale"] * torch.tanh(x) if not self.drive else x
        field = self._field(x_phase)
        n_state = self.offsets[-1] + (self.n_in if self.drive else 0)
        y0 = torch.zeros(x.shape[0], x.shape[1], n_state, dtype=x.dtype, device=x.device)
        steps = max(1, round(cfg.settle_time / cfg.dt))
        times = torch.linspace(0.0, cfg.settle_time, steps + 1) if trajectory else [0.0, cfg.settle_time]
        out = solve(field, y0, times, method=cfg.method, dt=cfg.dt)
        return (out if trajectory else out[-1]), field

    def forward(self, x: torch.Tensor):
        """x (K, B, F) -> logits (K, B, C), wrapped hidden phases [(K, B, H_l)]: OscillatorNet.forward per candidate."""
        y, _ = self._settle(x, trajectory=False)
        start = self.n_in if self.drive else 0
        phases = [y[:, :, start + a: start + b] for a, b in zip(self.offsets, self.offsets[1:])]
        last = phases[-1]
        logits = self.readout(torch.cat([torch.cos(last), torch.sin(last)], dim=2))
        acts = [per_candidate(torch.atan2, torch.sin(p), torch.cos(p)) for p in phases]
        return logits, acts

    def metabolic_energy(self, x: torch.Tensor) -> torch.Tensor:
        """(K, B) OscillatorNet.metabolic_energy per candidate."""
        traj, field = self._settle(x, trajectory=True)  # (n + 1, K, B, S)
        drift = torch.stack([field(0.0, traj[k]) for k in range(traj.shape[0])])  # (n + 1, K, B, S)
        start = self.n_in if self.drive else 0
        act = (drift[..., start:] ** 2).sum(-1).transpose(0, 1).contiguous()  # (K, n + 1, B)
        syn = sum((self._gain(l) * self._total_coupling(l)).sum(1) for l in range(len(self.offsets) - 1))  # (K,)
        # each candidate's power in a block of its own, so that the gradient of its (scalar) synaptic load sums
        # that block as the model's does; then dgnn.energy.trapezoid along dim 1
        power = settling_power(self.cfg.metabolism, self.offsets[-1], act, syn[:, None, None])  # (K, n + 1, B)
        h = self.cfg.settle_time / (power.shape[1] - 1)
        return h * (power[:, 0] / 2 + power[:, 1:-1].sum(1) + power[:, -1] / 2)  # (K, B)

    def energy(self, x, acts, penalty):
        if penalty == "metabolic":
            return self.metabolic_energy(x).mean(1)
        return super().energy(x, acts, penalty)


STACKS: dict[str, type[Stack]] = {"mlp": StackedMLP, "oscillator": StackedOscillatorNet}


def register_stack(kind: str, cls: type[Stack]) -> None:
    """A model kind joins batched training with a stack whose forward equals its model's, candidate by candidate."""
    STACKS[kind] = cls


def stack(models: list[nn.Module]) -> Stack:
    """The stack of models of one kind and shape."""
    kinds = {m.kind for m in models}
    if len(kinds) != 1 or next(iter(kinds)) not in STACKS:
        raise ValueError(f"models: a stack needs models of one stacked kind, found {sorted(kinds)}")
    cls = STACKS[next(iter(kinds))]
    if len({cls.signature(m) for m in models}) != 1:
        raise ValueError("models: a stack needs models of one shape (equal batch_key: only "
                         f"{', '.join(VARYING_MODEL)} and the initialisation may differ)")
    return cls(models)
