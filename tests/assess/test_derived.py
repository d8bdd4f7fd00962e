"""Derived indicators from staffing.csv and intelligence.csv, checked against hand computation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from surveillance.assess import INDICATOR_COLUMNS, derive_intelligence, derive_staffing


def _staffing():
    rows = []
    # trust A: ward W1 RN day 100 planned / 95 actual, night 50 / 40 per month (RN fill 0.9 exactly
    # in Jul -> not under 90%), ward W2 RN fill 0.8 every month; care staff day 60/66.
    for month, w1_night_actual in (("2013-07", 40.0), ("2013-08", 35.0), ("2013-09", 30.0)):
        rows += [
            ("A", "W1", month, "registered_nurse", "day", 100.0, 95.0),
            ("A", "W1", month, "registered_nurse", "night", 50.0, w1_night_actual),
            ("A", "W2", month, "registered_nurse", "day", 100.0, 80.0),
            ("A", "W2", month, "registered_nurse", "night", 100.0, 80.0),
            ("A", "W1", month, "care_staff", "day", 60.0, 66.0),
        ]
    # a month outside the quarter is ignored
    rows.append(("A", "W1", "2013-06", "registered_nurse", "day", 100.0, 10.0))
    return pd.DataFrame(
        rows,
        columns=[
            "trust_code",
            "ward_code",
            "month",
            "staff_group",
            "shift",
            "planned_hours",
            "actual_hours",
        ],
    )


def test_fill_rates_and_wards_under_90():
    rows, wards = derive_staffing(_staffing(), "2013Q3")
    assert list(rows.columns) == INDICATOR_COLUMNS
    r = rows.set_index("indicator_id")
    # RN day: (95 + 80) x 3 / (200 x 3)
    np.testing.assert_allclose(r.loc["staff_fill_rn_day", "value"], 525 / 600)
    np.testing.assert_allclose(r.loc["staff_fill_rn_night", "value"], (105 + 240) / 450)
    np.testing.assert_allclose(r.loc["staff_fill_cs_day", "value"], 1.1)
    # ratio-estimator se for RN day: ward-months a = 95,80 x3, p = 100 x 6
    a = np.array([95, 80] * 3, float)
    p = np.full(6, 100.0)
    R = a.sum() / p.sum()
    se = np.sqrt(((a - R * p) ** 2).sum() / (6 * 5)) / p.mean()
    np.testing.assert_allclose(r.loc["staff_fill_rn_day", "standard_error"], se)
    # W1 RN fill per month: (95+40)/150 = 0.9 (not under), (95+35)/150, (95+30)/150 (under);
    # W2: 0.8 every month (under) -> 5 of 6 ward-months under 90%
    assert r.loc["staff_wards_under90", "numerator"] == 5
    assert r.loc["staff_wards_under90", "denominator"] == 6
    w = wards.set_index("ward_code")
    assert w.loc["W1", "months_under_90"] == 2 and w.loc["W2", "months_under_90"] == 3
    assert bool(w.loc["W2", "frequently_under_90"]) and bool(w.loc["W1", "frequently_under_90"])
    np.testing.assert_allclose(w.loc["W2", "rn_fill"], 0.8)


def test_intelligence_rules_and_complaints():
    intel = pd.DataFrame(
        [
            ("A", "2013-08-01", "whistleblowing", "other", True),
            ("A", "2013-08-02", "whistleblowing", "other", False),  # not validated
            ("B", "2012-06-01", "whistleblowing", "other", True),  # outside 12 months
            ("B", "2013-01-05", "qsg_concern", "other", True),
            ("A", "2013-02-01", "complaint", "death", False),
            ("A", "2013-03-01", "complaint", "other", True),
            ("B", "2013-05-01", "complaint", "serious_injury", True),
            ("B", "2013-10-01", "complaint", "death", True),  # after the quarter
        ],
        columns=["trust_code", "received_date", "source", "severity", "validated"],
    )
    activity = pd.Series({"A": 20000.0, "B": 40000.0, "C": 10000.0})
    rows = derive_intelligence(intel, "2013Q3", ["A", "B", "C"], activity)
    assert list(rows.columns) == INDICATOR_COLUMNS
    r = rows.set_index(["indicator_id", "trust_code"])
    assert r.loc[("intel_whistleblowing", "A"), "numerator"] == 1
    assert r.loc[("intel_whistleblowing", "B"), "numerator"] == 0
    assert r.loc[("intel_qsg_concern", "B"), "numerator"] == 1
    assert r.loc[("intel_qsg_concern", "C"), "numerator"] == 0
    assert r.loc[("intel_complaints_rate", "A"), "numerator"] == 2
    np.testing.assert_allclose(r.loc[("intel_complaints_rate", "A"), "value"], 1000 * 2 / 20000)
    assert r.loc[("intel_complaints_harm", "A"), "numerator"] == 1
    assert r.loc[("intel_complaints_harm", "B"), "numerator"] == 1
    assert r.loc[("intel_complaints_harm", "B"), "denominator"] == 40000
    no_activity = derive_intelligence(intel, "2013Q3", ["A", "B", "C"])
    assert "intel_complaints_rate" not in set(no_activity["indicator_id"])
