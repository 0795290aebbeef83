"""All coupling backends give the drift of a direct O(N^2) evaluation of MODEL.md's formula."""
import math

import numpy as np
import pytest
import torch

from dgnn.config import config_from_dict
from dgnn.coupling import Matrix, MeanField, make_backend
from dgnn.trig import Trig
from dgnn.errors import ConfigError
from dgnn.model import build_field
from dgnn.potentials import HKB
from dgnn.topology import Graph, build_graph

TOL = {torch.float64: 1e-11, torch.float32: 2e-5}


def direct(theta, k_matrix, a, b, lag):
    """sum_j K_ij f(theta_i - theta_j + alpha_ij), f = -dV/dphi for V = -a cos - b cos 2."""
    phi = theta[:, :, None] - theta[:, None, :] + lag  # (B, N, N)
    f = -a * np.sin(phi) - 2 * b * np.sin(2 * phi)
    return (k_matrix[None] * f).sum(-1)


def _random_graph(n, rng, lags: bool):
    adj = rng.random((n, n)) < 0.15
    np.fill_diagonal(adj, False)
    tgt, src = np.nonzero(adj)
    w = rng.uniform(0.2, 2.0, tgt.size)  # weighted and asymmetric
    lag = rng.uniform(-1, 1, tgt.size) if lags else None
    return Graph(n, "edgelist", tgt, src, w, lag, None, tgt.size / n)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("b, lag", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.4), (0.25, -0.7)])
def test_mean_field_dense_sparse_agree_on_all_to_all(dtype, b, lag):
    n, bsz, k, a = 50, 3, 1.7, 0.9
    rng = np.random.default_rng(1)
    theta = rng.uniform(-np.pi, np.pi, (bsz, n))
    kmat = np.full((n, n), k / n)
    np.fill_diagonal(kmat, 0.0)
    ref = direct(theta, kmat, a, b, lag)
    graph = build_graph(config_from_dict({}).topology, n, 0)
    harm = HKB(a, b).harmonics
    trig = Trig(torch.tensor(theta, dtype=dtype))
    backends = [MeanField(n, k, harm, lag)]
    backends += [Matrix(graph, k, harm, lag, sparse, "cpu", dtype) for sparse in (False, True)]
    for be in backends:
        got = be(trig).double().numpy()
        assert np.abs(got - ref).max() < TOL[dtype] * max(1.0, np.abs(ref).max()), be.name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lags", [False, True])
@pytest.mark.parametrize("global_lag", [0.0, 0.3])
def test_dense_and_sparse_agree_on_weighted_directed_graphs(dtype, lags, global_lag):
    n, bsz, k, a, b = 40, 2, 2.0, 1.0, 0.4
    rng = np.random.default_rng(2)
    g = _random_graph(n, rng, lags)
    kmat = np.zeros((n, n))
    lagm = np.full((n, n), global_lag)
    kmat[g.target, g.source] = k * g.weight / g.normaliser
    if lags:
        lagm[g.target, g.source] += g.lag
    theta = rng.uniform(-np.pi, np.pi, (bsz, n))
    ref = direct(theta, kmat, a, b, lagm)
    trig = Trig(torch.tensor(theta, dtype=dtype))
    for sparse in (False, True):
        got = Matrix(g, k, HKB(a, b).harmonics, global_lag, sparse, "cpu", dtype)(trig).double().numpy()
        assert np.abs(got - ref).max() < TOL[dtype] * max(1.0, np.abs(ref).max())


def test_auto_backend_chooses_by_structure():
    mk = lambda topo, n: make_backend(build_graph(config_from_dict({"neurons": {"count": n}, "topology": topo}).topology, n, 0),  # noqa: E731
                                      1.0, ((1, 1.0),), 0.0, "auto", "cpu", torch.float64)
    assert mk({"kind": "all_to_all"}, 5000).name == "mean_field"
    assert mk({"kind": "erdos_renyi", "p": 0.5}, 200).name == "dense"
    assert mk({"kind": "erdos_renyi", "p": 0.002}, 5000).name == "sparse"


def test_mean_field_refused_on_other_graphs():
    g = build_graph(config_from_dict({"topology": {"kind": "erdos_renyi", "p": 0.1}}).topology, 100, 0)
    with pytest.raises(ConfigError, match="coupling.backend: mean_field needs"):
        make_backend(g, 1.0, ((1, 1.0),), 0.0, "mean_field", "cpu", torch.float64)


@pytest.mark.parametrize("ratio", [0.25, 1.0, 2.0])
def test_full_field_matches_model_md_with_glia(ratio):
    """theta' = omega + sum K f + c_gn <sin(psi - theta)>_domain + u;  psi' = nu + k_gg/G sum sin + c_ng <sin(theta - psi)>."""
    n = 12
    cfg = config_from_dict({
        "dtype": "float64", "replicas": 2,
        "neurons": {"count": n, "frequency": {"distribution": "normal", "center": 1.0, "width": 0.3}},
        "glia": {"ratio": ratio, "coupling_to_neurons": 0.7, "coupling_from_neurons": 0.4, "coupling": 0.9,
                 "frequency": {"distribution": "uniform", "center": 0.2, "width": 0.1}},
        "topology": {"kind": "watts_strogatz", "k": 4, "p": 0.2},
        "coupling": {"strength": 1.3, "b": 0.2, "phase_lag": 0.1},
        "drive": {"kind": "sinusoid", "amplitude": 0.5, "frequency": 2.0, "targets": [0, 3]},
    })
    field = build_field([cfg], "cpu", torch.float64, [np.random.default_rng(0)])
    g = field.n_glia
    rng = np.random.default_rng(9)
    y = rng.uniform(-np.pi, np.pi, (2, n + g))
    t = 0.37
    got = field(t, torch.tensor(y)).numpy()
    theta, psi = y[:, :n], y[:, n:]
    gr = field.graph
    kmat = np.zeros((n, n))
    kmat[gr.target, gr.source] = 1.3 * gr.weight / gr.normaliser
    ref_n = field.omega.numpy() + direct(theta, kmat, 1.0, 0.2, 0.1)
    dn, dg = field.neuron_domain, field.glia_domain
    for i in range(n):
        mates = np.flatnonzero(dg == dn[i])
        ref_n[:, i] += 0.7 * np.sin(psi[:, mates] - theta[:, i:i + 1]).mean(1)
    ref_n[:, [0, 3]] += 0.5 * math.sin(2.0 * t)
    ref_g = field.nu.numpy() + 0.9 / g * np.sin(psi[:, None, :] - psi[:, :, None]).sum(-1)
    for h in range(g):
        mates = np.flatnonzero(dn == dg[h])
        if mates.size:
            ref_g[:, h] += 0.4 * np.sin(theta[:, mates] - psi[:, h:h + 1]).mean(1)
    assert np.abs(got[:, :n] - ref_n).max() < 1e-12
    assert np.abs(got[:, n:] - ref_g).max() < 1e-12
    assert g == round(ratio * n)
    assert set(dn.tolist()) == set(range(min(n, g)))  # every neuron in exactly one domain, none empty


def test_modular_domains_follow_modules():
    cfg = config_from_dict({"neurons": {"count": 40}, "glia": {"ratio": 0.1, "coupling_to_neurons": 1.0},
                            "topology": {"kind": "modular", "modules": 4, "p_in": 0.5, "p_out": 0.01}})
    field = build_field([cfg], "cpu", torch.float64, [np.random.default_rng(0)])
    assert np.array_equal(field.neuron_domain, field.graph.modules)
