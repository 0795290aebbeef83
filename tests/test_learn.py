"""Learning: datasets, measures, ANOVA, oscillator networks against closed forms, training and `dgnn compare`."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from scipy import stats

from dgnn.cli import main
from dgnn.errors import ConfigError
from dgnn.learn.anova import factorial_anova
from dgnn.study.compare import compare, load_compare_config, pareto_front
from dgnn.learn.config import DatasetConfig, ModelConfig, TrainConfig
from dgnn.study.config import CompareConfig
from dgnn.learn.data import load_dataset, mnist1d_xy, north_toy_xy, read_idx, stratified_split, write_idx
from dgnn.learn.measures import confusion_matrix, information_bound_bits, mutual_information_bits
from dgnn.learn.models import build_model, match_width, parameter_count
from dgnn.learn.train import fit, settle_gap


# ------------------------------------------------------------------------------------------------------ data
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_idx_round_trip(tmp_path, suffix, dtype):
    rng = np.random.default_rng(0)
    a = (rng.integers(0, 255, (7, 5, 3)) if dtype != np.float32 else rng.standard_normal((7, 5, 3))).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)


def test_idx_dataset_from_files_the_tests_write(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 20).astype(np.uint8)
    images = (rng.integers(0, 50, (60, 4, 4)) + 60 * labels[:, None, None]).astype(np.uint8)  # separable
    write_idx(tmp_path / "img.idx.gz", images)
    write_idx(tmp_path / "lab.idx", labels)
    d = load_dataset(DatasetConfig(name="idx", images=str(tmp_path / "img.idx.gz"), labels=str(tmp_path / "lab.idx")), 0)
    assert d.n_features == 16 and d.n_classes == 3
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 60


def test_idx_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ConfigError, match="bad.idx: not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short.idx"
    short.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"12345")
    with pytest.raises(ConfigError, match="short.idx: IDX header says"):
        read_idx(short)


def test_stratified_split_keeps_class_proportions():
    y = np.repeat(np.arange(4), [100, 200, 50, 150])
    tr, va, te = stratified_split(y, (0.15, 0.2), seed=3)
    assert len(set(tr) | set(va) | set(te)) == len(y) and not (set(tr) & set(va)) and not (set(va) & set(te))
    for part, frac in ((va, 0.15), (te, 0.2)):
        np.testing.assert_allclose(np.bincount(y[part]) / np.bincount(y), frac, atol=0.01)
    again = stratified_split(y, (0.15, 0.2), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))


def test_class_subset_relabels_and_generators_are_offline_and_contained():
    d = load_dataset(DatasetConfig(name="digits", classes=[5, 6, 7, 8, 9]), 0)
    assert d.n_classes == 5 and set(np.unique(d.y_train)) == {0, 1, 2, 3, 4}
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    x, y = mnist1d_xy(200)
    assert np.random.random() == before  # mnist1d seeds numpy's global state; dgnn restores it
    assert x.shape == (200, 40) and set(np.unique(y)) == set(range(10))
    x, y = north_toy_xy(8, 1000, seed=0)
    assert x.shape == (1000, 64) and np.linalg.matrix_rank(x) == 8 and 0.4 < y.mean() < 0.6


# --------------------------------------------------------------------------------------------------- measures
def test_information_of_perfect_and_constant_classifiers():
    y = np.repeat(np.arange(8), 25)
    assert mutual_information_bits(confusion_matrix(y, y, 8)) == pytest.approx(3.0, abs=1e-12)  # log2 C
    assert mutual_information_bits(confusion_matrix(y, np.zeros_like(y), 8)) == pytest.approx(0.0, abs=1e-12)
    # a perfect, confident classifier: CE -> 0, the bound -> H(Y) = log2 C
    assert information_bound_bits(y, 8, 0.0) == pytest.approx(3.0)


def test_factorial_anova_matches_closed_forms_of_a_balanced_design():
    """Balanced 3 x 2 design, 4 replicates: the classic sums of squares from cell and marginal means."""
    rng = np.random.default_rng(0)
    a = np.repeat(["m1", "m2", "m3"], 8)
    b = np.tile(np.repeat(["d1", "d2"], 4), 3)
    effect = {"m1": 0.0, "m2": 0.5, "m3": -0.2}
    y = np.array([effect[i] + (0.3 if j == "d2" else 0.0) + (0.4 if (i, j) == ("m3", "d2") else 0.0)
                  for i, j in zip(a, b)]) + rng.standard_normal(24) * 0.3
    g = y.mean()
    ma = {k: y[a == k].mean() for k in np.unique(a)}
    mb = {k: y[b == k].mean() for k in np.unique(b)}
    mab = {(i, j): y[(a == i) & (b == j)].mean() for i in ma for j in mb}
    ss_a = 8 * sum((v - g) ** 2 for v in ma.values())
    ss_b = 12 * sum((v - g) ** 2 for v in mb.values())
    ss_ab = 4 * sum((mab[i, j] - ma[i] - mb[j] + g) ** 2 for i in ma for j in mb)
    ss_e = sum(((y[(a == i) & (b == j)] - mab[i, j]) ** 2).sum() for i in ma for j in mb)
    rows = {r["source"]: r for r in factorial_anova(y, a, b, ("model", "dataset"))}
    for src, ss, df in (("model", ss_a, 2), ("dataset", ss_b, 1), ("model:dataset", ss_ab, 2)):
        assert rows[src]["ss"] == pytest.approx(ss, rel=1e-9, abs=1e-12) and rows[src]["df"] == df
        f = (ss / df) / (ss_e / 18)
        assert rows[src]["F"] == pytest.approx(f, rel=1e-9)
        assert rows[src]["p"] == pytest.approx(stats.f.sf(f, df, 18), rel=1e-6)
        assert rows[src]["partial_eta2"] == pytest.approx(ss / (ss + ss_e), rel=1e-9)


def test_one_factor_anova_equals_scipy_f_oneway():
    rng = np.random.default_rng(2)
    groups = [rng.normal(m, 1.0, n) for m, n in ((0.0, 5), (0.7, 9), (0.2, 6))]  # unbalanced
    y = np.concatenate(groups)
    a = np.repeat(["x", "y", "z"], [5, 9, 6])
    rows = factorial_anova(y, a, np.zeros(len(y)))
    ref = stats.f_oneway(*groups)
    assert rows[0]["F"] == pytest.approx(ref.statistic, rel=1e-9) and rows[0]["p"] == pytest.approx(ref.pvalue, rel=1e-6)


def test_pareto_front():
    pts = np.array([[1.0, 0.5], [2.0, 0.9], [1.5, 0.4], [3.0, 0.95], [2.5, 0.8]])
    assert sorted(pareto_front(pts).tolist()) == [0, 1, 3]


# ---------------------------------------------------------------------------------------------- oscillators
def osc(**kw):
    base = {"kind": "oscillator", "hidden": [6], "settle_time": 6.0, "dt": 0.1}
    return ModelConfig(**{**base, **kw})


def test_one_layer_settles_at_the_phase_of_its_input_sum():
    """Clamped inputs, Kuramoto coupling: theta_h' = Im(Z_h e^{-i theta_h}) with Z_h = sum_j m_hj e^{i phi_j} + m_b,
    so theta_h relaxes to arg Z_h at rate |Z_h|."""
    torch.manual_seed(0)
    net = build_model(osc(settle_time=200.0, dt=0.05, coupling=2.0), 5, 3, seed=1, dtype=torch.float64)
    x = torch.randn(4, 5, dtype=torch.float64)
    with torch.no_grad():
        th = net.settle(x)
        layer = net.layers[0]
        phi = net.cfg.input_scale * torch.tanh(x)
        z = torch.exp(1j * phi) @ layer.mag.T.to(torch.complex128) + layer.bias_mag
    gap = torch.atan2(torch.sin(th - z.angle()), torch.cos(th - z.angle()))
    assert gap.abs().max() < 1e-6


@pytest.mark.parametrize("kw", [{}, {"parameterization": "phase"}, {"potential": "hkb", "b": 0.3, "recurrent": True},
                                {"hidden": [4, 3], "glia": True}, {"encoding": "drive", "input_scale": 0.8}])
def test_oscillator_gradients_match_finite_differences(kw):
    net = build_model(osc(**kw), 4, 3, seed=2, dtype=torch.float64)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])

    def loss():
        with torch.enable_grad():
            logits, acts = net(x)
            return torch.nn.functional.cross_entropy(logits, y) + 0.1 * sum((a * a).mean() for a in acts)

    net.zero_grad()
    loss().backward()
    rng = np.random.default_rng(0)
    for p in net.parameters():
        for flat in rng.choice(p.numel(), size=min(3, p.numel()), replace=False):
            idx = np.unravel_index(flat, p.shape)
            old = float(p.data[idx])
            h = 1e-6
            p.data[idx] = old + h
            up = loss().item()
            p.data[idx] = old - h
            down = loss().item()
            p.data[idx] = old
            fd = (up - down) / (2 * h)
            assert float(p.grad[idx]) == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_adjoint_gradients_equal_direct_backprop():
    """The adjoint integrates the adjoint ODE with the same rk4 steps, so it differs from backpropagation through
    the steps by rk4's O(dt^4) error: 2e-4 relative at dt = 0.1, (0.02 / 0.1)^4 of that at dt = 0.02."""
    cfg = osc(hidden=[4, 3], dt=0.02)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = []
    for adjoint in (False, True):
        net = build_model(cfg.model_copy(update={"adjoint": adjoint}), 4, 2, seed=3, dtype=torch.float64)
        net(x)[0].sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=2e-6, atol=1e-9)


def test_rate_guard_keeps_rk4_stable_whatever_the_weights():
    net = build_model(osc(dt=0.25, max_rate=8.0), 4, 2, seed=0, dtype=torch.float64)
    with torch.no_grad():
        net.layers[0].mag.mul_(1e4)  # training that blew the couplings up
        g = net.layers[0].gain() * net.layers[0].total_coupling()
    assert float(g.max()) <= 8.0 + 1e-9  # rate x dt = 2 < 2.78, inside rk4's real stability interval
    assert settle_gap(net, np.random.default_rng(0).standard_normal((16, 4))) < 0.05


def test_metabolic_energy_of_an_uncoupled_net_is_its_base_power_times_the_settle_time():
    """All couplings zero: theta' = 0 and sum |K| = 0, so the power is p_base x units for the whole settle time
    (p_base from the model's metabolism config)."""
    met = {"p_base": 0.03, "p_act": 0.1, "p_syn": 0.01}
    net = build_model(osc(hidden=[5, 3], settle_time=4.0, dt=0.5, metabolism=met), 4, 2, seed=0, dtype=torch.float64)
    with torch.no_grad():
        for layer in net.layers:
            layer.mag.zero_()
            layer.bias_mag.zero_()
        e = net.metabolic_energy(torch.randn(3, 4, dtype=torch.float64))
    torch.testing.assert_close(e, torch.full((3,), 0.03 * 8 * 4.0, dtype=torch.float64))


def test_metabolic_energy_trains_and_drops_with_lambda():
    data = load_dataset(DatasetConfig(name="digits", classes=[0, 1, 2]), 0)
    cfg, tc = osc(hidden=[8], settle_time=3.0, dt=0.5), TrainConfig(epochs=3, patience=3)
    e = [fit(cfg, data, tc, seed=0, lam=lam, energy="metabolic")[0]["metabolic_energy"] for lam in (0.0, 1.0)]
    assert e[1] < e[0]


def test_parameter_matching_lands_within_one_unit():
    mlp = ModelConfig(kind="mlp", hidden=[128])
    target = parameter_count(build_model(mlp, 64, 10, 0))
    m = match_width(osc(hidden=[128]), target, 64, 10)
    got = parameter_count(build_model(m, 64, 10, 0))
    per_unit = 64 + 1 + 2 * 10  # one more oscillator adds its inputs, its bias and two readout columns
    assert abs(got - target) <= per_unit


def test_mlp_macs_are_the_weight_count():
    net = build_model(ModelConfig(kind="mlp", hidden=[32, 16]), 10, 4, 0)
    assert net.macs()["macs"] == 10 * 32 + 32 * 16 + 16 * 4


# -------------------------------------------------------------------------------------------------- training
def test_phase_based_net_learns_digits_well_above_chance():
    data = load_dataset(DatasetConfig(name="digits"), 0)
    row, _ = fit(osc(hidden=[48], settle_time=5.0, dt=0.5, parameterization="phase"), data,
                 TrainConfig(epochs=6, patience=6, lr=1e-2), seed=0)
    assert row["accuracy"] > 0.8  # chance is 0.1
    assert row["information_bits"] > 2.0  # of log2(10) = 3.32


def test_raising_lambda_lowers_activation_energy():
    data = load_dataset(DatasetConfig(name="digits", classes=[0, 1, 2, 3]), 0)
    tc = TrainConfig(epochs=8, patience=8)
    e = [fit(ModelConfig(kind="mlp", hidden=[32]), data, tc, seed=0, lam=lam)[0]["activation_energy"]
         for lam in (0.0, 0.3, 3.0)]
    assert e[0] > e[1] > e[2]


# --------------------------------------------------------------------------------------------------- compare
def tiny_compare(**over) -> CompareConfig:
    data = {"name": "tiny", "seeds": 2, "datasets": [{"name": "north_toy", "features": 4, "samples": 400}],
            "models": {"mlp": {"kind": "mlp", "hidden": [8]},
                       "osc": {"kind": "oscillator", "hidden": [4], "settle_time": 2.0, "dt": 0.5,
                               "match_parameters": "mlp"}},
            "lambdas": [0.0], "train": {"epochs": 2, "patience": 2}}
    data.update(over)
    return CompareConfig.model_validate(data)


def test_compare_writes_the_table_and_resumes(tmp_path):
    whole = compare(tiny_compare(), tmp_path / "whole", progress=False)
    assert whole.ran == 4 and len(whole.rows) == 4 and whole.status == "complete"
    assert {"accuracy_mean", "accuracy_sd", "information_bits_mean"} <= set(whole.summary[0])
    out = tmp_path / "cmp"
    calls = iter(range(100))
    first = compare(tiny_compare(), out, progress=False, should_stop=lambda: next(calls) >= 3)
    assert first.status == "interrupted" and first.ran == 3
    again = compare(None, out, resume=True, progress=False)  # the old --resume DIR form
    assert again.ran == 1 and again.status == "complete"
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("wall_seconds", "train_seconds")} for r in rows]  # noqa: E731
    assert strip(again.rows) == strip(whole.rows)  # the same runs, bit for bit, whatever was interrupted
    for name in ("results.csv", "summary.csv", "results.json", "results.h5", "accuracy_vs_energy.png"):
        assert (out / name).is_file()
    ckpt = torch.load(out / whole.rows[0]["checkpoint"])
    net = build_model(ModelConfig(**ckpt["model"]), ckpt["n_in"], ckpt["n_out"], 0)
    net.load_state_dict(ckpt["state_dict"])  # a checkpoint rebuilds the trained model
    assert compare(tiny_compare(), out, progress=False).ran == 0  # the same command again: nothing left to run
    with pytest.raises(ConfigError, match=r"train\.epochs differs"):
        compare(tiny_compare(train={"epochs": 3, "patience": 2}), out, progress=False)


def test_compare_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  m: {kind: mlp, hiden: [3]}\n")
    assert main(["compare", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "models.m.hiden" in err and "c.yaml:2" in err
    cfg.write_text("datasets:\n  - {name: idx}\n")
    assert main(["compare", str(cfg), "--quiet"]) == 2
    assert "images" in capsys.readouterr().err


def test_compare_config_resolves_idx_paths_relative_to_the_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("datasets:\n  - {name: idx, images: data/i.idx, labels: data/l.idx}\n")
    c = load_compare_config(cfg)
    assert c.datasets[0].images == str((tmp_path / "data" / "i.idx").resolve())


def test_training_is_deterministic_on_cpu():
    data = load_dataset(DatasetConfig(name="digits", classes=[0, 1, 2]), 1)
    cfg, tc = osc(hidden=[6], settle_time=2.0, dt=0.5, glia=True), TrainConfig(epochs=2, patience=2)
    (a, ra), (b, rb) = (fit(cfg, data, tc, seed=4) for _ in range(2))
    assert a["accuracy"] == b["accuracy"] and a["activation_energy"] == b["activation_energy"]
    for p, q in zip(ra.model.parameters(), rb.model.parameters()):
        assert torch.equal(p, q)


def test_a_model_learning_rate_overrides_the_train_block():
    data = load_dataset(DatasetConfig(name="digits", classes=[0, 1]), 0)
    mlp = ModelConfig(kind="mlp", hidden=[8])
    own = ModelConfig(kind="mlp", hidden=[8], train={"lr": 0.02})
    a = fit(own, data, TrainConfig(epochs=2, lr=0.001), seed=0)[1].model
    b = fit(mlp, data, TrainConfig(epochs=2, lr=0.02), seed=0)[1].model
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
