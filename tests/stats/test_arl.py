"""ARL: R spc and surveillance oracles, RA-CUSUM Markov chain against simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surveillance.stats.arl import (
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
