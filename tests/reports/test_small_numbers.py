"""No page of the site exposes a patient count of 1 to 4 (DESIGN.md section 6), read back as an
outsider would (tests/reports/leakcheck.py), and the check itself catches unsuppressed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from leakcheck import small_count_leaks, vlad_count

import surveillance.reports.site as site_module
from surveillance.reports import build_site
from surveillance.reports.suppress import (
    SafeSeries,
    complementary_suppression,
    counts_patients,
    safe_periods,
    safe_series,
)


def test_site_exposes_no_small_patient_count(site: Path, fixture_run: Path):
    assert small_count_leaks(site, fixture_run) == []
    # the read-back saw the VLAD figures of the alerted charts with paths (RAA AMI, RCC STROKE,
    # RFF AMI), so a clean result is not an empty one
    assert vlad_count(site) == 3


def _unsuppressed_series(months, observed, expected, cusum=None):
    """safe_series without the grouping: every month drawn (what the reports did before)."""
    o, e = np.asarray(observed, float), np.asarray(expected, float)
    path = None if cusum is None else np.asarray(cusum, float)
    return SafeSeries(list(months), list(months), np.cumsum(e - o), path, "")


@pytest.mark.parametrize(
    ("target", "replacement", "expect"),
    [
        ("safe_series", _unsuppressed_series, "VLAD"),
        ("suppress_count", lambda v: "" if pd.isna(v) else f"{float(v):,.0f}", "observed"),
        ("complementary_suppression", lambda observed, total_key="ALL": set(), "ALL - others"),
    ],
)
def test_leak_check_catches_unsuppressed_values(
    fixture_run: Path, catalogue, tmp_path: Path, monkeypatch, target, replacement, expect
):
    """The check must be able to fail: a site rendered with one layer of suppression switched off
    leaks, and the check names how."""
    monkeypatch.setattr(site_module, target, replacement)
    out = build_site(fixture_run, tmp_path / "reports", catalogue=catalogue).parent
    leaks = small_count_leaks(out, fixture_run)
    assert leaks, target
    assert any(expect in leak for leak in leaks), leaks[:5]


def test_vlad_grouping_hides_every_small_month():
    deaths = np.array([0, 1, 0, 2, 3, 0, 0, 6, 1, 0, 0, 0])
    periods = safe_periods(deaths)
    assert periods == [(0, 0), (1, 4), (5, 5), (6, 6), (7, 11)]
    for a, b in periods:
        assert deaths[a : b + 1].sum() == 0 or deaths[a : b + 1].sum() >= 5
    assert safe_periods([0, 1, 0, 3]) is None  # 4 deaths in all: nothing can be drawn
    # a small remainder after a month of 0 deaths reaches back past it to a period of 5+
    # (found on the synthetic nation: R70's chart ended 0, 1 after a period of 5)
    assert safe_periods([0, 1, 3, 1, 0, 1]) == [(0, 0), (1, 5)]
    assert safe_periods([5, 0, 0, 2]) == [(0, 3)]
    months = [f"2013-{m:02d}" for m in range(1, 13)]
    expected = np.full(12, 0.5)
    s = safe_series(months, deaths, expected)
    assert s.months == ["2013-01", "2013-05", "2013-06", "2013-07", "2013-12"]
    # VLAD at the end of each period: cumulative expected minus observed
    np.testing.assert_allclose(s.vlad, [0.5, 2.5 - 6, 3.0 - 6, 3.5 - 6, 6.0 - 13])
    assert "grouped into 5 periods" in s.note


def test_complementary_suppression_protects_the_total():
    # one small group: the next smallest is hidden too, so ALL - shown = 3 + 20 (not 3)
    assert complementary_suppression({"ALL": 100, "A": 3, "B": 20, "C": 77}) == {"B"}
    # two small groups summing to 4: a third is hidden
    assert complementary_suppression({"ALL": 100, "A": 3, "B": 1, "C": 40, "D": 56}) == {"C"}
    # nothing small: nothing hidden
    assert complementary_suppression({"ALL": 100, "A": 30, "B": 70}) == set()
    # only one group besides ALL: the total goes too
    assert complementary_suppression({"ALL": 3, "A": 3}) == {"ALL"}


def test_only_patient_counts_are_suppressed(site: Path):
    assert counts_patients("never_events", "count")
    assert counts_patients("shmi", "ratio")
    assert not counts_patients("nrls_consistency", "rule")  # a count of months
    assert not counts_patients("rn_fill_day", "proportion", "staffing")  # hours
    # soft intelligence counts people's cases (whistleblowing): suppressed
    assert counts_patients("intel_whistleblowing", "rule", "intelligence")
    # the data-quality rule counts late uploads (REE: 1, its only count-like flag): shown as 1
    ree = (site / "trusts" / "REE.html").read_text(encoding="utf-8")
    assert ">1 validated case(s)<" in ree and "&lt;5 validated case(s)" not in ree


def test_alert_on_few_expected_deaths_carries_a_caution(site: Path, fixture_run: Path):
    """The minimum-expected rule: REE's FRACTURED_NOF alert expected 0.9 deaths (< 1), so the
    trust page and the index say so; the alerts expecting more have no caution."""
    alerts = pd.read_csv(fixture_run / "alerts.csv", dtype=str, keep_default_na=False)
    cautioned = alerts[alerts["caution"] != ""]
    assert cautioned[["trust_code", "diagnosis_group"]].values.tolist() == [
        ["REE", "FRACTURED_NOF"]
    ]
    ree = (site / "trusts" / "REE.html").read_text(encoding="utf-8")
    assert (
        "<strong>Caution:</strong> few expected deaths: 0.9 expected against the minimum 1" in ree
    )
    # and in the one-screen summary, beside the new alert
    summary = ree.split('id="alerts-summary"')[1].split("</section>")[0]
    assert "0.9 expected; caution: few expected deaths)" in summary
    raa = (site / "trusts" / "RAA.html").read_text(encoding="utf-8")
    assert "Caution:" not in raa and "caution: few expected deaths" not in raa
    index = (site / "index.html").read_text(encoding="utf-8")
    assert index.count("caution: few expected deaths</span>") == 1
