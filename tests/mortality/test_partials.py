"""The mortality stage over row chunks (Dask partitions) gives the single-pass tables exactly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from surveillance.mortality import run_mortality
from surveillance.mortality.monitor import build_charts, load_cusum_settings, monitor_charts
from surveillance.mortality.partials import run_chunked, run_in_memory
from surveillance.mortality.risk_model import RiskModel
from surveillance.reports.paths import alert_paths, paths_from_run

QUARTER = "2013Q3"


def _apply_over(spells: pd.DataFrame, bounds: list[int]):
    """An ``apply`` over the row chunks [bounds[i], bounds[i+1])."""

    def apply(func, *args, columns=None):
        return [
            func(spells.iloc[a:b], a, *args) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    return apply


@pytest.fixture(scope="module")
def single(spells, surface):
    """The single-pass result (the whole frame as one chunk)."""
    return run_mortality(spells, QUARTER, RiskModel().fit(spells, end=QUARTER), surface=surface)


@pytest.mark.parametrize("n_chunks", [2, 7])
def test_chunked_run_equals_single_pass_exactly(spells, surface, single, n_chunks):
    rng = np.random.default_rng(n_chunks)
    inner = np.sort(rng.choice(np.arange(1, len(spells)), n_chunks - 1, replace=False))
    bounds = [0, *inner.tolist(), len(spells)]
    apply = _apply_over(spells, bounds)

    def apply_reduce(func, combine, *args, columns=None):  # pairwise, neighbours first
        level = apply(func, *args)
        while len(level) > 1:
            level = [combine(level[i : i + 2]) for i in range(0, len(level), 2)]
        return level[0]

    run = run_chunked(apply, apply_reduce, QUARTER, surface=surface)
    assert json.dumps(run.model.to_dict(), default=str) == json.dumps(
        RiskModel().fit(spells, end=QUARTER).to_dict(), default=str
    )
    for name in ("mortality", "alerts", "indicators", "flags", "quality"):
        pd.testing.assert_frame_equal(
            getattr(run, name), getattr(single, name), check_exact=True, obj=name
        )
    assert len(single.alerts) > 0  # the planted deterioration signals: the charts are compared


def test_chunks_outside_the_alert_models_fit_window(spells, surface):
    """Spells in date order: the last chunks hold only monitored months (none of the alert
    model's phase I fit window); the chunked run still equals the single pass, baseline included."""
    by_date = spells.sort_values("discharge_date", kind="stable").reset_index(drop=True)
    bounds = np.linspace(0, len(by_date), 6).astype(int).tolist()
    apply = _apply_over(by_date, bounds)

    def apply_reduce(func, combine, *args, columns=None):
        return combine(apply(func, *args))

    run = run_chunked(apply, apply_reduce, QUARTER, surface=surface)
    one = run_mortality(by_date, QUARTER, RiskModel().fit(by_date, end=QUARTER), surface=surface)
    pd.testing.assert_frame_equal(run.alerts, one.alerts, check_exact=True)
    assert run.alert_model.baseline_.method == "typical_trust"
    one_run = run_in_memory(by_date, QUARTER, surface=surface)
    assert np.array_equal(run.alert_model.baseline_.shift, one_run.alert_model.baseline_.shift)
    # the phase I palliative-coding rates (counted in the fit pass) agree exactly too
    a, b = run.alert_model.palliative_rates_, one_run.alert_model.palliative_rates_
    assert np.array_equal(a.trust_ratio, b.trust_ratio) and np.array_equal(
        a.group_rate, b.group_rate
    )


def test_chunked_sums_match_an_independent_computation(spells, p, single):
    """Expected deaths per trust (ALL) against math.fsum of the model's risks."""
    import math

    from surveillance.mortality.encode import as_dates, days_to_months, month_number
    from surveillance.periods import Quarter

    end = month_number(Quarter.parse(QUARTER).end)
    month = days_to_months(as_dates(spells, "discharge_date"))
    window = (month <= end) & (month > end - 12)
    table = single.mortality.set_index(["trust_code", "diagnosis_group"])
    codes = spells["trust_code"].astype(str).to_numpy()
    for trust in np.unique(codes)[:5]:
        sel = window & (codes == trust)
        want = math.fsum(p[sel])
        assert table.loc[(trust, "ALL"), "expected"] == pytest.approx(want, rel=1e-15, abs=0)
        assert table.loc[(trust, "ALL"), "observed"] == int(
            spells["died_30d"].to_numpy()[sel].sum()
        )


def test_paths_from_the_monitor_run_equal_a_rerun_of_the_alerted_charts(spells, p, model, surface):
    from surveillance.mortality.encode import encode_spells, month_number
    from surveillance.periods import Quarter

    settings = load_cusum_settings()
    q = Quarter.parse(QUARTER)
    charts = build_charts(
        encode_spells(spells, "died_30d", "discharge_date"), p, month_number(q.end), 12
    )
    alerts, chart_run = monitor_charts(charts, settings, surface, q.months())
    assert len(alerts)
    got = paths_from_run(chart_run, alerts)
    want = alert_paths(spells, p, alerts, QUARTER, settings=settings)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert paths_from_run(None, alerts).empty and paths_from_run(chart_run, alerts.iloc[:0]).empty
