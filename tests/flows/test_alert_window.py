"""Publishing the monitored window (alerts.csv: every signal of the 12 months) leaves the
mortality-alert flag and the bands as they were when alerts.csv held the quarter's signals only.

The small 2013Q3 bundle of the flow tests, with the alert charts' false-alarm target raised to
5% (thresholds by simulation) so that several trusts have alerts before the quarter and some
only there: the case where counting the window instead of the quarter would change flags.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surveillance import pipeline
from surveillance.mortality import partials
from surveillance.mortality.monitor import CusumSettings, monitor_charts
from surveillance.periods import Quarter

QUARTER = "2013Q3"
MONTHS = Quarter.parse(QUARTER).months()


@pytest.fixture(scope="module")
def stages(small_bundles):
    """The stages before mortality, run once."""
    catalogue = pipeline.load_catalogue()
    bundle = pipeline.load(small_bundles[QUARTER])
    assembly = pipeline.assemble_sources(bundle, catalogue, QUARTER)
    validated = pipeline.validate(bundle, assembly, catalogue, QUARTER, quarantine=False)
    derived = pipeline.derive(validated.bundle, catalogue, QUARTER)
    return catalogue, assembly, validated, derived


def _outputs(stages):
    catalogue, assembly, validated, derived = stages
    mort = pipeline.mortality(validated.bundle, catalogue, QUARTER)
    flags = pipeline.assess_flags(validated, derived, mort, assembly, catalogue, QUARTER)
    bands = pipeline.band(flags, validated.bundle.trusts, QUARTER)
    return mort.alerts, flags, bands


def test_window_alerts_leave_flags_and_bands_unchanged(stages, monkeypatch):
    settings = CusumSettings(target=0.05, threshold_method="simulation", n_sims=2000)
    monkeypatch.setattr(partials, "load_cusum_settings", lambda: settings)
    charts_run = []

    def recorded(charts, settings, surface, current):
        charts_run.append(monitor_charts(charts, settings, surface, current))
        return charts_run[-1]

    monkeypatch.setattr(partials, "monitor_charts", recorded)
    alerts, flags, bands = _outputs(stages)

    # the quarter-only computation: the monitor as it was, publishing the quarter's rows only
    # (the same charts and thresholds, so the first run's are reused rather than simulated again)
    def quarter_only(charts, settings, surface, current):
        ((table, run),) = charts_run
        return table[table["signal_month"].isin(current)].reset_index(drop=True), run

    monkeypatch.setattr(partials, "monitor_charts", quarter_only)
    old_alerts, old_flags, old_bands = _outputs(stages)

    in_quarter = alerts["signal_month"].isin(MONTHS)
    pd.testing.assert_frame_equal(old_alerts, alerts[in_quarter].reset_index(drop=True))
    # the premise: trusts whose alerts all fall before the quarter (their flag would flip if
    # the window were counted)
    before_only = set(alerts["trust_code"]) - set(alerts.loc[in_quarter, "trust_code"])
    assert len(before_only) >= 3

    pd.testing.assert_frame_equal(flags, old_flags)
    pd.testing.assert_frame_equal(bands, old_bands)

    # the mortality-alert flag against a count of its own: alerts signalled in the quarter
    mort_alert = flags[flags["indicator_id"] == "mort_alert"].set_index("trust_code")
    counted = alerts[in_quarter].groupby("trust_code").size()
    applicable = mort_alert["flag"] != "not_applicable"
    want = np.where(
        counted.reindex(mort_alert.index, fill_value=0).to_numpy() >= 1,
        "elevated_risk",
        "no_evidence",
    )
    assert (mort_alert.loc[applicable, "flag"].to_numpy() == want[applicable.to_numpy()]).all()
    assert (mort_alert.loc[sorted(before_only), "flag"] == "no_evidence").all()
