"""Training with L = L_CE + lambda E, early stopping on validation accuracy, and the evaluation row."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..progress import Progress
from ..energy import EnergyTable, activation_energy, mac_joules
from .config import ModelConfig, TrainConfig
from .data import Dataset
from .measures import confusion_matrix, information_bound_bits, mutual_information_bits
from .models import build_model, parameter_count


@dataclass
class TrainResult:
    model: nn.Module
    epochs: int
    seconds: float
    history: dict = field(default_factory=dict)  # per epoch: loss, energy, validation accuracy


def _energy(model, x, acts, kind: str) -> torch.Tensor:
    if kind == "metabolic" and hasattr(model, "metabolic_energy"):
        return model.metabolic_energy(x).mean()
    return activation_energy(acts)


def train(model: nn.Module, data: Dataset, cfg: TrainConfig, lam: float = 0.0, energy: str = "activation",
          seed: int = 0, progress: bool = False, dtype=torch.float32, device=None) -> TrainResult:
    """Minimise CE + lam x E by minibatches (shuffled by a seeded generator); keep the best validation epoch.
    device: where the data go (default the CPU); the model must already be there."""
    gen = torch.Generator().manual_seed(int(seed) + 7919)  # on the CPU on every device: the same minibatches
    x, y = torch.as_tensor(data.x_train, dtype=dtype, device=device), torch.as_tensor(data.y_train, device=device)
    xv, yv = torch.as_tensor(data.x_val, dtype=dtype, device=device), torch.as_tensor(data.y_val, device=device)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    best, best_acc, stale = copy.deepcopy(model.state_dict()), -1.0, 0
    hist = {"loss": [], "energy": [], "val_accuracy": []}
    t0 = time.perf_counter()
    bar = Progress(total=cfg.epochs, enabled=progress, unit="epoch", desc="train")
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        tot_loss = tot_e = 0.0
        for i in range(0, len(y), cfg.batch_size):
            idx = order[i:i + cfg.batch_size].to(x.device)
            logits, acts = model(x[idx])
            e = _energy(model, x[idx], acts, energy)
            loss = nn.functional.cross_entropy(logits, y[idx]) + lam * e
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot_loss += loss.item() * len(idx)
            tot_e += e.item() * len(idx)
        acc = accuracy(model, xv, yv)
        hist["loss"].append(tot_loss / len(y))
        hist["energy"].append(tot_e / len(y))
        hist["val_accuracy"].append(acc)
        if not math.isfinite(tot_loss):
            raise FloatingPointError(f"training diverged at epoch {epoch} (loss {tot_loss}); lower train.lr")
        if acc > best_acc:
            best, best_acc, stale = copy.deepcopy(model.state_dict()), acc, 0
        else:
            stale += 1
        bar.update(1)
        if stale >= cfg.patience or (cfg.max_seconds and time.perf_counter() - t0 > cfg.max_seconds):
            break
    bar.close()
    model.load_state_dict(best)
    return TrainResult(model, epoch, time.perf_counter() - t0, hist)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    model.eval()
    hits = sum(int((model(x[i:i + batch])[0].argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(y), batch))
    return hits / len(y)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, table: EnergyTable, dtype=torch.float32) -> dict:
    """Test metrics: accuracy, I(Y; Y_hat), the CE bound, activation and metabolic energy, MACs, joules."""
    model.eval()
    x, y = torch.as_tensor(data.x_test, dtype=dtype), torch.as_tensor(data.y_test)
    logits, acts = model(x)
    pred = logits.argmax(1).numpy()
    c = data.n_classes
    ce = float(nn.functional.cross_entropy(logits, y))
    conf = confusion_matrix(data.y_test, pred, c)
    costs = model.macs()
    n_par = parameter_count(model)
    row = {
        "accuracy": float((pred == data.y_test).mean()),
        "information_bits": mutual_information_bits(conf),
        "information_bound_bits": information_bound_bits(data.y_test, c, ce),
        "cross_entropy": ce,
        "activation_energy": float(activation_energy(acts)),
        "metabolic_energy": float(model.metabolic_energy(x).mean()) if hasattr(model, "metabolic_energy") else 0.0,
        "readout_norm": float(model.readout.effective().norm()),
        "parameters": n_par,
        "macs": costs["macs"],
        "joules_per_inference": mac_joules(costs, n_par, table),
    }
    return row


def fit(model_cfg: ModelConfig, data: Dataset, train_cfg: TrainConfig, seed: int, lam: float = 0.0,
        energy: str = "activation", table: EnergyTable | None = None, progress: bool = False,
        dtype=torch.float32) -> tuple[dict, TrainResult]:
    """Build, train and evaluate one model: the results-table row and the training record."""
    model = build_model(model_cfg, data.n_features, data.n_classes, seed, dtype)
    if model_cfg.train is not None:
        train_cfg = model_cfg.train.apply(train_cfg)
    res = train(model, data, train_cfg, lam, energy, seed, progress, dtype)
    row = evaluate(res.model, data, table or EnergyTable(), dtype)
    row.update({"epochs": res.epochs, "train_seconds": res.seconds})
    return row, res


def settle_gap(model: nn.Module, x: np.ndarray) -> float:
    """Largest phase difference (rad) between the trained net's settling and a 4x finer solve of it."""
    if not hasattr(model, "settle"):
        return 0.0
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        xt = torch.as_tensor(x, dtype=dtype)
        a, b = model.settle(xt), model.settle(xt, dt=model.cfg.dt / 4)
        d = torch.atan2(torch.sin(a - b), torch.cos(a - b))
    return float(d.abs().max())
