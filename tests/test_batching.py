"""Candidates of one shape trained as one batch (dgnn.learn.batched, `batch: K` in dgnn search): every candidate's
trained weights, history, epochs and trial row equal its one-by-one train() run, bit for bit on CPU; the search
keeps its budget, its stop flag and its heartbeats with batches."""
from __future__ import annotations

import csv
import itertools
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import torch

from dgnn.config import config_from_dict
from dgnn.errors import ConfigError
from dgnn.learn.batched import train_batch
from dgnn.learn.config import DatasetConfig, ModelConfig, TrainConfig
from dgnn.learn.data import load_dataset
from dgnn.learn.models import build_model
from dgnn.learn.stacked import batch_key, linear
from dgnn.learn.train import train
from dgnn.study.nas.command import search
from dgnn.study.nas.config import SearchConfig
from dgnn.study.nas.run import rerun
from dgnn.study.storage import HEARTBEAT_KEY, Heartbeat, open_storage, resolve


@pytest.fixture(scope="module")
def data():
    return load_dataset(DatasetConfig(name="digits", classes=[0, 1, 2]), 0)  # 31 samples in the last minibatch


# ---------------------------------------------------------------------------------------------- the products
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stacked_products_equal_each_candidates_own_product_and_gradients(dtype):
    """linear() against `a @ w.T` per candidate, forward and both gradients, over shapes whose blocks are
    misaligned in the stack (odd sizes), below torch.bmm's own-loop threshold, and BLAS-sized."""
    gen = torch.Generator().manual_seed(0)
    for k, m, n, h in itertools.product((2, 3), (1, 9, 64), (3, 9, 64), (7, 10, 32)):
        a, w = torch.randn(k, m, n, generator=gen, dtype=dtype), torch.randn(k, h, n, generator=gen, dtype=dtype)
        g = torch.randn(k, m, h, generator=gen, dtype=dtype)
        a_s, w_s = a.clone().requires_grad_(), w.clone().requires_grad_()
        out = linear(a_s, w_s)
        out.backward(g)
        for i in range(k):
            a1, w1 = a[i].clone().requires_grad_(), w[i].clone().requires_grad_()
            o1 = a1 @ w1.T
            o1.backward(g[i].clone())
            assert torch.equal(o1, out[i]) and torch.equal(a1.grad, a_s.grad[i]) and torch.equal(w1.grad, w_s.grad[i]), \
                (k, m, n, h, i)


# -------------------------------------------------------------------------------------------- the training
MODELS = {
    "mlp": dict(kind="mlp", hidden=[16]),
    "mlp_sigmoid_odd": dict(kind="mlp", hidden=[9, 7], activation="sigmoid", readout_norm=1.0),
    "osc_weight": dict(kind="oscillator", hidden=[10], settle_time=1.0, dt=0.5),
    "osc_phase_hkb": dict(kind="oscillator", hidden=[5, 3], settle_time=1.0, dt=0.5, parameterization="phase",
                          potential="hkb", b=0.3, glia=True, recurrent=True),
    "osc_phase_hkb1": dict(kind="oscillator", hidden=[5], settle_time=1.0, dt=0.5, parameterization="phase",
                           potential="hkb", b=0.3, glia=True, recurrent=True),
    "osc_drive": dict(kind="oscillator", hidden=[7], settle_time=1.0, dt=0.5, encoding="drive", input_scale=0.8,
                      glia=True, method="midpoint"),
}


def _one_by_one(mcfg, data, cfgs, lams, seeds, energy, dtype, updates):
    out = []
    for c, lam, s, up in zip(cfgs, lams, seeds, updates):
        m = build_model(mcfg.model_copy(update=up), data.n_features, data.n_classes, s, dtype)
        try:
            out.append(train(m, data, c, lam, energy, s, dtype=dtype))
        except FloatingPointError as exc:
            out.append(exc)
    return out


def _batched(mcfg, data, cfgs, lams, seeds, energy, dtype, updates):
    models = [build_model(mcfg.model_copy(update=up), data.n_features, data.n_classes, s, dtype)
              for s, up in zip(seeds, updates)]
    return train_batch(models, data, cfgs, lams, energy, seeds, dtype)


def _assert_same(ref, got):
    for i, (r, g) in enumerate(zip(ref, got)):
        if isinstance(r, FloatingPointError):
            assert isinstance(g, FloatingPointError) and str(g) == str(r), (i, g)
            continue
        a, b = r.model.state_dict(), g.model.state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), (i, [k for k in a if not torch.equal(a[k], b[k])])
        assert r.history == g.history and r.epochs == g.epochs, i


@pytest.mark.parametrize("name,energy,dtype", [
    ("mlp", "activation", torch.float32), ("mlp_sigmoid_odd", "activation", torch.float64),
    ("osc_weight", "activation", torch.float32), ("osc_weight", "metabolic", torch.float64),
    ("osc_phase_hkb", "activation", torch.float32), ("osc_phase_hkb1", "metabolic", torch.float32),
    ("osc_drive", "activation", torch.float64)])
def test_batched_training_equals_one_by_one_to_the_bit(data, name, energy, dtype):
    """Candidates differing in seed, learning rate, weight decay, lambda (0 and > 0), patience and epochs, and
    (oscillator nets) coupling scale, input encoding scales, rate cap and HKB b: each one's best weights, history
    and epoch count equal its own train() run; some stop early (patience), so the batch shrinks as it goes."""
    mcfg = ModelConfig(**MODELS[name])
    cfgs = [TrainConfig(lr=lr, weight_decay=wd, epochs=ep, patience=pa)
            for lr, wd, ep, pa in ((3e-3, 0.0, 3, 1), (1e-2, 1e-3, 2, 2), (5e-3, 0.0, 3, 3))]
    lams, seeds = [0.0, 0.2, 0.05], [3, 4, 5]
    updates = [{}, {}, {}]
    if mcfg.kind == "oscillator":
        scale = 0.6 if mcfg.encoding == "drive" else 1.2
        updates = [{}, {"coupling": 1.5, "input_width": 2.0, "max_rate": 3.0},
                   {"coupling": 0.7, "input_scale": scale, **({"b": 0.1} if mcfg.b else {})}]
    ref = _one_by_one(mcfg, data, cfgs, lams, seeds, energy, dtype, updates)
    _assert_same(ref, _batched(mcfg, data, cfgs, lams, seeds, energy, dtype, updates))


def test_sgd_with_per_candidate_rates_equals_one_by_one(data):
    mcfg = ModelConfig(**MODELS["mlp"])
    cfgs = [TrainConfig(optimizer="sgd", lr=lr, weight_decay=wd, epochs=3, patience=3)
            for lr, wd in ((0.05, 0.0), (0.01, 1e-3), (0.02, 1e-3))]
    args = ([0.0, 0.1, 0.3], [1, 2, 3], torch.float32, [{}] * 3)
    ref = _one_by_one(mcfg, data, cfgs, args[0], args[1], "activation", *args[2:])
    _assert_same(ref, _batched(mcfg, data, cfgs, args[0], args[1], "activation", *args[2:]))


def test_a_diverging_candidate_fails_as_alone_and_the_others_are_untouched(data):
    mcfg = ModelConfig(**MODELS["mlp"])
    cfgs = [TrainConfig(lr=lr, epochs=3, patience=3) for lr in (3e-3, 1e20, 1e-2)]
    args = ([0.0, 0.0, 0.1], [1, 2, 3], torch.float32, [{}] * 3)
    ref = _one_by_one(mcfg, data, cfgs, args[0], args[1], "activation", *args[2:])
    assert isinstance(ref[1], FloatingPointError)
    _assert_same(ref, _batched(mcfg, data, cfgs, args[0], args[1], "activation", *args[2:]))


def test_batch_key_names_what_may_differ_within_a_batch():
    base, t = ModelConfig(kind="oscillator", hidden=[8]), TrainConfig()
    key = batch_key(base, t)
    for m, tr in ((dict(coupling=2.0, input_scale=1.0, input_width=3.0, max_rate=4.0), {}),
                  ({}, dict(lr=0.1, weight_decay=0.01, epochs=3, patience=1))):
        assert batch_key(base.model_copy(update=m), t.model_copy(update=tr)) == key
    hkb = base.model_copy(update={"potential": "hkb", "b": 0.2})
    assert batch_key(hkb.model_copy(update={"b": 0.4}), t) == batch_key(hkb, t) != key  # b != 0: two harmonics
    mlp = ModelConfig(kind="mlp", hidden=[8])  # an MLP's key ignores the oscillator keys
    assert batch_key(mlp.model_copy(update={"settle_time": 3.0, "dt": 0.1}), t) == batch_key(mlp, t)
    for m, tr in ((dict(hidden=[9]), {}), (dict(dt=0.1), {}), (dict(parameterization="phase"), {}),
                  (dict(readout_norm=1.0), {}), ({}, dict(batch_size=32)), ({}, dict(optimizer="sgd"))):
        assert batch_key(base.model_copy(update=m), t.model_copy(update=tr)) != key
    assert batch_key(base.model_copy(update={"adjoint": True}), t) is None
    assert batch_key(base.model_copy(update={"method": "dopri5"}), t) is None  # steps would depend on the batch


def test_train_batch_refuses_candidates_of_different_shapes(data):
    models = [build_model(ModelConfig(kind="mlp", hidden=[h]), data.n_features, data.n_classes, 0) for h in (8, 9)]
    with pytest.raises(ValueError, match="one shape"):
        train_batch(models, data, [TrainConfig()] * 2, [0.0] * 2)
    same = [build_model(ModelConfig(kind="mlp", hidden=[8]), data.n_features, data.n_classes, s) for s in (0, 1)]
    with pytest.raises(ValueError, match="batch size"):
        train_batch(same, data, [TrainConfig(), TrainConfig(batch_size=32)], [0.0] * 2)


# ---------------------------------------------------------------------------------------------- the search
SPACE = {"model.kind": {"choice": ["mlp", "oscillator"]}, "model.width": {"choice": [6, 8]},
         "train.lr": {"float": [1e-3, 1e-2], "log": True}, "lambda": {"float": [0.0, 0.2]}}


def _cfg(trials: int, batch: int, **extra) -> SearchConfig:
    return SearchConfig.model_validate({
        "name": "b", "task": {"name": "digits", "classes": [0, 1, 2]},
        "model": {"kind": "oscillator", "hidden": [8], "settle_time": 1.0, "dt": 0.5},
        "train": {"epochs": 2, "patience": 2}, "objectives": {"energy": "mac_joules"}, "space": SPACE,
        "strategy": {"name": "random"}, "budget": {"trials": trials}, "batch": batch, **extra})


def _rows(out) -> list[dict]:
    with open(out / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def _results(rows) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_a_batched_search_records_the_trials_of_a_one_by_one_search(tmp_path):
    """The random sampler proposes the same candidates either way: trials.csv agrees in every column but the
    seconds, candidates the candidate config rejects (Kuramoto with b > 0, which the space's one-key-at-a-time
    probes let through) fail in the batch with their reason while the others train, and a batched trial re-run
    alone from its stored record gives its row again."""
    space = {"model.kind": {"choice": ["mlp", "oscillator"]}, "model.potential": {"choice": ["hkb", "kuramoto"]},
             "model.b": {"float": [0.0, 0.4], "when": {"model.kind": "oscillator"}}, "train.lr": {"float": [1e-3, 1e-2], "log": True},
             "lambda": {"float": [0.0, 0.2]}}
    model = {"kind": "oscillator", "hidden": [6], "settle_time": 1.0, "dt": 0.5, "potential": "hkb"}
    one = search(_cfg(8, 1, space=space, model=model), tmp_path / "one", progress=False)
    many = search(_cfg(8, 8, space=space, model=model), tmp_path / "many", progress=False)
    assert one.status == many.status == "complete"
    a, b = _rows(tmp_path / "one"), _rows(tmp_path / "many")
    assert _results(a) == _results(b) and len(b) == 8
    failed = [r for r in b if r["state"] == "fail"]
    assert failed and all(r["reason"].startswith("rejected by the candidate config") for r in failed)
    kinds = [r["params.model.kind"] for r in b if r["state"] == "complete"]
    assert max(kinds.count("mlp"), kinds.count("oscillator")) >= 2  # (HKB nets of any b share a shape)
    done = next(r for r in b if r["state"] == "complete")
    again = rerun(tmp_path / "many", f"random-{int(done['number']):05d}")
    assert repr(again["information_bits"]) == repr(float(done["information_bits"]))


def test_batches_keep_the_budget_and_stop_after_the_current_batch(tmp_path):
    """A stop flag raised while the first batch trains ends the search after that batch (all its trials told);
    running again (with another batch size: an execution setting) finishes the budget without overshooting it."""
    out = tmp_path / "s"
    storage = {}

    def stop_once_asked() -> bool:
        url = resolve(None, out)
        if "study" not in storage:
            try:
                storage["study"] = optuna.load_study(study_name="search-b", storage=open_storage(url))
            except KeyError:
                return False
        return len(storage["study"].get_trials(deepcopy=False)) > 0

    first = search(_cfg(5, 3), out, progress=False, should_stop=stop_once_asked)
    assert first.status == "interrupted"
    rows = _rows(out)
    assert len(rows) == 3 and all(r["state"] == "complete" for r in rows)
    second = search(_cfg(5, 4), out, progress=False)
    assert second.status == "complete"
    rows = _rows(out)
    assert len(rows) == 5 and all(r["state"] == "complete" for r in rows)  # 2 asked of the batch of 4


def test_a_batch_below_one_is_refused_naming_the_key(tmp_path):
    from inprocess import run_cli

    cfg = tmp_path / "s.yaml"
    cfg.write_text("space:\n  train.lr: {float: [0.001, 0.01]}\nbatch: 0\n")
    line = run_cli("search", cfg).one_line_error()
    assert f"{cfg}:3: batch:" in line and "greater than or equal to 1" in line
    with pytest.raises(ConfigError, match="^s: batch: "):
        config_from_dict({"space": {"train.lr": {"float": [0.001, 0.01]}}, "batch": 0}, "s", model=SearchConfig)


def test_a_killed_batched_worker_has_its_trials_run_again(tmp_path):
    """SIGKILL while a batch trains: its trials go stale (no heartbeat), are failed and queued again, and the next
    run trains each again with the killed trial's point and seed, as a one-by-one search retries a trial."""
    import yaml

    cfg = _cfg(3, 3, train={"epochs": 60, "patience": 60}, space={"train.lr": {"float": [1e-3, 1e-2], "log": True}},
               model={"kind": "oscillator", "hidden": [8], "settle_time": 2.0, "dt": 0.5},
               task={"name": "digits", "classes": [0, 1]})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True)))
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dgnn", "search", str(path), "--out", str(out), "--quiet",
                             "--heartbeat", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    url, t0, running = resolve(None, out), time.monotonic(), []
    while time.monotonic() - t0 < 120 and proc.poll() is None:  # until every trial of the batch has beaten
        try:
            study = optuna.load_study(study_name="search-b", storage=open_storage(url))
            running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        except (KeyError, optuna.exceptions.StorageInternalError, FileNotFoundError):
            pass
        if len(running) == 3 and all(HEARTBEAT_KEY in t.system_attrs for t in running):
            break
        time.sleep(0.1)
    assert len(running) == 3 and all(HEARTBEAT_KEY in t.system_attrs for t in running), proc.communicate()[1]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    res = search(cfg, out, progress=False, heartbeat=Heartbeat(interval=1, grace=2))
    assert res.status == "complete"
    study = optuna.load_study(study_name="search-b", storage=open_storage(url))
    failed = {t.number: t for t in study.get_trials(states=(optuna.trial.TrialState.FAIL,))}
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(failed) == [0, 1, 2] and len(done) == 3  # each killed trial once, run again once
    for t in done:
        orig = failed[t.system_attrs["failed_trial"]]
        assert t.params == orig.params and t.user_attrs["dgnn:seed"] == orig.user_attrs["dgnn:seed"]
        assert t.user_attrs["dgnn:row"]["epochs"] == 60
