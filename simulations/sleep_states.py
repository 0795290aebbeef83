"""Sleep states: cardiorespiratory frequency locking on the Farey tree in quiet and active sleep (seed 000, Fig. 1).

    python simulations/sleep_states.py [--config configs/sleep_states.yaml] [--out outputs/sleep_states] [--quiet]

1. Runs the config (32 recordings, alternating quiet / active epochs) and, for every replica and epoch after a
   settling quarter, classifies the ratio of the cardiac to the respiratory group frequency on the Farey tree
   (q <= 5) and tests locking there with the p:q locking index (>= 0.8). Energy per state comes from the ledger.
2. Maps the Arnold tongues of the same pulse coupling (one cardiac and one respiratory oscillator, no noise, no
   metabolism): frequency ratio x respiration-to-heart coupling, all points one batch, each point's Farey class
   and locking index. Writes results.json/csv, tongues.csv and sleep_states.png.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import dgnn
from dgnn.analysis import farey_locking
from dgnn.config import config_from_dict, load_config

sys.path.insert(0, str(Path(__file__).parent))
from common import study_args  # noqa: E402
from dgnn.study.tables import write_table  # noqa: E402

RATIOS = np.round(np.linspace(2.4, 4.1, 69), 4)  # omega_cardiac / omega_respiratory
COUPLINGS = np.round(np.linspace(0.0, 3.0, 16), 4)  # respiration -> heart pulse strength
Q_MAX, LOCKED = 5, 0.8


def group_phase(phases: np.ndarray, index: slice) -> np.ndarray:
    """(T, B) mean unwrapped phase of a synchronised group (its members' phases differ by bounded offsets)."""
    return phases[:, :, index].mean(axis=2)


def classify_epochs(cfg, tr) -> list[dict]:
    """One row per (epoch occurrence, replica): ratio, Farey class, locking index, power."""
    groups = cfg.neurons.group_slices()
    heart, breath = group_phase(tr.neuron_phase, groups["cardiac"]), group_phase(tr.neuron_phase, groups["respiratory"])
    t, epoch = tr.time, tr.metabolism["epoch"]
    power = tr.metabolism["power"]  # (T, B)
    starts = np.flatnonzero(np.diff(np.r_[-1, epoch]) != 0)
    rows = []
    for n, (a, b) in enumerate(zip(starts, np.r_[starts[1:], len(t)])):
        if b - a < 8:
            continue  # the closing record of the run opens an epoch it does not cover
        s = slice(a + (b - a) // 4, b)  # skip the transient after the switch
        name = cfg.metabolism.schedule[int(epoch[a])].name
        res = farey_locking(heart[s], breath[s], t[s], Q_MAX, LOCKED)
        for r in range(heart.shape[1]):
            rows.append({"occurrence": n, "state": name, "replica": r, "ratio": float(res["ratio"][r]),
                         "farey": f"{int(res['p'][r])}:{int(res['q'][r])}", "q": int(res["q"][r]),
                         "locking_index": float(res["index"][r]), "locked": bool(res["locked"][r]),
                         "power": float(power[s, r].mean())})
    return rows


def tongue_map(cfg, progress: bool) -> list[dict]:
    """Frequency ratio x coupling for one cardiac and one respiratory oscillator: Farey class and locking index."""
    data = cfg.model_dump(mode="python")
    data.update(name="tongues", replicas=1, noise={"neurons": 0.0, "glia": 0.0}, glia={"ratio": 0.0},
                metabolism={"enabled": False}, topology={"kind": "all_to_all"})
    data["coupling"]["strength"] = 0.0
    for g in ("cardiac", "respiratory"):
        data["neurons"]["groups"][g]["count"] = 1
    data["neurons"]["groups"]["respiratory"]["frequency"] = {"distribution": "constant", "center": 1.0}
    data["neurons"].pop("count")
    data["solver"] = {"method": "rk4", "dt": 0.05, "duration": 600.0}
    data["record"] = {"every": 0.5}
    base = config_from_dict(data, "sleep-state tongue map")
    from dgnn.study.sweep import expand

    points = expand(base, {"neurons.groups.cardiac.frequency.center": [float(r) for r in RATIOS],
                           "coupling.cross.respiration_to_heart.strength": [float(k) for k in COUPLINGS]})
    sim = dgnn.Simulation(points[0].cfg, device="cpu", points=[p.cfg for p in points])
    phases, times = [], []
    from dgnn.progress import Progress

    bar = Progress(total=base.n_records, enabled=progress, unit="record", desc="tongue map")
    for i in range(base.n_records):
        sim.advance()
        if i >= base.n_records // 3:  # keep the settled two thirds
            phases.append(sim.unwrapped()[:, :2].numpy())
            times.append(sim.t)
        bar.update(1)
    bar.close()
    ph, t = np.stack(phases), np.asarray(times)  # (T, P, 2)
    res = farey_locking(ph[:, :, 0], ph[:, :, 1], t, Q_MAX, LOCKED)
    return [{"ratio_natural": p.values["neurons.groups.cardiac.frequency.center"],
             "coupling": p.values["coupling.cross.respiration_to_heart.strength"],
             "ratio": float(res["ratio"][i]), "farey": f"{int(res['p'][i])}:{int(res['q'][i])}",
             "locking_index": float(res["index"][i]), "locked": bool(res["locked"][i])}
            for i, p in enumerate(points)]


def summary(rows: list[dict]) -> dict:
    out = {}
    for state in dict.fromkeys(r["state"] for r in rows):
        sel = [r for r in rows if r["state"] == state]
        classes = {}
        for r in sel:
            c = classes.setdefault(r["farey"], {"count": 0, "locked": 0})
            c["count"] += 1
            c["locked"] += int(r["locked"])
        out[state] = {"samples": len(sel), "locked_fraction": float(np.mean([r["locked"] for r in sel])),
                      "share_3_1": float(np.mean([r["farey"] == "3:1" for r in sel])),
                      "share_higher_order": float(np.mean([r["q"] > 1 for r in sel])),
                      "mean_ratio": float(np.mean([r["ratio"] for r in sel])),
                      "mean_power": float(np.mean([r["power"] for r in sel])),
                      "classes": dict(sorted(classes.items(), key=lambda kv: -kv[1]["count"]))}
    return out


def figure(path: Path, rows: list[dict], tongues: list[dict], states: dict, cfg) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
    labels = sorted({r["farey"] for r in rows}, key=lambda f: int(f.split(":")[0]) / int(f.split(":")[1]))
    width = 0.8 / len(states)
    for k, (state, s) in enumerate(states.items()):
        x = np.arange(len(labels)) + (k - (len(states) - 1) / 2) * width
        total = [s["classes"].get(f, {"count": 0})["count"] / s["samples"] for f in labels]
        locked = [s["classes"].get(f, {"locked": 0})["locked"] / s["samples"] for f in labels]
        a1.bar(x, total, width, color=f"C{k}", alpha=0.35, label=f"{state}: all")
        a1.bar(x, locked, width, color=f"C{k}", label=f"{state}: locked")
    a1.set_xticks(np.arange(len(labels)), labels)
    a1.set(xlabel="cardiac : respiratory ratio (Farey, q <= 5)", ylabel="share of recordings x epochs",
           title="Frequency-locking ratio by state")
    a1.legend(fontsize=8)
    grid = np.array([[next(r["locking_index"] for r in tongues if r["ratio_natural"] == x and r["coupling"] == k)
                      for x in RATIOS] for k in COUPLINGS])
    dx, dk = (RATIOS[1] - RATIOS[0]) / 2, (COUPLINGS[1] - COUPLINGS[0]) / 2
    im = a2.imshow(grid, origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1,
                   extent=(RATIOS[0] - dx, RATIOS[-1] + dx, COUPLINGS[0] - dk, COUPLINGS[-1] + dk))
    fig.colorbar(im, ax=a2, label="p:q locking index at the Farey class")
    for f in ("5:2", "8:3", "3:1", "10:3", "7:2", "11:3", "4:1"):
        p, q = map(int, f.split(":"))
        if RATIOS[0] <= p / q <= RATIOS[-1]:
            a2.annotate(f, (p / q, COUPLINGS[-1]), color="cyan", ha="center", va="bottom", fontsize=8,
                        annotation_clip=False)
    groups = cfg.neurons.groups
    base = groups["cardiac"].frequency.center / groups["respiratory"].frequency.center
    k0 = cfg.coupling.cross["respiration_to_heart"].strength
    for e in cfg.metabolism.schedule:
        ratio = base * e.frequency.get("cardiac", 1.0) / e.frequency.get("respiratory", 1.0)
        a2.plot(ratio, k0, "o", mfc="none", mec="w", ms=9)
        a2.annotate(e.name, (ratio, k0), xytext=(6, 6), textcoords="offset points", color="w", fontsize=9)
    a2.set(xlabel="natural frequency ratio omega_c / omega_r", ylabel="respiration -> heart coupling")
    a2.set_title("Arnold tongues of the pulse coupling", pad=16)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    args = study_args(__doc__, "configs/sleep_states.yaml", "outputs/sleep_states", argv)
    out = args.out
    try:
        cfg = load_config(args.config)
        for key in ("cardiac", "respiratory"):
            if key not in cfg.neurons.groups:
                raise dgnn.ConfigError(f"{args.config}: neurons.groups needs a '{key}' group for this study")
        if "respiration_to_heart" not in cfg.coupling.cross:
            raise dgnn.ConfigError(f"{args.config}: coupling.cross needs a 'respiration_to_heart' term")
        res = dgnn.run(cfg, out / "run", overwrite=True, progress=not args.quiet)
    except dgnn.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tr = dgnn.read_trace(res.path)
    rows = classify_epochs(cfg, tr)
    states = summary(rows)
    led = dgnn.summarize(tr)["metabolism"]
    write_table(out, rows, {"states": states, "q_max": Q_MAX, "locked_threshold": LOCKED,
                            "by_epoch": {cfg.metabolism.schedule[int(k)].name: v for k, v in led["by_epoch"].items()},
                            "ledger_max_imbalance": led["ledger_max_imbalance"]})
    tongues = tongue_map(cfg, not args.quiet)
    import csv

    with open(out / "tongues.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(tongues[0]))
        w.writeheader()
        w.writerows(tongues)
    figure(out / "sleep_states.png", rows, tongues, states, cfg)
    if not args.quiet:
        for state, s in states.items():
            top = ", ".join(f"{f} {c['count']}/{c['locked']} locked" for f, c in list(s["classes"].items())[:4])
            print(f"{state:>8}: locked {s['locked_fraction']:.2f}, 3:1 share {s['share_3_1']:.2f}, higher-order share "
                  f"{s['share_higher_order']:.2f}, mean ratio {s['mean_ratio']:.3f}, power {s['mean_power']:.3f} | {top}")
        print(f"results: {out}/results.csv, tongues: {out}/tongues.csv, figure: {out}/sleep_states.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
