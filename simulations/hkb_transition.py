"""HKB transition: two identical oscillators started near anti-phase stay there iff b/a > 1/4.

    python simulations/hkb_transition.py [--config configs/hkb.yaml] [--out outputs/hkb_transition] [--quiet]

Sweeps b/a, reports the final relative phase |phi| (pi = anti-phase kept, 0 = switched to in-phase) and the
switching time, as in the Haken-Kelso-Bunz finger-tapping experiments. Writes results.csv/json and a figure.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

import dgnn
from dgnn.config import load_config

sys.path.insert(0, str(Path(__file__).parent))
from common import study_args  # noqa: E402
from dgnn.study.tables import write_table  # noqa: E402

RATIOS = [0.0, 0.1, 0.2, 0.23, 0.24, 0.26, 0.27, 0.3, 0.4, 0.6, 1.0]


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/hkb.yaml", "outputs/hkb_transition", argv)
    out = args.out
    rows, curves = [], {}
    try:
        for ratio in RATIOS:
            cfg = load_config(args.config, [f"coupling.b={ratio}", "coupling.a=1.0", f"name=hkb_{ratio}"])
            res = dgnn.run(cfg, out / f"b{ratio}", overwrite=True, progress=False)
            tr = dgnn.read_trace(res.path)
            phi = np.abs(np.angle(np.exp(1j * (tr.neuron_phase[:, 0, 0] - tr.neuron_phase[:, 0, 1]))))
            switched = np.flatnonzero(phi < math.pi / 2)
            rows.append({"b_over_a": ratio, "final_abs_phi": float(phi[-1]), "antiphase_kept": bool(phi[-1] > math.pi / 2),
                         "predicted_kept": ratio > 0.25,
                         "switch_time": float(tr.time[switched[0]]) if switched.size else None})
            curves[ratio] = (tr.time, phi)
    except dgnn.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_table(out, rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for ratio, (t, phi) in curves.items():
        ax.plot(t, phi, color=plt.cm.coolwarm(min(ratio / 0.5, 1.0)), lw=1, label=f"b/a={ratio}")
    ax.axhline(math.pi, color="k", lw=0.5)
    ax.set(xlabel="time", ylabel="|relative phase| (rad)", title="HKB: anti-phase survives iff b/a > 1/4")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "relative_phase.png", dpi=110)
    if not args.quiet:
        for r in rows:
            print(f"b/a={r['b_over_a']:<5} final |phi|={r['final_abs_phi']:.4f}  anti-phase kept={r['antiphase_kept']!s:5} "
                  f"(theory {r['predicted_kept']!s:5})  switch at t={r['switch_time']}")
        print(f"results: {out}/results.csv, figure: {out}/relative_phase.png")
    return 0 if all(r["antiphase_kept"] == r["predicted_kept"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
