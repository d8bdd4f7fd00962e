"""RA-CUSUM monitoring: hand-computed chart path, alert rows and statuses over the 12-month
window (first_signal_month, new vs persisting), in-control false alarms, detection of a planted
odds-ratio-2 step, monthly entry point, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from surveillance.mortality.encode import encode_spells, month_number
from surveillance.mortality.monitor import (
    ALERT_COLUMNS,
    CusumSettings,
    build_charts,
    count_floor,
    monitor,
    monitor_month,
    run_charts,
    signal_table,
)
from surveillance.periods import Quarter

Q3 = Quarter.parse("2013Q3").months()


def test_hand_computed_chart_path(make_chart_frame):
    # chart A (trust A): p, y and days; chart B (trust B) interleaved in the input
    frame = make_chart_frame(
        trust=np.array(["A", "B", "A", "A", "B", "A", "A"]),
        group=np.array(["G"] * 7),
        day=np.array([0, 1, 10, 20, 30, 40, 50]),
        died=np.array([1, 0, 0, 1, 1, 1, 0]),
    )
    p = np.array([0.1, 0.5, 0.2, 0.5, 0.5, 0.1, 0.3])
    enc = encode_spells(frame, "died_30d", "discharge_date")
    charts = build_charts(enc, p, month_number("2013-09"), 12)
    settings = CusumSettings()
    h = np.array([1.0, 1.0])
    stat, signal, value = run_charts(charts, h, settings)
    # by hand, R = 2: death W = log(2 / (1 + p)), survival W = -log(1 + p)
    # A: +0.597837 (p .1 died), -0.182322 (p .2), +0.287682 (p .5 died), +0.597837 (p .1 died)
    #    -> 1.301034 >= h = 1: signal, restart at h/2 = 0.5; then -0.262364 (p .3) -> 0.237636
    # B: max(0, -0.405465) = 0, then +0.287682
    np.testing.assert_allclose(
        stat, [0.597837, 0.415515, 0.703197, 0.5, 0.237636, 0.0, 0.287682], atol=1e-6
    )
    assert signal.tolist() == [False, False, False, True, False, False, False]
    assert value[3] == pytest.approx(1.301034, abs=1e-6)
    table = signal_table(charts, h, signal, value, settings, Q3)
    assert list(table.columns[: len(ALERT_COLUMNS)]) == ALERT_COLUMNS
    row = table.iloc[0]
    assert (row["trust_code"], row["diagnosis_group"], row["signal_month"]) == ("A", "G", "2012-11")
    assert row["first_signal_month"] == "2012-11"
    assert row["observed"] == 3 and row["expected"] == pytest.approx(0.9)
    # first signal in 2012-11: persisting in the 2013Q3 run, new in a 2012Q4 or 2012-11 run
    assert row["status"] == "persisting" and row["threshold"] == 1.0
    for current in (Quarter.parse("2012Q4").months(), ["2012-11"]):
        assert signal_table(charts, h, signal, value, settings, current)["status"].tolist() == [
            "new"
        ]
    # zero restart
    stat0, _, _ = run_charts(charts, h, CusumSettings(restart="zero"))
    assert stat0[3] == 0.0


def test_status_is_the_charts_first_signal_against_the_current_period(make_chart_frame):
    n = 12
    frame = make_chart_frame(
        trust=np.array(["A"] * n),
        group=np.array(["G"] * n),
        day=np.array([0, 1, 2, 3, 40, 41, 42, 43, 200, 201, 202, 203]),
        died=np.ones(n),
    )
    p = np.full(n, 0.05)
    enc = encode_spells(frame, "died_30d", "discharge_date")
    charts = build_charts(enc, p, month_number("2013-09"), 12)
    settings = CusumSettings()
    h = np.array([2.0])
    _, signal, value = run_charts(charts, h, settings)
    table = signal_table(charts, h, signal, value, settings, Q3)
    assert table["signal_month"].tolist() == ["2012-10", "2012-11", "2013-04"]
    # the status belongs to the chart: first signal 2012-10, before 2013Q3, so every row persists
    assert table["first_signal_month"].tolist() == ["2012-10"] * 3
    assert table["status"].tolist() == ["persisting"] * 3
    # in a run whose current period holds 2012-10 every row of the chart is new, the later
    # months' rows too (the chart's first signal falls in the period)
    in_q4 = signal_table(charts, h, signal, value, settings, Quarter.parse("2012Q4").months())
    assert in_q4["status"].tolist() == ["new"] * 3
    # W(death, p=.05) = 0.644: October 4 deaths reach 2.58 (one signal, restart 1.0);
    # November 1.64, 2.29 (signal, restart 1.0), 1.64, 2.29 (signal): two signals
    assert table["signals_in_month"].tolist() == [1, 2, 2]


def _year_of_charts(bursts: dict[str, list[str]], n_per_chart: int = 400, risk: float = 0.02):
    """Charts ``A``, ``B``, ... of 2013 (patients evenly spread, ties in input order), every
    patient surviving except 12 consecutive deaths from the 3rd of each month in ``bursts``."""
    day = np.linspace(0, 364.99, n_per_chart).astype(int)
    dates = np.datetime64("2013-01-01") + day.astype("timedelta64[D]")
    frames = []
    for trust, months in bursts.items():
        died = np.zeros(n_per_chart, bool)
        for month in months:
            start = int(np.searchsorted(dates, np.datetime64(f"{month}-03")))
            died[start : start + 12] = True
        frames.append(
            pd.DataFrame(
                {
                    "trust_code": trust,
                    "diagnosis_group": "G",
                    "admission_date": dates.astype("datetime64[ns]"),
                    "discharge_date": dates.astype("datetime64[ns]"),
                    "died_30d": died,
                    "palliative_care": False,
                    "comorbidity": np.zeros(n_per_chart, np.int16),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame, np.full(len(frame), risk)


def test_window_alerts_keep_a_signal_that_restarted_before_the_quarter(surface):
    """DESIGN.md section 6: alerts.csv lists every signal of the 12-month window. A signals in
    May 2013 (month 5 of 2013Q4's window) and restarts below h with no later signal; B first
    signals in November; C signals in May and in November."""
    frame, p = _year_of_charts({"A": ["2013-05"], "B": ["2013-11"], "C": ["2013-05", "2013-11"]})
    table = monitor(frame, p, "2013Q4", surface=surface)
    got = table[["trust_code", "signal_month", "first_signal_month", "status"]]
    assert got.to_records(index=False).tolist() == [
        ("A", "2013-05", "2013-05", "persisting"),
        ("B", "2013-11", "2013-11", "new"),
        ("C", "2013-05", "2013-05", "persisting"),  # first signal in May: both rows persist
        ("C", "2013-11", "2013-05", "persisting"),
    ]
    # the numbers at A's signal, by hand: every death adds W = log(2 / 1.02), survivors
    # -log(1.02); A is at 0 before its burst, so it signals at death k = ceil(h / W)
    h = float(table["threshold"].iat[0])
    w = np.log(2 / 1.02)
    k = int(np.ceil(h / w))
    assert k <= 12  # the burst crosses h: the premise of the test
    row = table.iloc[0]
    assert row["observed"] == k and row["cusum"] == pytest.approx(k * w)
    deaths = np.flatnonzero(frame.loc[frame["trust_code"] == "A", "died_30d"].to_numpy())
    assert row["expected"] == pytest.approx(0.02 * (deaths[k - 1] + 1))
    # the charts are identical up to November, so A's and C's May rows agree
    cols = ["signal_month", "cusum", "threshold", "observed", "expected"]
    assert table.iloc[0][cols].tolist() == table.iloc[2][cols].tolist()
    # the quarter-only view (what the mortality-alert indicator counts): November rows only
    quarter = monitor(frame, p, "2013Q4", surface=surface, report="quarter")
    assert quarter["trust_code"].tolist() == ["B", "C"]
    assert quarter["status"].tolist() == ["new", "persisting"]
    with pytest.raises(ValueError, match="report"):
        monitor(frame, p, "2013Q4", surface=surface, report="month")


def _frame(trust, group, day, died):
    d = np.datetime64("2012-10-01") + day.astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "trust_code": trust,
            "diagnosis_group": group,
            "admission_date": d.astype("datetime64[ns]"),
            "discharge_date": d.astype("datetime64[ns]"),
            "died_30d": died.astype(bool),
            "palliative_care": np.zeros(len(day), bool),
            "comorbidity": np.zeros(len(day), np.int16),
        }
    )


def _simulated_charts(n_charts, n_per_year, mean_risk, odds_ratio, step_day, seed):
    rng = np.random.default_rng(seed)
    n = n_charts * n_per_year
    p = np.clip(expit(logit(mean_risk) - 0.3 + rng.normal(0, 0.8, n)), 1e-4, 0.95)
    day = np.tile(np.sort(rng.integers(0, 365, n_per_year)), n_charts)
    chart = np.repeat(np.arange(n_charts), n_per_year)
    odds = p / (1 - p) * np.where(day >= step_day, odds_ratio, 1.0)
    died = rng.random(n) < odds / (1 + odds)
    frame = _frame(np.char.add("T", chart.astype(str)), np.array(["G"] * n), day, died)
    return frame, p


def test_in_control_charts_rarely_alarm(surface):
    frame, p = _simulated_charts(600, 500, 0.1, 1.0, 10_000, seed=1)
    al = monitor(frame, p, "2013Q3", surface=surface, report="window")
    charts_alarmed = al["trust_code"].nunique()
    # target 0.1% per chart-year: 0.6 expected; 5 or more has probability < 0.001 at 2x target
    assert charts_alarmed <= 4


def test_planted_odds_ratio_2_step_is_detected(surface):
    # 1000 patients a year at mean risk ~0.09: about 90 expected deaths a year; step at month 4
    # (at 50 a year the detection rate within 6 months is about one half: benchmarks/detection)
    frame, p = _simulated_charts(100, 1000, 0.1, 2.0, 120, seed=2)
    al = monitor(frame, p, "2013Q3", surface=surface, report="window")
    first = al.groupby("trust_code")["signal_month"].min()
    detected = (first <= "2013-07").sum()  # within ~6 months of the step (2013-01-29)
    before = (first < "2013-01").sum()
    assert detected >= 80
    assert before <= 2


def test_thresholds_follow_the_case_mix(surface):
    frame, p = _simulated_charts(2, 2000, 0.02, 1.0, 10_000, seed=3)
    frame2, p2 = _simulated_charts(2, 200, 0.02, 1.0, 10_000, seed=3)
    enc = encode_spells(frame, "died_30d", "discharge_date")
    enc2 = encode_spells(frame2, "died_30d", "discharge_date")
    from surveillance.mortality.monitor import chart_thresholds

    big = chart_thresholds(
        build_charts(enc, p, month_number("2013-09"), 12), CusumSettings(), surface
    )
    small = chart_thresholds(
        build_charts(enc2, p2, month_number("2013-09"), 12), CusumSettings(), surface
    )
    assert np.all(big > small + 1.0)


def test_count_floor_blocks_single_death_alarms():
    s = CusumSettings()
    floor = count_floor(np.array([0.0005, 0.01, 0.1]), s)
    # E = 0.0005: one death has probability < 0.001, no floor; E = 0.01: needs 2 deaths;
    # E = 0.1: P(>= 2) = 0.0047 > 0.001, P(>= 3) = 0.00015: needs 3 deaths
    np.testing.assert_allclose(floor, np.array([0, 1, 2]) * np.log(2) + 1e-9)


def test_window_alerts_and_monthly_entry_point(spells, model, p, surface, planted):
    window = monitor(spells, p, "2013Q3", surface=surface)
    assert list(window.columns[: len(ALERT_COLUMNS)]) == ALERT_COLUMNS
    assert set(window["signal_month"]) <= set(Quarter.parse("2013Q3").lookback_months(12))
    first = window.groupby(["trust_code", "diagnosis_group"])["signal_month"].transform("min")
    assert (window["first_signal_month"] == first).all()
    assert (window["status"] == np.where(first.isin(Q3), "new", "persisting")).all()
    planted = planted[0]
    hit = window[
        (window["trust_code"] == planted.trust_code)
        & (window["diagnosis_group"] == planted.diagnosis_group)
    ]
    # the planted chart first signals before the quarter (2013-04): kept, as persisting
    assert len(hit) and hit["signal_month"].min() >= planted.start_month
    assert hit["first_signal_month"].iat[0] < "2013-07" and (hit["status"] == "persisting").all()
    quarter = monitor(spells, p, "2013Q3", surface=surface, report="quarter")
    pd.testing.assert_frame_equal(
        quarter, window[window["signal_month"].isin(Q3)].reset_index(drop=True)
    )
    # the monthly run: the same window to 2013-09, "new" meaning a first signal in 2013-09
    sep = monitor_month(spells, model, "2013-09", surface=surface)
    want = window.assign(
        status=np.where(window["first_signal_month"] == "2013-09", "new", "persisting")
    )
    pd.testing.assert_frame_equal(sep, want)
    # the window to 2013-04 ends with the planted chart's first signal: new there
    april = monitor_month(spells, model, "2013-04", surface=surface)
    mine = april[april["trust_code"] == planted.trust_code]
    assert mine[["signal_month", "first_signal_month", "status"]].values.tolist() == [
        ["2013-04", "2013-04", "new"]
    ]
    again = monitor(spells, p, "2013Q3", surface=surface)
    pd.testing.assert_frame_equal(again, window)


def test_simulation_thresholds_agree_with_surface(surface):
    frame, p = _simulated_charts(3, 400, 0.08, 1.0, 10_000, seed=4)
    enc = encode_spells(frame, "died_30d", "discharge_date")
    charts = build_charts(enc, p, month_number("2013-09"), 12)
    from surveillance.mortality.monitor import chart_thresholds

    sim_h = chart_thresholds(
        charts, CusumSettings(threshold_method="simulation", n_sims=40_000), None
    )
    surf_h = chart_thresholds(charts, CusumSettings(), surface)
    np.testing.assert_allclose(sim_h, surf_h, rtol=0.08)


def test_settings_from_yaml(tmp_path):
    from surveillance.errors import ConfigError
    from surveillance.mortality.monitor import load_cusum_settings

    assert load_cusum_settings() == CusumSettings()
    bad = tmp_path / "m.yaml"
    bad.write_text("odds_ratio: 0.5\n")
    with pytest.raises(ConfigError, match="m.yaml"):
        load_cusum_settings(bad)
