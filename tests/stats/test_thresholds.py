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
    h = chart_thresholds(offsets, p, small_surface, exact_below=100, refine_below=100)

    def grid(hh):  # the chain's grid for limit hh: step 0.005, 60 to 3000 nodes
        return min(3000, max(60, int(np.ceil(hh / 0.005))))

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


def test_shift_chain_is_the_brook_evans_sequence_chain():
    # the grid-shift implementation against the node-by-node chain (independent code)
    rng = np.random.default_rng(31)
    p = special.expit(rng.normal(-3.0, 1.2, 400))
    work = np.empty((2, 800))
    for h, m in ((0.9, 60), (3.7, 500), (6.2, 777)):
        for log_r in (np.log(1.5), np.log(2.0), np.log(3.0)):
            ref = kernels.ra_sequence_signal_probability(p, log_r, h, m)[-1]
            ours = kernels.grid_signal_probability(p, 0, 400, log_r, h, m, work)
            assert ours == pytest.approx(ref, rel=1e-9, abs=1e-15)


def _skewed_charts(sizes, seed):
    """Charts with a long tail of high-risk patients (gamma logit risk), unlike the surface's
    logit-normal family."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    p = special.expit(-3.5 + 1.5 * rng.gamma(0.5, 1.0, offsets[-1]) / np.sqrt(0.5))
    return offsets, np.clip(p, 1e-6, 0.99)


def test_refined_limits_hit_the_target_by_exact_chain_and_simulation(small_surface):
    offsets, p = _skewed_charts(np.array([150, 420, 900]), seed=5)
    surface_only = chart_thresholds(offsets, p, small_surface, refine_below=100)
    h = chart_thresholds(offsets, p, small_surface)
    log_r = np.log(2.0)
    refined = 0
    for c in range(3):
        seq = np.ascontiguousarray(p[offsets[c] : offsets[c + 1]])
        exact = kernels.ra_sequence_signal_probability(seq, log_r, h[c], 3000)[-1]
        # refined to |log(P / target)| <= 0.1 on a step-0.02 grid (bias a few % conservative)
        assert abs(np.log(exact / 0.01)) < 0.12
        before = kernels.ra_sequence_signal_probability(seq, log_r, surface_only[c], 3000)[-1]
        if abs(np.log(before / 0.01)) > 0.15:  # the surface was off: the chain moved it closer
            assert abs(np.log(before / 0.01)) > abs(np.log(exact / 0.01))
            refined += 1
        # direct simulation of the chart's own sequence: 200,000 runs, s.e. 2.2% of target
        top = np.empty(200_000)
        kernels.simulate_ra_running_max(seq, False, log_r, seq.shape[0], top.shape[0], 40 + c, top)
        mc = np.mean(top >= h[c])
        se = np.sqrt(0.01 * 0.99 / top.shape[0])
        assert abs(mc - 0.01) < 4 * se + 0.12 * 0.01
    assert refined >= 1  # the skewed mixes take the surface off target


def test_refine_finds_the_step_below_target_on_a_step_like_chart():
    # 150 patients at 0.2% risk: P(signal) jumps with each extra death needed
    p = np.full(150, 0.002)
    offsets = np.array([0, 150], dtype=np.int64)
    charts = np.array([0], dtype=np.int64)
    out, evals = np.empty(1), np.empty(1, dtype=np.int64)
    kernels.refine_limits(
        offsets,
        p,
        charts,
        np.array([2.5]),
        np.log(2.0),
        0.001,
        0.005,
        60,
        3000,
        0.05,
        1e-3,
        60,
        out,
        evals,
    )
    ref = np.empty(1)
    kernels.smallest_limits(
        offsets, p, charts, np.log(2.0), 0.001, 0.005, 60, 3000, 20.0, 1e-4, ref
    )
    work = np.empty((2, 3000))
    prob = kernels.grid_signal_probability(
        p, 0, 150, np.log(2.0), out[0], int(np.ceil(out[0] / 0.005)), work
    )
    assert prob <= 0.001 * 1.05
    at_step = kernels.grid_signal_probability(
        p, 0, 150, np.log(2.0), ref[0], int(np.ceil(ref[0] / 0.005)), work
    )
    # independent: with 0.2% risk a false alarm within 150 needs k deaths; the step value is
    # about the binomial tail P(N >= k) for the k the limit asks for
    assert prob == pytest.approx(at_step, rel=0.02)


def test_chart_thresholds_are_deterministic_and_per_chart(small_surface):
    import numba

    offsets, p = _skewed_charts(np.array([30, 150, 700, 60, 400]), seed=8)
    first = chart_thresholds(offsets, p, small_surface)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one_thread = chart_thresholds(offsets, p, small_surface)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(first, one_thread)
    # a chart's limit depends on its own patients only
    alone = chart_thresholds(offsets[2:4] - offsets[2], p[offsets[2] : offsets[3]], small_surface)
    assert alone[0] == first[2]


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
