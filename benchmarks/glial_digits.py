"""Glial nets against the plain oscillator net on digits: one seed per model, the same shape and training, the
evaluation row of dgnn.learn.fit (accuracy, I(Y; Y_hat), metabolic energy, MACs, joules, seconds) as a table.

    python benchmarks/glial_digits.py [--hidden 32] [--epochs 10] [--ratios 0 0.5 1 2] [--lam 0] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dgnn.learn.config import DatasetConfig, ModelConfig, TrainConfig
from dgnn.learn.data import load_dataset
from dgnn.learn.train import fit

COLUMNS = ("accuracy", "information_bits", "metabolic_energy", "macs", "joules_per_inference", "train_seconds")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    ap.add_argument("--lam", type=float, default=0.0, help="weight of the metabolic energy in the loss")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(DatasetConfig(name="digits"), a.seed)
    shape = {"hidden": [a.hidden], "settle_time": 5.0, "dt": 0.5}
    models = {"oscillator": ModelConfig(kind="oscillator", **shape)}
    models.update({f"glial {r:g}": ModelConfig(kind="glial", glia_ratio=r, **shape) for r in a.ratios})
    train = TrainConfig(epochs=a.epochs, patience=a.epochs, lr=1e-2)
    rows = []
    for name, cfg in models.items():
        row, _ = fit(cfg, data, train, seed=a.seed, lam=a.lam, energy="metabolic")
        rows.append({"model": name, **{k: row[k] for k in COLUMNS}})
        print(f"{name:>12}  " + "  ".join(f"{k} {rows[-1][k]:.4g}" for k in COLUMNS), flush=True)
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "glial_digits.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()},
                                                            "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
