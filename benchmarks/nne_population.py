"""NNE population scoring: one batched product per generation against a Python loop over genotypes, in the same
process (target: >= 20x). Digits 0-9, seed 004's network shape at dgnn's NNE defaults.

    python benchmarks/nne_population.py [--threads 1] [--population 100] [--blocks 5] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dgnn.learn.config import DatasetConfig
from dgnn.learn.data import load_dataset
from dgnn.search.nne import NNE, make_genome, population_fitness, population_fitness_loop, sample_population


def timed(fns, blocks: int, calls: list[int]) -> list[float]:
    """Best wall time of each function, s. Each block runs one function `calls` times in a row (the first call
    warms its caches and is not counted), as an NNE run uses one of them for every generation; blocks alternate
    so that both see the same load on a shared machine. Wall, not process time: with 2 threads that counts both."""
    best = [float("inf")] * len(fns)
    for _ in range(blocks):
        for i, (fn, n) in enumerate(zip(fns, calls)):
            fn()
            for _ in range(n):
                t0 = time.perf_counter()
                fn()
                best[i] = min(best[i], time.perf_counter() - t0)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--population", type=int, default=NNE().population)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    d = NNE()
    data = load_dataset(DatasetConfig(name="digits"), 0)
    gen = torch.Generator().manual_seed(0)
    genome = make_genome(data.n_features, data.n_classes, d.hidden, d.edge_prob, d.genes, d.beta, gen)
    x = sample_population(torch.full((d.genes,), 0.5), args.population, gen)  # as evolve_step draws them
    y = torch.as_tensor(data.x_train[: d.samples], dtype=torch.float32)
    labels = torch.as_tensor(data.y_train[: d.samples])
    if not torch.allclose(population_fitness(genome, x, y, labels), population_fitness_loop(genome, x, y, labels), atol=1e-4):
        raise SystemExit("batched and looped fitness differ")
    batched, loop = timed([lambda: population_fitness(genome, x, y, labels),
                           lambda: population_fitness_loop(genome, x, y, labels)], args.blocks, [10, 2])
    row = {"threads": args.threads, "population": args.population, "samples": d.samples, "hidden": d.hidden,
           "genes": d.genes, "batched_s": batched, "loop_s": loop, "speedup": loop / batched,
           "generations_per_s": 1.0 / batched}
    print(f"population {args.population} x {d.samples} samples: batched {1e3 * batched:.1f} ms, loop {1e3 * loop:.1f} ms "
          f"per generation: {loop / batched:.0f}x ({1 / batched:.0f} generations/s)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"nne_population-threads{args.threads}.json").write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
