"""ARL: R spc and surveillance oracles, RA-CUSUM Markov chain against simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from surveillance.stats.arl import (
    _gauss_legendre,
    arl_normal_cusum,
    arl_poisson_cusum,
    arl_ra_cusum,
    false_alarm_probability,
    simulate_normal_run_length,
    simulate_run_length,
)


def test_normal_cusum_arl_matches_spc_xcusum_arl(oracle_dir):
    oracle = pd.read_csv(oracle_dir / "spc_xcusum_arl_normal.csv")
    ours = [arl_normal_cusum(r.k, r.h, r.mu) for r in oracle.itertuples()]
    np.testing.assert_allclose(ours, oracle["ARL"], rtol=1e-6)


def test_poisson_cusum_arl_matches_surveillance_arlcusum(oracle_dir):
    oracle = pd.read_csv(oracle_dir / "surveillance_arlCusum_poisson.csv")
    ours = [arl_poisson_cusum(r.h, r.k, r.theta) for r in oracle.itertuples()]
    np.testing.assert_allclose(ours, oracle["ARL"], rtol=1e-6)


def test_normal_arl_agrees_with_simulation():
    exact = arl_normal_cusum(0.5, 3.0, 0.5)
    sim = simulate_normal_run_length(0.5, 3.0, 0.5, n_sims=40_000, seed=1)
    assert abs(sim.arl - exact) < 4 * sim.arl_se


def test_simulation_is_seeded_and_reproducible():
    p = np.array([0.02, 0.05, 0.1])
    a = simulate_run_length(p, 2.0, n_sims=500, max_n=2000, seed=7).run_lengths
    b = simulate_run_length(p, 2.0, n_sims=500, max_n=2000, seed=7).run_lengths
    c = simulate_run_length(p, 2.0, n_sims=500, max_n=2000, seed=8).run_lengths
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_ra_cusum_markov_arl_agrees_with_simulation():
    p_mix = np.array([0.02, 0.05, 0.1, 0.3])
    exact = arl_ra_cusum(p_mix, None, h=2.0, m=800)
    sim = simulate_run_length(p_mix, 2.0, n_sims=20_000, max_n=10**7, seed=3)
    assert sim.censored == 0
    # Markov discretisation error is O(1/m); allow it plus 4 Monte-Carlo s.e.
    assert abs(sim.arl - exact) < 4 * sim.arl_se + 0.01 * exact


def test_ra_cusum_out_of_control_arl_is_shorter():
    p_mix = np.array([0.05, 0.1])
    arl0 = arl_ra_cusum(p_mix, h=3.0)
    arl1 = arl_ra_cusum(p_mix, h=3.0, true_odds_ratio=2.0)
    assert arl1 < arl0 / 5


def test_false_alarm_probability_markov_agrees_with_simulation():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.2, 300)
    sim = false_alarm_probability(p, 3.5, 300, sequence=True, n_sims=100_000, seed=2)
    mk = false_alarm_probability(p, 3.5, 300, method="markov", sequence=True, m=800)
    assert 0.01 < sim.probability < 0.5
    assert abs(sim.probability - mk.probability) < 4 * sim.se + 0.01 * mk.probability
    pool = false_alarm_probability(p, 3.5, 300, method="markov", m=800)
    assert abs(pool.probability - mk.probability) < 0.05 * mk.probability


def test_arl_input_errors():
    with pytest.raises(ValueError, match="h > 0"):
        arl_normal_cusum(0.5, -1.0)
    with pytest.raises(ValueError, match="sequence=True"):
        false_alarm_probability([0.1, 0.2], 1.0, 3, sequence=True)
    with pytest.raises(ValueError, match="method"):
        false_alarm_probability([0.1], 1.0, 3, method="magic")


# --------------------------------------------------------------------------------------------
# The fast paths (cached Gauss-Legendre nodes, scipy.special instead of scipy.stats) against
# the plain construction with scipy.stats, and R values with head starts.


def _nystrom_with_scipy_stats(k, h, mu, hs, nodes):
    """The Nystrom system of spc::xcusum.arl written out with scipy.stats.norm (no caching)."""
    z, w = np.polynomial.legendre.leggauss(nodes)
    z = h / 2.0 * (z + 1.0)
    w = w * h / 2.0
    a = np.eye(nodes + 1)
    a[:nodes, :nodes] -= w[None, :] * stats.norm.pdf(z[None, :] + k - z[:, None] - mu)
    a[:nodes, nodes] = -stats.norm.cdf(k - z - mu)
    a[nodes, :nodes] = -w * stats.norm.pdf(z + k - mu)
    a[nodes, nodes] = 1.0 - stats.norm.cdf(k - mu)
    g = np.linalg.solve(a, np.ones(nodes + 1))
    return (
        1.0
        + stats.norm.cdf(k - hs - mu) * g[nodes]
        + np.sum(w * stats.norm.pdf(z + k - hs - mu) * g[:nodes])
    )


def test_normal_arl_equals_the_nystrom_system_built_with_scipy_stats():
    for k, h, mu, nodes in itertools.product(
        (0.25, 1.0), (1.0, 4.0, 8.0), (-1.0, 0.5, 3.0), (2, 30, 45)
    ):
        for hs in (0.0, h / 3, h):
            ours = arl_normal_cusum(k, h, mu, hs, nodes)
            assert ours == pytest.approx(_nystrom_with_scipy_stats(k, h, mu, hs, nodes), rel=1e-12)


def test_gauss_legendre_nodes_are_cached_read_only_and_unchanged_by_calls():
    z, w = _gauss_legendre(30)
    assert _gauss_legendre(30)[0] is z  # cached: one array per order
    assert not z.flags.writeable and not w.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        z[0] = 0.0
    arl_normal_cusum(0.5, 4.0, 0.0, 2.0)
    ref_z, ref_w = np.polynomial.legendre.leggauss(30)
    np.testing.assert_array_equal(z, ref_z)
    np.testing.assert_array_equal(w, ref_w)


# spc::xcusum.arl(k, h, mu, hs = hs, sided = "one", r = 30), printed with sprintf("%.17g"),
# R 4.2.2 Patched (2022-11-10 r83330), spc 0.6.7 (computed 2026-11-26).
SPC_HEAD_START = [
    (0.5, 4.0, 0.0, 2.0, 316.37943880424365),
    (0.5, 4.0, 1.0, 4.0, 1.878332252512261),
    (0.25, 6.0, 0.5, 1.5, 17.987549574342562),
    (1.0, 2.0, 0.0, 0.5, 256.37448972403132),
    (0.75, 5.0, 1.5, 5.0, 1.4509058119586344),
]


@pytest.mark.parametrize(("k", "h", "mu", "hs", "arl"), SPC_HEAD_START)
def test_normal_arl_with_head_start_matches_spc(k, h, mu, hs, arl):
    assert arl_normal_cusum(k, h, mu, hs) == pytest.approx(arl, rel=1e-11)


def _poisson_chain_with_scipy_stats(h, k, theta, digits):
    """The dense Brook-Evans matrix of surveillance::arlCusum built cell by cell with scipy.stats."""
    scale = 10**digits
    hh = int(round(round(h, digits) * scale))
    kk = int(round(round(k, digits) * scale))
    q = np.zeros((hh, hh))
    for i in range(hh):
        q[i, 0] = stats.poisson.cdf(np.floor((kk - i) / scale), theta)
        for j in range(1, hh):
            num = j + kk - i
            if num >= 0 and num % scale == 0:
                q[i, j] = stats.poisson.pmf(num // scale, theta)
    return np.linalg.solve(np.eye(hh) - q, np.ones(hh))[0]


def test_poisson_arl_equals_the_dense_chain_built_with_scipy_stats():
    cases = [(0.5, 0.0, 0.1, 1), (2.5, 1.0, 1.0, 1), (4.37, 1.25, 1.1, 2), (7.5, 3.0, 8.0, 1)]
    cases += [(10.0, 3.0, 2.4, 1), (6.0, 2.0, 1.5, 0), (3.0, 0.5, 0.7, 1)]
    for h, k, theta, digits in cases:
        ours = arl_poisson_cusum(h, k, theta, digits)
        assert ours == pytest.approx(
            _poisson_chain_with_scipy_stats(h, k, theta, digits), rel=1e-12
        )


# surveillance::arlCusum(h = 4.37, k = 1.25, theta = 1.1, distr = "poisson", digits = d)$ARL,
# sprintf("%.17g"); R 4.2.2 Patched (2022-11-10 r83330), surveillance 1.20.3 (2026-11-26).
@pytest.mark.parametrize(("digits", "arl"), [(0, 17.151224523271534), (2, 45.957745234407845)])
def test_poisson_arl_rounding_digits_match_surveillance(digits, arl):
    assert arl_poisson_cusum(4.37, 1.25, 1.1, digits) == pytest.approx(arl, rel=1e-12)


def test_poisson_limit_that_rounds_to_zero_is_an_error():
    with pytest.raises(ValueError, match="rounds to 0"):
        arl_poisson_cusum(0.04, 1.0, 1.0)
