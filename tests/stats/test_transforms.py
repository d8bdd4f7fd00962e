"""Transforms and z-scores (METHODS.md section 1) against closed forms and the FunnelPlotR oracle."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from surveillance.stats.transforms import (
    back_transform,
    orient,
    transform_proportion,
    transform_rate,
    transform_ratio,
    transform_score,
)

RTOL = 1e-6


def test_cqc_z_equals_two_root_difference():
    o = np.array([100.0, 150, 0, 7])
    e = np.array([108.0, 112, 20.5, 3.2])
    t = transform_ratio(o, e, "CQC")
    expected = [2 * (math.sqrt(a) - math.sqrt(b)) for a, b in zip(o, e, strict=True)]
    np.testing.assert_allclose(t.z, expected, rtol=1e-12)
    assert t.target == 1.0 and t.scale == "sqrt"
    np.testing.assert_allclose(t.s, [1 / (2 * math.sqrt(b)) for b in e], rtol=1e-12)


def test_shmi_z_equals_root_e_log_ratio():
    o = np.array([100.0, 150, 7])
    e = np.array([108.0, 112, 3.2])
    t = transform_ratio(o, e, "SHMI")
    expected = [math.sqrt(b) * math.log(a / b) for a, b in zip(o, e, strict=True)]
    np.testing.assert_allclose(t.z, expected, rtol=1e-12)
    assert t.target == 0.0 and t.scale == "log"


@pytest.mark.parametrize("method", ["CQC", "SHMI"])
def test_ratio_matches_funnelplotr_toy(oracle_dir, method):
    inp = pd.read_csv(oracle_dir / "input_toy6.csv")
    ref = pd.read_csv(oracle_dir / f"funnelplotr_toy6_{method.lower()}_units.csv")
    t = transform_ratio(inp["num"], inp["denom"], method)
    np.testing.assert_allclose(t.Y, ref["Y"], rtol=RTOL)
    np.testing.assert_allclose(t.s, ref["s"], rtol=RTOL)
    np.testing.assert_allclose(t.z, ref["Uzscore"], rtol=RTOL)
    assert t.target == ref["target_transformed"].iloc[0]


def test_shmi_zero_events_is_finite_by_default_and_minus_inf_on_request():
    t = transform_ratio([0.0, 10.0], [240.63, 10.0], "SHMI")
    assert np.all(np.isfinite(t.z))
    assert t.z[0] == pytest.approx(math.sqrt(240.63) * math.log(0.5 / 240.63), rel=1e-12)
    raw = transform_ratio([0.0, 10.0], [240.63, 10.0], "SHMI", zero_correction=None)
    assert raw.z[0] == -np.inf and raw.z[1] == 0.0


def test_cqc_zero_events_is_finite():
    t = transform_ratio([0.0], [240.6273499], "CQC")
    assert t.z[0] == pytest.approx(-2 * math.sqrt(240.6273499), rel=1e-12)


def test_zero_denominator_is_not_assessable():
    for t in (
        transform_ratio([3.0, 5.0], [0.0, 4.0], "SHMI"),
        transform_ratio([3.0, 5.0], [0.0, 4.0], "CQC"),
        transform_proportion([0.0, 5.0], [0.0, 40.0]),
        transform_rate([3.0, 5.0], [0.0, 40.0]),
    ):
        assert np.isnan(t.Y[0]) and np.isnan(t.s[0]) and np.isnan(t.z[0])
        assert np.isfinite(t.z[1])


def test_proportion_target_is_pooled_and_z_matches_formula():
    r = np.array([10.0, 30, 45, 0])
    n = np.array([100.0, 200, 300, 0])
    t = transform_proportion(r, n)
    p0 = 85 / 600  # the n = 0 unit does not count
    assert t.target == pytest.approx(math.asin(math.sqrt(p0)), rel=1e-12)
    for i in range(3):
        y = math.asin(math.sqrt(r[i] / n[i]))
        s = 1 / (2 * math.sqrt(n[i]))
        assert t.z[i] == pytest.approx((y - math.asin(math.sqrt(p0))) / s, rel=1e-12)
    fixed = transform_proportion(r, n, target=0.2)
    assert fixed.target == pytest.approx(math.asin(math.sqrt(0.2)), rel=1e-12)


def test_proportion_rejects_numerator_above_denominator():
    with pytest.raises(ValueError, match="exceed"):
        transform_proportion([5.0], [4.0])


def test_negative_counts_rejected():
    with pytest.raises(ValueError, match="observed"):
        transform_ratio([-1.0], [4.0])


def test_rate_transform_matches_formula():
    o = np.array([0.0, 12, 30])
    d = np.array([1000.0, 2400, 5000])
    t = transform_rate(o, d)
    for i in range(3):
        y = math.log((o[i] + 0.5) / (d[i] + 0.5))
        s = math.sqrt(o[i] / (o[i] + 0.5) ** 2 + d[i] / (d[i] + 0.5) ** 2)
        assert t.Y[i] == pytest.approx(y, rel=1e-12)
        assert t.s[i] == pytest.approx(s, rel=1e-12)
    assert t.target == pytest.approx(math.log(42 / 8400), rel=1e-12)
    assert np.all(np.isfinite(t.z))  # zero events never break the log scale


def test_score_uses_national_mean_and_se():
    v = np.array([70.0, 75, 80, np.nan])
    se = np.array([2.0, 2.5, 1.0, 1.0])
    t = transform_score(v, se)
    assert t.target == pytest.approx(75.0)
    np.testing.assert_allclose(t.z[:3], [-2.5, 0.0, 5.0])
    assert np.isnan(t.z[3])


def test_batched_rows_have_their_own_targets():
    r = np.array([[10.0, 20, 30], [1.0, 2, 3]])
    n = np.array([[100.0, 100, 100], [10.0, 10, 10]])
    t = transform_proportion(r, n)
    for i in range(2):
        row = transform_proportion(r[i], n[i])
        np.testing.assert_allclose(t.z[i], row.z, rtol=1e-12)


def test_orient_positive_is_worse():
    z = np.array([-2.0, 0.5])
    np.testing.assert_array_equal(orient(z, "higher_is_worse"), z)
    np.testing.assert_array_equal(orient(z, "lower_is_worse"), -z)
    with pytest.raises(ValueError, match="polarity"):
        orient(z, "sideways")  # type: ignore[arg-type]


def test_back_transform_inverts_each_scale():
    x = np.array([0.2, 0.9, 1.3])
    np.testing.assert_allclose(back_transform(np.sqrt(x), "sqrt"), x, rtol=1e-12)
    np.testing.assert_allclose(back_transform(np.log(x), "log"), x, rtol=1e-12)
    p = np.array([0.01, 0.5, 0.99])
    np.testing.assert_allclose(back_transform(np.arcsin(np.sqrt(p)), "asin"), p, rtol=1e-12)
    # below the sqrt scale's origin the ratio is 0, not the square of a negative number
    assert back_transform(np.array([-0.3]), "sqrt")[0] == 0.0
    assert back_transform(np.array([-0.3]), "asin")[0] == 0.0
