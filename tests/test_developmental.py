"""The developmental strategy (seed 000's biological NAS): function-preserving insertion, exact removal of dormant
and of duplicated units, growth gated by the glial energy budget with a balanced ledger, the neurogenesis trigger
on tasks of known dimension, and a developmental search trial re-run from its record to the same E and I."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from dgnn.config import config_from_dict
from dgnn.errors import ConfigError
from dgnn.learn.config import DatasetConfig
from dgnn.learn.data import load_dataset
from dgnn.metabolism import INFLOW, LEDGER
from dgnn.search import Budget, make_strategy
from dgnn.search.developmental import Developmental, growth_need, participation_ratio, pr_scores
from dgnn.study.nas.command import search
from dgnn.study.nas.config import SearchConfig
from dgnn.study.nas.run import rerun

SMALL = dict(start=2, every=10, settle_time=2.0, dt=0.5, max_width=16, buffer=64, batch=32)
NETS = [("weight", "kuramoto", 0.0, "clamp"), ("weight", "hkb", 0.3, "drive"), ("phase", "kuramoto", 0.0, "drive"),
        ("phase", "hkb", 0.3, "clamp")]


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DatasetConfig(name="digits", classes=[0, 1, 2, 3]), 0)


def net(param="weight", potential="kuramoto", b=0.0, encoding="clamp", layers=2, start=3):
    """A float64 two-layer growing net after one Adam step (so nothing sits at its initial value), its optimiser,
    the strategy that built it and a batch of inputs."""
    s = Developmental(start=start, layers=layers, parameterization=param, potential=potential, b=b, encoding=encoding,
                      input_scale=0.8 if encoding == "drive" else math.pi / 2, settle_time=2.0, dt=0.25, dtype="float64")
    gen = torch.Generator().manual_seed(3)
    model = s.build(6, 3, gen, torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x = torch.randn(9, 6, generator=gen, dtype=torch.float64)
    model(x)[0].logsumexp(1).sum().backward()
    opt.step()
    return model, opt, s, x, gen


# ----------------------------------------------------------------------------------------------------- operators
@pytest.mark.parametrize("param, potential, b, encoding", NETS)
def test_insertion_preserves_every_output_and_carries_adam_moments(param, potential, b, encoding):
    model, opt, s, x, gen = net(param, potential, b, encoding)
    with torch.no_grad():
        logits, phases = model(x)
    first = model.layers[0].bias_mag if param == "weight" else model.layers[0].bias_lag
    moment = opt.state[first]["exp_avg"].clone()
    for layer in (0, 1):
        model.add_units(layer, s.random_rows(model, layer, 2, gen), gen, opt)
    assert model.widths == [5, 5] and model.cfg.hidden == [5, 5]
    with torch.no_grad():
        logits2, phases2 = model(x)
    assert torch.allclose(logits2, logits, rtol=0, atol=1e-13)
    for old, new in zip(phases, phases2):  # the old units' phases do not move; the new ones do settle
        assert torch.allclose(new[:, :3], old, rtol=0, atol=1e-13) and new[:, 3:].abs().max() > 1e-3
    grown = model.layers[0].bias_mag if param == "weight" else model.layers[0].bias_lag
    state = opt.state[grown]["exp_avg"]
    assert torch.equal(state[:3], moment) and torch.equal(state[3:], torch.zeros(2, dtype=torch.float64))
    model(x)[0].sum().backward()  # the new units learn: their outgoing couplings get a gradient
    out = model.layers[1].mag if param == "weight" else model.layers[1].strength
    assert out.grad[..., 3:].abs().max() > 0 and model.readout.weight.grad[:, [3, 4, 8, 9]].abs().max() > 0


@pytest.mark.parametrize("param, potential, b, encoding", NETS)
def test_a_dormant_unit_is_found_and_removed_without_changing_the_function(param, potential, b, encoding):
    model, opt, s, x, gen = net(param, potential, b, encoding)
    for layer in (1, 0):  # each sends nothing (layer 0's new unit is added after layer 1's, which listens to it)
        model.add_units(layer, s.random_rows(model, layer, 1, gen), gen, opt)
    with torch.no_grad():
        logits, phases = model(x)
    born = np.zeros(4, dtype=np.int64)
    for layer in (0, 1):
        victims, merges = s.removals(model, layer, phases[layer], born, step=s.every)
        assert victims == [3] and merges == {}
        model.remove_units(layer, torch.tensor(victims), opt)
    with torch.no_grad():
        assert torch.allclose(model(x)[0], logits, rtol=0, atol=1e-13)
    assert model.widths == [3, 3]
    assert s.removals(model, 0, model.phases(x)[0].detach(), born[:3], step=s.every - 1)[0] == []  # too young


@pytest.mark.parametrize("param, potential, b", [("weight", "kuramoto", 0.0), ("weight", "hkb", 0.3),
                                                 ("phase", "kuramoto", 0.0)])
@pytest.mark.parametrize("layer", [0, 1])
def test_a_duplicated_unit_is_redundant_and_folding_it_into_its_mate_keeps_the_function(param, potential, b, layer):
    """A copy of unit 1 (same incoming couplings) is phase-locked to it (PLV 1, delta 0); folding its outgoing
    couplings into unit 1 and removing it is exact (the complex couplings add; the readout's cos / sin columns add)."""
    model, opt, s, x, gen = net(param, potential, b)
    lay = model.layers[layer]
    rows = {k: getattr(lay, k).detach()[[1]].clone() for k in ("mag", "bias_mag", "lag", "bias_lag")
            if getattr(lay, k) is not None}
    model.add_units(layer, rows, gen, opt)
    with torch.no_grad():  # the copy sends something of its own
        if layer == 0 and param == "weight":
            model.layers[1].mag[:, 3] = torch.randn(3, generator=gen, dtype=torch.float64)
        elif layer == 0:
            model.layers[1].strength[3] = 0.7
        else:
            model.readout.weight[:, [3, 7]] = torch.randn(3, 2, generator=gen, dtype=torch.float64)
        logits, phases = model(x)
    victims, merges = s.removals(model, layer, phases[layer], np.zeros(4, dtype=np.int64), step=s.every)
    assert len(victims) == 1 and {victims[0], merges[victims[0]][0]} == {1, 3} and abs(merges[victims[0]][1]) < 1e-12
    model.merge_unit(layer, victims[0], *merges[victims[0]])
    model.remove_units(layer, torch.tensor(victims), opt)
    with torch.no_grad():
        assert torch.allclose(model(x)[0], logits, rtol=0, atol=1e-12)


def test_participation_ratio_and_the_select_scores_by_hand():
    """Two independent uniform phases: [cos, sin] has 4 uncorrelated features of equal variance 1/2, PR -> 4. A
    candidate that copies unit 0 adds no new direction; pr_scores equals the PR of the concatenated activity."""
    gen = torch.Generator().manual_seed(0)
    theta = (torch.rand(20000, 2, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    from dgnn.search.developmental import activity

    assert participation_ratio(activity(theta)) == pytest.approx(4.0, rel=0.01)
    cand = torch.stack([theta[:, 0], (torch.rand(20000, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi], 1)
    got = pr_scores(theta, cand)
    want = [participation_ratio(activity(torch.cat([theta, cand[:, [k]]], 1))) for k in range(2)]
    assert got.tolist() == pytest.approx(want, rel=1e-12) and got[1] > got[0]
    assert growth_need(4, 4.0, 0.5) == 0 and growth_need(4, 4.01, 0.5) == 1 and growth_need(4, 10.0, 0.25) == 16


# ------------------------------------------------------------------------------------------------------- budget
def test_growth_is_gated_by_the_energy_budget(digits):
    """Zero supply and zero reserve: the trigger asks, nothing grows. Ample supply: the same fit as without the
    budget (every request granted), which grows to the trigger's need."""
    starved = make_strategy("developmental", **SMALL, supply=0.0, metabolism={"e_init": 0.0}).fit(digits, Budget(steps=40), 0)
    assert starved.history["requested"].sum() > 0 and starved.history["grown"].sum() == 0
    assert (starved.history["widths"] == 2).all() and (starved.history["reserve"] == 0).all()
    ample = make_strategy("developmental", **SMALL, supply=1e3, metabolism={"e_max": 1e6, "e_init": 1e6}).fit(
        digits, Budget(steps=40), 0)
    free = make_strategy("developmental", **SMALL, gated=False).fit(digits, Budget(steps=40), 0)
    assert np.array_equal(ample.history["widths"], free.history["widths"])
    assert np.array_equal(ample.history["grown"], ample.history["requested"]) and ample.history["grown"].sum() > 0
    assert ample.metrics["accuracy"] == free.metrics["accuracy"] and "reserve" not in free.history


def test_structural_payments_are_the_units_granted_times_their_cost_and_the_ledger_balances(digits):
    """A budget that binds (some requests refused) and removals that cost and refund: the ledger's structural column
    is grown x grow_cost + removed x prune_cost, refunded is removed x prune_refund, and the reserve equals e_init
    plus inflows minus outflows to 1e-9."""
    opts = dict(SMALL, redundancy=0.7, threshold=0.3, grow_cost=1.0, prune_cost=0.05, prune_refund=0.5)
    res = make_strategy("developmental", **opts).fit(digits, Budget(steps=100), 0)
    h = res.history
    grown, removed = h["grown"].sum(0), (h["dormant"] + h["redundant"]).sum(0)
    assert (h["grown"] < h["requested"]).any() and removed.sum() > 0  # the budget refused some units
    assert h["ledger_structural"] == pytest.approx(grown * 1.0 + removed * 0.05, abs=1e-9)
    assert h["ledger_refunded"] == pytest.approx(removed * 0.5, abs=1e-9)
    flow = sum(h[f"ledger_{k}"] * (1 if k in INFLOW else -1) for k in LEDGER)
    assert abs(h["reserve"][-1] - 5.0 - flow).max() < 1e-9
    assert np.array_equal(h["glia"][-1], np.round(h["widths"][-1] * 1.0))
    assert res.metrics["neurons"] == int(h["widths"][-1].sum())


# ------------------------------------------------------------------------------------------------------ trigger
def test_the_trigger_grows_a_layer_to_the_task_dimension_and_stops():
    """NORTH*'s toy task with n_f independent features: with one feature the layer stays small; with eight it grows
    from 2 units and stops (no growth over the last half of the fit), well below max_width."""
    widths = {}
    for nf in (1, 8):
        data = load_dataset(DatasetConfig(name="north_toy", features=nf, samples=1000), 0)
        res = make_strategy("developmental", **{**SMALL, "max_width": 64, "buffer": 128}, threshold=0.25,
                            gated=False).fit(data, Budget(steps=120), 0)
        widths[nf] = res.history["widths"][:, 0]
    assert widths[1][-1] <= 4
    assert 8 <= widths[8][-1] < 32 and widths[8][60] == widths[8][-1]


# ------------------------------------------------------------------------------------------------------ options
@pytest.mark.parametrize("options, message", [
    ({"buffer": 32, "max_width": 32}, r"developmental\.buffer: .*64 features"),
    ({"trigger": "grad"}, r"developmental\.trigger: expected one of ratio, north"),
    ({"encoding": "drive"}, r"developmental\.input_scale: encoding drive needs input_scale < 1"),
    ({"grow_cost": -1.0}, r"grow_cost"),
    ({"metabolism": {"e_init": 20.0}}, r"metabolism\.e_init"),
    ({"glia": 2}, r"unknown key\(s\) glia"),
])
def test_bad_options_are_one_line_naming_the_key(options, message):
    with pytest.raises(ConfigError, match=message):
        make_strategy("developmental", **options)


# ------------------------------------------------------------------------------------------------------- search
DEV = {"name": "dev", "task": {"name": "digits", "classes": [0, 1, 2]},
       "strategy": {"name": "developmental", "options": {"budget": {"steps": 30}, **SMALL}},
       "space": {"developmental.glia_ratio": {"float": [0.0, 6.0]},
                 "developmental.parameterization": {"choice": ["weight", "phase"]}},
       "budget": {"trials": 2}}


def test_a_developmental_search_trial_reruns_to_the_same_energy_and_information(tmp_path):
    out = tmp_path / "s"
    search(config_from_dict(DEV, model=SearchConfig), out, progress=False)
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert len(rows) == 2 and all(r["state"] == "complete" and r["strategy"] == "developmental" for r in rows)
    assert {"params.developmental.glia_ratio", "neurons", "steps"} <= set(rows[0]) and rows[0]["steps"] == "30"
    for r in rows:
        again = rerun(out, f"developmental-{int(r['number']):05d}")
        assert again["energy"] == float(r["energy"]) and again["information_bits"] == float(r["information_bits"])
        assert again["neurons"] == int(r["neurons"])


@pytest.mark.parametrize("over, message", [
    ({"strategy": {"name": "tpe"}}, r"space\.developmental\.glia_ratio: developmental\.<option> keys need strategy"),
    ({"space": {"model.width": {"int": [2, 8]}}}, r"space\.model\.width: strategy developmental searches its own"),
    ({"space": {"developmental.glia": {"int": [2, 8]}}}, r"space\.developmental\.glia: strategy developmental"),
    ({"space": {"developmental.start": {"int": [0, 8]}}}, r"space\.developmental\.start: 0 is rejected.*start: must be >= 1"),
])
def test_developmental_keys_are_valid_exactly_with_the_developmental_strategy(over, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({**DEV, **over}, model=SearchConfig).search_space()


@pytest.mark.parametrize("options, message", [
    ({"budget": {"seconds": 10}}, r"strategy\.options: budget\.seconds: a developmental trial is budgeted in steps"),
    ({"budget": {"steps": 10}, "sart": 3}, r"strategy\.options: strategy developmental: unknown key\(s\) sart"),
])
def test_bad_developmental_strategy_options_name_the_key(options, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({**DEV, "strategy": {"name": "developmental", "options": options}}, model=SearchConfig)
