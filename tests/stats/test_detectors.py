"""Alert detectors: kernels against plain-Python recomputations, calibration on simulation,
the ``detector`` setting."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import optimize, special

from surveillance.stats import detectors as d
from surveillance.stats.cusum import grouped_ra_cusum
from surveillance.stats.thresholds import calibrate_threshold


def _charts(sizes, seed=0, mu=-2.5, sd=1.0):
    rng = np.random.default_rng(seed)
    offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    p = special.expit(rng.normal(mu, sd, offsets[-1]))
    y = (rng.random(offsets[-1]) < p).astype(np.int8)
    return offsets, p, y


def _weight(p, y, r):
    return y * math.log(r) - math.log(1.0 - p + r * p)


# --------------------------------------------------------------------------------------------
# Several CUSUMs side by side


def _plain_multi(p, y, h, ors, restart):
    """One chart, written out: K CUSUMs, signal when any reaches its limit, report the one
    furthest past it, restart all at restart * h_k."""
    x = [0.0] * len(ors)
    out = []
    for pt, yt in zip(p, y, strict=True):
        x = [max(0.0, xk + _weight(pt, yt, r)) for xk, r in zip(x, ors, strict=True)]
        ratios = [xk / hk for xk, hk in zip(x, h, strict=True)]
        best = max(range(len(ors)), key=lambda k: (ratios[k], -k))
        if ratios[best] >= 1.0:
            out.append((True, x[best], h[best], best))
            x = [restart * hk for hk in h]
        else:
            out.append((False, 0.0, 0.0, -1))
    return out


@pytest.mark.parametrize("restart", ["half", "zero"])
def test_multi_cusum_matches_plain_python(restart):
    offsets, p, y = _charts([40, 1, 120, 75], seed=3, mu=-1.5)
    ors = (1.5, 2.0, 3.0)
    h = np.array([[1.2, 1.5, 1.8], [2.0, 2.0, 2.0], [2.5, 1.9, 2.2], [0.9, 1.4, 1.1]])
    run = d.multi_ra_cusum(offsets, p, y, h, ors, restart)
    frac = 0.5 if restart == "half" else 0.0
    expected = []
    for c in range(4):
        a, b = offsets[c], offsets[c + 1]
        expected += _plain_multi(p[a:b], y[a:b], h[c], ors, frac)
    sig, val, thr, comp = map(np.array, zip(*expected, strict=True))
    assert run.signal.sum() >= 5  # the charts do signal, so restarts are exercised
    np.testing.assert_array_equal(run.signal, sig)
    np.testing.assert_allclose(run.value, val, rtol=1e-12)
    np.testing.assert_allclose(run.threshold, thr)
    np.testing.assert_array_equal(run.component, comp)
    assert run.components == ("cusum_or1.5", "cusum_or2", "cusum_or3")


def test_one_component_is_the_ra_cusum():
    offsets, p, y = _charts([300, 200], seed=5, mu=-1.8)
    h = np.array([2.0, 2.6])
    run = d.multi_ra_cusum(offsets, p, y, h, [2.0], "half")
    ref = grouped_ra_cusum(offsets, p, y, h, 2.0, "half")
    np.testing.assert_array_equal(run.signal, ref.signal)
    h_row = np.repeat(h, np.diff(offsets))
    np.testing.assert_allclose(run.statistic * h_row, ref.statistic, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# GLR


def _plain_glr_unrestarted(p, y, ors):
    """``G_t = max over change points tau and grid odds ratios of the segment's log LR``, by
    brute force over every (tau, OR) (no CUSUM recursion)."""
    n = len(p)
    out = []
    for t in range(1, n + 1):
        best = 0.0
        for tau in range(t):
            for r in ors:
                best = max(best, sum(_weight(p[s], y[s], r) for s in range(tau, t)))
        out.append(best)
    return np.array(out)


def test_glr_is_the_maximum_over_change_points_and_odds_ratios():
    offsets, p, y = _charts([35, 20], seed=7, mu=-1.2)
    ors = d.glr_odds_ratio_grid(1.1, 6.0, 9)
    run = d.ra_glr(offsets, p, y, [1e6, 1e6], ors)  # never signals
    ref = np.concatenate(
        [
            _plain_glr_unrestarted(p[a:b], y[a:b], ors)
            for a, b in zip(offsets[:-1], offsets[1:], strict=True)
        ]
    )
    assert not run.signal.any()
    np.testing.assert_allclose(run.statistic, ref, rtol=1e-12, atol=1e-12)
    # the reported odds ratio is the maximiser of the best segment
    assert np.all(np.isin(run.odds_ratio_hat, ors))


def test_fine_grid_glr_approaches_the_continuous_maximum_likelihood():
    # continuous ML over OR >= 1 for each change point (scipy), against a 400-point grid
    _, p, y = _charts([60], seed=11, mu=-1.0)
    y[40:] = (np.random.default_rng(2).random(20) < 0.7).astype(np.int8)  # a deterioration
    ors = d.glr_odds_ratio_grid(1.0001, 40.0, 400)
    run = d.ra_glr([0, 60], p, y, [1e6], ors)
    t = 60
    best = 0.0
    for tau in range(t):
        seg_p, seg_y = p[tau:t], y[tau:t]

        def negll(theta, seg_p=seg_p, seg_y=seg_y):
            return -float(np.sum(seg_y * theta - np.log1p(np.expm1(theta) * seg_p)))

        res = optimize.minimize_scalar(negll, bounds=(0.0, np.log(40.0)), method="bounded")
        best = max(best, -res.fun)
    assert run.statistic[-1] <= best + 1e-9
    assert best - run.statistic[-1] < 2e-3


def test_glr_restart_rule_matches_plain_python():
    offsets, p, y = _charts([150], seed=13, mu=-1.0)
    ors = np.array([1.5, 2.5, 4.0])
    g = 2.0
    run = d.ra_glr(offsets, p, y, [g], ors, "half")
    x = np.zeros(3)
    sig, val = [], []
    for pt, yt in zip(p, y, strict=True):
        x = np.maximum(0.0, x + np.array([_weight(pt, yt, r) for r in ors]))
        if x.max() >= g:
            sig.append(True)
            val.append(x.max())
            x = np.minimum(x, g / 2)
        else:
            sig.append(False)
            val.append(0.0)
    assert sum(sig) >= 3
    np.testing.assert_array_equal(run.signal, sig)
    np.testing.assert_allclose(run.value, val, rtol=1e-12)
    np.testing.assert_allclose(run.threshold[run.signal], g)


def test_glr_running_max_matches_exact_enumeration():
    # 8 patients: every outcome path, P(max_t G_t >= g) exactly, against the death-only simulation
    p = np.array([0.1, 0.3, 0.05, 0.6, 0.2, 0.15, 0.4, 0.25])
    ors = np.array([1.5, 3.0])
    tops, probs = [], []
    for ys in itertools.product([0, 1], repeat=len(p)):
        g_path = _plain_glr_unrestarted(p, ys, ors)
        tops.append(g_path.max())
        probs.append(np.prod([pi if yi else 1 - pi for pi, yi in zip(p, ys, strict=True)]))
    tops, probs = np.array(tops), np.array(probs)
    sims = d.glr_running_max([0, len(p)], p, ors, n_sims=200_000, seed=4)[0]
    for g in (0.3, 1.0, 1.8, 2.5):
        exact = probs[tops >= g - 1e-12].sum()
        est = np.mean(sims >= g - 1e-12)
        se = np.sqrt(exact * (1 - exact) / sims.size)
        assert abs(est - exact) < 4 * se + 1e-12, (g, est, exact)


def _measured_false_alarms(detector_run_fn, p, n_reps, seed, batch=5_000):
    """Fraction of ``n_reps`` independent in-control replicates (numpy Bernoulli draws) of the
    chart with risks ``p`` in which the detector signals at all."""
    rng = np.random.default_rng(seed)
    n = p.shape[0]
    hits = 0
    for start in range(0, n_reps, batch):
        m = min(batch, n_reps - start)
        pp = np.tile(p, m)
        y = (rng.random(pp.shape[0]) < pp).astype(np.int8)
        offsets = np.arange(m + 1, dtype=np.int64) * n
        run = detector_run_fn(offsets, pp, y, m)
        hits += int((d.first_signals(offsets, run.signal) >= 0).sum())
    return hits / n_reps


def test_glr_calibration_hits_its_target_on_independent_simulation():
    _, p, _ = _charts([250], seed=17, mu=-2.4, sd=1.2)
    target = 0.01
    g, achieved = d.glr_thresholds([0, 250], p, target, n_sims=100_000, seed=1)
    assert abs(achieved[0] - target) < 4 * np.sqrt(target / 100_000)
    n_reps = 60_000
    measured = _measured_false_alarms(
        lambda o, pp, y, m: d.ra_glr(o, pp, y, np.full(m, g[0])), p, n_reps, seed=99
    )
    se = np.sqrt(target * (1 - target) * (1 / n_reps + 1 / 100_000))
    assert abs(measured - target) < 4 * se, (measured, target)


# --------------------------------------------------------------------------------------------
# O/E test


def _pmf_by_convolution(p):
    pmf = np.array([1.0])
    for pt in p:
        pmf = np.convolve(pmf, [1 - pt, pt])
    return pmf


def _critical(pmf, alpha):
    tail = np.cumsum(pmf[::-1])[::-1]  # P(O >= c), c = 0..n
    ok = np.flatnonzero(tail <= alpha)
    return (int(ok[0]), float(tail[ok[0]])) if ok.size else (len(pmf), 0.0)


def test_oe_critical_counts_match_brute_force_and_convolution():
    offsets, p, _ = _charts([6, 300, 1, 900], seed=19, mu=-2.0, sd=1.3)
    alpha = 0.0005
    crit, tail = d.oe_critical_counts(offsets, p, alpha)
    # the 6-patient chart by enumerating every outcome
    probs = {}
    for ys in itertools.product([0, 1], repeat=6):
        k = sum(ys)
        probs[k] = probs.get(k, 0.0) + np.prod(
            [pi if yi else 1 - pi for pi, yi in zip(p[:6], ys, strict=True)]
        )
    c0, t0 = _critical(np.array([probs[k] for k in range(7)]), alpha)
    assert (crit[0], tail[0]) == pytest.approx((c0, t0), rel=1e-10)
    for c in range(1, 4):
        cc, tt = _critical(_pmf_by_convolution(p[offsets[c] : offsets[c + 1]]), alpha)
        assert crit[c] == cc
        assert tail[c] == pytest.approx(tt, rel=1e-9, abs=1e-300)
    assert crit[2] == 2  # one patient: even a death is not rare enough -> never signals


def test_oe_critical_counts_widen_past_the_truncation():
    # a tiny alpha pushes the critical count beyond the first bound (E + 10 sd + 20)
    p = np.full(2000, 0.01)
    crit, tail = d.oe_critical_counts([0, 2000], p, 1e-60)
    cc, tt = _critical(_pmf_by_convolution(p), 1e-60)
    assert crit[0] == cc and crit[0] > 20 + 10 * np.sqrt(20) + 20
    assert tail[0] == pytest.approx(tt, rel=1e-6)


# --------------------------------------------------------------------------------------------
# Calibrated detectors


def _markov_limits(offsets, p):
    """Per-chart exact-chain limits of the chart's own sequence (small charts)."""

    def limits(odds_ratio, target):
        return np.array(
            [
                calibrate_threshold(
                    p[a:b], b - a, target, odds_ratio, method="markov", sequence=True
                ).h
                for a, b in zip(offsets[:-1], offsets[1:], strict=True)
            ]
        )

    return limits


def test_multi_cusum_budget_is_split_and_the_union_stays_within_target():
    offsets, p, _ = _charts([400], seed=23, mu=-2.2, sd=1.0)
    target = 0.02
    limits = d.detector_limits(offsets, p, "multi_cusum", _markov_limits(offsets, p), target)
    single = _markov_limits(offsets, p)
    for k, r in enumerate((1.5, 2.0, 3.0)):
        assert limits.h[0, k] == pytest.approx(single(r, target / 3)[0])
    n_reps = 40_000
    measured = _measured_false_alarms(
        lambda o, pp, y, m: d.run_detector(
            o, pp, y, d.DetectorLimits(**{**limits.__dict__, "h": np.repeat(limits.h, m, 0)})
        ),
        p,
        n_reps,
        seed=5,
    )
    se = np.sqrt(target / n_reps)
    # at most the Bonferroni sum, and at least what one component spends (target / 3)
    assert target / 3 - 3 * se < measured < target + 3 * se


def test_cusum_with_oe_test_signals_at_the_last_patient_and_stays_within_target():
    offsets, p, _ = _charts([300, 500], seed=29, mu=-2.4, sd=1.1)
    target = 0.02
    limits = d.detector_limits(offsets, p, "cusum_oe", _markov_limits(offsets, p), target)
    assert limits.oe_alpha == pytest.approx(0.01)
    for c in range(2):
        pmf = _pmf_by_convolution(p[offsets[c] : offsets[c + 1]])
        assert limits.oe_critical[c] == _critical(pmf, 0.01)[0]
    # a chart whose deaths are planted only at the end signals through the O/E test there
    y = np.zeros(800, dtype=np.int8)
    crit = int(limits.oe_critical[1])
    y[300 : 300 + crit] = 1  # the 2nd chart's first crit patients die ...
    run = d.run_detector(offsets, p, y, limits)
    first = d.first_signals(offsets, run.signal)
    assert first[0] == -1
    # the last patient survives, so only the O/E test can signal there
    assert run.signal[799] and run.component[799] == 1
    assert run.value[799] == crit and run.threshold[799] == crit
    for c in range(2):
        n = offsets[c + 1] - offsets[c]
        measured = _measured_false_alarms(
            lambda o, pp, y, m, c=c: d.run_detector(
                o,
                pp,
                y,
                d.DetectorLimits(
                    **{
                        **limits.__dict__,
                        "h": np.repeat(limits.h[c : c + 1], m, 0),
                        "oe_critical": np.repeat(limits.oe_critical[c], m),
                    }
                ),
            ),
            p[offsets[c] : offsets[c] + n],
            20_000,
            seed=31 + c,
        )
        assert measured < target + 3 * np.sqrt(target / 20_000)


def test_bad_inputs_are_refused():
    offsets, p, y = _charts([10, 10])
    with pytest.raises(ValueError, match="odds_ratios"):
        d.multi_ra_cusum(offsets, p, y, np.ones((2, 2)), [1.0, 2.0])
    with pytest.raises(ValueError, match="h: every chart"):
        d.ra_glr(offsets, p, y, [1.0, -1.0])
    with pytest.raises(ValueError, match="detector"):
        d.detector_limits(offsets, p, "ewma", _markov_limits(offsets, p))
    with pytest.raises(ValueError, match="no patients"):
        d.oe_critical_counts([0, 10, 10, 20], p, 0.01)


# --------------------------------------------------------------------------------------------
# The setting


def test_unknown_detector_is_refused_naming_the_file_and_field(tmp_path):
    from surveillance.errors import ConfigError
    from surveillance.mortality.monitor import load_cusum_settings
    from surveillance.mortality.spec import RISK_DIR

    text = (RISK_DIR / "monitoring.yaml").read_text()
    assert "detector: cusum" in text  # the shipped default is unchanged
    bad = tmp_path / "monitoring.yaml"
    bad.write_text(text.replace("detector: cusum", "detector: ewma"))
    with pytest.raises(ConfigError) as err:
        load_cusum_settings(bad)
    msg = str(err.value)
    assert str(bad) in msg and "detector" in msg and "ewma" in msg
    for name in d.DETECTORS:
        good = tmp_path / f"{name}.yaml"
        good.write_text(text.replace("detector: cusum", f"detector: {name}"))
        assert load_cusum_settings(good).detector == name
    bad.write_text(text.replace("odds_ratios: [1.5, 2.0, 3.0]", "odds_ratios: [0.8, 2.0]"))
    with pytest.raises(ConfigError, match="odds_ratios"):
        load_cusum_settings(bad)


def test_monitor_dispatches_the_selected_detector():
    from dataclasses import replace

    from surveillance.mortality.monitor import CusumSettings, charts_from_arrays, monitor_charts

    rng = np.random.default_rng(37)
    n = 240  # 2 trusts x 1 group, 120 spells each over 12 months
    trust = np.repeat([0, 1], 120)
    day = np.tile(np.arange(120) * 3, 2)
    month = 43 * 12 + day // 30  # 2013-01 .. 2013-12
    p = special.expit(rng.normal(-2.0, 0.8, n))
    died = (rng.random(n) < p).astype(np.int8)
    died[120 + 60 :] = (rng.random(60) < 0.6).astype(np.int8)  # trust B deteriorates
    charts = charts_from_arrays(
        trust,
        np.zeros(n, dtype=np.int64),
        day,
        month,
        died,
        p,
        np.array(["A", "B"]),
        np.array(["G"]),
    )
    base = CusumSettings(threshold_method="simulation", n_sims=20_000, glr_n_sims=20_000)
    for name in d.DETECTORS:
        table, run = monitor_charts(charts, replace(base, detector=name), None, ["2013-12"])
        assert set(table["trust_code"]) == {"B"}, name
        comps = set(table["detector"])
        assert comps <= set(d.component_names(name, base.odds_ratios)), (name, comps)
        assert np.all(table["cusum"] >= table["threshold"]), name
        assert run.signal.any()
