"""dgnn search: the space format and its errors, the objectives against closed forms, a search end to end with its
outputs, resume, refusal of another space, failures recorded, and a trial re-run from its record to the same E and I."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import optuna
import pytest

from dgnn.config import config_from_dict
from dgnn.errors import ConfigError
from dgnn.search.objectives import hypervolume, pareto_front, reference_point, score
from dgnn.search.space import SearchSpace
from dgnn.study.nas.command import search
from dgnn.study.nas.config import SearchConfig
from dgnn.study.nas.run import rerun
from dgnn.study.storage import open_storage

TINY = {"name": "tiny", "task": {"name": "digits", "classes": [0, 1, 2]},
        "model": {"kind": "oscillator", "hidden": [6], "settle_time": 1.0, "dt": 0.5},
        "train": {"epochs": 2, "patience": 2}, "objectives": {"energy": "mac_joules"},
        "space": {"model.kind": {"choice": ["oscillator", "mlp"]}, "model.width": {"int": [3, 12]},
                  "model.coupling": {"float": [0.5, 2.0], "when": {"model.kind": "oscillator"}},
                  "train.lr": {"float": [0.002, 0.02], "log": True}},
        "budget": {"trials": 3}}


def tiny(**over) -> SearchConfig:
    return config_from_dict({**TINY, **over}, model=SearchConfig)


# ------------------------------------------------------------------------------------------------------ objectives
def test_pareto_front_and_hypervolume_by_hand():
    """Points (E, I): (1, 1), (2, 3), (3, 2), (4, 4). (3, 2) is beaten by (2, 3); the front is the other three. With
    the reference (5, 0) the dominated area is a staircase: 1 x (2 - 1) + 3 x (4 - 2) + 4 x (5 - 4) = 11."""
    pts = np.array([[1, 1], [2, 3], [3, 2], [4, 4]], dtype=float)
    assert pareto_front(pts).tolist() == [0, 1, 3]
    assert hypervolume(pts, (5.0, 0.0)) == pytest.approx(11.0, abs=1e-12)
    assert hypervolume(pts, (0.5, 0.0)) == 0.0  # nothing beats the reference
    assert hypervolume(np.array([[1.0, 1.0]]), (2.0, 0.0)) == pytest.approx(1.0)
    assert reference_point(np.array([1.0, 3.0, np.nan])) == (pytest.approx(3.3), 0.0)


def test_scores():
    assert score(2.0, 4.0) == 0.5  # bits per unit energy
    assert score(2.0, 4.0, "mnasnet", target=2.0, w=-0.5) == pytest.approx(2.0 * 2.0 ** -0.5)
    assert score(2.0, 2.0, "mnasnet", target=2.0, w=-0.07) == pytest.approx(2.0)  # at the target: I itself


# ------------------------------------------------------------------------------------------------------ the space
@pytest.mark.parametrize("space, message", [
    ({"model.width": {"int": [8, 4]}}, r"space\.model\.width.*empty or inverted range \[8, 4\]"),
    ({"train.lr": {"float": [0.0, 0.1], "log": True}}, r"space\.train\.lr.*log scale needs a range above 0"),
    ({"model.widht": {"int": [4, 8]}}, r"space\.model\.widht: unknown key"),
    ({"model.b": {"float": [0, 1], "when": {"model.potential": "hkb"}}},
     r"space\.model\.b\.when\.model\.potential: a condition on a key that is not in the space"),
    ({"model.kind": {"choice": ["oscillator", "cnn"]}}, r"space\.model\.kind: 'cnn' is rejected by the candidate"),
    ({"model.activation": {"choice": []}}, r"space\.model\.activation.*choice needs at least one value"),
])
def test_a_bad_space_is_one_line_naming_the_key(space, message):
    with pytest.raises(ConfigError, match=message):
        tiny(space=space).search_space()


def test_a_bad_space_exits_2_with_one_line(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("task: {name: digits}\nspace:\n  model.width: {int: [8, 4]}\n")
    run = subprocess.run([sys.executable, "-m", "dgnn", "search", str(cfg), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "space.model.width" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_conditions_hold_and_sampling_follows_them():
    cfg = tiny()
    space = cfg.search_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    kinds = set()
    for _ in range(20):
        t = study.ask()
        point = space.sample(t)
        kinds.add(point["model.kind"])
        assert ("model.coupling" in point) == (point["model.kind"] == "oscillator")
        cand = cfg.candidate(point)
        assert cand["model"]["hidden"] == [point["model.width"]] and cand["train"]["lr"] == point["train.lr"]
        study.tell(t, 0.0)
    assert kinds == {"oscillator", "mlp"}


def test_condition_cycles_are_refused():
    from dgnn.search.space import Dimension

    dims = {"a": Dimension.model_validate({"choice": [1], "when": {"b": 1}}),
            "b": Dimension.model_validate({"choice": [1], "when": {"a": 1}})}
    with pytest.raises(ConfigError, match="cycle"):
        SearchSpace(dims, lambda k: True)


# ------------------------------------------------------------------------------------------------------ a search
def test_a_search_writes_its_outputs_resumes_and_reruns_a_trial(tmp_path):
    out = tmp_path / "s"
    search(tiny(baselines={"lam": {"strategy": "mlp_lambda", "options": {"hidden": [8], "lambdas": [0.0, 1.0]}}}),
           out, progress=False)
    rows = list(csv.DictReader(open(out / "trials.csv")))
    mine = [r for r in rows if r["strategy"] == "tpe"]
    assert len(mine) == 3 and all(r["state"] == "complete" for r in mine)
    assert {"number", "state", "params.model.kind", "energy", "information_bits", "accuracy", "parameters", "macs",
            "seconds"} <= set(rows[0])
    assert [r["strategy"] for r in rows].count("lam") == 3  # the baseline under the same trial budget
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_trials"] == 3 and summary["hypervolume"] > 0 and len(summary["reference_point"]) == 2
    assert summary["pareto"] and {"plane.png", "hypervolume.png"} <= set(summary["figures"])
    front = {int(r["number"]) for r in csv.DictReader(open(out / "pareto.csv"))}
    assert front == {p["number"] for p in summary["pareto"]}
    for r in mine:  # information never exceeds H(Y) = log2(3) on the balanced three-class validation split
        assert 0.0 <= float(r["information_bits"]) <= math.log2(3) + 1e-9
    first = mine[0]
    again = rerun(out, f"tpe-{int(first['number']):05d}")  # from the stored record alone: the same E and I
    assert again["energy"] == float(first["energy"]) and again["information_bits"] == float(first["information_bits"])
    more = search(tiny(), out, trials=5, progress=False)  # the same command with a larger budget continues it
    assert more.summary["n_trials"] == 5
    with pytest.raises(ConfigError, match=r"search-tiny.*space\.model\.width\.int\.1 differs.*--study|study="):
        search(tiny(space={**TINY["space"], "model.width": {"int": [3, 16]}}), out, progress=False)


def test_a_failing_trial_is_recorded_with_its_reason_and_the_search_goes_on(tmp_path):
    """An MLP under SGD at lr 1e8 turns its loss non-finite; the drive encoding with input_scale 1.5 is refused by
    the model config (the inputs would settle at asin(1.5 tanh x)), a pair of values no single key's check can
    see. Those trials fail with their reasons; the others complete."""
    cfg = tiny(model={"kind": "oscillator", "hidden": [4], "settle_time": 1.0, "dt": 0.5, "input_scale": 0.5},
               train={"epochs": 2, "patience": 2, "optimizer": "sgd", "lr": 0.01},
               space={"model.kind": {"choice": ["oscillator", "mlp"]},
                      "model.encoding": {"choice": ["clamp", "drive"], "when": {"model.kind": "oscillator"}},
                      "model.input_scale": {"choice": [0.5, 1.5], "when": {"model.kind": "oscillator"}},
                      "train.lr": {"choice": [1.0e8], "when": {"model.kind": "mlp"}}},
               strategy={"name": "random"}, budget={"trials": 12})
    res = search(cfg, tmp_path / "f", progress=False)
    seen = set()
    for r in res.trials:
        if r["params.model.kind"] == "mlp":
            assert r["state"] == "fail" and "diverged" in r["reason"]
        elif r["params.model.encoding"] == "drive" and r["params.model.input_scale"] == 1.5:
            assert r["state"] == "fail" and "input_scale < 1" in r["reason"]
        else:
            assert r["state"] == "complete" and r["reason"] == ""
        seen.add(r["state"])
    assert seen == {"complete", "fail"} and res.summary["n_trials"] + res.summary["n_failed"] == 12


def test_information_first_search_has_one_objective(tmp_path):
    """The prediction-first search the seed argues against: I alone is optimised, E is still measured for the plane."""
    res = search(tiny(objectives={"use": "information", "energy": "mac_joules"}, budget={"trials": 2}),
                 tmp_path / "i", progress=False)
    study = optuna.load_study(study_name=res.study, storage=open_storage(res.storage))
    assert len(study.directions) == 1 and res.summary["objectives"] == "information" and res.summary["n_trials"] == 2
    assert all(isinstance(r["energy"], float) and r["energy"] > 0 for r in res.trials if r["strategy"] == "tpe")


def test_a_killed_search_worker_s_trial_is_run_again(tmp_path):
    """SIGKILL while a trial trains: running the command again finds the trial stale by its heartbeat, queues it
    again with the same parameters and seed, and the search ends with its budget of completed trials."""
    import os
    import signal
    import time

    from optuna.trial import TrialState

    cfg = tmp_path / "s.yaml"
    cfg.write_text(json.dumps({**TINY, "train": {"epochs": 400, "patience": 400}, "budget": {"trials": 2}}))
    out = tmp_path / "k"
    cmd = [sys.executable, "-m", "dgnn", "search", str(cfg), "--out", str(out), "--quiet", "--heartbeat", "1"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    journal = out / "study.journal"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:  # until a trial trains (running, its record written)
        if journal.exists() and list((out / "trials").glob("*/candidate.yaml")):
            running = optuna.load_study(study_name="search-tiny", storage=open_storage(f"journal://{journal}"))
            if running.get_trials(states=(TrialState.RUNNING,)):
                break
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="search-tiny", storage=open_storage(f"journal://{journal}"))
    trials = study.get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    stale = [t for t in trials if t.state == TrialState.FAIL]
    assert len(done) == 2 and len(stale) == 1
    retry = [t for t in done if t.system_attrs.get("failed_trial") == stale[0].number]
    assert len(retry) == 1 and retry[0].params == stale[0].params  # the same candidate, run again
    assert retry[0].user_attrs["dgnn:seed"] == stale[0].user_attrs["dgnn:seed"]


def test_a_free_dynamics_search_scores_attractors_against_the_ledger(tmp_path):
    """Two identical HKB oscillators with b/a > 1/4 are bistable (in-phase and anti-phase both attract): the
    attractor count from random starts is 2, I = 1 bit; at b = 0 only in-phase attracts, I = 0. E is the energy
    the neurons drew per unit time, from the ledger."""
    dyn = {"replicas": 1, "neurons": {"count": 2, "frequency": {"distribution": "constant", "center": 1.0}},
           "glia": {"ratio": 1.0}, "coupling": {"strength": 1.0, "b": 0.0},
           "metabolism": {"enabled": True, "supply": 1.0, "e_max": 1000.0, "e_init": 1000.0, "k_m": 1e-6},
           "solver": {"method": "rk4", "dt": 0.05, "duration": 2.0}, "record": {"every": 0.5, "phases": False}}
    cfg = tiny(task=None, dynamics=dyn, objectives={"energy": "ledger"}, attractor_trials=12,
               space={"coupling.b": {"choice": [0.0, 1.0]}}, strategy={"name": "grid"}, budget={"trials": 2})
    res = search(cfg, tmp_path / "d", progress=False)
    bits = {r["params.coupling.b"]: r["information_bits"] for r in res.trials}
    assert bits == {0.0: 0.0, 1.0: 1.0}
    assert all(r["energy_measure"] == "ledger" and r["energy"] > 0 for r in res.trials)
