"""Funnel limits (METHODS.md section 3) against the FunnelPlotR / PHE oracles and by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from surveillance.stats.limits import (
    betabinomial_limits,
    byar_interval,
    exact_binomial_limits,
    exact_poisson_interval,
    exact_poisson_limits,
    level_label,
    negbin_limits,
    normal_limits,
    phe_proportion_limits,
    phe_ratio_limits,
    phe_ratio_significance,
    poisson_chi2_limits,
    wilson_interval,
    z_for_level,
)

RTOL = 1e-6


def test_default_levels_give_the_usual_quantiles():
    assert z_for_level(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_for_level(0.998) == pytest.approx(3.090232, abs=1e-6)
    assert [level_label(x) for x in (0.95, 0.998, 0.9, 0.999)] == ["95", "998", "90", "999"]
    with pytest.raises(ValueError, match="level"):
        z_for_level(1.2)


def test_poisson_chi2_matches_funnelplotr(oracle_dir):
    ref = pd.read_csv(oracle_dir / "funnelplotr_poisson_exact_limits.csv")
    for level, lo_col, hi_col in ((0.95, "ll95", "ul95"), (0.998, "ll998", "ul998")):
        lo, hi = poisson_chi2_limits(ref["number_seq"], level)
        np.testing.assert_allclose(lo, ref[lo_col], rtol=RTOL)
        np.testing.assert_allclose(hi, ref[hi_col], rtol=RTOL)


def test_phe_ratio_funnel_limits_match_phe(oracle_dir):
    ref = pd.read_csv(oracle_dir / "phe_ratio_isr_limits.csv")
    ours = phe_ratio_limits(ref["Observed_events"], ratio_type="isr")
    for col in ref.columns:
        if col in ("statistic", "method", "Observed_events"):
            continue
        np.testing.assert_allclose(ours[col], ref[col], rtol=RTOL, err_msg=col)


def test_phe_ratio_significance_matches_phe(oracle_dir):
    ref = pd.read_csv(oracle_dir / "phe_ratio_significance.csv")
    labels = phe_ratio_significance(ref["obs"], ref["expected"])
    mismatched = ref.loc[labels != ref["significance"].to_numpy(), "unit"].tolist()
    assert mismatched == []
    assert set(ref["significance"]) == {
        "High (0.001)",
        "High (0.025)",
        "Low (0.001)",
        "Low (0.025)",
        "Not significant",
    }


def test_phe_ratio_interval_is_exact_below_ten_and_byar_above():
    lo, hi = exact_poisson_interval(np.array([0.0, 3.0]), 0.95)
    assert lo[0] == 0.0 and hi[0] == pytest.approx(-math.log(0.025), rel=1e-12)
    assert lo[1] == pytest.approx(stats.chi2.ppf(0.025, 6) / 2, rel=1e-12)
    blo, bhi = byar_interval(np.array([100.0]), 0.95)
    z = stats.norm.ppf(0.975)
    assert blo[0] == pytest.approx(100 * (1 - 1 / 900 - z / 30) ** 3, rel=1e-12)
    assert bhi[0] == pytest.approx(101 * (1 - 1 / 909 + z / (3 * math.sqrt(101))) ** 3, rel=1e-12)
    # Byar approximates the exact interval closely for large counts
    elo, ehi = exact_poisson_interval(np.array([100.0]), 0.95)
    assert blo[0] == pytest.approx(elo[0], rel=1e-3) and bhi[0] == pytest.approx(ehi[0], rel=1e-3)


def _interpolated_by_hand(pmf, p, r_max):
    """Spiegelhalter 2005 appendix A.1.1 by brute force: walk the CDF."""
    cdf, r = 0.0, 0
    while True:
        prev = cdf
        cdf += pmf(r)
        if cdf >= p or r > r_max:
            return r - (cdf - p) / (cdf - prev)
        r += 1


@pytest.mark.parametrize("expected", [1.5, 5.0, 17.3, 100.0])
@pytest.mark.parametrize("level", [0.95, 0.998])
def test_exact_poisson_interpolated_by_hand(expected, level):
    lo, hi = exact_poisson_limits(np.array([expected]), level)
    a = 1 - level

    def pmf(r):
        return math.exp(-expected + r * math.log(expected) - math.lgamma(r + 1))

    lo_ref = max(0.0, _interpolated_by_hand(pmf, a / 2, 10_000) / expected)
    hi_ref = _interpolated_by_hand(pmf, 1 - a / 2, 10_000) / expected
    assert lo[0] == pytest.approx(lo_ref, rel=1e-9, abs=1e-12)
    assert hi[0] == pytest.approx(hi_ref, rel=1e-9)


@pytest.mark.parametrize("n", [20, 150, 1000])
def test_exact_binomial_interpolated_by_hand(n):
    p0 = 0.12
    lo, hi = exact_binomial_limits(np.array([n]), p0, 0.95)

    def pmf(r):
        return math.comb(n, r) * p0**r * (1 - p0) ** (n - r)

    assert lo[0] == pytest.approx(max(0, _interpolated_by_hand(pmf, 0.025, n) / n), rel=1e-9)
    assert hi[0] == pytest.approx(_interpolated_by_hand(pmf, 0.975, n) / n, rel=1e-9)


def test_normal_limits_back_transform_each_scale():
    z = z_for_level(0.95)
    lo, hi = normal_limits(1.0, 0.05, 0.95, "sqrt", tau2=0.001)
    w = z * math.sqrt(0.05**2 + 0.001)
    assert lo == pytest.approx((1 - w) ** 2, rel=1e-12)
    assert hi == pytest.approx((1 + w) ** 2, rel=1e-12)
    lo, hi = normal_limits(0.0, 0.1, 0.95, "log")
    assert (lo, hi) == (pytest.approx(math.exp(-z * 0.1)), pytest.approx(math.exp(z * 0.1)))
    t = math.asin(math.sqrt(0.3))
    lo, hi = normal_limits(t, 0.02, 0.95, "asin")
    assert lo == pytest.approx(math.sin(t - z * 0.02) ** 2, rel=1e-12)
    assert hi == pytest.approx(math.sin(t + z * 0.02) ** 2, rel=1e-12)
    lo, hi = normal_limits(0.0, 0.1, 0.95, "log", phi=4.0)  # multiplicative
    assert hi == pytest.approx(math.exp(z * 0.2), rel=1e-12)


def test_shmi_od_limits_match_funnelplotr_toy(oracle_dir):
    ref = pd.read_csv(oracle_dir / "funnelplotr_toy6_shmi_units.csv")
    s = 1 / np.sqrt(ref["denominator"])
    lo, hi = normal_limits(0.0, s, 0.998, "log", tau2=0.0194775306)
    np.testing.assert_allclose(lo, ref["OD99LCL"], rtol=RTOL)
    np.testing.assert_allclose(hi, ref["OD99UCL"], rtol=RTOL)


def test_phe_proportion_limit_is_where_wilson_bound_meets_average():
    n = np.array([50.0, 400, 5000])
    p0 = 0.3
    for level in (0.95, 0.998):
        lo, hi = phe_proportion_limits(n, p0, level)
        # a unit on the upper funnel has a Wilson lower bound exactly at the average
        np.testing.assert_allclose(wilson_interval(hi * n, n, level)[0], p0, rtol=1e-9)
        np.testing.assert_allclose(wilson_interval(lo * n, n, level)[1], p0, rtol=1e-9)


def test_negbin_and_betabinomial_limits_are_wider_and_reduce_to_base():
    e = np.array([5.0, 50.0, 500.0])
    p_lo, p_hi = exact_poisson_limits(e, 0.95)
    nb_lo, nb_hi = negbin_limits(e, 0.05, 0.95)
    assert np.all(nb_lo <= p_lo + 1e-12) and np.all(nb_hi >= p_hi - 1e-12)
    assert nb_hi[2] > p_hi[2] * 1.2  # dispersion dominates at large E
    np.testing.assert_allclose(negbin_limits(e, 1e-9, 0.95)[1], p_hi, rtol=1e-4)
    n = np.array([30.0, 300.0])
    b_lo, b_hi = exact_binomial_limits(n, 0.2, 0.95)
    bb_lo, bb_hi = betabinomial_limits(n, 0.2, 0.02, 0.95)
    assert np.all(bb_lo <= b_lo + 1e-12) and np.all(bb_hi >= b_hi - 1e-12)
    np.testing.assert_allclose(betabinomial_limits(n, 0.2, 0.0)[1], b_hi)
