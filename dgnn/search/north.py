"""NORTH* neurogenesis (seed 001 section 6): after every gradient step (or every `every` steps), each hidden layer's
trigger says how many neurons to add and an initialisation says how (Algorithm 4, Table 7).

Triggers (eqs. 28, 31 with the thesis's outer min read as max, see the seeds index; eq. 32):
    T_act    = max(0, ceil(M_l phi_a(f, l)) - floor(gamma_a phi_a(f_0, l) M_l))   phi_a = phi_ED (eq. 27) or phi_OG (29)
    T_weight = max(0, ceil(M_l phi_w(f, l)) - floor(gamma_w phi_w(f_0, l) M_l))   phi_w = eq. 30 on W_l
    T_grad   = #{sigma in SVD(dL/dZ_{l+1} H_{l-1}^T) : sigma > sum_m ||dL/dw_m^in|| + ||dL/dw_m^out||}
The floor of eqs. (28) / (31) is taken on the threshold, as the thesis's own code does (M_l phi_ED is already an
integer, the eps-rank): read with the floor around the difference, a layer of M_l < 1 / (1 - gamma) neurons
(33 for gamma = 0.97) at full rank can never grow, and Figure 28's layers, which start at 4 neurons, would stay there.
Initialisations (section 6.2.2; new fan-in rows scaled to the layer's mean fan-in norm, biases 0):
    select  random candidates, keep those that independently maximise the layer's eps-rank (tie-break: the sum of
            singular values) with the existing post-activations; fan-out 0
    pre     candidates w = (H_{l-1}^T)^+ V_Z a (eq. 33): pre-activations in the kernel of the existing ones; selected
            as above; fan-out 0
    random  random fan-in, fan-out 0 (NORTH-Random)
    weight  random fan-in projected onto ker W_l (eq. 34); fan-out 0
    gradmax fan-in 0, fan-out = the top-k left singular vectors of the auxiliary gradient (scaled to the mean
            fan-out norm); the modified ReLU (derivative 1 at 0) lets the zero fan-in learn
    firefly candidates split existing neurons (fan-out halved, fan-in +/- noise) or are new (random fan-in, fan-out
            of norm eps_Firefly); the k with the largest gradient norm on the minibatch are kept (section 6.2.2)
    nest    bridges the (output, input) pairs in the top quantile of |auxiliary gradient|: fan-in / fan-out
            magnitudes are the root sums of squares of the kept entries, signs random per neuron and weight
These are function-preserving (zero fan-out, or zero fan-in into relu0(0) = 0) except Firefly, which changes the
function by O(eps_Firefly), and NeST, whose neurons are functional from the start (as the thesis notes).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..learn.data import Dataset
from ..progress import Progress
from .gate import EnergyGate, GateConfig
from .growing import (GrowingMLP, finish_growth, InputBuffer, Minibatches, candidate_scores, effective_dimension,
                      orthogonality_gap, train_step, weight_dimension, xavier)
from ..learn.strategy import Budget, Clock, StrategyResult
from .strategy import register_strategy, register_variant

TABLE7 = {"select": "act", "pre": "act", "random": "act", "weight": "weight", "gradmax": "grad", "firefly": "grad",
          "nest": "grad"}


# ------------------------------------------------------------------------------------------------------ triggers
def growth_count(m: int, phi: float, baseline: float, gamma: float) -> int:
    """Eqs. (28) / (31): max(0, ceil(M phi) - floor(gamma phi_0 M)), the neurons above the threshold."""
    return max(0, math.ceil(m * phi - 1e-9) - math.floor(gamma * baseline * m + 1e-9))


def activation_metric(h: torch.Tensor, metric: str, eps: float) -> float:
    return effective_dimension(h, eps) if metric == "ed" else orthogonality_gap(h)


def output_gradient(model: GrowingMLP, layer: int, x: torch.Tensor, y: torch.Tensor):
    """dL/dZ_{l+1} (B, M_{l+1}) (the logits' gradient after the last layer), the layer's input H_{l-1}
    (B, M_{l-1}), and the gradients of its fan-in rows and fan-out columns, on one batch."""
    ins, pres, posts = model.layer_io(x)
    logits = model.readout(posts[-1])
    target = pres[layer + 1] if layer + 1 < len(pres) else logits
    w_in, w_out = model.weights[layer], model.fan_out(layer)
    loss = nn.functional.cross_entropy(logits, y)
    g_z, g_in, g_out = torch.autograd.grad(loss, [target, w_in, w_out])
    return g_z.detach(), ins[layer].detach(), g_in.detach(), g_out.detach()


def auxiliary_gradient(model: GrowingMLP, layer: int, x: torch.Tensor, y: torch.Tensor):
    """dL/dZ_{l+1}^T H_{l-1} (M_{l+1}, M_{l-1}) on a batch, and the per-neuron gradient norms of layer l's
    fan-in rows and fan-out columns (M_l,)."""
    g_z, h, g_in, g_out = output_gradient(model, layer, x, y)
    return g_z.T @ h, g_in.norm(dim=1) + g_out.norm(dim=0)


# ------------------------------------------------------------------------------------------------ initialisations
def _scaled_rows(w: torch.Tensor, norm: float) -> torch.Tensor:
    return w * (norm / w.norm(dim=1, keepdim=True).clamp_min(1e-12))


def select_by_rank(model: GrowingMLP, layer: int, fan_in: torch.Tensor, xbuf: torch.Tensor, k: int,
                   eps: float) -> torch.Tensor:
    """The k rows of fan_in (K, M_{l-1}) whose post-activations on the buffer each maximise the layer's eps-rank
    with the existing neurons (bias 0)."""
    with torch.no_grad():
        ins, _, posts = model.layer_io(xbuf)
        cand = model.act(ins[layer] @ fan_in.T)  # (n, K)
        scores = candidate_scores(posts[layer], cand, eps)
    return fan_in[torch.argsort(scores, descending=True, stable=True)[:k]]


def init_random(model: GrowingMLP, layer: int, k: int, gen: torch.Generator, count: int | None = None) -> torch.Tensor:
    """`count` (default k) Xavier fan-in rows scaled to the layer's mean fan-in norm."""
    n_in = model.weights[layer].shape[1]
    w = xavier(count or k, n_in, gen, model.weights[layer].dtype)
    return _scaled_rows(w, model.fan_in_norm(layer))


def init_pre(model: GrowingMLP, layer: int, count: int, gen: torch.Generator, xbuf: torch.Tensor) -> torch.Tensor:
    """Eq. (33): fan-in rows whose pre-activations on the buffer lie in the kernel of the existing pre-activations."""
    with torch.no_grad():
        ins, pres, _ = model.layer_io(xbuf)
        h, z = ins[layer].double(), pres[layer].double()  # (n, M_{l-1}), (n, M_l)
        n, m = z.shape
        vh = torch.linalg.svd(z.T, full_matrices=True).Vh  # (n, n): rows past the rank span ker Z_l
        kernel = vh[m:].T  # (n, n - M_l)
        a = torch.randn(kernel.shape[1], count, generator=gen, dtype=torch.float64)
        w = (torch.linalg.pinv(h) @ (kernel @ a)).T  # (count, M_{l-1})
    return _scaled_rows(w.to(model.weights[layer].dtype), model.fan_in_norm(layer))


def init_weight(model: GrowingMLP, layer: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """Eq. (34): random fan-in rows projected onto the kernel of W_l (the orthogonal complement of its row space)."""
    w = init_random(model, layer, k, gen).double()
    cur = model.weights[layer].detach().double()
    u, s, vh = torch.linalg.svd(cur, full_matrices=False)
    basis = vh[s > s.max() * 1e-10] if s.numel() else vh[:0]  # (r, M_{l-1}) row space
    w = w - (w @ basis.T) @ basis
    keep = w.norm(dim=1) > 1e-9  # a full-rank W_l leaves no kernel: nothing to add
    return _scaled_rows(w[keep].to(model.weights[layer].dtype), model.fan_in_norm(layer))


def init_gradmax(model: GrowingMLP, layer: int, k: int, aux: torch.Tensor) -> torch.Tensor:
    """GradMax: fan-out columns (M_{l+1}, k') = top left singular vectors of the auxiliary gradient, k' <= M_{l+1}."""
    u, s, _ = torch.linalg.svd(aux.double(), full_matrices=False)
    k = min(k, int((s > 0).sum()))
    return (u[:, :k] * model.fan_out_norm(layer)).to(model.weights[layer].dtype)


def candidate_gradient_norms(model: GrowingMLP, g_z: torch.Tensor, h: torch.Tensor, w_in: torch.Tensor,
                             b_in: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
    """||dL/dw_in|| + ||dL/dw_out|| of each candidate neuron (C,) were it added alone, to first order in its effect
    on the loss: fan-out gradient g_z^T a_c, fan-in gradient H^T ((g_z v_c) * act'(z_c)). w_in (C, M_{l-1}),
    b_in (C,), w_out (M_{l+1}, C); g_z and h from output_gradient."""
    z = (h @ w_in.T + b_in).requires_grad_(True)  # (B, C)
    with torch.enable_grad():
        a = model.act(z)
        da = torch.autograd.grad(a.sum(), z)[0]  # (B, C) act'(z), elementwise
    g_out = g_z.T @ a.detach()  # (M_{l+1}, C)
    g_in = h.T @ ((g_z @ w_out) * da)  # (M_{l-1}, C)
    return g_out.norm(dim=0) + g_in.norm(dim=0)


def init_firefly(model: GrowingMLP, layer: int, k: int, count: int, gen: torch.Generator, eps: float,
                 x: torch.Tensor, y: torch.Tensor):
    """Firefly (Wu et al. 2020) as section 6.2.2 adapts it: candidates are splits of each existing neuron (fan-out
    halved, fan-in + and - uniform noise for the two copies) and `count` new neurons (random fan-in, fan-out of norm
    eps times the layer's); the k of largest gradient norm on (x, y) are kept. Noise norms are eps times the
    layer's mean norms. Returns (split: indices of existing neurons to split, their noise (s, M_{l-1})) and the new
    neurons (w_in, b_in, w_out), the split copies first."""
    w, b, v = model.weights[layer].detach(), model.biases[layer].detach(), model.fan_out(layer).detach()
    m, n_in, dt = w.shape[0], w.shape[1], w.dtype
    noise = _scaled_rows(torch.rand(m, n_in, generator=gen, dtype=dt) * 2 - 1, eps * model.fan_in_norm(layer))
    fresh_in = init_random(model, layer, count, gen)  # (count, M_{l-1})
    fresh_out = _scaled_rows((torch.rand(count, v.shape[0], generator=gen, dtype=dt) * 2 - 1),
                             eps * model.fan_out_norm(layer)).T  # (M_{l+1}, count)
    cand_in = torch.cat([w - noise, fresh_in])  # (m + count, M_{l-1})
    cand_b = torch.cat([b, torch.zeros(count, dtype=dt)])
    cand_out = torch.cat([v / 2, fresh_out], 1)  # (M_{l+1}, m + count)
    g_z, h, _, _ = output_gradient(model, layer, x, y)
    score = candidate_gradient_norms(model, g_z, h, cand_in, cand_b, cand_out)
    keep = torch.argsort(score, descending=True, stable=True)[:k].sort().values  # ascending: splits first
    split = keep[keep < m]
    return (split, noise[split]), (cand_in[keep], cand_b[keep], cand_out[:, keep])


def init_nest(model: GrowingMLP, layer: int, k: int, aux: torch.Tensor, gen: torch.Generator, quantile: float):
    """NeST (Dai et al. 2019) as section 6.2.2 adapts it: the entries of the auxiliary gradient G (M_{l+1}, M_{l-1})
    in its top `quantile` by magnitude pick the (output, input) pairs a new neuron bridges. Its fan-in weight from
    input i is sqrt(sum_j G_ji^2) and its fan-out weight to output j sqrt(sum_i G_ji^2), over the kept pairs; each
    of the k neurons draws its own random sign for every weight. Scaled to the layer's mean norms."""
    g = aux.double()
    keep = g.abs() >= torch.quantile(g.abs().flatten(), 1.0 - quantile)
    sq = g.pow(2) * keep
    mag_in, mag_out = sq.sum(0).sqrt(), sq.sum(1).sqrt()  # (M_{l-1},), (M_{l+1},)
    if float(mag_in.max()) == 0.0:  # a zero gradient picks no pair: nothing to bridge
        return torch.zeros(0, g.shape[1]), torch.zeros(g.shape[0], 0)
    sign = lambda *shape: torch.randint(0, 2, shape, generator=gen).double() * 2 - 1  # noqa: E731
    w_in = _scaled_rows(sign(k, g.shape[1]) * mag_in, model.fan_in_norm(layer))  # (k, M_{l-1})
    w_out = _scaled_rows((sign(g.shape[0], k) * mag_out[:, None]).T, model.fan_out_norm(layer)).T  # (M_{l+1}, k)
    dt = model.weights[layer].dtype
    return w_in.to(dt), w_out.to(dt)


# ------------------------------------------------------------------------------------------------------ strategy
@register_strategy("north")
class North:
    """NORTH* growth of an MLP trained by Adam on minibatches; one step = one minibatch (Algorithm 4)."""

    def __init__(self, init: str = "select", trigger: str | None = None, metric: str = "ed",
                 hidden: list[int] = (4,), max_width: int = 512, buffer: int = 1024, candidates: int = 100,
                 epsilon: float = 0.01, gamma_a: float = 0.97, gamma_w: float = 0.99, lr: float = 1e-3,
                 batch: int = 128, every: int = 1, activation: str = "relu", gate: dict | None = None,
                 firefly_eps: float = 1e-4, nest_quantile: float = 0.4):
        """every: evaluate the triggers after every `every`-th step (1 = Algorithm 4; 0 = never: a static net).
        firefly_eps: Firefly's noise / new fan-out scale (x the layer's norms); nest_quantile: the share of
        auxiliary-gradient entries NeST bridges (section 6.2.2's 1e-4 and 0.4)."""
        if init not in TABLE7:
            raise ConfigError(f"strategy north.init: expected one of {', '.join(TABLE7)}, found {init!r}")
        trigger = trigger or TABLE7[init]
        if trigger not in ("act", "weight", "grad"):
            raise ConfigError(f"strategy north.trigger: expected act, weight or grad, found {trigger!r}")
        if init in ("gradmax", "nest") and trigger != "grad":
            raise ConfigError(f"strategy north: init {init} reads the auxiliary gradient of trigger grad; set trigger: grad")
        if not 0 < nest_quantile <= 1 or firefly_eps <= 0:
            raise ConfigError(f"strategy north: nest_quantile must be in (0, 1] and firefly_eps > 0, found "
                              f"{nest_quantile} and {firefly_eps}")
        if metric not in ("ed", "og"):
            raise ConfigError(f"strategy north.metric: expected ed (eq. 27) or og (eq. 29), found {metric!r}")
        if not hidden or min(hidden) < 1 or max(hidden) > max_width:
            raise ConfigError(f"strategy north.hidden: widths must be in 1..max_width={max_width}, found {list(hidden)}")
        if buffer <= max_width:
            raise ConfigError(f"strategy north.buffer: the activation buffer must hold more samples than the widest "
                              f"layer (eq. 27 needs n > M_l): buffer={buffer} <= max_width={max_width}")
        if activation not in ("relu", "tanh"):
            raise ConfigError(f"strategy north.activation: expected relu or tanh, found {activation!r}")
        self.init, self.trigger, self.metric = init, trigger, metric
        self.hidden, self.max_width, self.buffer, self.candidates = list(hidden), max_width, buffer, candidates
        self.eps, self.gamma_a, self.gamma_w, self.lr, self.batch, self.every = epsilon, gamma_a, gamma_w, lr, batch, every
        self.activation = activation
        self.gate = GateConfig(**gate) if gate is not None else None
        self.firefly_eps, self.nest_quantile = firefly_eps, nest_quantile

    # -- one layer's decision ---------------------------------------------------------------------------------
    def _requested(self, model, layer, posts, xb, yb, baseline) -> tuple[int, torch.Tensor | None]:
        """Neurons layer `layer` asks for; posts: the buffer's post-activations (act trigger only)."""
        m = model.widths[layer]
        if self.trigger == "act":
            h = posts[layer]
            return growth_count(m, activation_metric(h, self.metric, self.eps), baseline[layer], self.gamma_a), None
        if self.trigger == "weight":
            return growth_count(m, weight_dimension(self._w(model, layer), self.eps), baseline[layer], self.gamma_w), None
        aux, norms = auxiliary_gradient(model, layer, xb, yb)
        sv = torch.linalg.svdvals(aux.double())
        return int((sv > float(norms.sum())).sum()), aux

    @staticmethod
    def _w(model, layer) -> torch.Tensor:
        return torch.cat([model.weights[layer], model.biases[layer][:, None]], 1).detach()

    def _baseline(self, model, xbuf) -> list[float]:
        """phi(f_0, l) of every layer at initialisation (the act / weight triggers' reference)."""
        if self.trigger == "act":
            with torch.no_grad():
                posts = model.layer_io(xbuf)[2]
            return [activation_metric(h, self.metric, self.eps) for h in posts]
        if self.trigger == "weight":
            return [weight_dimension(self._w(model, l), self.eps) for l in range(len(model.widths))]
        return [0.0] * len(model.widths)

    def new_neurons(self, model, layer, k, gen, xbuf, aux, batch=None):
        """(w_in, b_in, w_out) for up to k new neurons of `layer` by this strategy's initialisation; batch = the
        step's (x, y), which Firefly scores its candidates on (it also splits existing neurons in place)."""
        n_out = model.fan_out(layer).shape[0]
        if self.init == "firefly":
            if batch is None:
                raise ValueError("north init firefly scores its candidates on a minibatch: pass batch=(x, y)")
            (split, noise), new = init_firefly(model, layer, k, self.candidates + k, gen, self.firefly_eps, *batch)
            with torch.no_grad():  # the kept splits: the existing copy takes + noise and half the fan-out
                model.weights[layer][split] += noise
                model.fan_out(layer)[:, split] /= 2
            return new
        if self.init == "nest":
            w_in, w_out = init_nest(model, layer, k, aux, gen, self.nest_quantile)
        elif self.init == "gradmax":
            w_out = init_gradmax(model, layer, k, aux)
            w_in = torch.zeros(w_out.shape[1], model.weights[layer].shape[1], dtype=w_out.dtype)
        else:
            if self.init == "random":
                w_in = init_random(model, layer, k, gen)
            elif self.init == "weight":
                w_in = init_weight(model, layer, k, gen)
            else:
                count = self.candidates + k
                pool = init_pre(model, layer, count, gen, xbuf) if self.init == "pre" else init_random(model, layer, k, gen, count)
                w_in = select_by_rank(model, layer, pool, xbuf, k, self.eps)
            w_out = torch.zeros(n_out, w_in.shape[0], dtype=w_in.dtype)
        return w_in, torch.zeros(w_in.shape[0], dtype=w_in.dtype), w_out

    # -- the fit ----------------------------------------------------------------------------------------------
    def fit(self, data: Dataset, budget: Budget, seed: int, progress: bool = False,
            model: GrowingMLP | None = None) -> StrategyResult:
        gen = torch.Generator().manual_seed(int(seed) + 104729)
        x, y = torch.as_tensor(data.x_train, dtype=torch.float32), torch.as_tensor(data.y_train)
        model = model or GrowingMLP(data.n_features, self.hidden, data.n_classes, gen, self.activation)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        buf = InputBuffer(self.buffer, data.n_features)
        buf.push(x[torch.randperm(len(y), generator=gen)[: self.buffer]])
        baseline = self._baseline(model, buf.get())
        gate = EnergyGate(self.gate, model.widths) if self.gate is not None else None
        layers = len(model.widths)
        hist = {"loss": [], "widths": [], "grown": [], "requested": [], "reserve": []}
        clock = Clock(budget)
        bar = Progress(total=budget.steps or None, enabled=progress, unit="step", desc=f"north/{self.init}")
        batches = Minibatches(len(y), self.batch, gen)
        while not clock.done():
            idx = batches.next()
            loss, acts = train_step(model, opt, x[idx], y[idx])
            buf.push(x[idx])
            if gate is not None:
                gate.step(model, acts)
            grown, asked = np.zeros(layers, dtype=np.int64), np.zeros(layers, dtype=np.int64)
            if self.every and (clock.steps + 1) % self.every == 0:
                xbuf = buf.get()
                posts = None
                if self.trigger == "act":  # insertion preserves the function: one pass serves every layer
                    with torch.no_grad():
                        posts = model.layer_io(xbuf)[2]
                for l in range(layers):
                    k, aux = self._requested(model, l, posts, x[idx], y[idx], baseline)
                    k = min(k, self.max_width - model.widths[l])
                    asked[l] = k
                    if gate is not None:
                        k = gate.grow(l, k)
                    if k > 0:
                        w_in, b_in, w_out = self.new_neurons(model, l, k, gen, xbuf, aux, (x[idx], y[idx]))
                        if w_in.shape[0]:
                            model.add(l, w_in, b_in, w_out, opt)
                            grown[l] = w_in.shape[0]
            hist["loss"].append(float(loss))
            hist["widths"].append(model.widths)
            hist["grown"].append(grown)
            hist["requested"].append(asked)
            if gate is not None:
                hist["reserve"].append(gate.reserve())
            clock.tick(3.0 * model.macs()["macs"] * len(idx))  # forward + backward MACs of the step
            bar.update(1)
        bar.close()
        return finish_growth(model, data, clock, hist, gate)


NorthSelect = register_variant(North, "north_select", "NORTH-Select: T_act + Select (Table 7).", init="select")
NorthPre = register_variant(North, "north_pre", "NORTH-Pre: T_act + pre-activation initialisation, eq. (33).", init="pre")
NorthRandom = register_variant(North, "north_random", "NORTH-Random: T_act + RandomInit.", init="random")
NorthWeight = register_variant(North, "north_weight", "NORTH-Weight: T_weight + kernel projection, eq. (34).", init="weight")
GradMax = register_variant(North, "gradmax", "GradMax in the NORTH* framework: T_grad + GradMax initialisation.", init="gradmax")
Firefly = register_variant(North, "firefly", "Firefly in the NORTH* framework: T_grad + Firefly initialisation.", init="firefly")
NeST = register_variant(North, "nest", "NeST in the NORTH* framework: T_grad + NeST initialisation.", init="nest")


@register_strategy("static_mlp")
class StaticMLP(North):
    """The same MLP, optimiser and minibatches without growth: Small / Medium / Big Static of section 6.3."""

    def __init__(self, hidden: list[int] = (64,), lr: float = 1e-3, batch: int = 128, activation: str = "relu"):
        super().__init__(hidden=hidden, max_width=max(hidden), buffer=max(hidden) + 1, lr=lr, batch=batch,
                         activation=activation, every=0)
