"""A candidate's performance estimate: train it on the task's training split (early stopping on validation), then
measure information I(Y; Y_hat) in bits and accuracy on the validation split (the objective) and the test split
(reported beside it), and its energies in every measure it has (dgnn.energy)."""
from __future__ import annotations

import functools
import json
import math
import time

import numpy as np
import torch
from torch import nn

from ...energy import EnergyTable, mac_joules
from ...learn.config import DatasetConfig, ModelConfig, TrainConfig
from ...learn.data import Dataset, load_dataset
from ...learn.measures import confusion_matrix, mutual_information_bits
from ...learn.batched import train_batch
from ...learn.models import build_model, parameter_count
from ...learn.stacked import batch_key
from ...learn.train import train
from ..engine import UnitFailed


@torch.no_grad()
def split_measures(model: nn.Module, x: np.ndarray, y: np.ndarray, n_classes: int, dtype) -> dict:
    """Accuracy and I(Y; Y_hat) in bits of one split."""
    model.eval()
    pred = model(torch.as_tensor(x, dtype=dtype))[0].argmax(1).numpy()
    return {"accuracy": float((pred == y).mean()),
            "information_bits": mutual_information_bits(confusion_matrix(y, pred, n_classes))}


@torch.no_grad()
def energies(model: nn.Module, x: np.ndarray, table: EnergyTable, dtype) -> dict:
    """Every energy measure the model has, per inference: mac_joules always, metabolic for phase-based nets (mean
    over the validation inputs)."""
    out = {"joules_per_inference": mac_joules(model.macs(), parameter_count(model), table), "metabolic_energy": math.nan}
    if hasattr(model, "metabolic_energy"):
        out["metabolic_energy"] = float(model.metabolic_energy(torch.as_tensor(x, dtype=dtype)).mean())
    return out


COLUMN = {"metabolic": "metabolic_energy", "mac_joules": "joules_per_inference"}


def measure(model: nn.Module, data: Dataset, energy: str, table: EnergyTable, dtype=None) -> dict:
    """The trial row of a trained model: validation (objective) and test measures, energies, size."""
    dtype = dtype if dtype is not None else next(model.parameters()).dtype
    val = split_measures(model, data.x_val, data.y_val, data.n_classes, dtype)
    test = split_measures(model, data.x_test, data.y_test, data.n_classes, dtype)
    e = energies(model, data.x_val, table, dtype)
    row = {"energy": e[COLUMN[energy]], "energy_measure": energy, "information_bits": val["information_bits"],
           "accuracy": val["accuracy"], "information_bits_test": test["information_bits"],
           "accuracy_test": test["accuracy"], **e, "parameters": parameter_count(model),
           "macs": float(model.macs()["macs"])}
    if not math.isfinite(row["energy"]):
        raise UnitFailed(f"the candidate has no {energy} energy")
    return row


def train_candidate(candidate: dict, data: Dataset, seed: int, penalty: str, energy: str, table: EnergyTable,
                    dtype) -> tuple[dict, dict]:
    """Build, train and measure one candidate {model, train, lambda}: (row, training history)."""
    mcfg = ModelConfig.model_validate(candidate["model"])
    tcfg = TrainConfig.model_validate(candidate["train"])
    t0 = time.perf_counter()
    model = build_model(mcfg, data.n_features, data.n_classes, seed, dtype)
    try:
        res = train(model, data, tcfg, candidate["lambda"], penalty, seed, dtype=dtype)
    except FloatingPointError as exc:
        raise UnitFailed(str(exc)) from None
    row = measure(res.model, data, energy, table, dtype)
    row.update(epochs=res.epochs, seconds=time.perf_counter() - t0)
    return row, res.history


def train_candidates(candidates: list[dict], data: Dataset, seeds: list[int], penalty: str, energy: str,
                     table: EnergyTable, dtype) -> list[tuple[dict, dict] | UnitFailed]:
    """Candidates of one shape (equal dgnn.learn.stacked.batch_key) trained as one batch and measured one by one:
    per candidate what train_candidate returns (equal numbers), or the UnitFailed it raises. A row's seconds is
    the candidate's share of the batch plus its own measuring."""
    t0 = time.perf_counter()
    models = [build_model(ModelConfig.model_validate(c["model"]), data.n_features, data.n_classes, s, dtype)
              for c, s in zip(candidates, seeds)]
    built = (time.perf_counter() - t0) / len(candidates)
    results = train_batch(models, data, [TrainConfig.model_validate(c["train"]) for c in candidates],
                          [c["lambda"] for c in candidates], penalty, seeds, dtype)
    out = []
    for res in results:
        t1 = time.perf_counter()
        try:
            if isinstance(res, FloatingPointError):
                raise UnitFailed(str(res))
            row = measure(res.model, data, energy, table, dtype)
        except UnitFailed as exc:
            out.append(exc)
            continue
        row.update(epochs=res.epochs, seconds=built + res.seconds + time.perf_counter() - t1)
        out.append((row, res.history))
    return out


def evaluate_records(records: list[dict]) -> list[tuple[dict, dict] | UnitFailed]:
    """Train and measure the candidates of trial records (dgnn.study.nas.run.trial_record), those of one shape as
    one batch and the others alone: per record (row, history), or the UnitFailed of its own; the numbers are
    those of each record trained alone, on CPU to the bit."""
    out: list = [None] * len(records)
    for i, result in evaluate_groups(records):
        out[i] = result
    return out


def evaluate_groups(records: list[dict]):
    """evaluate_records group by group: yields (index, result) as each group finishes."""
    groups: dict = {}
    for i, rec in enumerate(records):
        groups.setdefault(_group(rec, i), []).append(i)
    for members in groups.values():
        recs = [records[i] for i in members]
        first = recs[0]
        dtype = torch.float64 if first["dtype"] == "float64" else torch.float32
        data = task_data(json.dumps(first["task"], sort_keys=True), first["split_seed"])
        table = EnergyTable.model_validate(first["energy_table"])
        if len(recs) == 1:
            try:
                results = [train_candidate(first["candidate"], data, first["seed"], first["penalty"],
                                           first["energy"], table, dtype)]
            except UnitFailed as exc:
                results = [exc]
        else:
            results = train_candidates([r["candidate"] for r in recs], data, [r["seed"] for r in recs],
                                       first["penalty"], first["energy"], table, dtype)
        yield from zip(members, results)


def _group(record: dict, i: int):
    """Records train together when everything but their per-candidate keys is equal; else each is its own."""
    cand = record["candidate"]
    try:
        key = batch_key(ModelConfig.model_validate(cand["model"]), TrainConfig.model_validate(cand["train"]))
    except (KeyError, TypeError, ValueError):
        key = None
    if key is None:
        return ("alone", i)
    shared = {k: v for k, v in record.items() if k not in ("candidate", "seed")}
    return (key, json.dumps(shared, sort_keys=True))


@functools.lru_cache(maxsize=2)
def task_data(task_json: str, seed: int):
    """The task's splits for the search's split seed (one load per process, shared by its trials)."""
    return load_dataset(DatasetConfig.model_validate_json(task_json), seed)




def evaluate_dynamics(run: dict, folder, attractor_trials: int) -> tuple[dict, dict]:
    """A free-running candidate (a `dgnn run` config): simulate it into folder/trace.h5, then E = the energy its
    neurons drew from the glial reserves (the `ledger` measure, per unit time) and I = log2 of the distinct
    attractors its network reaches from random initial conditions (dgnn.attractors), both means over replicas."""
    from ...analysis import summarize
    from ...attractors import attractor_information
    from ...config import config_from_dict
    from ...energy import ledger_consumed
    from ...metabolism import LEDGER
    from ...simulation import run as simulate
    from ...traces import read_trace

    cfg = config_from_dict(run, "candidate run")
    t0 = time.perf_counter()
    res = simulate(cfg, folder, overwrite=True, progress=False)
    if res.status != "complete":
        raise UnitFailed(f"the run {res.status}: {res.message}")
    trace = read_trace(res.path, phases=False)
    if not trace.metabolism:
        raise UnitFailed("a free-dynamics candidate needs metabolism.enabled (its energy is the ledger's)")
    span = float(trace.time[-1] - trace.time[0])
    energy = ledger_consumed({k: trace.metabolism[f"ledger/{k}"] for k in LEDGER if f"ledger/{k}" in trace.metabolism}) / span
    freq = (trace.static["neurons/frequency"], trace.static.get("glia/frequency", np.zeros((cfg.replicas, 0))))
    bits = [attractor_information(cfg, trace.checkpoint, b, trials=attractor_trials,
                                  frequencies=(freq[0][b], freq[1][b]))["bits"] for b in range(cfg.replicas)]
    s = summarize(trace)
    row = {"energy": energy, "energy_measure": "ledger", "information_bits": float(np.mean(bits)),
           "information_bits_sd": float(np.std(bits)), "accuracy": math.nan, "accuracy_test": math.nan,
           "information_bits_test": math.nan, "metabolic_energy": energy, "joules_per_inference": math.nan,
           "parameters": 0, "macs": 0.0, "r_mean": s["neurons"]["order_parameter_mean"],
           "metastability": s["neurons"]["metastability"], "seconds": time.perf_counter() - t0}
    return row, {}
