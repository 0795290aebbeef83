"""Development under an energy budget: glia:neuron ratios 0.5, 1, 2, 4, 6 compared on final neurons and synapses,
energy spent, information (log2 of distinct attractors from random initial conditions) and information per energy.

    python simulations/development.py [--config configs/development.yaml] [--out outputs/development] [--quiet]

The ratios run through `dgnn.study.sweep` (each ratio changes the glia count, so each is its own batch of replicas).
Afterwards every developed replica is frozen and started from 32 random initial conditions (one batch) to count
its attractors (dgnn.attractors). Writes results.csv/json and development.png.
"""
from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np

import dgnn
from dgnn.attractors import attractor_information
from dgnn.config import load_config
from dgnn.study.sweep import sweep

sys.path.insert(0, str(Path(__file__).parent))
from common import study_args  # noqa: E402
from dgnn.study.tables import write_table  # noqa: E402

RATIOS = [0.5, 1.0, 2.0, 4.0, 6.0]


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/development.yaml", "outputs/development", argv)
    out = args.out
    try:
        base = load_config(args.config)
        res = sweep(base, {"glia.ratio": RATIOS}, out / "sweep", overwrite=True, progress=not args.quiet)
    except dgnn.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for r in res.rows:
        path = out / "sweep" / r["trace"]
        s = dgnn.summarize(path)
        cfg = dgnn.read_trace(path, phases=False).config
        with h5py.File(path) as h5:
            ckpt = {k: v[()] for k, v in h5["checkpoint"].items()}
        bits = [attractor_information(cfg, ckpt, b)["bits"] for b in range(cfg.replicas)]
        m, st = s["metabolism"], s["structure"]
        spent = m["total_consumed"] + m["total_structural"] - m["total_refunded"]
        rows.append({
            "glia_ratio": r["glia.ratio"], "glia": st["glia_final"],
            "neurons_final": st["neurons_final"], "synapses_final": st["synapses_final"],
            "energy_spent": spent, "energy_unmet": m["total_unmet"], "information_bits": float(np.mean(bits)),
            "information_bits_sd": float(np.std(bits)), "bits_per_energy": float(np.mean(bits)) / spent,
            **{k: v for k, v in st["events"].items() if v},
        })
    write_table(out, rows, {"neurons_initial": base.neurons.count, "replicas": base.replicas,
                            "information": "log2 distinct attractors from 32 random initial conditions"})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["glia_ratio"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    for ax, key, label in zip(axes, ("neurons_final", "synapses_final", "energy_spent", "bits_per_energy"),
                              ("final neurons", "final synapses", "energy spent", "bits per energy")):
        ax.plot(x, [r[key] for r in rows], "o-")
        ax.set(xlabel="glia : neuron ratio", title=label, xscale="log")
    fig.tight_layout()
    fig.savefig(out / "development.png", dpi=110)
    if not args.quiet:
        print(f"{'ratio':>5} {'neurons':>8} {'synapses':>9} {'spent':>8} {'unmet':>7} {'bits':>6} {'bits/E':>8}")
        for r in rows:
            print(f"{r['glia_ratio']:5.1f} {r['neurons_final']:8.2f} {r['synapses_final']:9.1f} {r['energy_spent']:8.1f} "
                  f"{r['energy_unmet']:7.1f} {r['information_bits']:6.2f} {r['bits_per_energy']:8.4f}")
        print(f"results: {out}/results.csv, figure: {out}/development.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
