"""Throughput in oscillator-steps per second: dgnn's backends against scipy solve_ivp, a plain numpy RK4,
neurolib's Kuramoto (if it installs) or a numba reimplementation of its element-wise Euler scheme, and the
machine's own float32 matmul rate, all measured in the same run.

    python benchmarks/throughput.py [--threads 1] [--quick] [--out benchmarks/results]
    python benchmarks/throughput.py --device cuda [--out DIR]          # the GPU suite (benchmarks/gpu_suite.py)
    python benchmarks/throughput.py --device cpu --gpu-suite --small   # a dry run of the GPU suite on the CPU

Every dgnn number is the real simulation path (Simulation.advance: model, coupling backend, solver, phase
wrapping), phases not recorded. Prints a markdown table and writes it (and JSON) under --out.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from dgnn.config import config_from_dict
from dgnn.simulation import Simulation

DT = 0.01
SECONDS = 1.5  # measuring time per case after warm-up


def timed(step, n_osc, steps_per_call, seconds=SECONDS, warmup=0.0, sync=lambda: None):
    """Rate of n_osc * steps_per_call per call of step(); warm-up: one call, or calls for `warmup` seconds.
    sync() waits for queued device work, so the clock reads finished work."""
    t0 = time.perf_counter()
    step()
    while time.perf_counter() - t0 < warmup:
        step()
    sync()
    calls, t0 = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        el = time.perf_counter() - t0
        if el >= seconds:
            sync()
            el = time.perf_counter() - t0
            return n_osc * steps_per_call * calls / el


def rate_config(topology, n, b, dtype, method="rk4", noise=0.0, cuda_graph=True):
    """The benchmark's run: 20 steps per record from N B = 1e6 on, else 50; phases not recorded."""
    steps = 20 if n * b >= 1e6 else 50
    return config_from_dict({
        "replicas": b, "dtype": dtype, "neurons": {"count": n}, "topology": topology, "noise": {"neurons": noise},
        "solver": {"method": method, "dt": DT, "duration": DT * steps * 10**6, "cuda_graph": cuda_graph},
        "record": {"every": DT * steps, "phases": False},
    })


def dgnn_rate(topology, n, b, dtype, method="rk4", noise=0.0, seconds=SECONDS, device="cpu", cuda_graph=True,
              warmup=0.0):
    cfg = rate_config(topology, n, b, dtype, method, noise, cuda_graph)
    t0 = time.perf_counter()
    sim = Simulation(cfg, device=device)
    build = time.perf_counter() - t0
    sync = torch.cuda.synchronize if sim.device.type == "cuda" else (lambda: None)
    rate = timed(sim.advance, n * b, cfg.steps_per_record, seconds, warmup, sync)
    return rate, build, sim.field.neuron_coupling.name, sim


def dense_k(sim):
    """The dgnn run's coupling matrix K (N, N), so references integrate the very same model."""
    g = sim.field.graph
    k = np.zeros((g.n, g.n))
    tgt, src, w = g.edges()
    k[tgt, src] = w / g.normaliser
    return k


def solve_ivp_rate(k, omega, seconds=SECONDS):
    """The usual numpy way: all-pairs sin in the right-hand side, RK45 with max_step = dt."""
    from scipy.integrate import solve_ivp

    def rhs(t, th):
        return omega + (k * np.sin(th[None, :] - th[:, None])).sum(axis=1)

    th0 = np.random.default_rng(0).uniform(-np.pi, np.pi, omega.size)
    span = 20 * DT
    return timed(lambda: solve_ivp(rhs, (0, span), th0, max_step=DT, method="RK45"), omega.size, 20, seconds)


def numpy_rk4_rate(k, omega, seconds=SECONDS):
    """Plain numpy RK4 in complex-exponential form: sum_j K_ij sin(th_j - th_i) = Im(conj(z_i) (K z)_i)."""
    th = np.random.default_rng(0).uniform(-np.pi, np.pi, omega.size)

    def f(x):
        z = np.exp(1j * x)
        return omega + np.imag(np.conj(z) * (k @ z))

    def run():
        nonlocal th
        for _ in range(20):
            k1 = f(th)
            k2 = f(th + 0.5 * DT * k1)
            k3 = f(th + 0.5 * DT * k2)
            k4 = f(th + DT * k3)
            th = th + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    return timed(run, omega.size, 20, seconds)


def neurolib_rate(k, omega, seconds=SECONDS):
    """neurolib's KuramotoModel if the installed neurolib has it; else None and the reason."""
    try:
        from neurolib.models.kuramoto import KuramotoModel  # noqa: F401
    except ImportError as exc:
        return None, f"neurolib Kuramoto unavailable ({exc.__class__.__name__}: the PyPI release 0.6.2 has no kuramoto model)"
    n = omega.size
    model = KuramotoModel(Cmat=k * n, Dmat=np.zeros_like(k))
    model.params["duration"] = 20 * DT
    model.params["dt"] = DT
    model.params["sigma_ou"] = 0.0
    return timed(model.run, n, 20, seconds), "neurolib KuramotoModel"


def numba_euler_rate(k, omega, seconds=SECONDS):
    """neurolib's Kuramoto scheme (numba-jitted element-wise Euler, O(N^2) sin per step), reimplemented here."""
    if importlib.util.find_spec("numba") is None:
        return None
    import numba

    @numba.njit(cache=False)
    def euler(th, omega, k, dt, steps):
        n = th.size
        nxt = np.empty_like(th)
        for _ in range(steps):
            for i in range(n):
                acc = 0.0
                for j in range(n):
                    acc += k[i, j] * np.sin(th[j] - th[i])
                nxt[i] = np.mod(th[i] + dt * (omega[i] + acc), 2 * np.pi)
            th[:] = nxt
        return th

    th = np.random.default_rng(0).uniform(0, 2 * np.pi, omega.size)
    return timed(lambda: euler(th, omega, k, DT, 5), omega.size, 5, seconds)


def matmul_rate(rows, n, dtype=torch.float32, seconds=1.0):
    """FLOP/s of (rows, N) @ (N, N), the product a dense batched step is made of."""
    a, k = torch.randn(rows, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ k
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ k
        calls += 1
    return 2 * rows * n * n * calls / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="the target cases only")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cpu: the CPU benchmark; cuda: the GPU suite (ceilings, CUDA graphs, large cases, learning)")
    ap.add_argument("--gpu-suite", action="store_true", help="run the GPU suite on --device (implied by cuda)")
    ap.add_argument("--small", action="store_true",
                    help="GPU suite at 1/100 of the sizes and short timings: a dry run, its numbers mean nothing")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    if args.device == "cuda" or args.gpu_suite:
        from gpu_suite import run_suite  # benchmarks/gpu_suite.py, beside this file

        return run_suite(args)
    rows, results = [], {"threads": args.threads, "torch": torch.__version__, "machine": platform.processor() or platform.machine()}

    def add(label, rate, ref=None, note=""):
        rows.append((label, rate, ref, note))
        print(f"{label:58s} {rate:10.3g}" + (f"  {rate / ref:8.1f}x" if ref else "") + (f"  {note}" if note else ""), flush=True)

    dense = lambda n: {"kind": "erdos_renyi", "p": 0.5}  # noqa: E731
    sparse = lambda n: {"kind": "erdos_renyi", "p": 20.0 / n}  # noqa: E731
    a2a = lambda n: {"kind": "all_to_all"}  # noqa: E731

    # --- N = 1000, B = 1, float32 dense: dgnn against the references, same K and frequencies
    rate, _, _, sim = dgnn_rate(dense(1000), 1000, 1, "float32")
    k, omega = dense_k(sim), sim.field.omega[0].double().numpy()
    ivp = solve_ivp_rate(k, omega)
    rk4np = numpy_rk4_rate(k, omega)
    nl, nl_label = neurolib_rate(k, omega)
    nb = numba_euler_rate(k, omega)
    print("## references at N = 1000 (dense ER p = 0.5), oscillator-steps/s")
    add("scipy solve_ivp RK45 (numpy all-pairs sin, max_step=dt)", ivp)
    add("numpy RK4 (complex-exponential form)", rk4np)
    if nl is not None:
        add(nl_label, nl)
    else:
        print(f"  {nl_label}")
    if nb is not None:
        add("numba element-wise Euler (neurolib's scheme, reimplemented)", nb)
    add("dgnn dense rk4 float32 B=1", rate, ivp, "vs solve_ivp")
    results.update(solve_ivp=ivp, numpy_rk4=rk4np, neurolib=nl, numba_euler=nb, dgnn_dense_1000_b1=rate)
    results["ratio_vs_solve_ivp"] = rate / ivp
    if nl is not None:
        results["ratio_vs_neurolib"] = rate / nl
    if nb is not None:
        results["ratio_vs_numba_euler"] = rate / nb

    # --- dense batched against the machine's matmul rate
    print("## dense batched float32 vs this machine's matmul rate")
    for n in (1000, 2000):
        mm = matmul_rate(128, n)
        r, _, _, _ = dgnn_rate(dense(n), n, 64, "float32")
        flops = r / 64 * 4 * 2 * 128 * n * n / n  # per oscillator-step -> per step: 4 stages x (2B, N) @ (N, N)
        add(f"dgnn dense rk4 float32 B=64 N={n} (GFLOP/s {flops / 1e9:.1f} of {mm / 1e9:.1f})", r, None,
            f"{100 * flops / mm:.0f}% of matmul rate")
        results[f"dense_b64_n{n}_matmul_fraction"] = flops / mm

    # --- targets
    print("## targets")
    r, build, _, _ = dgnn_rate(a2a(10**6), 10**6, 1, "float32")
    add("dgnn mean field rk4 float32 B=1 N=1e6", r, None, "target >= 2e7")
    results["mean_field_1e6"] = r
    r, build, name, _ = dgnn_rate(sparse(10**5), 10**5, 1, "float32")
    add(f"dgnn {name} ER <k>=20 rk4 float32 B=1 N=1e5 (graph build {build:.0f}s)", r, None, "target >= 2e6")
    results["sparse_1e5"] = r
    for topo, label in ((a2a, "mean field"), (dense, "dense")):
        r, _, _, _ = dgnn_rate(topo(1000), 1000, 64, "float32", method="euler_maruyama", noise=0.1)
        add(f"dgnn {label} euler_maruyama float32 B=64 N=1000", r, None, "target >= 1.5e7")
        results[f"em_{label.replace(' ', '_')}_b64"] = r

    if not args.quick:
        print("## grid: oscillator-steps/s")
        grid = []
        for kind, topo, sizes in (("mean_field", a2a, (100, 1000, 10**4, 10**5, 10**6)),
                                  ("dense", dense, (100, 1000, 4000)),
                                  ("sparse", sparse, (10**4, 10**5))):
            for n in sizes:
                for b in (1, 64):
                    if b * n > 64 * 10**5 or (kind == "dense" and b == 64 and n > 2000):
                        continue
                    for dtype in ("float32", "float64"):
                        r, _, name, _ = dgnn_rate(topo(n), n, b, dtype, seconds=1.0)
                        grid.append({"backend": name, "N": n, "B": b, "dtype": dtype, "rate": r})
                        add(f"{name:10s} N={n:<8d} B={b:<3d} {dtype}", r)
        results["grid"] = grid

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"throughput-threads{args.threads}.json").write_text(json.dumps(results, indent=2))
    lines = ["| case | oscillator-steps/s | ratio | note |", "|---|---:|---:|---|"]
    lines += [f"| {lab} | {rate:.3g} | {'' if ref is None else f'{rate / ref:.1f}x'} | {note} |" for lab, rate, ref, note in rows]
    (out / f"throughput-threads{args.threads}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}/throughput-threads{args.threads}.md")


if __name__ == "__main__":
    main()
