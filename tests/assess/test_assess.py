"""Each indicator type flags correctly on hand-computed cases (z, p independently computed here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from assess_helpers import indicator_rows, make_catalogue
from scipy import stats

from surveillance.assess import EXTRA_COLUMNS, FLAGS_COLUMNS, assess, excluded_from_banding
from surveillance.errors import SurveillanceError

CODES = [f"T{k:02d}" for k in range(12)]


def _winsorised_additive(Y, s, target, fraction=0.1):
    """Independent Spiegelhalter (2005) additive adjustment: winsorise, phi, DL tau2."""
    z = (Y - target) / s
    lo, hi = np.percentile(z, [100 * fraction, 100 * (1 - fraction)])
    zw = np.clip(z, lo, hi)
    n = len(z)
    phi = np.mean(zw**2)
    w = 1 / s**2
    tau2 = (
        0.0
        if n * phi < n - 1
        else max(0.0, (n * phi - (n - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    )
    return z, (Y - target) / np.sqrt(s**2 + tau2), phi, tau2


def _flag(z, risk=1.96, elevated=3.0):
    return np.where(z > elevated, "elevated_risk", np.where(z > risk, "risk", "no_evidence"))


def _one(flags, indicator):
    return flags[flags["indicator_id"] == indicator].set_index("trust_code").loc[CODES]


def test_proportion_arcsine_additive_lower_is_worse():
    cat = make_catalogue(
        [{"indicator_id": "prop_test", "type": "proportion", "polarity": "lower_is_worse"}]
    )
    n = np.array([400, 500, 600, 300, 800, 450, 350, 700, 900, 250, 520, 610], float)
    r = np.round(
        n * np.array([0.80, 0.82, 0.79, 0.60, 0.81, 0.83, 0.78, 0.80, 0.84, 0.95, 0.70, 0.81])
    )
    rows = indicator_rows("prop_test", trust_code=CODES, numerator=r, denominator=n)
    flags = _one(assess(rows, cat, "2013Q3"), "prop_test")

    Y = np.arcsin(np.sqrt(r / n))
    target = np.arcsin(np.sqrt(r.sum() / n.sum()))
    z, z_adj, phi, tau2 = _winsorised_additive(Y, 1 / (2 * np.sqrt(n)), target)
    # lower is worse: oriented z = -z
    np.testing.assert_allclose(flags["z"], -z, rtol=1e-9)
    np.testing.assert_allclose(flags["z_adjusted"], -z_adj, rtol=1e-9)
    np.testing.assert_allclose(flags["phi"], phi, rtol=1e-9)
    np.testing.assert_allclose(flags["tau2"], tau2, rtol=1e-9)
    np.testing.assert_allclose(flags["p_value"], stats.norm.sf(-z_adj), rtol=1e-9)
    assert list(flags["flag"]) == list(_flag(-z_adj))
    assert phi > 1 and tau2 > 0
    # the trust at 60% (T03) is flagged, the 95% one (T09) is not (wrong direction)
    assert flags.loc["T03", "flag"] in ("risk", "elevated_risk")
    assert flags.loc["T09", "flag"] == "no_evidence"
    np.testing.assert_allclose(flags["expected"], n * r.sum() / n.sum(), rtol=1e-9)


def test_ratio_cqc_and_shmi_without_adjustment():
    cat = make_catalogue(
        [
            {
                "indicator_id": "ratio_cqc",
                "type": "ratio",
                "sr_method": "CQC",
                "trim": None,
                "overdispersion": None,
            },
            {
                "indicator_id": "ratio_shmi",
                "type": "ratio",
                "sr_method": "SHMI",
                "trim": None,
                "overdispersion": None,
            },
        ]
    )
    E = np.array([20, 30, 40, 25, 50, 35, 45, 60, 15, 22, 33, 44], float)
    obs = np.array([22, 28, 70, 24, 49, 36, 40, 61, 16, 20, 34, 45], float)
    rows = pd.concat(
        [
            indicator_rows("ratio_cqc", trust_code=CODES, numerator=obs, denominator=E),
            indicator_rows("ratio_shmi", trust_code=CODES, numerator=obs, denominator=E),
        ]
    )
    flags = assess(rows, cat, "2013Q3")
    cqc, shmi = _one(flags, "ratio_cqc"), _one(flags, "ratio_shmi")
    z_cqc = 2 * (np.sqrt(obs) - np.sqrt(E))
    z_shmi = np.sqrt(E) * np.log(obs / E)
    np.testing.assert_allclose(cqc["z_adjusted"], z_cqc, rtol=1e-9)
    np.testing.assert_allclose(shmi["z_adjusted"], z_shmi, rtol=1e-9)
    assert list(cqc["flag"]) == list(_flag(z_cqc))
    assert cqc.loc["T02", "flag"] == "elevated_risk"  # 70 observed vs 40 expected
    np.testing.assert_allclose(cqc["observed"], obs)
    np.testing.assert_allclose(cqc["expected"], E)
    np.testing.assert_allclose(cqc["p_value"], stats.norm.sf(z_cqc), rtol=1e-9)
    assert set(cqc["method"]) == {"sqrt(CQC)+none"}


def test_rate_log_with_half():
    cat = make_catalogue(
        [
            {
                "indicator_id": "rate_test",
                "type": "rate",
                "min_denominator": 0,
                "trim": None,
                "overdispersion": None,
            }
        ]
    )
    obs = np.array([5, 8, 3, 20, 6, 7, 4, 9, 5, 6, 0, 7], float)
    D = np.array([5e4, 6e4, 4e4, 5e4, 5.5e4, 6e4, 4.5e4, 7e4, 5e4, 5e4, 4e4, 6e4])
    rows = indicator_rows("rate_test", trust_code=CODES, numerator=obs, denominator=D)
    got = _one(assess(rows, cat, "2013Q3"), "rate_test")
    Y = np.log((obs + 0.5) / (D + 0.5))
    s = np.sqrt(obs / (obs + 0.5) ** 2 + D / (D + 0.5) ** 2)
    z = (Y - np.log(obs.sum() / D.sum())) / s
    np.testing.assert_allclose(got["z_adjusted"], z, rtol=1e-9)
    assert list(got["flag"]) == list(_flag(z))
    assert got.loc["T03", "flag"] != "no_evidence"
    assert got.loc["T10", "flag"] == "no_evidence"  # zero events: finite z, not a NaN flag


def test_score_vs_national_mean_with_thresholds():
    cat = make_catalogue(
        [
            {
                "indicator_id": "score_test",
                "type": "score",
                "polarity": "lower_is_worse",
                "trim": None,
                "overdispersion": None,
                "risk_threshold": 2.0,
                "elevated_threshold": 3.09,
            }
        ]
    )
    v = np.array([70, 71, 69, 62, 70, 72, 68, 70, 74, 66, 70, 71], float)
    se = np.full(12, 1.5)
    rows = indicator_rows("score_test", trust_code=CODES, value=v, standard_error=se)
    got = _one(assess(rows, cat, "2013Q3"), "score_test")
    z = -(v - v.mean()) / se
    np.testing.assert_allclose(got["z_adjusted"], z, rtol=1e-9)
    assert list(got["flag"]) == list(_flag(z, 2.0, 3.09))
    assert got.loc["T03", "flag"] == "elevated_risk"  # 62 vs mean ~70.25, se 1.5


def test_count_poisson_tail_and_cutoffs():
    cat = make_catalogue([{"indicator_id": "count_test", "type": "count", "min_denominator": 0}])
    x = np.array([2, 3, 2, 9, 3, 2, 4, 3, 2, 3, 5, 2], float)
    a = np.full(12, 10000.0)
    rows = indicator_rows("count_test", trust_code=CODES, numerator=x, denominator=a)
    got = _one(assess(rows, cat, "2013Q3"), "count_test")
    mu = a * x.sum() / a.sum()
    pearson = np.sum((x - mu) ** 2 / mu) / (len(x) - 1)
    assert stats.chi2.sf(len(x) * pearson, len(x) - 1) > 0.05  # not overdispersed: Poisson
    p = stats.poisson.sf(x - 1, mu)
    np.testing.assert_allclose(got["p_value"], p, rtol=1e-9)
    np.testing.assert_allclose(got["expected"], mu, rtol=1e-12)
    expected_flag = np.where(p < 0.001, "elevated_risk", np.where(p < 0.025, "risk", "no_evidence"))
    assert list(got["flag"]) == list(expected_flag)
    assert got.loc["T03", "flag"] in ("risk", "elevated_risk")
    assert set(got["method"]) == {"poisson"}
    mid = p - 0.5 * stats.poisson.pmf(x, mu)
    np.testing.assert_allclose(got["z_adjusted"], stats.norm.isf(mid), rtol=1e-9)


def test_external_band_maps_and_rejects_unknown_label():
    cat = make_catalogue(
        [
            {
                "indicator_id": "band_test",
                "type": "external_band",
                "band_map": {"red": "elevated_risk", "amber": "risk", "green": "no_evidence"},
            }
        ]
    )
    labels = ["red", "amber", "green"] * 4
    rows = indicator_rows("band_test", trust_code=CODES, band=labels)
    got = _one(assess(rows, cat, "2013Q3"), "band_test")
    assert list(got["flag"]) == ["elevated_risk", "risk", "no_evidence"] * 4
    assert list(got["band"]) == labels
    bad = rows.copy()
    bad.loc[4, "band"] = "purple"
    with pytest.raises(SurveillanceError, match=r"row 5 column 'band'.*purple"):
        assess(bad, cat, "2013Q3")


def test_rule_any_validated_case_and_configurable_flag():
    cat = make_catalogue([{"indicator_id": "rule_test", "type": "rule"}])
    n = [0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 2]
    rows = indicator_rows("rule_test", trust_code=CODES, numerator=n)
    got = _one(assess(rows, cat, "2013Q3"), "rule_test")
    want = ["elevated_risk" if k >= 1 else "no_evidence" for k in n]
    assert list(got["flag"]) == want
    got_risk = _one(assess(rows, cat, "2013Q3", rule_flag="risk"), "rule_test")
    assert list(got_risk["flag"]) == ["risk" if k >= 1 else "no_evidence" for k in n]
    cat2 = make_catalogue([{"indicator_id": "rule_test", "type": "rule", "rule_min_count": 2}])
    got2 = _one(assess(rows, cat2, "2013Q3"), "rule_test")
    assert list(got2["flag"]) == ["elevated_risk" if k >= 2 else "no_evidence" for k in n]


def _monthly_rows(indicator_id, values_by_trust, quarter_months):
    frames = []
    for code, vals in values_by_trust.items():
        starts = pd.to_datetime([m + "-01" for m in quarter_months])
        frames.append(
            indicator_rows(
                indicator_id,
                trust_code=[code] * 12,
                period_start=starts.strftime("%Y-%m-%d"),
                period_end=(starts + pd.offsets.MonthEnd(0)).strftime("%Y-%m-%d"),
                value=vals,
                standard_error=[1.0] * 12,
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_cusum_z_signal_in_quarter_only():
    from surveillance.periods import Quarter

    cat = make_catalogue(
        [
            {
                "indicator_id": "cus_test",
                "type": "cusum_z",
                "series_type": "score",
                "cadence": "monthly",
                "trim": None,
                "overdispersion": None,
            }
        ]
    )
    months = Quarter.parse("2013Q3").lookback_months(12)
    late = np.array([0.0] * 9 + [3.0, 3.0, 3.0])  # C = 2.5, 5.0, 7.5 -> signal in Sep 2013
    early = np.array([4.0, 4.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])  # 3.5, 7.0 -> signal in month 2
    mild = np.array([1.0] * 12)  # C = 0.5 t: 5.5 > 5.48 at month 11 (Aug 2013), then reset
    values = {"A": late, "B": -late, "C": early, "D": -early, "E": mild, "F": -mild}
    rows = _monthly_rows("cus_test", values, months)
    flags = assess(rows, cat, "2013Q3").set_index("trust_code")
    # national mean is 0 each month, se 1, no adjustment: z_t = value_t
    assert flags.loc["A", "flag"] == "elevated_risk"
    assert flags.loc["B", "flag"] == "no_evidence"
    assert flags.loc["C", "flag"] == "no_evidence"  # signalled in 2012, reset, quiet since
    assert flags.loc["E", "flag"] == "elevated_risk"
    # independent CUSUM for E: C_t = max(0, C_{t-1} + 1 - 0.5) = 0.5 t; peak in quarter 5.5
    np.testing.assert_allclose(flags.loc["E", "cusum"], 5.5)
    np.testing.assert_allclose(flags.loc["A", "cusum"], 7.5)
    np.testing.assert_allclose(flags.loc["A", "z_adjusted"], 9.0 / np.sqrt(3))


def test_not_applicable_reasons_and_coverage():
    cat = make_catalogue(
        [
            {
                "indicator_id": "prop_small",
                "type": "proportion",
                "min_denominator": 100,
                "trim": None,
                "overdispersion": None,
            },
            {
                "indicator_id": "prop_general",
                "type": "proportion",
                "applies_to_specialist": False,
                "trim": None,
                "overdispersion": None,
            },
            {"indicator_id": "staff_fill_rn_day", "type": "score", "derived_from": "staffing"},
            {
                "indicator_id": "prop_sparse",
                "type": "proportion",
                "min_coverage": 0.5,
                "trim": None,
                "overdispersion": None,
            },
        ]
    )
    trusts = pd.DataFrame(
        {"trust_code": CODES, "trust_type": ["acute_specialist"] + ["acute"] * 11}
    )
    n = np.full(12, 500.0)
    n[5] = 50.0
    rows = pd.concat(
        [
            indicator_rows(
                "prop_small", trust_code=CODES[:11], numerator=n[:11] * 0.1, denominator=n[:11]
            ),
            indicator_rows("prop_general", trust_code=CODES, numerator=n * 0.2, denominator=n),
            indicator_rows(
                "prop_sparse", trust_code=CODES[:4], numerator=[10.0] * 4, denominator=[100.0] * 4
            ),
        ]
    )
    flags = assess(rows, cat, "2013Q3", trusts=trusts, missing_sources=["staffing"])
    assert list(flags.columns) == FLAGS_COLUMNS + EXTRA_COLUMNS
    assert len(flags) == 12 * 4
    f = flags.set_index(["indicator_id", "trust_code"])
    assert f.loc[("prop_small", "T05"), "flag"] == "not_applicable"
    assert "below min_denominator 100" in f.loc[("prop_small", "T05"), "reason"]
    assert f.loc[("prop_small", "T11"), "reason"] == "no data for this trust"
    assert f.loc[("prop_general", "T00"), "reason"] == "does not apply to specialist trusts"
    assert f.loc[("prop_general", "T01"), "flag"] == "no_evidence"
    assert set(f.loc["staff_fill_rn_day", "reason"]) == {"source missing: staffing"}
    assert (f.loc["staff_fill_rn_day", "flag"] == "not_applicable").all()
    # prop_sparse: 4 of 12 trusts (< 50%) and the staffing indicator: out of banding
    assert excluded_from_banding(flags) == ["prop_sparse", "staff_fill_rn_day"]
    assert flags.attrs["excluded_from_banding"] == ["prop_sparse", "staff_fill_rn_day"]
    assert f.loc[("prop_sparse", "T00"), "flag"] == "no_evidence"  # still assessed
    assert not f.loc[("prop_sparse", "T00"), "in_banding"]
    # p_value is never defined for not_applicable rows and flags never NaN
    assert flags["flag"].notna().all()
    assert flags.loc[flags["flag"] == "not_applicable", "z_adjusted"].isna().all()


def test_precomputed_flags_and_derived_rows():
    cat = make_catalogue(
        [
            {
                "indicator_id": "mort_alert",
                "type": "rule",
                "derived_from": "spells",
                "cadence": "monthly",
            },
            {
                "indicator_id": "mort_ratio_all",
                "type": "ratio",
                "derived_from": "spells",
                "trim": None,
                "overdispersion": None,
            },
        ]
    )
    pre = pd.DataFrame(
        {
            "trust_code": CODES[:10],
            "indicator_id": "mort_alert",
            "flag": ["elevated_risk"] + ["no_evidence"] * 9,
        }
    )
    derived = indicator_rows(
        "mort_ratio_all", trust_code=CODES, numerator=[30.0] * 12, denominator=[30.0] * 11 + [10.0]
    )
    flags = assess(
        pd.DataFrame(columns=["trust_code", "indicator_id"]),
        cat,
        "2013Q3",
        derived=derived,
        precomputed=pre,
    )
    f = flags.set_index(["indicator_id", "trust_code"])
    assert f.loc[("mort_alert", "T00"), "flag"] == "elevated_risk"
    assert f.loc[("mort_alert", "T00"), "method"] == "precomputed"
    assert f.loc[("mort_alert", "T11"), "flag"] == "not_applicable"
    z = 2 * (np.sqrt(30.0) - np.sqrt(10.0))
    np.testing.assert_allclose(f.loc[("mort_ratio_all", "T11"), "z_adjusted"], z)


def test_bad_input_names_row_and_column(catalogue_factory):
    cat = catalogue_factory([{"indicator_id": "prop_test", "type": "proportion"}])
    rows = indicator_rows(
        "prop_test", trust_code=["A", "B"], numerator=["3", "x"], denominator=["10", "10"]
    )
    with pytest.raises(SurveillanceError, match=r"row\(s\) \[2\] column 'numerator'"):
        assess(rows, cat, "2013Q3")
    dup = indicator_rows("prop_test", trust_code=["A", "A"], numerator=[3, 4], denominator=[10, 10])
    with pytest.raises(SurveillanceError, match="more than one row"):
        assess(dup, cat, "2013Q3")
    unknown = indicator_rows("nope_test", trust_code=["A"], numerator=[1], denominator=[2])
    with pytest.raises(SurveillanceError, match="unknown indicator"):
        assess(unknown, cat, "2013Q3")


def test_full_catalogue_every_pair_once_and_deterministic():
    from assess_fake import fake_indicators

    from surveillance.catalogue import load_catalogue

    cat = load_catalogue()
    trusts, rows = fake_indicators(cat, n_trusts=30)
    flags = assess(rows, cat, "2013Q3", trusts=trusts)
    assert len(flags) == len(cat) * 30
    assert not flags.duplicated(["trust_code", "indicator_id"]).any()
    assert set(flags["flag"]) <= {"no_evidence", "risk", "elevated_risk", "not_applicable"}
    for kind in (
        "proportion",
        "ratio",
        "rate",
        "count",
        "score",
        "external_band",
        "rule",
        "cusum_z",
    ):
        assert (flags.loc[flags["type"] == kind, "flag"] != "not_applicable").any(), kind
    z_rows = flags["type"].isin(["proportion", "ratio", "rate", "score", "count"]) & (
        flags["flag"] != "not_applicable"
    )
    assert flags.loc[z_rows, "p_value"].between(0, 1).all()
    again = assess(rows, cat, "2013Q3", trusts=trusts)
    pd.testing.assert_frame_equal(flags, again)
