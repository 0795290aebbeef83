"""Kuramoto transition: r(k) of N Lorentzian-frequency oscillators against r = sqrt(1 - 2 gamma / k).

    python simulations/kuramoto_transition.py [--config configs/kuramoto.yaml] [--out outputs/kuramoto_transition] [--quiet]

Every coupling value runs the config (mean-field backend, quantile frequencies) through dgnn's public API; r is
averaged over the second half. Writes results.csv, results.json and r_vs_k.png into --out.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

import dgnn
from dgnn.config import load_config

from dgnn.progress import Progress

sys.path.insert(0, str(Path(__file__).parent))
from common import study_args  # noqa: E402
from dgnn.study.tables import write_table  # noqa: E402

COUPLINGS = [0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0]


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/kuramoto.yaml", "outputs/kuramoto_transition", argv)
    out = args.out
    try:
        base = load_config(args.config)
    except dgnn.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    gamma = base.neurons.frequency.width
    rows = []
    bar = Progress(total=len(COUPLINGS), enabled=not args.quiet, unit="k")
    for k in COUPLINGS:
        cfg = load_config(args.config, [f"coupling.strength={k}", f"name=kuramoto_k{k}"])
        res = dgnn.run(cfg, out / f"k{k}", overwrite=True, progress=False)
        r = dgnn.read_trace(res.path, phases=False).metrics["order_parameter"][:, 0]
        r_mean = float(r[len(r) // 2:].mean())
        theory = math.sqrt(1 - 2 * gamma / k) if k > 2 * gamma else 0.0
        rows.append({"k": k, "r": r_mean, "theory": theory, "abs_error": abs(r_mean - theory)})
        bar.update()
    bar.close()
    write_table(out, rows, {"N": base.neurons.count, "gamma": gamma})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = np.linspace(0.01, max(COUPLINGS), 400)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(ks, [math.sqrt(1 - 2 * gamma / k) if k > 2 * gamma else 0 for k in ks], "k-", lw=1, label="theory (N = inf)")
    ax.plot([r["k"] for r in rows], [r["r"] for r in rows], "o", color="C3", label=f"dgnn, N = {base.neurons.count}")
    ax.set(xlabel="coupling k", ylabel="order parameter r", title="Kuramoto transition (Lorentzian, gamma = %g)" % gamma)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "r_vs_k.png", dpi=110)
    if not args.quiet:
        print(f"{'k':>6} {'r':>8} {'theory':>8} {'|error|':>9}")
        for r in rows:
            print(f"{r['k']:6.2f} {r['r']:8.4f} {r['theory']:8.4f} {r['abs_error']:9.2e}")
        print(f"results: {out}/results.csv, figure: {out}/r_vs_k.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
