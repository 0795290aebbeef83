"""Structural-learning strategies: the NNE update (seed 004 eq. 3) by hand, NNE learning a linear target in the
setting of Theorem 2, batched population scoring against the per-genotype loop, SignSGD's eq. 5, the registry."""
import math

import numpy as np
import pytest
import torch

from dgnn.errors import ConfigError
from dgnn.learn.config import DatasetConfig
from dgnn.learn.data import load_dataset
from dgnn.search import Budget, make_strategy
from dgnn.search.nne import (evolve_step, make_genome, population_fitness, population_fitness_loop, sign_sgd,
                             weak_selection_update, weight_generation_matrix)


def test_weak_selection_update_matches_eq3_by_hand():
    x = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 1, 1], [0, 0, 0]], dtype=torch.float64)
    fit = torch.tensor([2.0, 1.0, 0.5, 0.0], dtype=torch.float64)
    p = torch.tensor([0.5, 0.2, 0.9], dtype=torch.float64)
    e = 0.1
    # allele 0: carriers 0, 1 -> f = 1.5; others 2, 3 -> fbar = 0.25; and so on
    f, fbar = [1.5, 0.75, 1.25], [0.25, 1.0, 0.5]
    want = [p0 * (1 + e * a) / (1 + e * b + e * p0 * (a - b)) for p0, a, b in zip(p.tolist(), f, fbar)]
    assert torch.allclose(weak_selection_update(p, x, fit, e), torch.tensor(want, dtype=torch.float64), atol=1e-15)
    assert want[0] == pytest.approx(0.575 / 1.0875) and want[1] == pytest.approx(0.215 / 1.095)
    # an allele every genotype carries (or none does) gets no contrast and keeps its frequency
    xa = torch.tensor([[1, 0], [1, 0]], dtype=torch.float64)
    same = weak_selection_update(torch.tensor([0.3, 0.6], dtype=torch.float64), xa, torch.tensor([1.0, 3.0]).double(), 0.5)
    assert torch.allclose(same, torch.tensor([0.3, 0.6], dtype=torch.float64))


def test_nne_learns_a_linear_target_theorem_2():
    """Seed 004 Theorem 2: y uniform in the m-ball, label a.y, W_ij = +-sqrt(m/d) with probability d/m. With
    fitness -L and epsilon = 1 / (2U) (Theorem 1's bound, U from |W| and |a|), the mean network W p aligns with a."""
    g = torch.Generator().manual_seed(0)
    m, n, d = 4, 120, 2
    sign = torch.sign(torch.rand(m, n, generator=g) - 0.5)
    w = torch.where(torch.rand(m, n, generator=g) < d / m, sign * math.sqrt(m / d), torch.zeros(m, n)).double()
    a = torch.randn(m, generator=g, dtype=torch.float64)
    a = 0.8 * a / a.norm()

    def ball(k):
        v = torch.randn(k, m, generator=g, dtype=torch.float64)
        return v / v.norm(dim=1, keepdim=True) * torch.rand(k, 1, generator=g, dtype=torch.float64) ** (1 / m)

    loss = lambda v: float(((v - a) ** 2).sum() / (m + 2))  # noqa: E731  E_y (v.y - a.y)^2 in the ball
    u = float((w.norm(dim=0).sum() + a.norm()) ** 2 / (m + 2))
    p = torch.full((n,), 0.5, dtype=torch.float64)
    start = loss(w @ p)
    for _ in range(10000):
        y = ball(256)
        p, _ = evolve_step(p, lambda x: -((y @ (x @ w.T).T - (y @ a)[:, None]) ** 2).mean(0), 50, 1 / (2 * u), g)
    v = w @ p
    assert float(v @ a / (v.norm() * a.norm())) > 0.95
    assert loss(v) < 0.01 * start


@pytest.mark.parametrize("beta", [0.01, 0.05])
def test_weight_generation_matrix_density_and_product(beta):
    g = torch.Generator().manual_seed(1)
    w = weight_generation_matrix(400, 300, beta, g, torch.float64)
    dense = w.to_dense()
    k, total = int((dense != 0).sum()), dense.numel()
    assert abs(k - beta * total) < 5 * math.sqrt(total * beta * (1 - beta))  # binomial, 5 sd
    assert float(dense.abs().max()) <= 1.0
    x = (torch.rand(7, 300, generator=g) < 0.5).double()
    assert torch.allclose((w @ x.T).T, x @ dense.T, atol=1e-12)


def test_genome_fan_in_layout_places_each_link_of_W_x_on_its_input_graph_edge():
    """make_genome stores W's rows in per-unit slots, units grouped by fan-in; the weights must be section 2's W x laid on the
    input graph's edges in row-major order, then the output layer (regenerated here from the same seed)."""
    h, d, c, n = 16, 12, 4, 200
    genome = make_genome(d, c, h, 0.3, n, 0.02, torch.Generator().manual_seed(5), torch.float64)
    g = torch.Generator().manual_seed(5)
    mask = torch.rand(h, d, generator=g) < 0.3
    w = weight_generation_matrix(int(mask.sum()) + c * h, n, 0.02, g, torch.float64).to_dense()
    x = (torch.rand(3, n, generator=g) < 0.5).double()
    links = x @ w.T  # (3, E + C h)
    w1, w2 = genome.weights(x)
    expected = torch.zeros(3, h, d, dtype=torch.float64)
    expected[:, mask] = links[:, :int(mask.sum())]
    fan = mask.sum(1)
    assert torch.equal(genome.mask, mask) and sum(u for u, _ in genome.groups) == h
    assert torch.equal(fan[genome.order], fan.sort().values)  # units in fan-in order
    assert all(k == int(fan[genome.order][sum(u for u, _ in genome.groups[:i + 1]) - 1])  # K_g = group's largest
               for i, (_, k) in enumerate(genome.groups))
    assert torch.allclose(w1, expected, atol=1e-12)
    assert torch.allclose(w2, links[:, int(mask.sum()):].view(3, c, h), atol=1e-12)


def test_batched_population_fitness_equals_the_loop():
    g = torch.Generator().manual_seed(2)
    genome = make_genome(12, 4, 16, 0.3, 200, 0.02, g, torch.float64)
    x = (torch.rand(9, 200, generator=g) < 0.5).double()
    y = torch.randn(30, 12, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (30,), generator=g)
    batched = population_fitness(genome, x, y, labels, chunk=16 * 30 * 4)  # several chunks
    assert torch.allclose(batched, population_fitness_loop(genome, x, y, labels), atol=1e-12)
    assert float(batched.max()) <= math.log(4) ** 2  # delta_x = mean max(0, alpha^2 - CE) <= alpha^2


def test_sign_sgd_moves_each_output_weight_by_lr_against_the_gradient_sign():
    g = torch.Generator().manual_seed(3)
    genome = make_genome(8, 3, 10, 0.5, 100, 0.05, g, torch.float64)
    net = genome.net((torch.rand(100, generator=g) < 0.5).double())
    x = torch.randn(50, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (50,), generator=g)
    before = net.readout.weight.detach().clone()
    gen = torch.Generator().manual_seed(4)
    sign_sgd(net, x, y, steps=1, lr=0.01, batch=50, gen=gen)
    idx = torch.randint(0, 50, (50,), generator=torch.Generator().manual_seed(4))
    logits, (h,) = net.__class__(net.mask, net.w1.detach(), before)(x[idx])
    grad = (torch.softmax(logits, 1) - torch.nn.functional.one_hot(y[idx], 3)).T @ h  # (C, h): dCE/dw summed
    assert torch.allclose(net.readout.weight.detach() - before, -0.01 * torch.sign(grad), atol=1e-15)


def test_nne_learns_digits_0_to_4_in_a_few_hundred_generations():
    data = load_dataset(DatasetConfig(name="digits", classes=[0, 1, 2, 3, 4]), 0)
    res = make_strategy("nne").fit(data, Budget(steps=300), seed=0)
    assert res.metrics["steps"] == 300 and len(res.history["mean_fitness"]) == 300
    chance = 0.2
    sd = math.sqrt(chance * (1 - chance) / len(data.y_test))  # binomial sd of accuracy under guessing
    assert res.metrics["accuracy"] > chance + 10 * sd  # ~0.5; the >= 0.90 target is the study's (2 min budget)
    assert np.mean(res.history["mean_fitness"][-20:]) > np.mean(res.history["mean_fitness"][:20])


def test_strategy_registry_and_budget_errors():
    with pytest.raises(ConfigError, match=r"unknown name 'nort'; valid names are .*nne"):
        make_strategy("nort")
    with pytest.raises(ConfigError, match=r"budget: set at least one"):
        Budget()
    with pytest.raises(ConfigError, match=r"strategy nne\.population: out of range"):
        make_strategy("nne", population=1)


def test_unknown_strategy_keys_are_named():
    with pytest.raises(ConfigError, match=r"strategy sparse_sgd: unknown key\(s\) hiden; valid keys are .*hidden.*lr"):
        make_strategy("sparse_sgd", hiden=3)


def test_every_registered_strategy_pickles_for_worker_processes():
    """Named variants (darts_prime, north_select, ...) are built with type(); they must still be importable by
    name so that a strategy object can be sent to a ProcessPoolExecutor worker."""
    import pickle

    from dgnn.search.strategy import STRATEGIES

    for name in STRATEGIES:
        obj = make_strategy(name)
        back = pickle.loads(pickle.dumps(obj))
        assert type(back) is type(obj) and back.name == name
        assert {k: repr(v) for k, v in vars(back).items()} == {k: repr(v) for k, v in vars(obj).items()}


def test_study_script_runs_and_rejects_bad_keys(tmp_path, capsys):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "simulations" / "search_digits.py"
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [{label: t, seconds: 1}]\nstrategies: {nne: {options: {hiden: 3}}}\n")
    run = subprocess.run([sys.executable, str(script), "--config", str(bad), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "unknown key(s) hiden" in run.stderr and "Traceback" not in run.stderr
    good = tmp_path / "good.yaml"
    good.write_text("tasks: [{label: digits 0-4, classes: [0, 1, 2, 3, 4], seconds: 1.0}]\n"
                    "strategies: {nne: {}, sgd: {strategy: sparse_sgd, paper: {digits 0-4: 96.0}}}\n")
    run = subprocess.run([sys.executable, str(script), "--config", str(good), "--out", str(tmp_path / "o"), "--quiet"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    import json

    rows = json.loads((tmp_path / "o" / "results.json").read_text())["rows"]
    assert [r["strategy"] for r in rows] == ["nne", "sgd"] and all(r["accuracy"] > 0.2 for r in rows)
    assert rows[1]["paper"] == 96.0


def test_study_script_resume_keeps_finished_runs_and_extends_the_seeds(tmp_path):
    """A 1-seed study resumed with 2 seeds runs only seed 1 (in a worker process: --jobs 2, the old spelling of
    --workers 2) and ends with the rows of a fresh serial 2-seed study, number for number on a step budget; a
    resume under another task list is refused with one line and exit 2."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import h5py

    script = Path(__file__).resolve().parents[1] / "simulations" / "search_digits.py"
    body = "tasks: [{label: m, dataset: mnist1d, samples: 600, steps: 5}]\nstrategies: {nne: {options: {population: 10, genes: 300}}}\n"
    for seeds in (1, 2):
        (tmp_path / f"s{seeds}.yaml").write_text(f"seeds: {seeds}\n" + body)

    def study(cfg, out, *extra):
        return subprocess.run([sys.executable, str(script), "--config", str(tmp_path / cfg), "--out", str(tmp_path / out),
                               *extra], capture_output=True, text=True)

    assert study("s2.yaml", "fresh", "--quiet").returncode == 0
    assert study("s1.yaml", "r", "--quiet").returncode == 0
    run = study("s2.yaml", "r", "--jobs", "2")  # the same command with one more seed: only seed 1 runs
    assert run.returncode == 0, run.stderr
    assert "resuming: 1 of 2 units" in run.stdout
    import optuna

    from dgnn.study.storage import open_storage

    storage = open_storage(f"journal://{tmp_path / 'r' / 'study.journal'}")
    (name,) = optuna.get_all_study_names(storage)
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    assert sorted(t.user_attrs["dgnn:unit"] for t in trials) == ["m/nne/seed0", "m/nne/seed1"]  # each ran once
    rows = {o: json.loads((tmp_path / o / "results.json").read_text())["rows"] for o in ("fresh", "r")}
    keys = ("task", "strategy", "seed", "accuracy", "information_bits", "steps", "macs")
    assert [{k: r[k] for k in keys} for r in rows["r"]] == [{k: r[k] for k in keys} for r in rows["fresh"]]
    with h5py.File(tmp_path / "r" / "history.h5", "r") as h5:  # both seeds' histories, merged from the units
        assert set(h5["m/nne"]) == {"seed0", "seed1"}
    (tmp_path / "other.yaml").write_text("seeds: 2\n" + body.replace("steps: 5", "steps: 6"))
    run = study("other.yaml", "r", "--resume")
    assert run.returncode == 2 and "tasks.0.steps differs" in run.stderr and "--overwrite" in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_study_paired_comparison_with_the_first_strategy():
    """Differences d = (0.1, 0.3): mean 0.2, SE 0.1, t = 2 on 1 degree of freedom (a Cauchy law), so the two-sided
    p = 1 - (2 / pi) arctan 2."""
    from dgnn.study.strategies import paired

    out = paired(np.array([0.6, 0.9]), np.array([0.5, 0.6]))
    assert out["vs_first_mean"] == pytest.approx(0.2) and out["vs_first_se"] == pytest.approx(0.1)
    assert out["vs_first_p"] == pytest.approx(1 - 2 / math.pi * math.atan(2.0), rel=1e-9)
    assert paired(np.array([0.6, 0.9]), None)["vs_first_p"] == ""  # the first strategy itself


def test_dopamine_step_moves_only_the_fired_links_of_wrong_predictions():
    from dgnn.search.dnn import CappedNet, dopamine_step

    g = torch.Generator().manual_seed(5)
    w1 = torch.randn(6, 4, generator=g)
    w2 = torch.randn(3, 6, generator=g)
    net = CappedNet(torch.ones(6, 4, dtype=torch.bool), w1, w2)
    x = torch.randn(8, 4, generator=g)
    logits, (h,) = net(x)
    pred = logits.argmax(1)
    y = pred.clone()
    y[:3] = (pred[:3] + 1) % 3  # three wrong predictions, five right
    before = net.readout.weight.detach().clone()
    dopamine_step(net, x, y, lr=0.1)
    want = before.clone()
    for b in range(3):  # right predictions change nothing
        want[y[b]] += 0.1 * (h[b] > 0).float()  # the correct output's links from the active units: potentiated
        want[pred[b]] -= 0.1 * (h[b] > 0).float()  # the links that fired into the wrong winner: depressed
    assert torch.allclose(net.readout.weight.detach(), want, atol=1e-6)


def test_k_cap_keeps_the_k_largest_hidden_units():
    from dgnn.search.dnn import CappedNet

    g = torch.Generator().manual_seed(6)
    net = CappedNet(torch.ones(50, 8, dtype=torch.bool), torch.randn(50, 8, generator=g), torch.zeros(3, 50), k=5)
    x = torch.randn(20, 8, generator=g)
    _, (h,) = net(x)
    full = torch.relu(x @ net.w1.T)  # (20, 50) uncapped
    top = full.topk(5, dim=1)
    assert torch.equal(h.gather(1, top.indices), top.values)  # the 5 largest fire unchanged
    assert int((h > 0).sum()) == int((top.values > 0).sum())  # and nothing else does


@pytest.mark.parametrize("rule, floor", [("dopamine", 0.85), ("signsgd", 0.85), ("sgd", 0.9)])
def test_dnn_rules_learn_digits(rule, floor):
    data = load_dataset(DatasetConfig(name="digits"), 0)
    res = make_strategy("dnn", rule=rule, k_cap=100, hidden=500).fit(data, Budget(steps=3), seed=0)
    assert res.metrics["accuracy"] > floor and res.metrics["steps"] == 3


def test_strategies_run_through_dgnn_compare(tmp_path):
    """kind: strategy models sit in the same results table, summary, ANOVA input and HDF5 histories as MLPs;
    they run once per seed (at the first lambda), and bad strategy keys fail at config time."""
    import h5py

    from dgnn.config import config_from_dict
    from dgnn.study.compare import compare
    from dgnn.study.config import CompareConfig

    cfg = config_from_dict({
        "name": "t", "seeds": 1, "datasets": [{"name": "digits", "classes": [0, 1, 2]}], "lambdas": [0.0, 1.0],
        "models": {"mlp": {"kind": "mlp", "hidden": [16]},
                   "nne": {"kind": "strategy", "strategy": "nne", "options": {"population": 20},
                           "budget": {"steps": 15}}},
        "train": {"epochs": 3}}, model=CompareConfig)
    res = compare(cfg, tmp_path / "c", progress=False)
    kinds = sorted((r["model"], r["lambda"]) for r in res.rows)
    assert kinds == [("mlp", 0.0), ("mlp", 1.0), ("nne", 0.0)]
    nne = next(r for r in res.rows if r["model"] == "nne")
    assert nne["epochs"] == 15 and nne["accuracy"] > 1 / 3 and nne["macs"] > 0
    with h5py.File(tmp_path / "c" / "results.h5") as h5:
        hist = [h5["history"][k] for k in h5["history"] if h5["history"][k].attrs["model"] == "nne"][0]
        assert hist["mean_fitness"].shape == (15,)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) populaton"):
        config_from_dict({"models": {"n": {"kind": "strategy", "strategy": "nne", "options": {"populaton": 3}}}},
                         model=CompareConfig)
