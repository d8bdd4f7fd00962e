"""The site for a real quarterly run of the synthetic nation (161 trusts, the full catalogue):
every page present, links resolve, values agree with the run's tables, small counts suppressed,
and a sample of pages loads cleanly in headless Chromium with screenshots saved."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SCREENSHOTS
from markupsafe import escape
from sitecheck import broken_links, parse

from surveillance.reports.site import slugify

pytestmark = pytest.mark.slow


def test_demo_site_pages_and_links(demo_run: Path, demo_site: Path):
    bands = pd.read_csv(demo_run / "bands.csv", dtype=str)
    assert len(bands) == 161
    assert {p.stem for p in (demo_site / "trusts").glob("*.html")} == set(bands["trust_code"])
    assert {p.stem for p in (demo_site / "qsg").glob("*.html")} == {
        slugify(r) for r in bands["region"].unique()
    }
    problems, checked = broken_links(demo_site)
    assert problems == [] and checked > 5000
    for page in demo_site.rglob("*.html"):
        text = " ".join(parse(page).text)
        assert "screening tool" in text and "not a rating" in text, page


def test_demo_band_table_matches_bands_csv(demo_run: Path, demo_site: Path):
    info = parse(demo_site / "index.html")
    data = json.loads(next(s for s in info.scripts if s["attrs"].get("id") == "band-data")["body"])
    bands = pd.read_csv(demo_run / "bands.csv", dtype={"band": str, "trust_code": str})
    got = {r["trust_code"]: (r["band"], r["score"], r["risks"], r["elevated_risks"]) for r in data}
    want = {b.trust_code: (b.band, b.score, b.risks, b.elevated_risks) for b in bands.itertuples()}
    assert got == want


def test_demo_small_counts_suppressed(demo_run: Path, demo_site: Path):
    mort = pd.read_csv(demo_run / "mortality.csv", dtype={"trust_code": str})
    small = mort[(mort.observed >= 1) & (mort.observed <= 4)]
    assert len(small) > 0
    for (code, group), _ in list(small.groupby(["trust_code", "diagnosis_group"]))[:50]:
        html = (demo_site / "trusts" / f"{code}.html").read_text(encoding="utf-8")
        g = re.escape(str(escape(group)))
        row = re.search(rf'<tr data-group="{g}">(.*?)</tr>', html, re.S)
        assert row, (code, group)
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
        assert cells[1] == "&lt;5" and cells[3] == "suppressed", (code, group, cells)


def test_demo_alerts_have_cusum_and_vlad_charts(demo_run: Path, demo_site: Path, demo_bundle):
    if demo_bundle is None:
        pytest.skip("the demo run's input bundle is unknown (set SURVEILLANCE_BUNDLE_DIR)")
    alerts = pd.read_csv(demo_run / "alerts.csv", dtype={"trust_code": str})
    if alerts.empty:
        pytest.skip("the demo run has no mortality alerts this quarter")
    paths_file = demo_run / "cusum_paths.csv"
    if paths_file.is_file():
        paths = pd.read_csv(paths_file, dtype={"trust_code": str})
    else:
        from surveillance.reports import read_run
        from surveillance.reports.paths import alert_paths_from_bundle

        paths = alert_paths_from_bundle(demo_run, demo_bundle, alerts, read_run(demo_run).quarter)
    deaths = paths.groupby([paths["trust_code"].astype(str), "diagnosis_group"])["observed"].sum()
    for (code, group), _ in alerts.groupby(["trust_code", "diagnosis_group"]):
        html = (demo_site / "trusts" / f"{code}.html").read_text(encoding="utf-8")
        if 1 <= deaths[(code, group)] <= 4:
            # small-number suppression: a chart of 1-4 deaths in all is not drawn
            assert "the chart holds fewer than 5 deaths" in html, (code, group)
            continue
        assert f"{escape(group)}: risk-adjusted CUSUM" in html, (code, group)
        assert f"{escape(group)}: VLAD" in html, (code, group)


@pytest.mark.browser
def test_demo_pages_load_cleanly_in_chromium(browser, demo_run: Path, demo_site: Path):
    bands = pd.read_csv(demo_run / "bands.csv", dtype=str).sort_values(["band", "trust_code"])
    pages = [demo_site / "index.html", *sorted((demo_site / "qsg").glob("*.html"))]
    pages += [demo_site / "trusts" / f"{c}.html" for c in bands["trust_code"].iloc[::16]]
    pages += sorted((demo_site / "funnels").glob("*.html"))[::12]
    page = browser.open()
    try:
        for path in pages:
            report = page.goto(path.resolve().as_uri())
            assert report.problems == [], (path.relative_to(demo_site), report.problems)
        page.goto((demo_site / "index.html").resolve().as_uri())
        assert page.evaluate("document.querySelectorAll('#band-table tbody tr').length") == 161
        page.screenshot(SCREENSHOTS / "demo_index.png")
        # every band-1 page: the summary within the first 1,000 px at 1400 px wide
        page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
        )
        band1 = bands[bands["band"] == "1"].sort_values("trust_code")
        heights = {}
        for code in band1["trust_code"]:
            page.goto((demo_site / "trusts" / f"{code}.html").resolve().as_uri())
            bottom = page.evaluate(
                "document.getElementById('summary').getBoundingClientRect().bottom + scrollY"
            )
            assert bottom <= 1000, (code, bottom)
            heights[code] = page.evaluate("document.documentElement.scrollHeight")
        # the band-1 page by score with the most flags (the longest before the summary existed)
        scored = band1[~band1["band_reason"].str.contains("special measures")]
        flags = pd.read_csv(demo_run / "flags.csv", dtype={"trust_code": str}, low_memory=False)
        n = flags[flags.flag.isin(["risk", "elevated_risk"])].groupby("trust_code").size()
        code = max(scored["trust_code"], key=lambda c: (n.get(c, 0), c))
        assert heights[code] < 3000, heights[code]
        page.goto((demo_site / "trusts" / f"{code}.html").resolve().as_uri())
        page.screenshot(SCREENSHOTS / f"demo_trust_band1_{code}.png")
        page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 800, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
        )
        page.goto((demo_site / "index.html").resolve().as_uri())
        assert page.evaluate("document.documentElement.scrollWidth") <= 800
        page.screenshot(SCREENSHOTS / "demo_index_800px.png")
        page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
        )
        region = sorted(bands["region"].unique())[0]
        page.goto((demo_site / "qsg" / f"{slugify(region)}.html").resolve().as_uri())
        page.screenshot(SCREENSHOTS / f"demo_qsg_{slugify(region)}.png")
        assert page.report.problems == []
    finally:
        page.close()


def test_demo_funnels_agree_with_the_flags(demo_run: Path):
    """On every ratio and proportion indicator of the run, a trust is outside the drawn 99.8%
    limits exactly when |z_adjusted| > 3.09 (trusts within 0.05 of the boundary and zero
    counts, where the assessment's 0.5 correction applies, are left out)."""
    from surveillance.reports.funnels import funnel_plot_data

    flags = pd.read_csv(demo_run / "flags.csv", dtype={"trust_code": str}, low_memory=False)
    checked = 0
    for ind, rows in flags[flags.type.isin(["ratio", "proportion"])].groupby("indicator_id"):
        data = funnel_plot_data(rows, rows.type.iloc[0])
        if data is None:
            continue
        lim = {round(x.level, 3): x for x in data.limits}[0.998]
        z = rows.set_index("trust_code").z_adjusted.reindex(data.trust_codes).to_numpy(float)
        obs = rows.set_index("trust_code").observed.reindex(data.trust_codes).to_numpy(float)
        ok = np.isfinite(data.x) & np.isfinite(data.y) & np.isfinite(z) & (obs > 0)
        ok &= np.abs(np.abs(z) - 3.090232) > 0.05
        lo = np.interp(data.x, lim.x, lim.lower)
        hi = np.interp(data.x, lim.x, lim.upper)
        # The drawn curve, interpolated at each trust (the 0.05 margin covers the grid).
        outside = (data.y > hi) | (data.y < lo)
        np.testing.assert_array_equal(outside[ok], (np.abs(z) > 3.090232)[ok], err_msg=ind)
        checked += int(ok.sum())
    assert checked > 1000


def test_demo_site_exposes_no_small_patient_count(demo_run: Path, demo_site: Path):
    """The outsider's read-back of tests/reports/leakcheck.py on the synthetic nation's site."""
    from leakcheck import small_count_leaks

    assert small_count_leaks(demo_site, demo_run) == []


def test_demo_counts_agree_with_bands_csv(demo_run: Path, demo_site: Path):
    """QSG elevated-risk and risk counts per trust, and the index totals, are bands.csv's
    (an indicator left out of banding is not counted)."""
    bands = pd.read_csv(demo_run / "bands.csv", dtype={"trust_code": str})
    seen = {}
    for qsg in (demo_site / "qsg").glob("*.html"):
        rows = re.findall(
            r'<tr data-trust="(\w+)" data-elevated="(\d+)" data-risks="(\d+)">',
            qsg.read_text(encoding="utf-8"),
        )
        seen.update({c: (int(e), int(r)) for c, e, r in rows})
    assert seen == {b.trust_code: (b.elevated_risks, b.risks) for b in bands.itertuples()}
    text = " ".join(" ".join(parse(demo_site / "index.html").text).split())
    assert (
        f"({bands.elevated_risks.sum()} elevated risks and {bands.risks.sum()} risks count" in text
    )
    for qsg in (demo_site / "qsg").glob("*.html"):
        q = " ".join(parse(qsg).text)
        assert "min_denominator" not in q
        worried = qsg.read_text(encoding="utf-8").split('id="q2"')[1].split('id="q3"')[0]
        assert worried.count("<li>") <= 8
