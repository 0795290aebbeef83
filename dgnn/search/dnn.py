"""Dopaminergic neural nets (DNN, seed 004 section 3.2): a fixed Kaiming-uniform random hidden layer (optionally
k-capped) and an output layer learned by plasticity, against SignSGD (eq. 5) and Adam on the same network.

Reading of the plasticity rule. Taken literally, the section's update adds eps1 to w_ij whenever output j's
squared error is below 1/4 and the loss is above eps0; with softmax outputs that strengthens every non-target
output of a wrong prediction and scores 0% on digits (measured: it learns the anti-classifier). "Strengthen links
to outputs with small error, weaken the others" does the same. What the text describes is dopamine rewarding the
synapses whose firing led to the outcome: a link i -> j fired when hidden unit i is active and output j won. We
implement that as a three-factor rule: after an unfavourable outcome (a wrong prediction) the links that fired are
depressed and the links from the same active units to the correct output potentiated,
dw_ij = eps1 [h_i > 0] (l_j - yhat_j), while a favourable outcome leaves the weights as they are."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..learn.data import Dataset
from ..progress import Progress
from .nne import SparseNet, sign_step
from ..learn.strategy import Budget, Clock, StrategyResult, finish
from .strategy import register_strategy


class CappedNet(SparseNet):
    """SparseNet whose hidden layer keeps only its k largest activations per sample (k = 0: no cap)."""

    def __init__(self, mask: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, k: int = 0):
        super().__init__(mask, w1, w2)
        self.k = k
        self.w1.requires_grad_(False)  # the random layer never learns (section 3.2)

    def forward(self, x: torch.Tensor):
        h = torch.relu(x @ (self.w1 * self.mask).T)  # (B, h)
        if self.k:
            h = h * (h >= h.topk(self.k, dim=1).values[:, -1:])  # the top-k fire, the rest are inhibited
        return self.readout(h), [h]


def dopamine_step(net: CappedNet, x: torch.Tensor, y: torch.Tensor, lr: float) -> float:
    """One plasticity step on a minibatch: dw = lr sum_batch [h_i > 0] (l_j - yhat_j); returns the batch CE."""
    with torch.no_grad():
        logits, (h,) = net(x)
        c = logits.shape[1]
        s = nn.functional.one_hot(y, c).to(h.dtype) - nn.functional.one_hot(logits.argmax(1), c).to(h.dtype)  # (B, C)
        net.readout.weight += lr * s.T @ (h > 0).to(h.dtype)  # zero rows for correct predictions
        return float(nn.functional.cross_entropy(logits, y))


@register_strategy("dnn")
class DNN:
    """Random hidden layer + an output layer trained by `rule`: dopamine (section 3.2, our reading), signsgd
    (eq. 5) or sgd (Adam on cross-entropy). One step = one epoch over the training set."""

    RULES = ("dopamine", "signsgd", "sgd")

    def __init__(self, hidden: int = 1000, k_cap: int = 0, rule: str = "dopamine", lr: float | None = None,
                 batch: int | None = None):
        if rule not in self.RULES:
            raise ConfigError(f"strategy dnn.rule: expected one of {', '.join(self.RULES)}, found {rule!r}")
        if hidden < 1 or not 0 <= k_cap <= hidden:
            raise ConfigError(f"strategy dnn: need hidden >= 1 and 0 <= k_cap <= hidden, found {hidden}, {k_cap}")
        self.hidden, self.k_cap, self.rule = hidden, k_cap, rule
        self.lr = lr if lr is not None else {"dopamine": 0.01, "signsgd": 1e-3, "sgd": 1e-3}[rule]
        self.batch = batch if batch is not None else {"dopamine": 1, "signsgd": 50, "sgd": 50}[rule]

    def fit(self, data: Dataset, budget: Budget, seed: int, progress: bool = False) -> StrategyResult:
        gen = torch.Generator().manual_seed(int(seed) + 15485863)
        d, c = data.n_features, data.n_classes
        w1 = (torch.rand(self.hidden, d, generator=gen) * 2 - 1) * math.sqrt(6.0 / d)  # Kaiming uniform, ReLU
        net = CappedNet(torch.ones(self.hidden, d, dtype=torch.bool), w1, torch.zeros(c, self.hidden), self.k_cap)
        x, y = torch.as_tensor(data.x_train, dtype=torch.float32), torch.as_tensor(data.y_train)
        opt = torch.optim.Adam([net.readout.weight], lr=self.lr) if self.rule == "sgd" else None
        clock = Clock(budget)
        hist = {"loss": []}
        bar = Progress(total=budget.steps or None, enabled=progress, unit="epoch", desc=f"dnn/{self.rule}")
        while not clock.done():
            order = torch.randperm(len(y), generator=gen)
            losses = []
            for i in range(0, len(y), self.batch):
                idx = order[i:i + self.batch]
                if self.rule == "dopamine":
                    losses.append(dopamine_step(net, x[idx], y[idx], self.lr))
                elif self.rule == "signsgd":
                    losses.append(sign_step(net, x[idx], y[idx], self.lr))
                else:
                    loss = nn.functional.cross_entropy(net(x[idx])[0], y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    losses.append(float(loss.detach()))
            hist["loss"].append(sum(losses) / len(losses))
            clock.tick()
            bar.update(1)
        bar.close()
        return finish(net, data, clock, hist)
