"""Down-selection: is synaptic pruning concentrated in low-energy (quiet) epochs and synapse formation in
high-energy (active) ones? (seed 000, Figure 1: pruning in quiet sleep, formation in active sleep)

    python simulations/down_selection.py [--config configs/down_selection.yaml] [--out outputs/down_selection] [--quiet]

Runs the config once (8 replicas) and reports, per operator, the share of accepted events that fell in quiet
epochs against the share of time those epochs take, the net synapse change per epoch type, and synchrony and
power per epoch. Writes results.json/csv and down_selection.png.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import dgnn
from dgnn.config import load_config

sys.path.insert(0, str(Path(__file__).parent))
from common import study_args  # noqa: E402
from dgnn.study.tables import write_table  # noqa: E402


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/down_selection.yaml", "outputs/down_selection", argv)
    out = args.out
    try:
        cfg = load_config(args.config)
        res = dgnn.run(cfg, out / "run", overwrite=True, progress=not args.quiet)
    except dgnn.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tr = dgnn.read_trace(res.path, phases=False)
    t, epoch = tr.time, tr.metabolism["epoch"]
    names = [e.name for e in cfg.metabolism.schedule]
    quiet = int(np.argmin([e.supply for e in cfg.metabolism.schedule]))
    ev = tr.static["structure/events"]
    ev = ev[ev["accepted"]]
    at = epoch[np.clip(np.searchsorted(t, ev["time"]), 0, len(t) - 1)]
    rows = []
    for op in np.unique(ev["operator"]):
        sel = ev["operator"] == op
        rows.append({"operator": op.decode(), "accepted": int(sel.sum()),
                     f"share_in_{names[quiet]}": float((at[sel] == quiet).mean()),
                     f"time_share_{names[quiet]}": float((epoch == quiet).mean())})
    size = tr.metrics["structure_size"][:, :, 1].astype(float).mean(1)  # (T,) synapses, mean over replicas
    change = np.diff(size)
    net = {names[k]: float(change[epoch[1:] == k].sum()) for k in range(len(names))}
    s = dgnn.summarize(tr)["metabolism"]
    per_epoch = {names[int(k)]: v for k, v in s["by_epoch"].items()}
    write_table(out, rows, {"net_synapse_change_by_epoch": net, "by_epoch": per_epoch,
                            "ledger_max_imbalance": s["ledger_max_imbalance"]})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    for k0 in np.flatnonzero(np.diff(np.r_[-1, epoch]) != 0):
        if epoch[k0] == quiet:
            end = k0 + np.argmax(epoch[k0:] != quiet) if (epoch[k0:] != quiet).any() else len(t) - 1
            ax.axvspan(t[k0], t[end], color="0.85", lw=0)
    ax.plot(t, size, color="C0")
    ax.set(xlabel="time (grey: quiet epochs)", ylabel="synapses (mean over replicas)", title="Down-selection")
    fig.tight_layout()
    fig.savefig(out / "down_selection.png", dpi=110)
    if not args.quiet:
        for r in rows:
            print(f"{r['operator']:15s} accepted {r['accepted']:5d}   in {names[quiet]} epochs: "
                  f"{100 * r[f'share_in_{names[quiet]}']:.0f}% (time share {100 * r[f'time_share_{names[quiet]}']:.0f}%)")
        print("net synapse change per epoch type: " + ", ".join(f"{k} {v:+.1f}" for k, v in net.items()))
        print(f"results: {out}/results.json, figure: {out}/down_selection.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
