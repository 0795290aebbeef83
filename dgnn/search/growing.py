"""An MLP whose hidden layers gain and lose neurons during training (seed 001 sections 6-7), with the orthogonality
metrics the growth and pruning triggers read and an activation buffer of recent inputs.

Layer l holds W_l (M_l, M_{l-1}) and b_l (M_l,); adding k neurons appends k rows to W_l, b_l and k columns to the
fan-in of layer l + 1 (the readout after the last layer); removing neurons deletes them. An optimiser passed to
`add` / `remove` keeps its state for the surviving entries (Adam moments are carried, new entries start at 0).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..learn.models import Readout
from ..learn.strategy import finish


def relu0(x: torch.Tensor) -> torch.Tensor:
    """ReLU with derivative 1 at 0 (GradMax's modified ReLU): a neuron with zero fan-in still learns."""
    return torch.where(x >= 0, x, torch.zeros_like(x))


ACTIVATIONS = {"relu": relu0, "tanh": torch.tanh}


def xavier(rows: int, cols: int, gen: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """Xavier-uniform (rows, cols) matrix (Table 8's base initialisation)."""
    bound = math.sqrt(6.0 / (rows + cols))
    return (torch.rand(rows, cols, generator=gen, dtype=dtype) * 2 - 1) * bound


def swap_parameter(opt: torch.optim.Optimizer | None, old: nn.Parameter, new: nn.Parameter, remap) -> None:
    """Point `opt` at `new` instead of `old`; state tensors shaped like `old` go through remap (old -> new shape)."""
    if opt is None:
        return
    state = opt.state.pop(old, None)
    if state is not None:
        opt.state[new] = {k: remap(v) if torch.is_tensor(v) and v.shape == old.shape else v for k, v in state.items()}
    for group in opt.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]


class GrowingMLP(nn.Module):
    """Fully connected classifier with resizable hidden layers; forward returns (logits, hidden activations)."""

    kind = "growing_mlp"

    def __init__(self, n_in: int, widths: list[int], n_out: int, gen: torch.Generator, activation: str = "relu",
                 dtype=torch.float32):
        super().__init__()
        self.act = ACTIVATIONS[activation]
        self.activation = activation
        sizes = [n_in, *widths]
        self.weights = nn.ParameterList([nn.Parameter(xavier(b, a, gen, dtype)) for a, b in zip(sizes, sizes[1:])])
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(b, dtype=dtype)) for b in sizes[1:]])
        self.readout = Readout(sizes[-1], n_out, gen, dtype)
        with torch.no_grad():
            self.readout.weight.copy_(xavier(n_out, sizes[-1], gen, dtype))

    @property
    def widths(self) -> list[int]:
        return [int(b.numel()) for b in self.biases]

    def forward(self, x: torch.Tensor):
        acts = []
        h = x
        for w, b in zip(self.weights, self.biases):
            h = self.act(h @ w.T + b)  # (B, M_l)
            acts.append(h)
        return self.readout(h), acts

    def layer_io(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Inputs H_{l-1} (B, M_{l-1}), pre-activations Z_l (B, M_l) and post-activations H_l of every layer."""
        ins, pres, posts = [], [], []
        h = x
        for w, b in zip(self.weights, self.biases):
            ins.append(h)
            z = h @ w.T + b
            h = self.act(z)
            pres.append(z)
            posts.append(h)
        return ins, pres, posts

    def fan_out(self, layer: int) -> nn.Parameter:
        """The matrix whose columns are layer `layer`'s fan-out weights."""
        return self.weights[layer + 1] if layer + 1 < len(self.weights) else self.readout.weight

    def _set_fan_out(self, layer: int, p: nn.Parameter) -> None:
        if layer + 1 < len(self.weights):
            self.weights[layer + 1] = p
        else:
            self.readout.weight = p

    def fan_in_norm(self, layer: int) -> float:
        """Mean L2 norm of the layer's fan-in rows (weights and bias): the scale new neurons are given."""
        w = torch.cat([self.weights[layer], self.biases[layer][:, None]], 1)
        return float(w.detach().norm(dim=1).mean()) if w.shape[0] else 1.0

    def fan_out_norm(self, layer: int) -> float:
        w = self.fan_out(layer)
        return float(w.detach().norm(dim=0).mean()) if w.shape[1] else 1.0

    @torch.no_grad()
    def add(self, layer: int, w_in: torch.Tensor, b_in: torch.Tensor, w_out: torch.Tensor,
            opt: torch.optim.Optimizer | None = None) -> None:
        """Append k neurons to `layer`: fan-in rows w_in (k, M_{l-1}), biases b_in (k,), fan-out columns w_out
        (M_{l+1}, k). Zero w_out (or zero w_in and b_in, with relu0) leaves the network's function unchanged."""
        k = w_in.shape[0]
        old_w, old_b, old_o = self.weights[layer], self.biases[layer], self.fan_out(layer)
        new_w = nn.Parameter(torch.cat([old_w, w_in.to(old_w.dtype)], 0))
        new_b = nn.Parameter(torch.cat([old_b, b_in.to(old_b.dtype)], 0))
        new_o = nn.Parameter(torch.cat([old_o, w_out.to(old_o.dtype)], 1))
        rows = lambda v: torch.cat([v, v.new_zeros(k, *v.shape[1:])], 0)  # noqa: E731
        swap_parameter(opt, old_w, new_w, rows)
        swap_parameter(opt, old_b, new_b, rows)
        swap_parameter(opt, old_o, new_o, lambda v: torch.cat([v, v.new_zeros(v.shape[0], k)], 1))
        self.weights[layer], self.biases[layer] = new_w, new_b
        self._set_fan_out(layer, new_o)

    @torch.no_grad()
    def remove(self, layer: int, idx: torch.Tensor, opt: torch.optim.Optimizer | None = None) -> None:
        """Delete the neurons `idx` of `layer` (their fan-in rows and fan-out columns)."""
        keep = torch.ones(self.widths[layer], dtype=torch.bool)
        keep[torch.as_tensor(idx, dtype=torch.long)] = False
        old_w, old_b, old_o = self.weights[layer], self.biases[layer], self.fan_out(layer)
        new_w, new_b = nn.Parameter(old_w[keep].clone()), nn.Parameter(old_b[keep].clone())
        new_o = nn.Parameter(old_o[:, keep].clone())
        swap_parameter(opt, old_w, new_w, lambda v: v[keep])
        swap_parameter(opt, old_b, new_b, lambda v: v[keep])
        swap_parameter(opt, old_o, new_o, lambda v: v[:, keep])
        self.weights[layer], self.biases[layer] = new_w, new_b
        self._set_fan_out(layer, new_o)

    def macs(self) -> dict[str, float]:
        """Multiply-accumulates and transcendental calls per inference at the current widths."""
        mac = sum(w.numel() for w in self.weights) + self.readout.weight.numel()
        trans = sum(b.numel() for b in self.biases) if self.activation == "tanh" else 0
        return {"macs": float(mac), "transcendentals": float(trans)}


class Minibatches:
    """Endless minibatch indices over n samples, reshuffled by the seeded generator at every epoch."""

    def __init__(self, n: int, batch: int, gen: torch.Generator):
        self.n, self.batch, self.gen = n, batch, gen
        self.order, self.pos = torch.randperm(n, generator=gen), 0

    def next(self) -> torch.Tensor:
        if self.pos >= self.n:
            self.order, self.pos = torch.randperm(self.n, generator=self.gen), 0
        idx = self.order[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return idx


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor):
    """One cross-entropy gradient step; returns the loss (detached) and the batch's hidden activations."""
    logits, acts = model(x)
    loss = nn.functional.cross_entropy(logits, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach(), acts


class InputBuffer:
    """FIFO of the most recent training inputs (capacity samples); activations are recomputed from it with the
    current weights whenever a metric is read."""

    def __init__(self, capacity: int, n_in: int, dtype=torch.float32):
        self.data = torch.zeros(capacity, n_in, dtype=dtype)
        self.count, self.head = 0, 0

    def push(self, x: torch.Tensor) -> None:
        cap = self.data.shape[0]
        x = x[-cap:]
        idx = (self.head + torch.arange(len(x))) % cap
        self.data[idx] = x.to(self.data.dtype)
        self.head = int((self.head + len(x)) % cap)
        self.count = min(cap, self.count + len(x))

    def get(self) -> torch.Tensor:
        return self.data[: self.count] if self.count < self.data.shape[0] else self.data


# ------------------------------------------------------------------------------------------------------- metrics
def singular_values(h: torch.Tensor) -> torch.Tensor:
    """Singular values of (1 / sqrt n) H for H (n samples, M neurons), in float64."""
    h = h.double()
    return torch.linalg.svdvals(h / math.sqrt(h.shape[0]))


def effective_dimension(h: torch.Tensor, eps: float = 0.01) -> float:
    """phi_ED, eq. (27): the eps-numerical rank of (1 / sqrt n) H over the number of neurons M."""
    m = h.shape[1]
    return float((singular_values(h) > eps).sum()) / m if m else 0.0


def orthogonality_gap(h: torch.Tensor) -> float:
    """phi_OG, eq. (29): 1 - || H^T H / ||H||_F^2 - I / n ||_F, with H^T H the (n x n) sample covariance."""
    h = h.double().T  # (M, n): columns are samples
    n = h.shape[1]
    total = float((h * h).sum())
    if total == 0:
        return 0.0
    gram = h.T @ h / total  # (n, n)
    return 1.0 - float(torch.linalg.matrix_norm(gram - torch.eye(n, dtype=h.dtype) / n))


def weight_dimension(w: torch.Tensor, eps: float = 0.01) -> float:
    """phi_w^ED, eq. (30): eps-rank of (1 / sqrt n) W_l (n = fan-in incl. bias) over M_l."""
    w = w.double()
    m, n = w.shape
    return float((torch.linalg.svdvals(w / math.sqrt(n)) > eps).sum()) / m if m else 0.0


def candidate_scores(existing: torch.Tensor, candidates: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """For each candidate neuron, the eps-rank of the layer with it added, #{sigma([existing | candidate] / sqrt n)
    > eps}, plus a tie-break in [0, 1/2) that grows with the candidate's variance outside the existing span.
    existing (n, M), candidates (n, K) -> (K,).

    Exact and O(M^3 + M^2 K) instead of K SVDs: the squared singular values are the eigenvalues of the bordered
    Gram matrix [[G, b], [b^T, d]] (G = E^T E / n, b = E^T c / n, d = c^T c / n). By Sylvester's law of inertia
    its eigenvalues above t = eps^2 number those of G plus one if the Schur complement
    s = d - t - b^T (G - t I)^{-1} b is positive; s is also the tie-break (the thesis breaks ties by the sum of
    singular values, which has no such shortcut)."""
    e, c = existing.double(), candidates.double()
    n = e.shape[0]
    t = eps * eps
    lam, u = torch.linalg.eigh(e.T @ e / n)  # (M,), (M, M)
    beta = u.T @ (e.T @ c / n)  # (M, K)
    d = (c * c).sum(0) / n  # (K,)
    gap = lam - t
    gap = torch.where(gap.abs() < 1e-12, torch.full_like(gap, 1e-12), gap)  # an eigenvalue exactly at t
    schur = d - t - (beta * beta / gap[:, None]).sum(0)  # (K,)
    counts = float((lam > t).sum()) + (schur > 0).double()
    tie = 0.5 * torch.sigmoid(schur / max(float(d.abs().max()), 1e-300))  # monotone in s, in (0, 1/2)
    return counts + tie


def finish_growth(model: GrowingMLP, data, clock, hist: dict, gate=None):
    """End of a growing / pruning fit (NORTH*, DYNO): the gate's ledger joins the history (or the unused reserve
    column leaves it), then the test evaluation, with the final neuron count in the metrics."""
    if gate is None:
        hist.pop("reserve", None)
    else:
        hist.update({f"ledger_{k}": v for k, v in gate.ledger().items()})
    res = finish(model, data, clock, hist)
    res.metrics["neurons"] = int(sum(model.widths))
    return res
