"""Figures of a trace (matplotlib, Agg, PNG): r(t), phase raster, PLV heat map, frequency histogram."""
from __future__ import annotations

import errno
from pathlib import Path

import numpy as np

from .analysis import check_trace, load, mean_frequency, plv_matrix
from .errors import ConfigError
from .folders import make_folder
from .traces import Trace

RASTER_MAX_NEURONS = 400
PLV_MAX_NEURONS = 400


def write_figures(trace: Trace | str, out_dir: str | Path) -> list[Path]:
    """Write the standard figures of a trace into out_dir; returns their paths. Replica 0 for per-neuron views."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(trace, Trace):
        trace = load(trace)
    check_trace(trace)
    out_dir = Path(out_dir)
    make_folder(out_dir, "out_dir")
    t, m = trace.time, trace.metrics
    paths = []

    def save(fig, name):
        p = out_dir / name
        fig.tight_layout()
        try:
            fig.savefig(p, dpi=110)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # the disk, not the input: not a usage error
            raise ConfigError(f"out_dir {out_dir}: cannot write {name} ({exc.strerror or exc})") from None
        finally:
            plt.close(fig)
        paths.append(p)

    fig, ax = plt.subplots(figsize=(7, 3.2))
    r = m["order_parameter"]
    ax.plot(t, r.mean(1), color="C0", label="neurons (mean over replicas)")
    if r.shape[1] > 1:
        ax.fill_between(t, r.min(1), r.max(1), color="C0", alpha=0.2, lw=0)
    if "glia_order_parameter" in m:
        ax.plot(t, m["glia_order_parameter"].mean(1), color="C1", label="glia")
    if "module_order_parameter" in m:
        for k in range(m["module_order_parameter"].shape[2]):
            ax.plot(t, m["module_order_parameter"][:, :, k].mean(1), lw=0.7, alpha=0.6, ls="--",
                    label="modules (dashed)" if k == 0 else None)
    ax.set(xlabel="time", ylabel="order parameter r", ylim=(0, 1.02), title="Synchrony r(t)")
    ax.legend(loc="lower right", fontsize=8)
    save(fig, "order_parameter.png")

    if trace.neuron_phase is not None and len(t) >= 2:  # one record has no time span to draw
        ph = trace.neuron_phase[:, 0, :RASTER_MAX_NEURONS]  # (T, n)
        wrapped = np.angle(np.exp(1j * ph))
        fig, ax = plt.subplots(figsize=(7, 3.6))
        im = ax.imshow(wrapped.T, aspect="auto", origin="lower", cmap="twilight", vmin=-np.pi, vmax=np.pi,
                       extent=(t[0], t[-1], -0.5, ph.shape[1] - 0.5), interpolation="nearest")
        fig.colorbar(im, ax=ax, label="phase (rad)")
        ax.set(xlabel="time", ylabel="neuron", title="Phase raster (replica 0)")
        save(fig, "phase_raster.png")

        n = min(PLV_MAX_NEURONS, trace.neuron_phase.shape[2])
        half = slice(len(t) // 2, None)
        plv = plv_matrix(trace.neuron_phase[half, 0, :n])
        fig, ax = plt.subplots(figsize=(4.6, 4))
        im = ax.imshow(plv, vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
        fig.colorbar(im, ax=ax, label="PLV")
        ax.set(xlabel="neuron j", ylabel="neuron i", title="Phase-locking value (2nd half)")
        save(fig, "plv.png")

        if len(t) >= 2:
            f = mean_frequency(trace.neuron_phase[half], t[half]).ravel()
            nat = trace.static["neurons/frequency"].ravel()
            fig, ax = plt.subplots(figsize=(6, 3.2))
            lo, hi = np.percentile(np.concatenate([f, nat]), [1, 99])
            bins = np.linspace(lo - 1e-9, hi + 1e-9, 50)
            ax.hist(nat, bins=bins, alpha=0.5, label="natural")
            ax.hist(f, bins=bins, alpha=0.6, label="observed (2nd half)")
            if trace.glia_phase is not None:
                ax.hist(mean_frequency(trace.glia_phase[half], t[half]).ravel(), bins=bins, alpha=0.6, label="glia")
            ax.set(xlabel="frequency (rad / time)", ylabel="count", title="Frequencies")
            ax.legend(fontsize=8)
            save(fig, "frequency_histogram.png")
    return paths
