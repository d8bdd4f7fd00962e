"""Control limits: R cusum exact limits, per-chart calibration, the fitted surface."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from surveillance.stats import _cusum_kernels as kernels
from surveillance.stats.arl import false_alarm_probability
from surveillance.stats.thresholds import (
    ThresholdSurface,
    calibrate_threshold,
    case_mix_features,
    chart_thresholds,
    cusum_limit_exact,
    equivalent_spread,
    logit_normal_case_mix,
)


def test_exact_limits_match_r_cusum(oracle_dir):
    oracle = pd.read_csv(oracle_dir / "cusum_limit_exact_grid.csv")
    ours = [
        cusum_limit_exact(r.n_patients, r.failure_probability, r.odds_multiplier, r.alpha)
        for r in oracle.itertuples()
    ]
    np.testing.assert_allclose(ours, oracle["limit"], rtol=1e-6)


def test_exact_limit_is_the_reached_value_nearest_alpha_by_brute_force():
    # independent recomputation: every path, P(max >= L) for each reached L
    n, p0, alpha = 6, 0.2, 0.03
    w_fail, w_surv = np.log(2 / (1 + p0)), np.log(1 / (1 + p0))
    tops, probs = [], []
    for code in range(2**n):
        x = top = 0.0
        k = 0
        for t in range(n):
            fail = (code >> t) & 1
            k += fail
            x = max(0.0, x + (w_fail if fail else w_surv))
            top = max(top, x)
        tops.append(top)
        probs.append(p0**k * (1 - p0) ** (n - k))
    tops, probs = np.array(tops), np.array(probs)
    levels = np.unique(np.round(tops[tops > 0], 9))
    p_sig = np.array([probs[tops >= v - 1e-9].sum() for v in levels])
    expected = levels[np.argmin(np.abs(alpha - p_sig))]
    assert cusum_limit_exact(n, p0, 2.0, alpha) == pytest.approx(expected, abs=1e-8)


def test_simulation_calibration_hits_target_by_markov_check():
    rng = np.random.default_rng(11)
    p = rng.uniform(0.05, 0.25, 400)
    cal = calibrate_threshold(
        p, 400, target=0.02, method="simulation", sequence=True, n_sims=100_000, seed=5
    )
    assert cal.se == pytest.approx(np.sqrt(0.02 * 0.98 / 100_000))
    assert abs(cal.achieved - 0.02) < 1e-3  # by construction of the quantile
    exact = kernels.ra_sequence_signal_probability(p, np.log(2.0), cal.h, 1200)[-1]
    assert abs(exact - 0.02) < 4 * cal.se + 0.02 * 0.02


def test_markov_calibration_agrees_with_simulation():
    rng = np.random.default_rng(12)
    p = rng.uniform(0.05, 0.25, 300)
    mk = calibrate_threshold(p, 300, target=0.01, method="markov", sequence=True, m=800)
    assert mk.achieved == pytest.approx(0.01, rel=1e-3)
    sim = calibrate_threshold(
        p, 300, target=0.01, method="simulation", sequence=True, n_sims=100_000, seed=1
    )
    assert abs(mk.h - sim.h) < 0.1


def test_logit_normal_case_mix_has_the_requested_mean():
    pv, pw = logit_normal_case_mix(0.03, 1.5)
    assert np.sum(pv * pw) == pytest.approx(0.03, rel=1e-10)
    mean, sd = case_mix_features(np.array([0.1, 0.1, 0.1]))  # equal risks: no spread
    assert mean == pytest.approx(0.1) and sd == pytest.approx(0.0, abs=1e-12)


@pytest.fixture(scope="module")
def small_surface():
    return ThresholdSurface(
        target=0.01,
        volumes=np.array([20.0, 100.0, 500.0]),
        mean_risks=np.array([0.03, 0.1, 0.3]),
        spreads=np.array([0.0, 1.0]),
        h_grid=np.geomspace(0.5, 8.0, 14),
        delta=0.02,
    ).fit()


def test_surface_monotone_in_volume_and_hits_target_at_design_points(small_surface):
    table = small_surface.h_table_
    assert np.all(np.diff(table, axis=0) > 0)  # more patients -> higher limit
    h = small_surface.predict(500, 0.1, 1.0)[()]
    pv, pw = logit_normal_case_mix(0.1, 1.0, 10)
    pool = np.repeat(pv, np.round(pw * 2000).astype(int))
    out = np.empty(100_000)
    kernels.simulate_ra_running_max(pool, True, np.log(2.0), 500, out.shape[0], 9, out)
    achieved = np.mean(out >= h)
    se = np.sqrt(0.01 * 0.99 / out.shape[0])
    assert abs(achieved - 0.01) < 4 * se + 0.1 * 0.01


def test_surface_needs_fit_and_valid_inputs(small_surface):
    with pytest.raises(ValueError, match="fit"):
        ThresholdSurface().predict(100, 0.1)
    with pytest.raises(ValueError, match="mean_risk"):
        small_surface.predict(100, 1.5)


def test_chart_thresholds_small_charts_are_exact_and_large_use_the_surface(small_surface):
    rng = np.random.default_rng(21)
    sizes = np.array([12, 40, 300])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    p = rng.uniform(0.05, 0.3, offsets[-1])
    h = chart_thresholds(offsets, p, small_surface, exact_below=100)

    def grid(hh):  # the chain's grid for limit hh: step 0.005, 60 to 1000 nodes
        return min(1000, max(60, int(np.ceil(hh / 0.005))))

    for c in range(2):  # small charts: smallest h (to 1e-3) with P(signal) <= target
        seq = p[offsets[c] : offsets[c + 1]]
        at = false_alarm_probability(
            seq, h[c], sizes[c], method="markov", sequence=True, m=grid(h[c])
        )
        assert at.probability <= 0.01 + 1e-12
        lower = h[c] - 2e-3
        below = false_alarm_probability(
            seq, lower, sizes[c], method="markov", sequence=True, m=grid(lower)
        )
        assert below.probability > 0.01
    mean, spread = small_surface.chart_features(offsets, p)
    assert h[2] == pytest.approx(small_surface.predict(300, mean[2], spread[2])[()], rel=1e-12)


def test_equivalent_spread_round_trips_the_logit_normal_family():
    pv, pw = logit_normal_case_mix(0.05, 1.3, 10)
    dwl = float(np.sum(pw * pv * np.log1p(pv)) / np.sum(pw * pv))
    assert equivalent_spread(0.05, dwl, 2.0, 10) == pytest.approx(1.3, abs=1e-5)


def test_vectorised_chart_features_match_per_chart_features(small_surface):
    rng = np.random.default_rng(2)
    sizes = np.array([50, 300, 1000])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    p = special.expit(rng.normal(-3, 1, offsets[-1]) + rng.gamma(2, 0.5, offsets[-1]))
    mean, spread = small_surface.chart_features(offsets, p)
    for c in range(3):
        m1, s1 = case_mix_features(p[offsets[c] : offsets[c + 1]])
        assert mean[c] == pytest.approx(m1, rel=1e-12)
        assert spread[c] == pytest.approx(s1, abs=3e-3)
