"""Monthly paths of alerted RA-CUSUM charts: they reproduce the alerts and the monthly counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surveillance.mortality.monitor import CusumSettings
from surveillance.reports.paths import PATH_COLUMNS, alert_paths


def _frame(trust, group, day, died) -> pd.DataFrame:
    d = np.datetime64("2012-10-01") + np.asarray(day).astype("timedelta64[D]")
    n = len(day)
    return pd.DataFrame(
        {
            "trust_code": trust,
            "diagnosis_group": group,
            "admission_date": d.astype("datetime64[ns]"),
            "discharge_date": d.astype("datetime64[ns]"),
            "died_30d": np.asarray(died).astype(bool),
            "palliative_care": np.zeros(n, bool),
            "comorbidity": np.zeros(n, np.int16),
        }
    )


def test_hand_computed_chart():
    """Four deaths at p = 0.05 in October 2012: W = log(2 / 1.05) = 0.6444 each, so the chart
    reaches 0.644, 1.289, 1.933, 2.578: a signal (h = 2) with peak 2.578, then restart at 1."""
    spells = _frame(["A"] * 5, ["G"] * 5, [0, 1, 2, 3, 40], [1, 1, 1, 1, 0])
    p = np.full(5, 0.05)
    alerts = pd.DataFrame(
        {
            "trust_code": ["A"],
            "diagnosis_group": ["G"],
            "signal_month": ["2012-10"],
            "threshold": [2.0],
            "cusum": [4 * np.log(2 / 1.05)],
        }
    )
    path = alert_paths(spells, p, alerts, "2013Q3", settings=CusumSettings(restart="half"))
    assert list(path.columns) == PATH_COLUMNS
    assert path["month"].tolist() == ["2012-10", "2012-11"]
    assert path["cusum"].iloc[0] == pytest.approx(4 * np.log(2 / 1.05), rel=1e-12)
    # November: one survivor from the restart value h/2 = 1: 1 + log(1 / 1.05).
    assert path["cusum"].iloc[1] == pytest.approx(1 + np.log(1 / 1.05), rel=1e-12)
    assert path["signal"].tolist() == [True, False]
    assert path["observed"].tolist() == [4, 0]
    assert path["expected"].tolist() == pytest.approx([0.2, 0.05])


def test_paths_reproduce_monitor_alerts():
    from surveillance.mortality.encode import encode_spells, month_number
    from surveillance.mortality.monitor import build_charts, run_charts, signal_table

    rng = np.random.default_rng(3)
    n = 6000
    trust = rng.choice(["A", "B", "C"], n)
    group = rng.choice(["G1", "G2"], n)
    day = rng.integers(-60, 364, n)  # some spells before the window start (2012-10-01)
    p = np.clip(rng.beta(1, 12, n), 1e-3, 0.9)
    boost = (trust == "B") & (group == "G2") & (day > 150)
    died = rng.random(n) < np.where(boost, np.minimum(3 * p, 0.95), p)
    spells = _frame(trust, group, day, died)
    enc = encode_spells(spells, "died_30d", "discharge_date")
    charts = build_charts(enc, p, month_number("2013-09"), 12)
    h = np.full(len(charts.volume), 3.0)
    settings = CusumSettings()
    _, signal, value = run_charts(charts, h, settings)
    alerts = signal_table(charts, h, signal, value, settings, ["2013-07", "2013-08", "2013-09"])
    assert len(alerts) > 0 and (alerts["signal_month"] < "2013-07").any()  # window rows
    path = alert_paths(spells, p, alerts, "2013Q3", settings=settings)
    assert set(zip(path.trust_code, path.diagnosis_group, strict=True)) == set(
        zip(alerts.trust_code, alerts.diagnosis_group, strict=True)
    )
    for a in alerts.itertuples():
        row = path[
            (path.trust_code == a.trust_code)
            & (path.diagnosis_group == a.diagnosis_group)
            & (path.month == a.signal_month)
        ]
        assert bool(row.signal.iloc[0])
        assert row.cusum.iloc[0] >= a.cusum - 1e-12 and row.cusum.iloc[0] >= a.threshold
    # Monthly counts against an independent group-by of the window's spells.
    in_window = (spells.discharge_date >= "2012-10-01") & (spells.discharge_date <= "2013-09-30")
    s = spells[in_window].assign(
        p=p[in_window.to_numpy()], month=spells.discharge_date.dt.strftime("%Y-%m")
    )
    want = s.groupby(["trust_code", "diagnosis_group", "month"]).agg(
        o=("died_30d", "sum"), e=("p", "sum")
    )
    got = path.set_index(["trust_code", "diagnosis_group", "month"])
    np.testing.assert_array_equal(got.observed, want.loc[got.index, "o"])
    np.testing.assert_allclose(got.expected, want.loc[got.index, "e"], rtol=1e-12)
    # Signal months are exactly the alert months.
    sig = got[got.signal].index
    assert set(sig) == set(
        zip(alerts.trust_code, alerts.diagnosis_group, alerts.signal_month, strict=True)
    )


def test_no_alerts_no_paths():
    spells = _frame(["A"], ["G"], [0], [0])
    out = alert_paths(
        spells,
        np.array([0.1]),
        pd.DataFrame(columns=["trust_code", "diagnosis_group", "threshold"]),
        "2013Q3",
    )
    assert out.empty and list(out.columns) == PATH_COLUMNS


def test_multi_part_detector_alerts_are_not_redrawn_as_one_cusum():
    """An O/E-test alert's threshold is a death count: redrawing it as a CUSUM would mislead."""
    from surveillance.errors import SurveillanceError

    alerts = pd.DataFrame(
        {
            "trust_code": ["T1"],
            "diagnosis_group": ["G"],
            "signal_month": ["2013-09"],
            "threshold": [41.0],
            "detector": ["oe_test"],
        }
    )
    with pytest.raises(SurveillanceError, match="oe_test"):
        alert_paths(pd.DataFrame({"trust_code": ["T1"]}), np.zeros(1), alerts, "2013Q3")
