"""Candidates of one shape trained as one batch: dgnn.learn.train for K models at once, with each candidate's
trained weights, history and epoch count equal to its own train() run (to the bit on CPU).

One batched forward and backward per minibatch (dgnn.learn.stacked), one loss summed over candidates (so each
candidate's gradient is its own), torch's Adam / SGD arithmetic over the stacked parameters with per-candidate
learning rates and weight decays, each candidate's own minibatch order (its seed's generator, as train() draws it),
and per-candidate early stopping: a candidate whose patience ran out leaves the batch with its best epoch's
weights, and the rest go on without it.
"""
from __future__ import annotations

import json
import math
import time

import torch
from torch import nn

from .config import TrainConfig
from .data import Dataset
from .stacked import VARYING_TRAIN, Stack, stack
from .train import TrainResult

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which train() uses


class _Optimizer:
    """Per-candidate learning rates and weight decays over a stack's parameters."""

    def __init__(self, st: Stack, cfgs: list[TrainConfig]):
        self.st, self.lr, self.wd = st, [c.lr for c in cfgs], [c.weight_decay for c in cfgs]
        self.state: dict[str, dict[str, torch.Tensor]] = {}

    def take(self, rows: list[int]) -> None:
        """Keep the state of these candidates (call with the stack's take)."""
        self.lr, self.wd = [self.lr[r] for r in rows], [self.wd[r] for r in rows]
        idx = torch.as_tensor(rows)
        self.state = {n: {k: v.index_select(0, idx.to(v.device)) for k, v in s.items()} for n, s in self.state.items()}

    def _decayed(self, p: torch.Tensor) -> torch.Tensor:
        """grad + weight_decay x param, as torch's grad.add(param, alpha=weight_decay) (a fused multiply-add)."""
        g = p.grad
        if not any(self.wd):
            return g
        if len(set(self.wd)) == 1:
            return g.add(p, alpha=self.wd[0])
        g = g.clone()
        for i, wd in enumerate(self.wd):
            if wd:
                g[i] = g[i].add(p[i], alpha=wd)
        return g


class StackedAdam(_Optimizer):
    """torch.optim.Adam's single-tensor step (its CPU default), candidate by candidate in one pass."""

    def __init__(self, st, cfgs):
        super().__init__(st, cfgs)
        self.steps = 0  # every candidate in the batch has taken the same steps

    def step(self) -> None:
        b1, b2 = BETAS
        self.steps += 1
        bc1, bc2 = 1 - b1 ** self.steps, 1 - b2 ** self.steps
        negs: dict[int, torch.Tensor] = {}  # -lr / bc1 per candidate, shaped for parameters of each rank
        with torch.no_grad():
            for name, p in self.st.params.items():
                if p.grad is None:
                    continue
                g = self._decayed(p)
                s = self.state.setdefault(name, {"m": torch.zeros_like(p), "v": torch.zeros_like(p)})
                s["m"].lerp_(g, 1 - b1)
                s["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (s["v"].sqrt() / bc2 ** 0.5).add_(EPS)
                if p.dim() not in negs:
                    neg = torch.tensor([-(lr / bc1) for lr in self.lr], dtype=p.dtype, device=p.device)
                    negs[p.dim()] = neg.view(-1, *([1] * (p.dim() - 1)))
                p.add_(negs[p.dim()] * s["m"] / denom)  # addcdiv_(m, denom, value=-lr / bc1): value x m / denom, +


class StackedSGD(_Optimizer):
    """torch.optim.SGD's single-tensor step (momentum, no dampening or Nesterov, as train() builds it)."""

    def __init__(self, st, cfgs):
        super().__init__(st, cfgs)
        self.momentum = cfgs[0].momentum

    def step(self) -> None:
        with torch.no_grad():
            for name, p in self.st.params.items():
                if p.grad is None:
                    continue
                g = self._decayed(p)
                if self.momentum:
                    if name not in self.state:
                        self.state[name] = {"buf": g.detach().clone()}
                    else:
                        self.state[name]["buf"].mul_(self.momentum).add_(g)
                    g = self.state[name]["buf"]
                for i, lr in enumerate(self.lr):  # add_(g, alpha=-lr) is fused: one call per learning rate
                    p[i].add_(g[i], alpha=-lr)


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(K,) F.cross_entropy per candidate: one log-softmax, then each candidate's own mean (its summation order)."""
    lp = torch.log_softmax(logits, -1)  # (K, B, C)
    return torch.stack([nn.functional.nll_loss(a, b) for a, b in zip(lp.unbind(0), y.unbind(0))])


@torch.no_grad()
def _accuracy(st: Stack, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> list[float]:
    """dgnn.learn.train.accuracy per candidate (the same chunks, so the same products)."""
    hits = torch.zeros(len(st), dtype=torch.long, device=x.device)
    for i in range(0, len(y), batch):
        xb = x[i:i + batch]
        logits = st.forward(xb.expand(len(st), *xb.shape))[0]  # (K, B, C)
        hits += (logits.argmax(2) == y[i:i + batch]).sum(1)
    return [h / len(y) for h in hits.tolist()]


def train_batch(models: list[nn.Module], data: Dataset, cfgs: list[TrainConfig], lams: list[float],
                energy: str = "activation", seeds: list[int] | None = None, dtype=torch.float32,
                device=None) -> list[TrainResult | FloatingPointError]:
    """Train models of one shape (equal batch_key) together, each as train(model, data, cfg, lam, energy, seed)
    would: per candidate its TrainResult (the model holds its best epoch's weights; seconds is its share of the
    batch's time), or the FloatingPointError that train() would have raised."""
    k = len(models)
    seeds = list(range(k)) if seeds is None else seeds
    if not (len(cfgs) == len(lams) == len(seeds) == k) or k == 0:
        raise ValueError(f"models, cfgs, lams, seeds: need equal non-zero lengths, found {k}, {len(cfgs)}, "
                         f"{len(lams)}, {len(seeds)}")
    shared = {json.dumps(c.model_dump(mode="json", exclude=set(VARYING_TRAIN)), sort_keys=True) for c in cfgs}
    if len(shared) != 1:
        raise ValueError("cfgs: one batch needs one optimizer, batch size and momentum (only "
                         f"{', '.join(VARYING_TRAIN)} may differ)")
    return _Batch(models, data, cfgs, lams, energy, seeds, dtype, device).run()


class _Batch:
    """The state of one batched training: which candidates are still in, their histories and best epochs."""

    def __init__(self, models, data, cfgs, lams, energy, seeds, dtype, device):
        self.models, self.cfgs, self.lams, self.energy = models, cfgs, lams, energy
        self.gens = [torch.Generator().manual_seed(int(s) + 7919) for s in seeds]  # train()'s, on the CPU
        self.x = torch.as_tensor(data.x_train, dtype=dtype, device=device)
        self.y = torch.as_tensor(data.y_train, device=device)
        self.xv = torch.as_tensor(data.x_val, dtype=dtype, device=device)
        self.yv = torch.as_tensor(data.y_val, device=device)
        self.st = stack(models)
        self.opt = (StackedAdam if cfgs[0].optimizer == "adam" else StackedSGD)(self.st, cfgs)
        k = len(models)
        self.alive = list(range(k))  # the candidate in each row of the stack
        self.best: list[dict | None] = [None] * k
        self.best_acc, self.stale, self.share = [-1.0] * k, [0] * k, [0.0] * k
        self.hist = [{"loss": [], "energy": [], "val_accuracy": []} for _ in range(k)]
        self.out: list[TrainResult | FloatingPointError | None] = [None] * k

    def run(self) -> list:
        epoch = 0
        while self.alive:
            epoch += 1
            t0 = time.perf_counter()
            loss, e = self._epoch()
            acc = _accuracy(self.st, self.xv, self.yv)
            spent = (time.perf_counter() - t0) / len(self.alive)
            self._close_epoch(epoch, loss, e, acc, spent)
        return self.out

    def _epoch(self) -> tuple[list[float], list[float]]:
        """One pass over the training set, each candidate in its own order; (summed loss, summed energy) x samples."""
        n, bs = len(self.y), self.cfgs[0].batch_size
        orders = torch.stack([torch.randperm(n, generator=self.gens[c]) for c in self.alive]).to(self.x.device)
        lam = torch.tensor([self.lams[c] for c in self.alive], dtype=self.x.dtype, device=self.x.device)
        tot_loss, tot_e = [0.0] * len(self.alive), [0.0] * len(self.alive)
        for i in range(0, n, bs):
            idx = orders[:, i:i + bs]  # (K, B)
            xb = self.x[idx]  # (K, B, F)
            logits, acts = self.st.forward(xb)
            e = self.st.energy(xb, acts, self.energy)  # (K,)
            loss = _cross_entropy(logits, self.y[idx]) + lam * e  # (K,)
            for p in self.st.params.values():
                p.grad = None
            loss.sum().backward()
            self.opt.step()
            b = idx.shape[1]
            for j, (lv, ev) in enumerate(zip(loss.tolist(), e.tolist())):
                tot_loss[j] += lv * b
                tot_e[j] += ev * b
        return tot_loss, tot_e

    def _close_epoch(self, epoch: int, loss: list, e: list, acc: list, spent: float) -> None:
        """train()'s end of epoch for every candidate; those that stop leave the stack."""
        n = len(self.y)
        keep = []
        for j, c in enumerate(self.alive):
            cfg, h = self.cfgs[c], self.hist[c]
            self.share[c] += spent
            h["loss"].append(loss[j] / n)
            h["energy"].append(e[j] / n)
            h["val_accuracy"].append(acc[j])
            if not math.isfinite(loss[j]):
                self.out[c] = FloatingPointError(f"training diverged at epoch {epoch} (loss {loss[j]}); lower train.lr")
                continue
            if acc[j] > self.best_acc[c]:
                self.best[c], self.best_acc[c], self.stale[c] = self.st.state(j), acc[j], 0
            else:
                self.stale[c] += 1
            if self.stale[c] >= cfg.patience or epoch >= cfg.epochs or (cfg.max_seconds and self.share[c] > cfg.max_seconds):
                self.models[c].load_state_dict(self.best[c])
                self.out[c] = TrainResult(self.models[c], epoch, self.share[c], h)
            else:
                keep.append(j)
        if keep and len(keep) < len(self.alive):
            self.st.take(keep)
            self.opt.take(keep)
        self.alive = [self.alive[j] for j in keep]
