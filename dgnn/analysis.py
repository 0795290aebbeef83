"""Measures on phase arrays (numpy) and a trace summary. Time is axis 0 of every (T, ...) array."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .errors import ConfigError
from .traces import Trace, describe, read_trace

PLV_MAX_NEURONS = 2000  # the PLV mean reads an (n, n) complex matrix: above this, evenly spaced neurons stand in


def order_parameter(phases: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """r, Psi of r e^{i Psi} = mean_j e^{i theta_j} over `axis` (r dimensionless, Psi in rad)."""
    z = np.exp(1j * np.asarray(phases)).mean(axis=axis)
    return np.abs(z), np.angle(z)


def group_order_parameter(phases: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(..., M) r per group (module or domain) of the last axis, labels (N,) in 0..M-1."""
    labels = np.asarray(labels)
    m = int(labels.max()) + 1
    z = np.exp(1j * np.asarray(phases))
    out = np.stack([z[..., labels == k].mean(axis=-1) for k in range(m)], axis=-1)
    return np.abs(out)


def metastability(r: np.ndarray) -> np.ndarray:
    """Standard deviation over time (axis 0) of the order parameter."""
    return np.asarray(r).std(axis=0)


def plv_matrix(phases: np.ndarray) -> np.ndarray:
    """(N, N) phase-locking values |mean_t e^{i (theta_i - theta_j)}| of a (T, N) array, by one matrix product."""
    z = np.exp(1j * np.asarray(phases))  # (T, N)
    return np.abs(z.T @ z.conj()) / z.shape[0]


def nm_locking_index(theta_a: np.ndarray, theta_b: np.ndarray, n: int, m: int) -> np.ndarray:
    """|mean_t e^{i (n theta_a - m theta_b)}|: 1 for n:m locking, ~0 for independent rhythms."""
    return np.abs(np.exp(1j * (n * np.asarray(theta_a) - m * np.asarray(theta_b))).mean(axis=0))


def mean_frequency(phases: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Least-squares slope of unwrapped phase against time (rad per time unit), for every oscillator."""
    t = np.asarray(time, dtype=float)
    x = np.asarray(phases, dtype=float)
    tc = t - t.mean()
    return np.tensordot(tc, x - x.mean(axis=0), axes=(0, 0)) / (tc @ tc)


def farey(ratio: float, q_max: int = 8) -> tuple[int, int, float]:
    """Nearest p/q with q <= q_max (the Farey sequence of order q_max) to `ratio`: (p, q, ratio - p/q)."""
    if not np.isfinite(ratio):
        raise ValueError(f"ratio must be finite, found {ratio}")
    frac = Fraction(float(ratio)).limit_denominator(q_max)
    return frac.numerator, frac.denominator, float(ratio - frac)


def farey_locking(theta_a: np.ndarray, theta_b: np.ndarray, time: np.ndarray, q_max: int = 5,
                  threshold: float = 0.8) -> dict[str, np.ndarray]:
    """Classify the frequency ratio of two rhythms on the Farey tree, per replica.

    theta_a, theta_b: (T, B) unwrapped phases (rad). The ratio of least-squares mean frequencies is rounded to the
    nearest p/q with q <= q_max; the p:q locking index |mean_t e^{i (q theta_a - p theta_b)}| says whether the
    pair is actually locked there (>= threshold) or only passes near that ratio. Returns arrays over B: ratio,
    p, q, index, locked.
    """
    wa = mean_frequency(theta_a, time)
    wb = mean_frequency(theta_b, time)
    ratio = wa / wb
    pq = np.array([farey(float(r), q_max)[:2] for r in np.atleast_1d(ratio)])  # (B, 2)
    p, q = pq[:, 0], pq[:, 1]
    index = np.abs(np.exp(1j * (q * np.asarray(theta_a) - p * np.asarray(theta_b))).mean(axis=0))
    return {"ratio": ratio, "p": p, "q": q, "index": index, "locked": index >= threshold}


def time_to_lock(r: np.ndarray, time: np.ndarray, threshold: float = 0.9) -> np.ndarray:
    """Per replica: the first time from which r stays >= threshold to the end (NaN if it never does)."""
    r = np.asarray(r)
    above = r >= threshold  # (T, B)
    stays = np.flip(np.logical_and.accumulate(np.flip(above, 0), axis=0), 0)  # True where above until the end
    first = np.argmax(stays, axis=0)
    return np.where(stays.any(axis=0), np.asarray(time)[first], np.nan)


def _population(phases, r, time, half: slice, freqs_natural, labels=None, active=None) -> dict:
    """active: (T, B, C) 0/1 slots of a plastic network; per-oscillator measures use slots active over the half."""
    out = {
        "order_parameter_final": float(r[-1].mean()),
        "order_parameter_mean": float(r[half].mean()),
        "order_parameter_sd_over_replicas": float(r[half].mean(0).std()),
        "metastability": float(metastability(r[half]).mean()),
        "time_to_lock": [None if np.isnan(v) else float(v) for v in time_to_lock(r, time)],
        "natural_frequency_mean": float(freqs_natural.mean()),
    }
    if phases is not None and phases.shape[0] >= 2:
        keep = np.ones(phases.shape[1:], dtype=bool) if active is None else active[half].all(axis=0).astype(bool)
        f = mean_frequency(phases[half], time[half])[keep]  # (B, N) -> active oscillators
        out["mean_frequency"] = float(f.mean()) if f.size else float("nan")
        out["mean_frequency_sd"] = float(f.std()) if f.size else float("nan")
        if active is not None:
            out["natural_frequency_mean"] = float(freqs_natural[active[0].astype(bool)].mean())
        if phases.shape[2] >= 2:
            idx = np.flatnonzero(keep[0])
            if idx.size > PLV_MAX_NEURONS:  # O(n^2) memory: a spread subset (recorded in plv_neurons)
                idx = idx[np.linspace(0, idx.size - 1, PLV_MAX_NEURONS).round().astype(int)]
            plv = plv_matrix(phases[half, 0][:, idx])
            n = plv.shape[0]
            out["plv_mean"] = float((plv.sum() - n) / (n * (n - 1))) if n > 1 else float("nan")
            out["plv_neurons"] = int(n)
        if labels is not None and active is None:
            out["module_order_parameter_mean"] = group_order_parameter(phases[half], labels).mean(axis=(0, 1)).tolist()
    return out


def energy_summary(trace: Trace) -> dict:
    """Energy totals (summed over domains, mean over replicas), the ledger's worst imbalance, power per epoch."""
    from .energy import ledger_consumed
    from .metabolism import LEDGER, imbalance

    m = trace.metrics
    e = trace.metabolism["reserve"].astype(float)  # (T, B, D)
    # a column the trace lacks (consumed_glia where the glia draw no power) is zero throughout
    led = {k: trace.metabolism[f"ledger/{k}"].astype(float) if f"ledger/{k}" in trace.metabolism else np.zeros_like(e)
           for k in LEDGER}
    out = {f"total_{k}": float(v[-1].sum(-1).mean()) for k, v in led.items()}
    consumed = ledger_consumed(led)
    out.update(
        total_consumed=consumed,
        reserve_final=float(e[-1].sum(-1).mean()),
        reserve_min=float(e.min()),
        ledger_max_imbalance=float(np.abs(imbalance(e, led)).max()),
        mean_power=consumed / max(float(trace.time[-1] - trace.time[0]), 1e-300),
    )
    epochs = trace.metabolism.get("epoch")
    if epochs is not None and (epochs >= 0).any():
        power = trace.metabolism["power"]  # (T, B)
        r = m["order_parameter"]
        out["by_epoch"] = {
            int(k): {"mean_power": float(power[epochs == k].mean()), "order_parameter_mean": float(r[epochs == k].mean())}
            for k in np.unique(epochs)
        }
    return out


READ_FACTOR = 4  # bytes of working memory per byte of phase array read: float64 copies and complex exponentials


def load(path, phases: bool = True) -> Trace:
    """read_trace after checking that its series (and the measures' working copies) fit in free memory."""
    from .resources import GIB, available_bytes

    d = describe(path)
    big = ("neurons/phase", "glia/phase")
    need = 0
    for name, shape in d["datasets"].items():
        if shape and (name in big and phases or name.startswith(("metrics/", "metabolism/", "structure/"))):
            need += int(np.prod(shape, dtype=np.float64)) * 8 * (READ_FACTOR if name in big else 1)
    free = available_bytes()
    if free is not None and need > free:
        raise ConfigError(f"{d['path']}: reading the trace for its measures needs about {need / GIB:.3g} GiB but only "
                          f"{free / GIB:.3g} GiB are free; read it with phases=False, or record fewer records or "
                          f"neurons (record.phases: false keeps the metrics only)")
    return read_trace(path, phases=phases)


def check_trace(trace: Trace) -> None:
    """Refuse (ConfigError naming the file) a trace that lacks what the measures read: records, the order
    parameter, the natural frequencies, and series as long as /time."""
    where = trace.path
    rows = len(trace.time)
    if rows == 0:
        raise ConfigError(f"{where}: the trace holds no records yet")
    need = {"metrics/order_parameter": trace.metrics.get("order_parameter"),
            "neurons/frequency": trace.static.get("neurons/frequency")}
    if "glia_order_parameter" in trace.metrics:
        need["glia/frequency"] = trace.static.get("glia/frequency")
    for name, value in need.items():
        if value is None:
            raise ConfigError(f"{where}: not a complete dgnn trace (no /{name})")
    series = {f"metrics/{k}": v for k, v in trace.metrics.items()}
    series.update({"neurons/phase": trace.neuron_phase, "glia/phase": trace.glia_phase})
    series.update({f"metabolism/{k}": v for k, v in trace.metabolism.items()})
    for name, value in series.items():
        if value is not None and (np.ndim(value) < 1 or len(value) != rows):
            raise ConfigError(f"{where}: /{name} holds {len(value) if np.ndim(value) else 0} records but /time {rows}")
    r = trace.metrics["order_parameter"]
    if r.ndim != 2 or trace.static["neurons/frequency"].ndim != 2 or r.shape[1] != trace.static["neurons/frequency"].shape[0]:
        raise ConfigError(f"{where}: /metrics/order_parameter {r.shape} and /neurons/frequency "
                          f"{trace.static['neurons/frequency'].shape} do not agree on the replicas")


def summarize(trace: Trace | str, q_max: int = 8) -> dict:
    """Numbers for a trace: per population r, metastability, frequencies, PLV; glia:neuron Farey ratio and n:m index.

    Time averages use the second half of the records (the first half is treated as transient).
    """
    if isinstance(q_max, bool) or not isinstance(q_max, (int, np.integer)) or q_max < 1:
        raise ConfigError(f"q_max: must be an integer >= 1 (the largest Farey denominator), found {q_max!r}")
    if not isinstance(trace, Trace):
        trace = load(trace)
    check_trace(trace)
    t = trace.time
    half = slice(len(t) // 2, None)
    out = {"status": trace.status, "records": int(len(t)), "time": [float(t[0]), float(t[-1])]}
    m = trace.metrics
    out["neurons"] = _population(
        trace.neuron_phase, m["order_parameter"], t, half, trace.static["neurons/frequency"],
        trace.static.get("neurons/module"), m.get("structure_active"),
    )
    if "structure_size" in m:
        size = m["structure_size"]  # (T, B, 2)
        ev = trace.static.get("structure/events")
        out["structure"] = {
            "neurons_initial": float(size[0, :, 0].mean()), "neurons_final": float(size[-1, :, 0].mean()),
            "synapses_initial": float(size[0, :, 1].mean()), "synapses_final": float(size[-1, :, 1].mean()),
            "glia_initial": float(size[0, :, 2].mean()), "glia_final": float(size[-1, :, 2].mean()),
            "events": {} if ev is None else {
                f"{op.decode()}_{'accepted' if acc else 'rejected'}": int(((ev["operator"] == op) & (ev["accepted"] == acc)).sum())
                for op in np.unique(ev["operator"]) for acc in (True, False)
            },
        }
    if "glia_order_parameter" in m:
        out["glia"] = _population(trace.glia_phase, m["glia_order_parameter"], t, half, trace.static["glia/frequency"],
                                  active=m.get("structure_glia_active"))
        if trace.neuron_phase is not None and trace.glia_phase is not None and len(t) >= 2:
            # ratio of population rhythms from the unwrapped mean phases of each population
            wn = out["neurons"]["mean_frequency"]
            wg = mean_frequency(trace.glia_phase[half], t[half]).mean()
            if abs(wg) > 1e-12 and np.isfinite(wn / wg):
                p, q, err = farey(wn / wg, q_max)
                idx = nm_locking_index(
                    np.unwrap(m["glia_mean_phase"][half], axis=0), np.unwrap(m["mean_phase"][half], axis=0), p, q
                )
                out["neuron_to_glia_frequency_ratio"] = {
                    "ratio": float(wn / wg), "farey": f"{p}:{q}", "error": err, "q_max": q_max,
                    "nm_locking_index": float(idx.mean()),
                }
    if trace.metabolism:
        out["metabolism"] = energy_summary(trace)
    return out
