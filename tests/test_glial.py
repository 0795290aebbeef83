"""Glial-neural nets (kind glial, dgnn.learn.glial) against OscillatorNet and closed forms: no glia is the plain net,
a full uniform gate is a time rescaling, empty reserves uncouple every unit, each inference's ledger balances, the
gate's gradients are exact, glia settle on their domain's mean phase and change the function, and the net learns."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dgnn.config import config_from_dict
from dgnn.errors import ConfigError
from dgnn.learn.config import DatasetConfig, ModelConfig, TrainConfig
from dgnn.learn.data import load_dataset
from dgnn.learn.models import OscillatorNet, build_model
from dgnn.learn.train import fit
from dgnn.metabolism import LEDGER

F64 = torch.float64
QUIET = {"p_base": 0.0, "p_act": 0.0, "p_syn": 0.0}  # no power drawn: the reserve sits wherever it starts


def glial(**kw) -> ModelConfig:
    base = {"kind": "glial", "hidden": [6, 4], "settle_time": 4.0, "dt": 0.2}
    return ModelConfig(**{**base, **kw})


def plain(cfg: ModelConfig, **kw) -> ModelConfig:
    """The same net as kind oscillator (no glia keys)."""
    data = {k: v for k, v in cfg.model_dump().items() if k not in ("glia_ratio", "c_gn", "c_ng", "nu")}
    return ModelConfig(**{**data, "kind": "oscillator", **kw})


def inputs(b=5, n=4, seed=0) -> torch.Tensor:
    return torch.randn(b, n, generator=torch.Generator().manual_seed(seed), dtype=F64)


VARIANTS = [{}, {"parameterization": "phase"}, {"potential": "hkb", "b": 0.3, "recurrent": True},
            {"encoding": "drive", "input_scale": 0.8}]


# ------------------------------------------------------------------------------------------ limits of the model
@pytest.mark.parametrize("kw", VARIANTS)
def test_ratio_zero_is_the_oscillator_net_bit_for_bit(kw):
    # no glia, no domains, no reserves: the same parameters drawn in the same order and the same settling
    cfg = glial(glia_ratio=0.0, **kw)
    nets = [build_model(c, 4, 3, seed=2, dtype=F64) for c in (cfg, plain(cfg))]
    assert type(nets[1]) is OscillatorNet and nets[0].n_glia == 0
    x = inputs()
    with torch.no_grad():  # the glial net's one-pass inference reports the same energy
        torch.testing.assert_close(nets[0].infer(x).energy, nets[1].metabolic_energy(x), rtol=0, atol=0)
    outs = []
    for net in nets:
        logits, acts = net(x)
        (logits.sum() + net.metabolic_energy(x).sum()).backward()
        outs.append((logits, net.metabolic_energy(x), [p.grad for p in net.parameters()], net.macs()))
    (la, ea, ga, ma), (lb, eb, gb, mb) = outs
    assert torch.equal(la, lb) and torch.equal(ea, eb) and ma == mb
    assert all(torch.equal(a, b) for a, b in zip(ga, gb))


def test_a_full_uniform_gate_is_a_time_rescaling():
    """No power drawn and e_init = e_max: the supply term vanishes, e stays at e_max, and every unit's coupling is
    scaled by the same g = e_max / (e_max + k_m). theta' = g F(theta) is theta' = F(theta) in time g t, and rk4 on
    g F with step h is rk4 on F with step g h: the glial net equals the ungated net settled for g T in steps g dt,
    to rounding. Against the ungated net at T the phases differ by at most (1 - g) T max|F| <= (1 - g) T max_rate."""
    met = {**QUIET, "supply": 5.0, "e_max": 1000.0, "e_init": 1000.0, "k_m": 1.0}
    cfg = glial(c_gn=0.0, c_ng=0.0, max_rate=4.0, metabolism=met)  # cap min(4, 2 / dt) = 4 at both steps
    g = 1000.0 / 1001.0
    x = inputs()
    with torch.no_grad():
        net = build_model(cfg, 4, 3, seed=1, dtype=F64)
        gated = net.settle(x)[:, :10]  # (B, N) unit phases
        scaled = build_model(plain(cfg, settle_time=g * cfg.settle_time, dt=g * cfg.dt), 4, 3, seed=1, dtype=F64).settle(x)
        ungated = build_model(plain(cfg), 4, 3, seed=1, dtype=F64).settle(x)
    assert (gated - scaled).abs().max() < 1e-12  # 20 rk4 steps of O(1) phases: a few hundred ulps at most
    gap = (gated - ungated).abs().max()
    assert 0 < gap <= (1 - g) * cfg.settle_time * 4.0  # max_rate 4


def test_ample_supply_equals_the_ungated_net_to_the_gate_bound():
    """Huge supply S = 2000 per glia, e_init = e_max = 1000 >> k_m = 1e-9, default powers, c_gn = c_ng = 0. A domain
    (one unit) draws at most P = p_base + p_act cap^2 + p_syn cap, so e >= e_max (1 - P / S) and the gate is
    g >= 1 - eps with eps = k_m / (e_max (1 - P / S)). Gronwall on theta' = g F vs F (F Lipschitz with L = 2 cap in
    the max norm, |F| <= cap) bounds the phase gap by eps cap T exp(L T)."""
    cap, t_settle = 2.0, 2.0
    met = {"supply": 2000.0, "e_max": 1000.0, "e_init": 1000.0, "k_m": 1e-9}
    cfg = glial(c_gn=0.0, c_ng=0.0, max_rate=cap, settle_time=t_settle, metabolism=met)
    p = cfg.metabolism
    power = p.p_base + p.p_act * cap ** 2 + p.p_syn * cap
    eps = p.k_m / (p.e_max * (1 - power / p.supply))
    bound = eps * cap * t_settle * math.exp(2 * cap * t_settle)
    x = inputs()
    with torch.no_grad():
        net = build_model(cfg, 4, 3, seed=3, dtype=F64)
        inf = net.infer(x)
        ungated = build_model(plain(cfg), 4, 3, seed=3, dtype=F64)
        gap = (net.settle(x)[:, :10] - ungated.settle(x)).abs().max()
        logits_gap = (inf.logits - ungated(x)[0]).abs().max()
    assert float(inf.reserve.min()) >= p.e_max * (1 - power / p.supply)
    assert gap <= bound + 1e-13
    assert logits_gap <= ungated.readout.weight.detach().abs().sum(1).max() * (bound + 1e-13)  # |d cos|, |d sin| <= |d theta|


@pytest.mark.parametrize("kw", [{}, {"encoding": "drive", "input_scale": 0.8}, {"glia_ratio": 0.5}])
def test_empty_reserves_uncouple_every_unit(kw):
    """Zero supply, zero reserve: g = 0 from the first stage, so every coupling is off; the glia start at psi = 0 =
    theta with nu = 0, so their terms vanish too. The phases stay at 0 and the outputs are the uncoupled net's (all
    magnitudes zero), exactly. The demand goes unmet: p_base per unit and p_syn per unit of capped coupling (and
    p_glia per glial cell) over the settle time, with no activity."""
    met = {"supply": 0.0, "e_init": 0.0, "p_glia": 0.02}
    cfg = glial(c_gn=0.7, c_ng=0.7, metabolism=met, **kw)
    x = inputs()
    with torch.no_grad():
        net = build_model(cfg, 4, 3, seed=4, dtype=F64)
        inf = net.infer(x)
        uncoupled = build_model(plain(cfg), 4, 3, seed=4, dtype=F64)
        for layer in uncoupled.layers:
            layer.mag.zero_()
            layer.bias_mag.zero_()
        logits = uncoupled(x)[0]
        load = torch.cat([layer.gain() * layer.total_coupling() for layer in net.layers])  # (N,)
    assert torch.equal(inf.logits, logits)
    assert torch.equal(inf.psi, torch.zeros_like(inf.psi)) and torch.equal(inf.reserve, torch.zeros_like(inf.reserve))
    units = torch.as_tensor(np.bincount(net.neuron_domain, minlength=net.n_domains), dtype=F64)
    glia = torch.as_tensor(np.bincount(net.glia_domain, minlength=net.n_domains), dtype=F64)
    syn = torch.zeros(net.n_domains, dtype=F64).index_add_(0, torch.as_tensor(net.neuron_domain), load)
    t = cfg.settle_time
    torch.testing.assert_close(inf.ledger["consumed_base"], (0.01 * units * t).expand(5, -1), rtol=1e-12, atol=0)
    torch.testing.assert_close(inf.ledger["consumed_synapse"], (0.01 * syn * t).expand(5, -1), rtol=1e-12, atol=0)
    torch.testing.assert_close(inf.ledger["consumed_glia"], (0.02 * glia * t).expand(5, -1), rtol=1e-12, atol=0)
    assert torch.equal(inf.ledger["consumed_activity"], torch.zeros_like(inf.reserve))
    # e stays 0 and nothing is supplied: everything consumed was unmet
    consumed = sum(inf.ledger[k] for k in ("consumed_base", "consumed_synapse", "consumed_glia"))
    torch.testing.assert_close(inf.ledger["unmet"], consumed, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------------------------------ the ledger
METABOLISMS = {  # reserves that run dry (demand beyond supply: the clamp at 0 books unmet energy), and fed ones
    "drained": {"supply": 0.1, "e_max": 2.0, "e_init": 0.5, "k_m": 0.5, "p_base": 0.4, "p_act": 0.3, "p_glia": 0.01},
    "fed": {"supply": 0.5, "e_max": 2.0, "e_init": 1.0, "p_act": 0.3, "p_glia": 0.01},
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kw", [{}, {"glia_ratio": 0.5}, {"glia_ratio": 2.5, "parameterization": "phase"}])
@pytest.mark.parametrize("regime", list(METABOLISMS))
def test_the_ledger_balances_per_inference(dtype, kw, regime):
    """e and the integrated columns are solved together, so rk4 keeps e - e0 = supplied - consumed + unmet -
    discarded to rounding; clamping books exactly what it changes. float64: 1e-12. float32: each of the n steps
    rounds each of the K = 1 + L block columns once per stage combination (4 additions), so the balance drifts by at
    most 4 n K eps32 times the largest column."""
    cfg = glial(metabolism=METABOLISMS[regime], **kw)
    x = inputs(8).to(dtype)
    with torch.no_grad():
        inf = build_model(cfg, 4, 3, seed=5, dtype=dtype).infer(x)
    if regime == "drained":
        assert float(inf.ledger["unmet"].min()) > 0  # every reserve ran dry and the clamp booked it
    else:
        assert float(inf.reserve.min()) > 0 and float(inf.ledger["unmet"].max()) == 0
    scale = max(1.0, max(float(v.abs().max()) for v in inf.ledger.values()))
    n, k = round(cfg.settle_time / cfg.dt), 1 + len(LEDGER)
    tol = 1e-12 if dtype == torch.float64 else 4 * n * k * torch.finfo(dtype).eps * scale
    assert float(inf.imbalance().abs().max()) < tol
    # the energy of an inference is its ledger's consumption, neurons and glia
    total = sum(inf.ledger[c] for c in ("consumed_base", "consumed_activity", "consumed_synapse", "consumed_glia"))
    torch.testing.assert_close(inf.energy, total.sum(-1))


@pytest.mark.parametrize("method", ["euler", "midpoint", "dopri5"])
@pytest.mark.parametrize("regime", list(METABOLISMS))
def test_the_ledger_balances_with_every_allowed_method(method, regime):
    # explicit steps clamp after every step; torchdiffeq's adaptive dopri5 at the end of the settling (its output
    # time), booking as unmet whatever the reserve borrowed below 0 meanwhile: the balance holds either way
    with torch.no_grad():
        inf = build_model(glial(method=method, metabolism=METABOLISMS[regime]), 4, 3, seed=5, dtype=F64).infer(inputs(3))
    assert float(inf.imbalance().abs().max()) < 1e-12
    assert (float(inf.ledger["unmet"].min()) > 0) == (regime == "drained")


def test_every_inference_is_a_replica_with_its_own_reserve():
    # the batch does not mix: each input alone settles to its row of the batch, reserves and ledger included
    net = build_model(glial(metabolism={"supply": 0.5, "e_max": 2.0, "e_init": 1.0, "p_act": 0.3}), 4, 3, seed=6,
                      dtype=F64)
    x = inputs(4)
    with torch.no_grad():
        batch = net.infer(x)
        for i in range(4):
            one = net.infer(x[i:i + 1])
            torch.testing.assert_close(one.reserve, batch.reserve[i:i + 1], rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(one.ledger["consumed_activity"], batch.ledger["consumed_activity"][i:i + 1],
                                       rtol=1e-12, atol=1e-14)
    assert float((batch.reserve[0] - batch.reserve[1]).abs().max()) > 1e-6  # different inputs, different spending


# --------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kw", VARIANTS[:3] + [{"glia_ratio": 2.0}, {"glia_ratio": 0.5, "hidden": [6]}])
def test_gradients_through_the_gate_match_central_differences(kw):
    """Reserves that only rise keep e in [e_init, e_max) with k_m = e_init, so the gate is smooth and sensitive: at
    e <= e_init a domain's supply is at least supply (1 - e_init / e_max) = 0.75 per glial cell, and a unit draws at
    most p_base + p_act (cap + c_gn)^2 + p_syn cap = 0.706 (cap 2, c_gn 0.6, p_act 0.1); glia_ratio 0.5 puts two
    units on one glial cell, so p_act 0.05 there (2 x 0.368 = 0.736).
    Central differences err by h^2 f''' / 6, estimated from h and 2 h (Richardson: FD(2h) - FD(h) is 3 times the
    error of FD(h)), plus rounding of the loss, about 100 eps |L| / h."""
    met = {"supply": 1.0, "e_max": 4.0, "e_init": 1.0, "k_m": 1.0, "p_act": 0.05 if kw.get("glia_ratio") == 0.5 else 0.1}
    cfg = glial(max_rate=2.0, c_gn=0.6, c_ng=0.4, settle_time=3.0, dt=0.25, metabolism=met, **kw)
    net = build_model(cfg, 4, 3, seed=7, dtype=F64)
    x = inputs(4)
    y = torch.tensor([0, 1, 2, 0])

    def loss():
        inf = net.infer(x)
        return torch.nn.functional.cross_entropy(inf.logits, y) + 0.3 * inf.energy.mean(), inf

    net.zero_grad()
    value, inf = loss()
    value.backward()
    led = {k: v.detach() for k, v in inf.ledger.items()}
    assert float(led["unmet"].abs().max()) == 0.0 and float(led["discarded"].abs().max()) == 0.0
    assert float(inf.reserve.detach().min()) >= 1.0  # never clamped: no kinks between the differences
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for p in net.parameters():
            for flat in rng.choice(p.numel(), size=min(2, p.numel()), replace=False):
                idx = np.unravel_index(flat, p.shape)
                old = float(p[idx])

                def fd(h):
                    p[idx] = old + h
                    up = loss()[0].item()
                    p[idx] = old - h
                    down = loss()[0].item()
                    p[idx] = old
                    return (up - down) / (2 * h)

                h = 1e-5
                d1, d2 = fd(h), fd(2 * h)
                tol = abs(d2 - d1) + 100 * torch.finfo(F64).eps * abs(value.item()) / h
                assert abs(float(p.grad[idx]) - d1) <= tol, (p.shape, idx, float(p.grad[idx]), d1, tol)


# --------------------------------------------------------------------------------------------- glial function
def test_glia_follow_a_lone_unit_and_keep_its_fixed_point():
    """One unit per domain (glia_ratio 2: two glial cells on each unit), nu = 0: psi_g' = c_ng sin(theta_i - psi_g)
    settles at psi_g = theta_i, where the glial pull c_gn <sin(psi_g - theta_i)> on the unit vanishes; the unit then
    rests where g C_i(theta) = 0, the plain net's fixed point whatever the gate g > 0. So after a long settling the
    outputs do not depend on c_gn (glia shape the transient and the energy, not the settled function).
    How long: a unit relaxing alone at rate a = g gain |Z| (Z its input sum) and its glia form the linear system
    [[-(a + c_gn), c_gn], [c_ng, -c_ng]], whose slow rate is lambda = a c_ng / (a + c_gn + c_ng); from at most pi
    away the residuals are below pi exp(-lambda T) for the slowest unit."""
    met = {"supply": 5.0, "e_max": 10.0, "e_init": 10.0, "k_m": 0.1}
    kw = {"hidden": [5], "glia_ratio": 2.0, "c_ng": 1.0, "settle_time": 80.0, "dt": 0.5, "coupling": 3.0, "metabolism": met}
    x = inputs(4)
    with torch.no_grad():
        nets = {c: build_model(glial(c_gn=c, **kw), 4, 3, seed=8, dtype=F64) for c in (0.0, 0.7)}
        infs = {c: net.infer(x) for c, net in nets.items()}
        net = nets[0.7]
        theta = net.settle(x)[:, :5]  # (B, N)
        plain_logits = build_model(plain(net.cfg), 4, 3, seed=8, dtype=F64)(x)[0]
        layer, p = net.layers[0], net.cfg.metabolism
        z = torch.exp(1j * net.cfg.input_scale * torch.tanh(x)) @ layer.mag.T.to(torch.complex128) + layer.bias_mag
        cap = min(net.cfg.max_rate, 2 / net.cfg.dt)
        e_min = p.e_max * (1 - (p.p_base + p.p_act * (cap + 0.7) ** 2 + p.p_syn * cap) / (2 * p.supply))
        a = e_min / (e_min + p.k_m) * layer.gain() * z.abs()  # (B, N)
    lam = float((a * 1.0 / (a + 0.7 + 1.0)).min())
    bound = math.pi * math.exp(-lam * net.cfg.settle_time)
    assert bound < 1e-4  # the settling is long enough for the claim to mean something
    lag = infs[0.7].psi - theta[:, torch.as_tensor(net.glia_domain)]  # (B, G): domain d is unit d
    assert float(torch.sin(lag).abs().max()) < bound and float(torch.cos(lag).min()) > 0  # the stable root
    w = float(net.readout.weight.detach().abs().sum(1).max())  # |d logits| <= sum_j |W_cj| |d theta|
    assert float((infs[0.7].logits - infs[0.0].logits).abs().max()) < w * bound
    assert float((infs[0.7].logits - plain_logits).abs().max()) < w * bound


def test_glia_shared_by_several_units_change_the_function():
    """Two units per glial cell (glia_ratio 0.5): the glial cell settles near its domain's mean phase and pulls both
    units towards it, a coupling inside the domain that the plain net lacks: the settled outputs move with c_gn."""
    met = {"supply": 5.0, "e_max": 10.0, "e_init": 10.0, "k_m": 0.1}
    x = inputs(4)
    with torch.no_grad():
        logits = {c: build_model(glial(glia_ratio=0.5, hidden=[6], c_gn=c, c_ng=1.0, settle_time=20.0, dt=0.2,
                                       metabolism=met), 4, 3, seed=8, dtype=F64).infer(x).logits for c in (0.0, 1.5)}
    assert float((logits[1.5] - logits[0.0]).abs().max()) > 1e-2


def test_a_small_glial_net_learns_digits_well_above_chance():
    data = load_dataset(DatasetConfig(name="digits", classes=[0, 1, 2]), 0)
    cfg = ModelConfig(kind="glial", hidden=[16], settle_time=3.0, dt=0.5, glia_ratio=1.0)
    row, res = fit(cfg, data, TrainConfig(epochs=4, patience=4, lr=1e-2), seed=0)
    assert row["accuracy"] > 0.8  # chance is 1/3
    assert row["information_bits"] > 0.8  # of log2(3) = 1.58
    assert row["metabolic_energy"] > 0 and row["joules_per_inference"] > 0


def test_metabolic_penalty_lowers_the_ledger_energy():
    data = load_dataset(DatasetConfig(name="digits", classes=[0, 1, 2]), 0)
    cfg = ModelConfig(kind="glial", hidden=[8], settle_time=3.0, dt=0.5)
    e = [fit(cfg, data, TrainConfig(epochs=3, patience=3), seed=0, lam=lam, energy="metabolic")[0]["metabolic_energy"]
         for lam in (0.0, 1.0)]
    assert e[1] < e[0]


# ---------------------------------------------------------------------------------------------- costs, config
def test_macs_count_the_glial_work_per_step():
    # no glia: OscillatorNet's count; with glia the surplus is per solver step, so it doubles with the settle time
    osc = build_model(plain(glial()), 4, 3, 0).macs()
    assert build_model(glial(glia_ratio=0.0), 4, 3, 0).macs() == osc
    surplus = {t: {k: build_model(glial(settle_time=t), 4, 3, 0).macs()[k] - build_model(
        plain(glial(settle_time=t)), 4, 3, 0).macs()[k] for k in osc} for t in (2.0, 4.0)}
    assert all(surplus[2.0][k] > 0 and surplus[4.0][k] == 2 * surplus[2.0][k] for k in osc)
    ratios = [build_model(glial(glia_ratio=r), 4, 3, 0).macs()["macs"] for r in (1.0, 2.0, 4.0)]
    assert ratios[0] < ratios[1] < ratios[2]  # more glia, more work


@pytest.mark.parametrize("data, match", [
    ({"kind": "oscillator", "c_gn": 0.3}, r"c_gn: a key of kind glial only \(this model is kind oscillator\)"),
    ({"kind": "mlp", "glia_ratio": 2.0}, r"glia_ratio: a key of kind glial only"),
    ({"kind": "glial", "glia_ratio": 7.0}, r"glia_ratio: Input should be less than or equal to 6"),
    ({"kind": "glial", "hidden": [8, 3], "glia_ratio": 0.15}, r"glia_ratio: 0.15 x 3 units rounds to no glial cell"),
    ({"kind": "glial", "glia": True}, r"glia: the per-unit gain of kind oscillator"),
    ({"kind": "glial", "adjoint": True}, r"adjoint: kind glial clamps its reserves"),
    ({"kind": "glial", "metabolism": {"schedule": [{"name": "q", "duration": 1.0}]}}, r"metabolism\.schedule"),
    ({"kind": "glial", "c_gn": 2.0}, r"c_gn: \(coupling cap 8 \+ 2 \|c_gn\|\) x dt = 3 > 2.785"),
    ({"kind": "glial", "c_ng": 6.0, "dt": 0.5}, r"c_ng: 2 \|c_ng\| x dt = 6 > 2.785"),
    ({"kind": "glial", "metabolism": {"supply": 50.0}}, r"metabolism\.supply: reserve relaxation rate"),
    ({"kind": "glial", "method": "explicit_adams"}, r"method: kind glial checks its steps for euler, midpoint, rk4"),
    ({"kind": "glial", "method": "rk5"}, r"method: unknown method 'rk5'"),
])
def test_bad_glial_configs_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data, "model.yaml", model=ModelConfig)


def test_a_copied_config_that_leaves_a_layer_without_glia_is_refused():
    # model_copy (as match_width uses) skips validation: the net itself refuses a layer with no glial cell
    cfg = glial(glia_ratio=0.25).model_copy(update={"hidden": [8, 1]})
    with pytest.raises(ConfigError, match=r"glia_ratio: 0.25 leaves a layer of \[8, 1\] without glia"):
        build_model(cfg, 4, 3, 0)


def test_build_model_builds_registered_kinds_only():
    # a strategy fits its own network (dgnn.search); asking build_model for one is an error, not a stand-in net
    with pytest.raises(ConfigError, match=r"kind strategy: no network of its own to build \(buildable kinds: mlp, "
                                          r"oscillator, glial\)"):
        build_model(ModelConfig(kind="strategy", strategy="nne"), 4, 3, 0)


def test_a_resolved_config_round_trips():
    # every default written out (as stored trials are): kind oscillator carries null glia keys, kind glial its values
    for cfg in (ModelConfig(kind="oscillator"), ModelConfig(kind="glial", glia_ratio=3.0)):
        assert ModelConfig.model_validate(cfg.model_dump()) == cfg
    assert ModelConfig(kind="glial").glia_ratio == 1.0 and ModelConfig(kind="oscillator").glia_ratio is None
