"""Energy-gated structural plasticity: gating, ledger with structural spending, function preservation, spare
capacity, events, resume."""
import numpy as np
import pytest
import torch

import dgnn
from problems import config_with, whole_and_resumed
from dgnn.simulation import Simulation
from dgnn.structure import Proposal
from dgnn.traces import read_trace
from test_metabolism import ledger_error

BASE = {
    "replicas": 2, "seed": 3, "dtype": "float64",
    "neurons": {"count": 16, "frequency": {"distribution": "normal", "center": 1.0, "width": 0.3}},
    "glia": {"ratio": 0.25, "coupling_to_neurons": 0.2, "coupling_from_neurons": 0.3},
    "topology": {"kind": "erdos_renyi", "p": 0.25},
    "coupling": {"strength": 1.5},
    "metabolism": {"enabled": True, "p_base": 0.02, "p_act": 0.2, "p_syn": 0.01, "supply": 1.0, "e_max": 5.0,
                   "e_init": 3.0, "k_m": 0.5},
    "structure": {"enabled": True, "interval": 1.0, "window": 2.0, "capacity": 24, "floor": 0.5,
                  "synaptogenesis": {"threshold": 0.9, "cost": 0.05}, "pruning": {"threshold": 0.3, "refund": 0.01},
                  "neurogenesis": {"threshold": 0.4, "cost": 1.0}},
    "solver": {"dt": 0.02, "duration": 12.0}, "record": {"every": 0.5},
}


def make(**over):
    return config_with(BASE, **over)


def events(path):
    return read_trace(path).static["structure/events"]


@pytest.mark.parametrize("method, noise", [("rk4", 0.0), ("euler_maruyama", 0.1)])
def test_ledger_balances_with_structural_spending(run_dir, method, noise):
    res = dgnn.run(make(noise={"neurons": noise}, solver={"method": method, "dt": 0.02, "duration": 12.0}),
                   run_dir, progress=False)
    assert res.status == "complete"
    err, L, e = ledger_error(res.path)
    assert err < 1e-12
    ev = events(res.path)
    acc = ev[ev["accepted"]]
    assert len(acc) > 0
    # every accepted cost and refund is in the ledger, to rounding
    assert abs(L["structural"][-1].sum() - acc["cost"].sum()) < 1e-9
    assert abs(L["refunded"][-1].sum() - acc["refund"].sum()) < 1e-9


def test_nothing_is_accepted_without_energy(run_dir):
    # no supply and every cost above the reserve: every proposal is rejected and the sizes never change
    costly = {"cost": 10.0}
    cfg = make(metabolism={"supply": 0.0, "e_init": 1.0},
               structure={"synaptogenesis": {"threshold": 0.5, **costly}, "pruning": {"threshold": 0.9, **costly},
                          "neurogenesis": {"threshold": 0.05, **costly}, "neuron_removal": {"redundancy": 0.5, **costly}})
    res = dgnn.run(cfg, run_dir, progress=False)
    ev = events(res.path)
    assert len(ev) > 0 and not ev["accepted"].any()
    assert all(b"reserve" in r for r in ev["reason"])
    size = read_trace(res.path).metrics["structure_size"]
    assert (size == size[0]).all()


def test_synapse_count_is_kept_exactly(run_dir):
    cfg = make(metabolism={"supply": 5.0, "e_init": 5.0},
               structure={"synaptogenesis": {"threshold": 0.5, "cost": 0.05}, "pruning": {"threshold": 0.99},
                          "neurogenesis": {"threshold": 0.05, "cost": 0.5}, "neuron_removal": {"redundancy": 0.99}})
    sim = Simulation(cfg)
    for _ in range(cfg.n_records):
        sim.advance()
        assert torch.equal(sim.controller.count_synapses(), (sim.controller.w != 0).sum((1, 2)))
        inactive = sim.mask == 0  # removed or never used slots have no synapse in or out
        assert not (sim.controller.w.abs().sum(2)[inactive] > 0).any() and not (sim.controller.w.abs().sum(1)[inactive] > 0).any()


def test_ample_supply_lets_every_operator_fire(run_dir):
    cfg = make(metabolism={"supply": 5.0, "e_init": 5.0},
               structure={"synaptogenesis": {"threshold": 0.5, "cost": 0.05}, "pruning": {"threshold": 0.99},
                          "neurogenesis": {"threshold": 0.05, "cost": 0.5}, "neuron_removal": {"redundancy": 0.99}})
    ev = events(dgnn.run(cfg, run_dir, progress=False).path)
    fired = {op.decode() for op in ev["operator"][ev["accepted"]]}
    assert fired == {"synaptogenesis", "pruning", "neurogenesis", "neuron_removal"}
    assert set(ev.dtype.names) >= {"time", "replica", "operator", "target", "cost", "reserve_before",
                                   "reserve_after", "accepted", "reason"}
    acc = ev[ev["accepted"] & (ev["cost"] > 0)]
    assert np.all(acc["reserve_after"] <= acc["reserve_before"] - acc["cost"] + acc["refund"] + 1e-12)


def test_neuron_creation_is_function_preserving():
    # cost 0: at insertion every other neuron's drift is unchanged (the newcomer sends nothing yet)
    cfg = make(structure={"neurogenesis": {"threshold": 0.4, "cost": 0.0}})
    sim = Simulation(cfg)
    for _ in range(4):
        sim.advance()
    n = sim.n
    before = sim.field(sim.t, sim.y)[:, :n].clone()
    active_before = sim.mask.clone()
    y, ev = sim.controller.apply(sim.t, sim.y.clone(), [Proposal("neurogenesis", 0, -1, -1, 1, 0.0, 0.0, "test")])
    assert ev["accepted"].all()
    new = int(ev["target"][0])
    assert active_before[0, new] == 0 and sim.mask[0, new] == 1
    after = sim.field(sim.t, y)[:, :n]
    old = active_before > 0
    assert torch.equal(after[old], before[old])
    assert sim.controller.w[0, :, new].abs().sum() == 0 and sim.controller.w[0, new].abs().sum() > 0
    assert int(sim.field.neuron_dom_index[new]) == 1  # a slot of the proposing domain


def test_spare_capacity_behaves_like_exact_size(tmp_path):
    off = {"synaptogenesis": {"enabled": False, "threshold": 0.9}, "pruning": {"enabled": False, "threshold": 0.3},
           "neurogenesis": {"enabled": False}, "neuron_removal": {"enabled": False}}
    spare = make(structure={**off, "capacity": 40})
    exact = make(structure={**off, "capacity": 16})
    plain = make(structure={"enabled": False})
    a = read_trace(dgnn.run(spare, tmp_path / "a", progress=False).path)
    b = read_trace(dgnn.run(exact, tmp_path / "b", progress=False).path)
    c = read_trace(dgnn.run(plain, tmp_path / "c", progress=False).path)
    assert np.abs(a.neuron_phase[:, :, :16] - b.neuron_phase).max() < 1e-12
    assert np.abs(b.neuron_phase - c.neuron_phase).max() < 1e-10  # batched matmul vs shared dense backend
    assert np.abs(a.metrics["order_parameter"] - c.metrics["order_parameter"]).max() < 1e-10
    assert (a.neuron_phase[:, :, 16:] == 0).all()  # spare slots stay frozen


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_resume_with_structure_is_exact(tmp_path, noise):
    cfg = make(noise={"neurons": noise}, solver={"method": "euler_maruyama", "dt": 0.02, "duration": 12.0})
    whole, done = whole_and_resumed(cfg, tmp_path, stop_after=9)
    assert np.array_equal(done.neuron_phase, whole.neuron_phase)
    assert np.array_equal(done.metrics["structure_size"], whole.metrics["structure_size"])
    assert np.array_equal(done.static["structure/events"], whole.static["structure/events"])


def test_structure_config_errors():
    with pytest.raises(dgnn.ConfigError, match=r"structure\.enabled: needs metabolism"):
        make(metabolism={"enabled": False})
    with pytest.raises(dgnn.ConfigError, match=r"structure\.capacity: must be >= neurons\.count"):
        make(structure={"capacity": 4})
    with pytest.raises(dgnn.ConfigError, match=r"structure\.interval: must be a whole multiple"):
        make(structure={"interval": 0.7})


def test_free_operators_run_on_empty_reserves(run_dir):
    # pruning that costs nothing is not gated: it runs even when the reserve sits below the floor
    cfg = make(metabolism={"supply": 0.0, "e_init": 0.0},
               structure={"floor": 0.5, "pruning": {"threshold": 0.999, "cost": 0.0, "refund": 0.0},
                          "synaptogenesis": {"threshold": 0.5, "cost": 0.1},
                          "neuron_removal": {"refund": 0.0}})  # refunds would refill the reserve
    ev = events(dgnn.run(cfg, run_dir, progress=False).path)
    prune, grow = ev[ev["operator"] == b"pruning"], ev[ev["operator"] == b"synaptogenesis"]
    assert len(prune) and prune["accepted"].all()
    assert len(grow) and not grow["accepted"].any()


def test_modular_graph_with_structure_records_module_synchrony(run_dir):
    cfg = make(topology={"kind": "modular", "modules": 2, "p_in": 0.5, "p_out": 0.05},
               metabolism={"supply": 5.0, "e_init": 5.0},
               structure={"neurogenesis": {"threshold": 0.05, "cost": 0.5}})
    tr = read_trace(dgnn.run(cfg, run_dir, progress=False).path)
    mod = tr.metrics["module_order_parameter"]  # (T, B, 2) over active slots only
    assert mod.shape[2] == 2 and np.all((mod >= 0) & (mod <= 1 + 1e-6))
    ev = tr.static["structure/events"]
    assert (ev["accepted"] & (ev["operator"] == b"neurogenesis")).any()  # neurons were created into modules
    r_all = tr.metrics["order_parameter"]
    assert np.all((r_all >= 0) & (r_all <= 1 + 1e-6))


GLIA_ONLY = {"synaptogenesis": {"enabled": False, "threshold": 0.9}, "pruning": {"enabled": False, "threshold": 0.3},
             "neurogenesis": {"enabled": False}, "neuron_removal": {"enabled": False}, "floor": 0.0, "glia_capacity": 12}


def test_starved_domains_recruit_glia_and_full_ones_release_them(tmp_path):
    grow = make(metabolism={"supply": 0.05, "e_init": 0.5},
                structure={**GLIA_ONLY, "glia_creation": {"enabled": True, "threshold": 0.3, "cost": 0.0}})
    tr = read_trace(dgnn.run(grow, tmp_path / "g", progress=False).path)
    glia = tr.metrics["structure_size"][:, :, 2]
    assert glia[0].tolist() == [4, 4] and (glia[-1] > glia[0]).all()  # starved domains gained glia
    err, L, _ = ledger_error(tmp_path / "g" / "trace.h5")
    assert err < 1e-12
    supplied = np.diff(L["supplied"].sum(-1), axis=0)  # per record: more glia, more supply at equal reserve
    assert supplied[-5:].mean() > supplied[:5].mean()

    shrink = make(metabolism={"supply": 5.0, "e_init": 5.0},
                  structure={**GLIA_ONLY, "glia_capacity": 40,
                             "glia_removal": {"enabled": True, "threshold": 0.5, "refund": 0.1, "max_per_interval": 8}},
                  glia={"ratio": 2.0})  # 32 glia in 16 domains: two per domain
    tr = read_trace(dgnn.run(shrink, tmp_path / "s", progress=False).path)
    glia = tr.metrics["structure_size"][:, :, 2]
    assert glia[0].tolist() == [32, 32] and glia[-1].tolist() == [16, 16]  # full domains keep one glial cell each
    ev = tr.static["structure/events"]
    assert (ev[ev["operator"] == b"glia_removal"]["refund"] > 0).any()


def test_resume_with_glia_operators_is_exact(tmp_path):
    cfg = make(metabolism={"supply": 0.05, "e_init": 0.5}, noise={"neurons": 0.1, "glia": 0.1},
               solver={"method": "euler_maruyama", "dt": 0.02, "duration": 12.0},
               structure={"glia_creation": {"enabled": True, "threshold": 0.3, "cost": 0.0}, "floor": 0.0})
    whole, done = whole_and_resumed(cfg, tmp_path, stop_after=11)
    assert np.array_equal(done.glia_phase, whole.glia_phase)
    assert np.array_equal(done.metrics["structure_size"], whole.metrics["structure_size"])


@pytest.mark.parametrize("supply, expect_pressure", [(0.02, True), (5.0, False)])
def test_energy_pressure_pruning_fires_only_in_starved_domains(run_dir, supply, expect_pressure):
    cfg = make(metabolism={"supply": supply, "e_init": 0.5 if expect_pressure else 5.0},
               structure={"pruning": {"threshold": 0.0, "reserve_below": 0.3}, "floor": 0.0,
                          "synaptogenesis": {"enabled": False, "threshold": 0.9}, "neurogenesis": {"enabled": False},
                          "neuron_removal": {"enabled": False}})
    ev = events(dgnn.run(cfg, run_dir, progress=False).path)
    pressure = ev[[r.startswith(b"energy pressure") for r in ev["reason"]]]
    assert (len(pressure) > 0) == expect_pressure
    assert pressure["accepted"].all()


def test_incremental_masks_equal_a_fresh_rebuild(run_dir):
    """The candidate masks and degrees kept up to date by each edit equal those rebuilt from W and the masks."""
    cfg = make(metabolism={"supply": 5.0, "e_init": 5.0},
               structure={"synaptogenesis": {"threshold": 0.5, "cost": 0.05}, "pruning": {"threshold": 0.99},
                          "neurogenesis": {"threshold": 0.05, "cost": 0.5}, "neuron_removal": {"redundancy": 0.99}})
    sim = Simulation(cfg)
    accepted = 0
    for _ in range(cfg.n_records):
        sim.advance()
        ev = sim.take_events()
        accepted += int(ev["accepted"].sum()) if ev is not None and len(ev) else 0
        ctl = sim.controller
        kept = {k: v.clone() for k, v in ctl._masks().items()}
        ctl.invalidate()
        fresh = ctl._masks()
        for key, value in kept.items():
            assert torch.equal(value, fresh[key]), key  # penalties hold infinities: equal, not close
    assert accepted > 10  # the comparison ran over real edits


@pytest.mark.parametrize("path", ["gather", "csr", "batched"])
def test_plastic_coupling_equals_the_dense_sum_after_edits(path):
    """W0 @ x plus the sparse delta (each of its three paths) equals sum_j K_ij sum_m A_m sin(m(th_j - th_i - a))
    on the active slots, after synapse edits, removals and re-use of a removed initial slot."""
    from dgnn.structure import PlasticCoupling

    g = torch.Generator().manual_seed(5)
    b, c, n, scale, lag = 3, 12, 9, 0.7, 0.3
    harmonics = [(1, 1.0), (2, -0.4)]
    w = torch.zeros(b, c, c, dtype=torch.float64)
    w[:, :n, :n] = (torch.rand(n, n, generator=g, dtype=torch.float64) < 0.4).double()
    w[:, torch.arange(c), torch.arange(c)] = 0.0
    active = torch.zeros(b, c, dtype=torch.float64)
    active[:, :n] = 1.0
    pc = PlasticCoupling(w, scale, harmonics, lag, n_base=n)
    pc.GATHER_MAX = 10**9 if path == "gather" else 0
    pc.use_csr = path == "csr"
    pc.DELTA_FRACTION = 0.0 if path == "batched" else 1.0
    flat = lambda bb, i, j: torch.tensor([(bb * c + i) * c + j])  # noqa: E731
    for bb, i, j, v in [(0, 1, 2, 0.5), (1, 10, 3, 1.0), (2, 4, 4 + 1, 0.0), (0, 0, 11, 2.0)]:
        w[bb, i, j] = v
        pc.touch(flat(bb, i, j))
    active[:, 9:] = 1.0  # spare slots switched on in every replica
    for bb, i in [(1, 2), (2, 7)]:  # removals: rows and columns zeroed
        w[bb, i, :] = 0.0
        w[bb, :, i] = 0.0
        active[bb, i] = 0.0
        pc.touch(torch.cat([(bb * c + i) * c + torch.arange(c), (bb * c + torch.arange(c)) * c + i]))
    w[1, 2, :n] = 1.0  # slot 2 of replica 1 re-used: listens to everyone, sends nothing
    w[1, 2, 2] = 0.0
    active[1, 2] = 1.0
    pc.touch((1 * c + 2) * c + torch.arange(c))
    pc.refresh(full=False, active=active)
    assert {"gather": pc.delta, "csr": pc.csr, "batched": pc.batched_t}[path] is not None  # the path under test
    theta = torch.rand(b, c, generator=g, dtype=torch.float64) * 6.0
    from dgnn.trig import Trig

    got = pc(Trig(theta))
    diff = theta[:, None, :] - theta[:, :, None] - lag  # (B, i, j): th_j - th_i - a
    want = scale * sum(a * (w * torch.sin(m * diff)).sum(2) for m, a in harmonics)
    live = active > 0
    assert torch.allclose(got[live], want[live], atol=1e-12)
    assert torch.allclose(pc.abs_row_sums(), w.abs().sum(2), atol=1e-12)
    incremental = pc(Trig(theta))
    pc.refresh(full=True, active=active)
    assert torch.allclose(pc(Trig(theta))[live], incremental[live], atol=1e-12)


def test_sampled_candidates_propose_valid_pairs_with_their_true_plv(tmp_path):
    """structure.candidates = M: each pair proposal is a real pair of its kind (synaptogenesis: unconnected,
    pruning: connected) whose PLV over the window is the one reported; runs with sampling resume exactly."""
    cfg = make(structure={**BASE["structure"], "candidates": 12, "pruning": {"threshold": 0.95, "refund": 0.01}})
    sim = Simulation(cfg)
    ctl = sim.controller
    while not ctl.due(sim.record + 1):
        sim.advance()
    sim.advance()
    props = [p for p in ctl.propose(sim.t) if p.op in ("synaptogenesis", "pruning")]
    assert {p.op for p in props} == {"synaptogenesis", "pruning"}
    theta = torch.stack(ctl.buffer)  # (T, B, C)
    for p in props:
        plv = torch.exp(1j * (theta[:, p.replica, p.target] - theta[:, p.replica, p.source])).mean().abs()
        assert abs(float(plv) - float(p.reason.split()[-1])) < 1e-3
        assert bool(ctl.w[p.replica, p.target, p.source] != 0) == (p.op == "pruning")
        assert p.target != p.source and ctl.active[p.replica, p.target] and ctl.active[p.replica, p.source]
    whole, done = whole_and_resumed(cfg, tmp_path, stop_after=9)
    assert np.array_equal(done.static["structure/events"], whole.static["structure/events"])
    assert np.array_equal(done.neuron_phase, whole.neuron_phase)
