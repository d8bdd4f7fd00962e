"""Figures fit for print (issue 16): real time axes, labelled thresholds and limits, legends for
point colours, outliers named, percentages for proportions, log scale for ratios spanning orders
of magnitude."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from surveillance.reports.figures import (
    FunnelFigure,
    FunnelLimits,
    cusum_svg,
    month_number,
    month_ticks,
    vlad_svg,
)


def _points(svg: str) -> list[tuple[float, float]]:
    pts = re.search(r'<polyline class="series" points="([^"]+)"', svg).group(1)
    return [tuple(map(float, p.split(","))) for p in pts.split()]


def test_cusum_months_sit_at_their_dates():
    # a gap (no patients in 2013-03 to 2013-05) is a gap on the axis, not an even step
    months = ["2013-01", "2013-02", "2013-06", "2013-07"]
    svg = cusum_svg(months, [0.5, 1.0, 2.0, 4.8], 4.62, [False, False, False, True], title="AMI")
    x = [p[0] for p in _points(svg)]
    step = x[1] - x[0]
    assert np.isclose(x[2] - x[1], 4 * step) and np.isclose(x[3] - x[2], step)
    assert "threshold h = 4.62" in svg  # the threshold line is labelled with its value
    assert ">signal month<" in svg and ">threshold h<" in svg and ">CUSUM<" in svg  # legend
    assert svg.count('class="signal"') == 1  # the signal month is marked
    assert ">Jan 2013<" in svg and ">Apr 2013<" in svg and ">Jul 2013<" in svg
    assert month_number("2013-01") - month_number("2012-12") == 1
    assert [t for _, t in month_ticks(month_number("2012-11"), month_number("2013-04"))] == [
        "Jan 2013",
        "Apr 2013",
    ]


def test_vlad_has_a_labelled_zero_line_and_its_values_as_data():
    svg = vlad_svg(["2013-01", "2013-02"], [0, 6], [0.5, 0.5], title="AMI: VLAD")
    assert "0 = as many deaths as expected" in svg
    assert 'data-months="2013-01 2013-02"' in svg and 'data-values="0.500 -5.000"' in svg


def _limits(x: np.ndarray, target: float, half: float) -> list[FunnelLimits]:
    return [
        FunnelLimits(lv, x, np.full_like(x, target - k * half), np.full_like(x, target + k * half))
        for lv, k in ((0.95, 1.0), (0.998, 1.6))
    ]


def test_funnel_legend_percent_and_outlier_labels():
    x = np.array([100.0, 200.0, 300.0, 400.0])
    y = np.array([0.80, 0.86, 0.97, 0.99])
    flags = ["elevated_risk", "risk", "no_evidence", "no_evidence"]
    fig = FunnelFigure(
        x,
        y,
        ["Trust A", "Trust B", "Trust C", "Trust D"],
        flags,
        0.95,
        _limits(np.linspace(10, 420, 20), 0.95, 0.05),
        title="fill",
        xlabel="planned hours",
        ylabel="proportion (%)",
        percent=True,
        label_outliers=True,
    )
    svg = fig.svg()
    assert ">no evidence<" in svg and ">risk<" in svg and ">elevated risk<" in svg  # point legend
    assert ">95% limits<" in svg and ">99.8% limits<" in svg
    assert ">target 95%<" in svg
    ticks = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
    assert "90%" in ticks and "0.9" not in ticks  # 90%, not 0.9
    named = re.findall(r'<text class="outlier"[^>]*>([^<]+)</text>', svg)
    assert sorted(named) == ["Trust A", "Trust B"]  # the flagged points, not the others


def test_ratio_spanning_orders_of_magnitude_is_drawn_on_a_log_scale():
    x = np.array([0.01, 0.5, 5.0, 50.0, 200.0])
    y = np.array([220.0, 4.0, 1.2, 0.9, 1.0])
    limits = _limits(np.linspace(0.01, 210, 30), 1.0, 0.2)
    log = FunnelFigure(
        x,
        y,
        list("abcde"),
        ["no_evidence"] * 5,
        1.0,
        limits,
        title="t",
        xlabel="expected",
        ylabel="observed / expected",
    )
    assert log.log and "(log scale)" in log.svg()
    ticks = re.findall(r'text-anchor="end">([^<]+)</text>', log.svg())
    assert {"1", "10", "100"} <= set(ticks)
    flat = FunnelFigure(
        x,
        np.array([1.3, 0.8, 1.2, 0.9, 1.0]),
        list("abcde"),
        ["no_evidence"] * 5,
        1.0,
        limits,
        title="t",
        xlabel="e",
        ylabel="o/e",
    )
    assert not flat.log


def test_ward_proportions_are_percentages(site: Path):
    raa = (site / "trusts" / "RAA.html").read_text(encoding="utf-8")
    assert ">84%</td>" in raa and ">0.840</td>" not in raa  # mean fill rate of ward 1
