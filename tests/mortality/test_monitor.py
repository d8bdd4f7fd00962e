"""RA-CUSUM monitoring: hand-computed chart path, alert rows and statuses, in-control false
alarms, detection of a planted odds-ratio-2 step, monthly entry point, determinism."""

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
    table = signal_table(charts, h, signal, value, settings)
    assert list(table.columns[: len(ALERT_COLUMNS)]) == ALERT_COLUMNS
    row = table.iloc[0]
    assert (row["trust_code"], row["diagnosis_group"], row["signal_month"]) == ("A", "G", "2012-11")
    assert row["observed"] == 3 and row["expected"] == pytest.approx(0.9)
    assert row["status"] == "new" and row["threshold"] == 1.0
    # zero restart
    stat0, _, _ = run_charts(charts, h, CusumSettings(restart="zero"))
    assert stat0[3] == 0.0


def test_persisting_when_the_chart_signalled_in_an_earlier_month(make_chart_frame):
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
    table = signal_table(charts, h, signal, value, settings)
    assert table["signal_month"].tolist() == ["2012-10", "2012-11", "2013-04"]
    assert table["status"].tolist() == ["new", "persisting", "persisting"]
    # W(death, p=.05) = 0.644: October 4 deaths reach 2.58 (one signal, restart 1.0);
    # November 1.64, 2.29 (signal, restart 1.0), 1.64, 2.29 (signal): two signals
    assert table["signals_in_month"].tolist() == [1, 2, 2]


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


def test_quarter_alerts_and_monthly_entry_point(spells, model, p, surface, planted):
    window = monitor(spells, p, "2013Q3", surface=surface, report="window")
    quarter = monitor(spells, p, "2013Q3", surface=surface)
    assert list(quarter.columns[: len(ALERT_COLUMNS)]) == ALERT_COLUMNS
    assert set(quarter["signal_month"]) <= {"2013-07", "2013-08", "2013-09"}
    pd.testing.assert_frame_equal(
        quarter, window[window["signal_month"] >= "2013-07"].reset_index(drop=True)
    )
    planted = planted[0]
    hit = window[
        (window["trust_code"] == planted.trust_code)
        & (window["diagnosis_group"] == planted.diagnosis_group)
    ]
    assert len(hit) and hit["signal_month"].min() >= planted.start_month
    assert (window["status"].isin(["new", "persisting"])).all()
    sep = monitor_month(spells, model, "2013-09", surface=surface)
    pd.testing.assert_frame_equal(
        sep, window[window["signal_month"] == "2013-09"].reset_index(drop=True)
    )
    again = monitor(spells, p, "2013Q3", surface=surface)
    pd.testing.assert_frame_equal(again, quarter)


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
