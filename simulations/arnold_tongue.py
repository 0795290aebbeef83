"""Arnold tongue of two coupled oscillators: n:m locking index over detuning x coupling, one batched sweep.

    python simulations/arnold_tongue.py [--config configs/arnold_tongue.yaml] [--out outputs/arnold_tongue] [--quiet]

Each grid point is a pair (detuning d, coupling k); all points run as replicas of one batch through `dgnn.study.sweep`.
The 1:1 locking index |mean_t e^{i(theta_1 - theta_2)}| over the second half and the Farey-classified frequency
ratio of the pair are mapped; theory: the 1:1 tongue is |d| <= k. Writes results.csv/json and tongue.png.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import dgnn
from dgnn.analysis import farey, mean_frequency, nm_locking_index
from dgnn.config import load_config
from dgnn.study.sweep import sweep

sys.path.insert(0, str(Path(__file__).parent))
from common import study_args  # noqa: E402
from dgnn.study.tables import write_table  # noqa: E402

DETUNINGS = [round(x, 3) for x in np.linspace(0.05, 2.0, 14)]
COUPLINGS = [round(x, 3) for x in np.linspace(0.05, 2.0, 14)]


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/arnold_tongue.yaml", "outputs/arnold_tongue", argv)
    out = args.out
    try:
        base = load_config(args.config)
        res = sweep(base, {"neurons.frequency.width": DETUNINGS, "coupling.strength": COUPLINGS}, out / "sweep",
                    overwrite=True, progress=not args.quiet)
    except dgnn.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for r in res.rows:
        tr = dgnn.read_trace(out / "sweep" / r["trace"])
        half = slice(len(tr.time) // 2, None)
        ph = tr.neuron_phase[half, 0]  # (T, 2)
        w = mean_frequency(ph, tr.time[half])
        p, q, _ = farey(max(w) / min(w), 8) if min(w) > 0 else (0, 1, 0.0)
        d, k = r["neurons.frequency.width"], r["coupling.strength"]
        idx = float(nm_locking_index(ph[:, 0], ph[:, 1], 1, 1))
        rows.append({"detuning": d, "coupling": k, "locking_index_1_1": idx, "locked": idx > 0.99,
                     "theory_locked": abs(d) <= k, "frequency_ratio": float(max(w) / min(w)), "farey": f"{p}:{q}"})
    write_table(out, rows, {"theory": "1:1 locking iff |d| <= k"})
    agree = sum(r["locked"] == r["theory_locked"] for r in rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.array([[next(r["locking_index_1_1"] for r in rows if r["detuning"] == d and r["coupling"] == k)
                      for d in DETUNINGS] for k in COUPLINGS])
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    step = (DETUNINGS[1] - DETUNINGS[0]) / 2
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1,
                   extent=(DETUNINGS[0] - step, DETUNINGS[-1] + step, COUPLINGS[0] - step, COUPLINGS[-1] + step))
    ax.plot([0, 2], [0, 2], "c--", lw=1, label="|d| = k (theory)")
    fig.colorbar(im, ax=ax, label="1:1 locking index")
    ax.set(xlabel="detuning d", ylabel="coupling k", title="Arnold tongue (1:1)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "tongue.png", dpi=110)
    if not args.quiet:
        print(f"{agree}/{len(rows)} points agree with |d| <= k; results: {out}/results.csv, figure: {out}/tongue.png")
    return 0 if agree == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
