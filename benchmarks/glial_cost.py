"""Cost of the glia: seconds per training step (forward + backward of one batch) of kind glial nets at several
glia ratios against the plain oscillator net of the same shape, measured in turn in this process (the minimum over
rounds, so a load change on a shared machine hits every model alike), plus MACs per inference.

    python benchmarks/glial_cost.py [--threads 1] [--batch 64] [--inputs 64] [--hidden 64] [--rounds 8] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dgnn.learn.config import ModelConfig
from dgnn.learn.models import build_model

RATIOS = (0.0, 0.5, 1.0, 2.0, 4.0)


def models(n_in: int, hidden: int, settle_time: float, dt: float) -> dict[str, torch.nn.Module]:
    shape = {"hidden": [hidden], "settle_time": settle_time, "dt": dt}
    out = {"oscillator": build_model(ModelConfig(kind="oscillator", **shape), n_in, 10, 0)}
    for r in RATIOS:
        out[f"glial {r:g}"] = build_model(ModelConfig(kind="glial", glia_ratio=r, **shape), n_in, 10, 0)
    return out


def step_seconds(nets: dict, x: torch.Tensor, rounds: int) -> dict[str, float]:
    """Minimum over rounds of one forward + backward per model, the models taking turns within each round."""
    best = {k: float("inf") for k in nets}
    for _ in range(rounds + 1):  # the first round warms up
        for name, net in nets.items():
            t0 = time.perf_counter()
            logits, _ = net(x)
            logits.square().mean().backward()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--inputs", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--settle-time", type=float, default=5.0)
    ap.add_argument("--dt", type=float, default=0.25)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = torch.randn(a.batch, a.inputs, generator=torch.Generator().manual_seed(0))
    nets = models(a.inputs, a.hidden, a.settle_time, a.dt)
    best = step_seconds(nets, x, a.rounds)
    ref = best["oscillator"]
    rows = [{"model": k, "step_ms": 1e3 * v, "x_oscillator": v / ref, "macs": nets[k].macs()["macs"],
             "macs_x_oscillator": nets[k].macs()["macs"] / nets["oscillator"].macs()["macs"]} for k, v in best.items()]
    print(f"batch {a.batch}, {a.inputs} inputs, hidden [{a.hidden}], settle {a.settle_time} in steps of {a.dt}, "
          f"{a.threads} thread(s)")
    for r in rows:
        print(f"{r['model']:>12}  {r['step_ms']:8.1f} ms  x{r['x_oscillator']:5.2f}   MACs x{r['macs_x_oscillator']:5.2f}")
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "glial_cost.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()},
                                                           "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
