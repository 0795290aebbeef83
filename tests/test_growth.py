"""NORTH*, DYNO, DARTS / DARTS-PRIME and metabolic gating (seed 001 sections 5-7): triggers fire and stop,
insertion preserves the function, the rank scores are exact, DARTS discretises to the top-2 distinct-source
operators, the FIMT schedule keeps its step ratio, and gated growth never spends more than the reserve holds."""
import math

import numpy as np
import pytest
import torch

from dgnn.errors import ConfigError
from dgnn.learn.config import DatasetConfig
from dgnn.learn.data import Dataset, load_dataset
from dgnn.metabolism import imbalance
from dgnn.search import Budget, make_strategy
from dgnn.search.darts import (OPS, MixedNode, Op, Schedule, discretize, edges_of, genotype_labels, parse_genotype,
                               projection)
from dgnn.search.dyno import grow_count, prune_count, select_prune
from dgnn.search.growing import GrowingMLP, candidate_scores, effective_dimension, singular_values
from dgnn.search.north import growth_count


def _toy(n_f: int, seed: int = 0) -> Dataset:
    return load_dataset(DatasetConfig(name="north_toy", features=n_f, samples=2000), seed)


# ------------------------------------------------------------------------------------------------------ metrics
def test_candidate_scores_equal_the_eps_rank_of_each_augmented_layer():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 6, generator=g)
    existing = torch.relu(x @ torch.randn(6, 40, generator=g)) * 0.05
    cand = torch.relu(x @ torch.randn(6, 30, generator=g)) * torch.rand(30, generator=g) * 0.1
    scores = candidate_scores(existing, cand, eps=0.01)
    brute = [float((singular_values(torch.cat([existing, cand[:, k:k + 1]], 1)) > 0.01).sum()) for k in range(30)]
    assert scores.floor().tolist() == brute
    assert len(set(brute)) == 2  # the case holds candidates that add a dimension and candidates that do not
    assert bool(((scores - scores.floor()) < 0.5).all())


def test_effective_dimension_counts_independent_columns():
    g = torch.Generator().manual_seed(2)
    base = torch.randn(500, 3, generator=g)
    h = torch.cat([base, base @ torch.randn(3, 5, generator=g)], 1)  # 8 neurons spanning 3 dimensions
    assert effective_dimension(h) == pytest.approx(3 / 8)


def test_growth_count_thresholds_the_rank():
    # a full-rank layer of 4 at gamma 0.97: 4 - floor(3.88) = 1 neuron (eq. 28 with the floor on the threshold)
    assert growth_count(4, 1.0, 1.0, 0.97) == 1
    assert growth_count(100, 1.0, 1.0, 0.97) == 3
    assert growth_count(100, 0.96, 1.0, 0.97) == 0  # below the threshold: no growth (never negative)
    assert prune_count(100, 0.90, 1.0, 0.03) == 7 and prune_count(100, 0.99, 1.0, 0.03) == 0
    assert grow_count(100, 0.60, 0.5, 0.03) == 8 and grow_count(100, 0.5, 0.5, 0.03) == 0


# ---------------------------------------------------------------------------------------------------- insertion
@pytest.mark.parametrize("init", ["select", "pre", "random", "weight", "gradmax"])
def test_insertion_is_function_preserving(init):
    data = _toy(8)
    north = make_strategy("north", init=init, hidden=[6, 5], max_width=64, buffer=256)
    g = torch.Generator().manual_seed(0)
    model = GrowingMLP(64, [6, 5], 2, g)
    x = torch.as_tensor(data.x_train[:256], dtype=torch.float32)
    y = torch.as_tensor(data.y_train[:256])
    from dgnn.search.north import auxiliary_gradient

    before = model(x)[0].detach()
    for layer in (0, 1):
        aux = auxiliary_gradient(model, layer, x, y)[0] if init == "gradmax" else None
        w_in, b_in, w_out = north.new_neurons(model, layer, 3, g, x, aux)
        assert w_in.shape[0] >= 1
        model.add(layer, w_in, b_in, w_out)
    assert model.widths[0] > 6 and model.widths[1] > 5
    assert torch.allclose(model(x)[0].detach(), before, atol=1e-6)


def test_firefly_candidate_scores_are_the_gradient_norms_of_each_candidate_in_the_net():
    """The closed-form scores, g_z^T a_c and H^T ((g_z v_c) * act'(z_c)), equal autograd's ||dL/dw_in|| +
    ||dL/dw_out|| of the candidate neuron once inserted (g_z read from that net); Firefly takes g_z from the net
    without the candidate, which its small fan-out leaves unchanged to first order."""
    from dgnn.search.north import candidate_gradient_norms, output_gradient

    g = torch.Generator().manual_seed(4)
    model = GrowingMLP(10, [6, 5], 3, g, "tanh", dtype=torch.float64)
    x, y = torch.randn(64, 10, generator=g, dtype=torch.float64), torch.randint(0, 3, (64,), generator=g)
    for layer in (0, 1):
        w_in = torch.randn(4, model.widths[layer - 1] if layer else 10, generator=g, dtype=torch.float64)
        w_out = 0.5 * torch.randn(model.fan_out(layer).shape[0], 4, generator=g, dtype=torch.float64)
        b_in = 0.1 * torch.randn(4, generator=g, dtype=torch.float64)
        for c in range(4):
            trial = GrowingMLP(10, [6, 5], 3, torch.Generator().manual_seed(4), "tanh", dtype=torch.float64)
            trial.load_state_dict(model.state_dict())
            trial.add(layer, w_in[c:c + 1], b_in[c:c + 1], w_out[:, c:c + 1])
            g_z, h, gi, go = output_gradient(trial, layer, x, y)
            score = candidate_gradient_norms(trial, g_z, h, w_in[c:c + 1], b_in[c:c + 1], w_out[:, c:c + 1])
            assert float(score[0]) == pytest.approx(float(gi[-1].norm() + go[:, -1].norm()), rel=1e-10)


def test_firefly_keeps_the_largest_gradient_candidates_and_barely_moves_the_function():
    data = _toy(8)
    north = make_strategy("firefly", hidden=[6, 5], max_width=64, buffer=256)
    model = GrowingMLP(64, [6, 5], 2, torch.Generator().manual_seed(0))
    x, y = torch.as_tensor(data.x_train[:256], dtype=torch.float32), torch.as_tensor(data.y_train[:256])
    before = model(x)[0].detach()
    for layer in (0, 1):
        w_in, b_in, w_out = north.new_neurons(model, layer, 3, torch.Generator().manual_seed(1), x, None, (x, y))
        assert w_in.shape == (3, model.weights[layer].shape[1]) and w_out.shape[1] == 3
        model.add(layer, w_in, b_in, w_out)
    assert model.widths == [9, 8]
    # splits move the function by O(eps) (ReLU kinks crossed within the noise), new candidates by eps x their input
    assert float((model(x)[0].detach() - before).abs().max()) < 1e-3 * float(before.abs().max())


def test_nest_bridges_the_top_quantile_of_the_auxiliary_gradient():
    from dgnn.search.north import init_nest

    model = GrowingMLP(4, [3], 2, torch.Generator().manual_seed(0), dtype=torch.float64)
    aux = torch.tensor([[4.0, 0.1, -3.0, 0.0], [0.2, 0.0, 0.1, -0.3]], dtype=torch.float64)  # (M_{l+1}=2, M_{l-1}=4)
    w_in, w_out = init_nest(model, 0, 5, aux, torch.Generator().manual_seed(2), quantile=0.25)
    # the top 25% of 8 entries: 4 and -3, both on output 0 and inputs 0 and 2
    assert torch.equal(w_in[:, [1, 3]], torch.zeros(5, 2)) and torch.equal(w_out[1], torch.zeros(5, dtype=torch.float64))
    ratio = w_in[:, 0].abs() / w_in[:, 2].abs()  # fan-in magnitudes sqrt(sum_j G_ji^2): 4 : 3
    assert torch.allclose(ratio, torch.full((5,), 4 / 3, dtype=torch.float64))
    assert torch.allclose(w_in.norm(dim=1), torch.full((5,), model.fan_in_norm(0), dtype=torch.float64))
    assert len({tuple(r.sign().tolist()) for r in w_in}) > 1  # each neuron draws its own signs


@pytest.mark.parametrize("name", ["firefly", "nest"])
def test_gradient_initialisations_grow_and_learn_the_toy_task(name):
    res = make_strategy(name, hidden=[4], max_width=64, buffer=256).fit(_toy(2), Budget(steps=150), 0)
    w = res.history["widths"][:, 0]
    assert w[-1] > 4 and res.metrics["accuracy"] > 0.9


def test_removing_a_neuron_without_fan_out_preserves_the_function_and_adam_state():
    g = torch.Generator().manual_seed(3)
    model = GrowingMLP(5, [4], 3, g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(20, 5, generator=g)
    model(x)[0].sum().backward()
    opt.step()
    keep_state = opt.state[model.weights[0]]["exp_avg"][[0, 1, 3]].clone()
    with torch.no_grad():
        model.readout.weight[:, 2] = 0.0
    before = model(x)[0].detach()
    model.remove(0, torch.tensor([2]), opt)
    assert model.widths == [3]
    assert torch.allclose(model(x)[0].detach(), before, atol=1e-6)
    assert torch.equal(opt.state[model.weights[0]]["exp_avg"], keep_state)  # moments follow their neurons
    assert all(p in {q for grp in opt.param_groups for q in grp["params"]} for p in model.parameters())
    model.add(0, torch.ones(2, 5), torch.zeros(2), torch.zeros(3, 2), opt)
    assert opt.state[model.weights[0]]["exp_avg"].shape == (5, 5)
    assert float(opt.state[model.weights[0]]["exp_avg"][3:].abs().sum()) == 0.0  # new entries start at 0


# ----------------------------------------------------------------------------------------------------- triggers
def test_activation_trigger_fires_then_stops_below_the_maximum():
    """n_f = 2 independent features: the first layer's ReLU features saturate their eps-rank at a few dozen; the
    layer grows from 4 and then stays, well below max_width."""
    res = make_strategy("north_select", hidden=[4], max_width=128, buffer=256).fit(_toy(2), Budget(steps=300), 0)
    w = res.history["widths"][:, 0]
    assert w[0] > 4  # fires at once
    assert 6 < w[-1] < 128
    assert (w[-100:] == w[-1]).all()  # converged: no growth in the last 100 steps
    assert res.metrics["accuracy"] > 0.9


def test_weight_trigger_stops_at_the_input_dimension():
    """NORTH-Weight cannot exceed rank W_l <= fan-in: 64 inputs (the thesis, section 6.3.2)."""
    res = make_strategy("north_weight", hidden=[4], max_width=128, buffer=256).fit(_toy(4), Budget(steps=250), 0)
    w = res.history["widths"][:, 0]
    assert w[-1] == 64 and (w[-50:] == 64).all()


def test_gradient_trigger_fires_and_stops():
    res = make_strategy("gradmax", hidden=[4], max_width=128, buffer=256).fit(_toy(4), Budget(steps=300), 0)
    w = res.history["widths"][:, 0]
    assert w[-1] > 4 and w[-1] < 128
    assert (w[-50:] == w[-1]).all()


def test_select_prune_takes_dormant_neurons_then_duplicates():
    g = torch.Generator().manual_seed(4)
    base = torch.relu(torch.randn(200, 4, generator=g))
    h = torch.cat([base, base[:, :1] * 2.0, torch.zeros(200, 1)], 1)  # neuron 4 duplicates 0, neuron 5 is dormant
    assert select_prune(h, 1).tolist() == [5]
    assert select_prune(h, 2).tolist() in ([0, 5], [4, 5])


def test_dyno_fine_tunes_a_pretrained_net_and_prunes_when_the_inputs_lose_dimensions():
    """Pre-train on digits 0-4, fine-tune on 5-9 with half the pixels blanked: the first layer's effective
    dimension falls below its source baseline, so eq. (38) prunes it at the first evaluation."""
    src = load_dataset(DatasetConfig(name="digits", classes=[0, 1, 2, 3, 4]), 0)
    dst = load_dataset(DatasetConfig(name="digits", classes=[5, 6, 7, 8, 9]), 0)
    blank = lambda a: np.concatenate([a[:, :32], np.zeros_like(a[:, 32:])], 1)  # noqa: E731
    dst = Dataset("blanked", blank(dst.x_train), dst.y_train, blank(dst.x_val), dst.y_val, blank(dst.x_test), dst.y_test)
    pre = make_strategy("static_mlp", hidden=[96, 32]).fit(src, Budget(steps=200), 0)
    res = make_strategy("dyno", epsilon=0.1, every=20, lr=1e-3).fit(dst, Budget(steps=200), 0, model=pre.model,
                                                                    source=src)
    assert res.metrics["accuracy"] > 0.8
    assert res.model.readout.weight.shape == (5, res.model.widths[-1])
    h = res.history
    assert h["widths"].shape == (200, 2)
    assert h["pruned"][0, 0] > 0  # the shift prunes layer 1 at once
    assert np.array_equal(np.cumsum(h["grown"] - h["pruned"], 0) + [96, 32], h["widths"])  # widths follow events


# ----------------------------------------------------------------------------------------------------- gating
def test_gated_growth_never_spends_more_than_the_reserve():
    gate = {"metabolism": {"enabled": True, "supply": 0.5, "e_init": 3.0, "e_max": 5.0, "p_base": 0.001, "p_act": 0.0,
                           "p_syn": 0.0}, "glia": 1, "dt": 0.05, "grow_cost": 1.0, "floor": 0.5}
    free = make_strategy("north_select", hidden=[4], max_width=64, buffer=128).fit(_toy(8), Budget(steps=150), 0)
    gated = make_strategy("north_select", hidden=[4], max_width=64, buffer=128, gate=gate).fit(_toy(8), Budget(steps=150), 0)
    h = gated.history
    grown = h["grown"][:, 0].sum()
    assert grown < free.history["grown"][:, 0].sum()  # the budget binds
    assert grown <= (h["requested"][:, 0]).sum()
    assert float(h["ledger_structural"][0]) == pytest.approx(grown * 1.0)
    assert float(h["reserve"][:, 0].min()) >= 0.5 - 1e-9  # never below the floor after paying
    supplied = float(h["ledger_supplied"][0])
    assert grown * 1.0 <= 3.0 - 0.5 + supplied + 1e-9  # spent at most the initial reserve above the floor + supply
    led = {k[len("ledger_"):]: np.array([[v[0]]]) for k, v in h.items() if k.startswith("ledger_")}
    e = np.array([[3.0], [h["reserve"][-1, 0]]])
    assert abs(float(imbalance(e, {k: np.concatenate([[[0.0]], v]) for k, v in led.items()})[-1, 0])) < 1e-9


# -------------------------------------------------------------------------------------------------------- DARTS
def test_darts_discretisation_picks_top2_distinct_source_ops():
    ops = OPS
    edges = edges_of(2)  # node 0 <- {0, 1}; node 1 <- {0, 1, 2}
    alpha = torch.zeros(len(edges), len(ops))
    big = lambda e, op, v: alpha.__setitem__((e, ops.index(op)), v)  # noqa: E731
    big(0, "zero", 9.0)  # 'zero' is never chosen however strong
    big(0, "linear_tanh", 2.0)
    big(1, "skip", 3.0)
    big(2, "linear_relu", 5.0)  # node 1: source 0 twice strong ...
    big(2, "oscillator", 4.9)  # ... but one source gives one operator
    big(3, "oscillator", 1.0)
    big(4, "skip", 4.0)
    geno = discretize(alpha, 2, ops)
    assert geno == [(0, 0, "linear_tanh"), (0, 1, "skip"), (1, 0, "linear_relu"), (1, 2, "skip")]
    p = projection(alpha, geno, 2, ops)
    assert p.sum() == 4 and p[2, ops.index("linear_relu")] == 1 and p[4, ops.index("skip")] == 1
    labels = genotype_labels(geno)  # as the history stores it
    assert labels[0] == b"0<-0:linear_tanh" and parse_genotype(labels) == geno == parse_genotype([lab.decode() for lab in labels])


def test_mixed_node_equals_the_sum_over_its_per_edge_operators_with_gradients():
    """The stacked node (baddbmm, vmap over oscillator layers) computes sum_j sum_p w_jp op_jp(s_j) exactly as the
    per-edge operators it was built from, and gives each copy the same gradient."""
    from dgnn.learn.config import ModelConfig

    g = torch.Generator().manual_seed(3)
    osc = ModelConfig(kind="oscillator", hidden=[6], settle_time=1.0, dt=0.5)
    edges = [[Op(o, 6, g, osc) for o in OPS] for _ in range(3)]
    node = MixedNode(edges)
    states = [torch.randn(5, 6, generator=g) for _ in range(3)]
    w = torch.softmax(torch.randn(3, len(OPS), generator=g), -1)
    ref = sum(w[j, p] * op(states[j]) for j, ops in enumerate(edges) for p, op in enumerate(ops))
    out = node(states, w)
    assert torch.allclose(out, ref, atol=1e-5)
    ref.square().sum().backward()
    out.square().sum().backward()
    k = OPS.index("linear_tanh")
    assert torch.allclose(node.weight["linear_tanh"].grad, torch.stack([e[k].weight.grad for e in edges]), atol=1e-5)
    k = OPS.index("oscillator")
    stacked = {name[4:].replace("__", "."): p for name, p in node.named_parameters() if name.startswith("osc.")}
    assert stacked and set(stacked) == {name for name, _ in edges[0][k].net.named_parameters()}
    for name, p in stacked.items():
        per_edge = torch.stack([dict(e[k].net.named_parameters())[name].grad for e in edges])
        assert torch.allclose(p.grad, per_edge, atol=1e-5)
    macs = sum(op.macs()[0] for e in edges for op in e)
    assert node.macs()[0] == macs


@pytest.mark.parametrize("r", [5, 10])
def test_fimt_schedule_keeps_the_step_ratio_near_r(r):
    """Algorithm 3 with a stationary noisy FIMT: one alpha step per r + 1 w steps (r without, 1 with)."""
    rng = np.random.default_rng(0)
    s = Schedule("fimt", ratio=r)
    steps = [s.step(float(3.0 * np.exp(0.3 * rng.standard_normal()))) for _ in range(20000)]
    n_alpha = sum(steps)
    assert (len(steps) - n_alpha) / n_alpha == pytest.approx(r, rel=0.05)
    # a falling FIMT (converging w) draws alpha steps more often than a rising one
    down, up = Schedule("fimt", ratio=r), Schedule("fimt", ratio=r)
    n_down = sum(down.step(3.0 * math.exp(-k / 50)) for k in range(1000))
    n_up = sum(up.step(3.0 * math.exp(k / 50)) for k in range(1000))
    assert n_down > 1.5 * n_up
    assert Schedule("constant", ratio=r).split() == pytest.approx(r / (r + 1)) and Schedule("alternate").split() == 0.5


def test_darts_prime_fit_reports_the_found_cell():
    data = load_dataset(DatasetConfig(name="digits"), 0)
    res = make_strategy("darts_prime", width=8, nodes=2, cells=1, retrain_epochs=2).fit(data, Budget(steps=12), 0)
    assert len(res.history["genotype"]) == 4
    assert 0.0 <= res.metrics["skip_share"] <= 1.0 and res.metrics["accuracy"] > 0.3
    assert np.all(np.diff(np.cumsum(res.history["alpha_step"])) >= 0)
    final = res.history["alpha"][-1]  # softmax rows: the spread is between 0 (uniform) and 1 (one-hot)
    assert res.metrics["alpha_spread"] == pytest.approx(float((final.max(1) - final.min(1)).mean()))
    assert 0.0 < res.metrics["alpha_spread"] < 1.0 and np.allclose(final.sum(1), 1.0, atol=1e-6)


def test_darts_retrain_seeds_average_retrains_of_one_searched_cell():
    """The search is the same; retrain 0 is the single-retrain fit, and the reported accuracy is the mean."""
    data = load_dataset(DatasetConfig(name="digits"), 0)
    kw = dict(width=8, nodes=2, cells=1, retrain_epochs=2)
    one = make_strategy("darts", **kw).fit(data, Budget(steps=6), 0)
    three = make_strategy("darts", retrain_seeds=3, **kw).fit(data, Budget(steps=6), 0)
    assert np.array_equal(one.history["genotype"], three.history["genotype"])
    acc = three.history["retrain_accuracy"]
    assert acc.shape == (3,) and acc[0] == one.metrics["accuracy"]
    assert three.metrics["accuracy"] == pytest.approx(acc.mean(), abs=1e-12)
    with pytest.raises(ConfigError, match="retrain_seeds"):
        make_strategy("darts", retrain_seeds=0)


def test_strategy_keys_are_checked_per_class():
    with pytest.raises(ConfigError, match="unknown key"):
        make_strategy("static_mlp", init="select")  # static nets take no growth keys
    with pytest.raises(ConfigError, match="buffer"):
        make_strategy("north", max_width=100, buffer=50)
    with pytest.raises(ConfigError, match="darts.ops"):
        make_strategy("darts", ops=["conv3x3"])


# ------------------------------------------------------------------------------------------------------ studies
def _run(script: str, config, out, *extra):
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "simulations" / script
    return subprocess.run([sys.executable, str(path), "--config", str(config), "--out", str(out), *extra],
                          capture_output=True, text=True)


def test_growth_and_transfer_studies_run_and_reject_bad_keys(tmp_path):
    import json

    bad = tmp_path / "bad.yaml"
    bad.write_text("toy: {features: [2]}\nstrategies: {north_select: {options: {gama_a: 0.9}}}\n")
    run = _run("north_growth.py", bad, tmp_path / "o")
    assert run.returncode == 2 and "unknown key(s) gama_a" in run.stderr and "Traceback" not in run.stderr
    good = tmp_path / "growth.yaml"
    good.write_text("toy: {features: [2], depths: [1], steps: 30}\nstrategies: {north_select: {}}\n"
                    "digits: {options: {hidden: [8, 8], max_width: 64, buffer: 128, epsilon: 0.3}, steps: 30, seeds: 1,"
                    " gate: {grow_cost: 1.0}}\n")
    run = _run("north_growth.py", good, tmp_path / "g", "--quiet")
    assert run.returncode == 0, run.stderr
    rows = json.loads((tmp_path / "g" / "results.json").read_text())["rows"]
    assert [r["strategy"] for r in rows] == ["north_select", "grown", "gated", "static_final", "static_max"]
    assert rows[3]["widths"] == rows[1]["widths"] and rows[4]["widths"] == "64 64"
    bad.write_text("targets: [{label: t, dataset: cifar}]\n")
    run = _run("dyno_transfer.py", bad, tmp_path / "o")
    assert run.returncode == 2 and "cifar" in run.stderr and "Traceback" not in run.stderr
    good = tmp_path / "transfer.yaml"
    good.write_text("hidden: [32, 16]\npretrain_steps: 30\nsteps: 30\n"
                    "targets: [{label: new, dataset: digits, classes: [5, 6, 7, 8, 9]}]\ndyno: {every: 10, epsilon: 0.1}\n")
    run = _run("dyno_transfer.py", good, tmp_path / "t", "--quiet")
    assert run.returncode == 0, run.stderr
    rows = json.loads((tmp_path / "t" / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["dyno", "static"] and rows[1]["widths"] == "32 16"


def test_darts_checkpoints_retrain_the_cells_along_a_finished_search(tmp_path):
    """The cell at each checkpoint is Pi_S of the stored softmax(alpha) there; the last checkpoint is the study's
    own cell with the study's accuracy (retrain 0 of the same seed); cells shared by checkpoints are retrained
    once, and running again retrains nothing."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import h5py

    cfg = tmp_path / "study.yaml"
    cfg.write_text("seeds: 2\ntasks: [{label: t, dataset: digits, classes: [0, 1, 2], steps: 20}]\n"
                   "strategies:\n  darts: {options: {width: 8, retrain_epochs: 2, ops: [linear_relu, skip, zero]}}\n"
                   "  prime: {strategy: darts_prime, options: {width: 8, retrain_epochs: 2, ops: [linear_relu, skip, zero]}}\n")
    assert _run("search_digits.py", cfg, tmp_path / "s", "--quiet").returncode == 0
    script = Path(__file__).resolve().parents[1] / "simulations" / "darts_checkpoints.py"

    def checkpoints(*extra):
        return subprocess.run([sys.executable, str(script), "--study", str(tmp_path / "s"), "--every", "5", *extra],
                              capture_output=True, text=True)

    run = checkpoints("--jobs", "2")
    assert run.returncode == 0, run.stderr
    out = json.loads((tmp_path / "s" / "checkpoints" / "results.json").read_text())
    rows = out["rows"]
    assert len(rows) == 2 * 2 * 4 and [r["step"] for r in rows[:4]] == [5, 10, 15, 20]
    n_cells = int(run.stdout.split(" distinct cells")[0].split()[-1])
    assert n_cells == len({(r["seed"], r["cell"], r["accuracy"]) for r in rows}) <= len(rows)
    with h5py.File(tmp_path / "s" / "history.h5", "r") as h5:
        for r in rows:
            g = h5[f"t/{r['strategy']}/seed{r['seed']}"]
            alpha = torch.log(torch.as_tensor(g["alpha"][r["step"] - 1]))
            assert r["cell"] == " ".join(op for _, _, op in discretize(alpha, 3, ("linear_relu", "skip", "zero")))
            assert r["alpha_steps"] == int(np.sum(g["alpha_step"][:r["step"]]))
            assert r["n_skip"] + r["n_linear_relu"] == 6
            if r["step"] == 20:
                assert r["cell"] == " ".join(lab.decode().split(":")[1] for lab in g["genotype"][()])
                assert r["accuracy"] == g.attrs["accuracy"]
    assert {m["step"] for m in out["means"]} == {5, 10, 15, 20} and out["means"][1]["vs_first_p"] != ""
    again = checkpoints("--resume")
    assert again.returncode == 0 and f"{n_cells} distinct cells, 0 retrained now" in again.stdout
    assert json.loads((tmp_path / "s" / "checkpoints" / "results.json").read_text())["rows"] == rows
    bad = subprocess.run([sys.executable, str(script), "--study", str(tmp_path / "nowhere")], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "config.yaml not found" in bad.stderr and "Traceback" not in bad.stderr
