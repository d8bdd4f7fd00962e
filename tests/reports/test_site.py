"""The static site for a run: pages, links, escaping, suppression, values, determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from run_fixture import FORMULA_NAME, SCRIPT_NAME, TRUSTS
from sitecheck import broken_links, parse

from surveillance.errors import SurveillanceError
from surveillance.reports import build_site, read_run, suppress_count
from surveillance.reports.funnels import funnel_plot_data
from surveillance.reports.site import plain, slugify


def _parse(path: Path):
    return parse(path)


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_every_page_exists(site: Path, fixture_run: Path):
    run = read_run(fixture_run)
    assert (site / "index.html").is_file()
    for code, *_ in TRUSTS:
        assert (site / "trusts" / f"{code}.html").is_file(), code
    for region in sorted({t[2] for t in TRUSTS}):
        assert (site / "qsg" / f"{slugify(region)}.html").is_file(), region
    # A national funnel page for every indicator of a funnel type, none for the others.
    funnel_types = {"ratio", "proportion", "rate", "count", "score"}
    expected = sorted(run.flags.loc[run.flags["type"].isin(funnel_types), "indicator_id"].unique())
    assert sorted(p.stem for p in (site / "funnels").glob("*.html")) == expected
    assert len(_pages(site)) == 1 + len(TRUSTS) + 4 + len(expected)


def test_links_and_sources_resolve_offline(site: Path):
    """Every href/src points at an existing file inside the site (and an existing id for
    #fragments); nothing is fetched from the network (no CDN)."""
    problems, checked = broken_links(site)
    assert problems == []
    assert checked > 100


def test_link_checker_finds_broken_links(site: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    (copy / "qsg" / "london.html").unlink()
    page = copy / "funnels" / "shmi.html"
    page.write_text(
        page.read_text().replace('id="t-RAA"', 'id="t-XXX"')
        + '<img src="https://cdn.example/x.png">'
    )
    problems, _ = broken_links(copy)
    assert any("broken a qsg/london.html" in p for p in problems)
    assert any("missing #t-RAA" in p for p in problems)
    assert any("external img https://cdn.example/x.png" in p for p in problems)


def test_every_page_says_what_bands_are_and_are_not(site: Path):
    for page in _pages(site):
        text = " ".join(_parse(page).text)
        assert "screening tool" in text and "not a rating" in text, page


def test_hostile_strings_are_escaped_everywhere(site: Path):
    for page in _pages(site):
        html = page.read_text(encoding="utf-8")
        assert "<script>alert(1)" not in html, page
        assert "<img src=x" not in html, page
        assert "<b>here</b>" not in html, page
        # The only script elements are ours: two JSON blocks and the table script on the index.
        n_scripts = html.count("<script")
        assert n_scripts == (3 if page.name == "index.html" else 0), (page, n_scripts)
    rbb = (site / "trusts" / "RBB.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Hospitals NHS Trust" in rbb
    assert "&lt;img src=x onerror=alert(2)&gt;" in rbb  # ward name
    assert SCRIPT_NAME in " ".join(_parse(site / "trusts" / "RBB.html").text)
    # SVG text and titles are escaped too (the trust is highlighted on its funnel plots).
    shmi = (site / "funnels" / "shmi.html").read_text(encoding="utf-8")
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; Hospitals NHS Trust</title>" in shmi
    rdd = (site / "trusts" / "RDD.html").read_text(encoding="utf-8")
    assert "=cmd|&#39; /C calc&#39;!A0" in rdd


def test_inline_json_is_safe_and_matches_bands(site: Path, fixture_run: Path):
    info = _parse(site / "index.html")
    data = next(s for s in info.scripts if s["attrs"].get("id") == "band-data")
    assert data["attrs"].get("type") == "application/json"
    assert "<" not in data["body"] and ">" not in data["body"] and "&" not in data["body"]
    rows = {r["trust_code"]: r for r in json.loads(data["body"])}
    bands = pd.read_csv(fixture_run / "bands.csv", dtype={"band": str, "previous_band": str})
    assert set(rows) == set(bands["trust_code"])
    for _, b in bands.iterrows():
        r = rows[b["trust_code"]]
        assert r["trust_name"] == b["trust_name"]
        assert r["band"] == b["band"]
        assert r["score"] == b["score"] and r["risks"] == b["risks"]
        assert r["href"] == f"trusts/{b['trust_code']}.html"
    assert rows["RBB"]["trust_name"] == SCRIPT_NAME
    assert rows["RDD"]["trust_name"] == FORMULA_NAME


def test_band_counts_and_movements(site: Path, fixture_run: Path):
    html = (site / "index.html").read_text(encoding="utf-8")
    bands = pd.read_csv(fixture_run / "bands.csv", dtype=str)
    counts = re.findall(r'<span class="band [^"]+">([^<]+)</span><b>(\d+)</b>', html)
    want = {plain("band", b): n for b, n in bands["band"].value_counts().items()}
    assert dict((b, int(n)) for b, n in counts) == want
    assert ("inspected recently", 1) in {(b, int(n)) for b, n in counts}
    moved = bands[bands["previous_band"].notna() & (bands["previous_band"] != bands["band"])]
    section = html.split('id="movements"')[1].split('id="alerts"')[0]
    for code in bands["trust_code"]:
        name = _escaped(bands.set_index("trust_code").loc[code, "trust_name"])
        assert (name in section) == (code in set(moved["trust_code"])), code


def _escaped(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def test_small_counts_suppressed(site: Path, fixture_run: Path):
    assert [suppress_count(v) for v in (0, 1, 4, 4.0, 5, 1234, float("nan"))] == [
        "0",
        "<5",
        "<5",
        "<5",
        "5",
        "1,234",
        "",
    ]
    mort = pd.read_csv(fixture_run / "mortality.csv", dtype={"trust_code": str})
    small = mort[(mort["observed"] >= 1) & (mort["observed"] <= 4)]
    assert len(small) >= 2
    for _, m in small.iterrows():
        html = (site / "trusts" / f"{m['trust_code']}.html").read_text(encoding="utf-8")
        row = re.search(rf'<tr data-group="{m["diagnosis_group"]}">(.*?)</tr>', html).group(1)
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        assert cells[1] == "&lt;5" and cells[3] == "suppressed", cells
    # The small alert (4 deaths) on the index and on its trust page.
    index = (site / "index.html").read_text(encoding="utf-8")
    alert_row = re.search(
        r"FRACTURED_NOF</td><td>2013-08</td><td>new</td><td>2013-08</td>"
        r"<td class=\"num\">([^<]*)</td>",
        index,
    )
    assert alert_row.group(1) == "&lt;5"
    ree = (site / "trusts" / "REE.html").read_text(encoding="utf-8")
    assert "observed deaths &lt;5, expected 0.9" in ree
    # Never events of 1-4 never appear as numbers; their funnel points are not drawn.
    flags = pd.read_csv(fixture_run / "flags.csv", dtype={"trust_code": str})
    ne = flags[flags.indicator_id == "never_events"]
    n_small = int(((ne.observed >= 1) & (ne.observed <= 4)).sum())
    page = (site / "funnels" / "never_events.html").read_text(encoding="utf-8")
    assert f"{n_small} with 1 to 4 events not shown" in page
    assert page.count("<circle id=") == int(((ne.observed == 0) | (ne.observed >= 5)).sum())


def test_trust_page_explains_flags_by_domain(site: Path, fixture_run: Path, catalogue):
    flags = pd.read_csv(fixture_run / "flags.csv", dtype={"trust_code": str})
    for code in ("RAA", "REE", "RGG"):
        html = (site / "trusts" / f"{code}.html").read_text(encoding="utf-8")
        flagged = flags[(flags.trust_code == code) & flags.flag.isin(["risk", "elevated_risk"])]
        shown = re.findall(r'<div class="ind" id="ind-([^"]+)">', html)
        assert sorted(shown) == sorted(flagged.indicator_id), code
        for _, f in flagged.iterrows():
            block = html.split(f'id="ind-{f.indicator_id}"')[1].split('<div class="ind"')[0]
            assert _escaped(catalogue.loc[f.indicator_id, "means"]) in block
            assert _escaped(catalogue.loc[f.indicator_id, "does_not_mean"]) in block
            # Under the right domain heading.
            heading = (
                html.split(f'id="ind-{f.indicator_id}"')[0].rsplit("<h3>", 1)[1].split("</h3>")[0]
            )
            assert heading.lower().replace("-", "_") == f.domain
        # Elevated risks come before risks.
        order = [flagged.set_index("indicator_id").loc[i, "flag"] for i in shown]
        for dom in flagged.domain.unique():
            in_dom = [
                flagged.set_index("indicator_id").loc[i, "flag"]
                for i in shown
                if flagged.set_index("indicator_id").loc[i, "domain"] == dom
            ]
            assert in_dom == sorted(in_dom, key=lambda x: x != "elevated_risk")
        assert len(order) == len(flagged)
    raa = (site / "trusts" / "RAA.html").read_text(encoding="utf-8")
    assert raa.count('class="probs"') == 1 and "risk-adjusted CUSUM" in raa and "VLAD" in raa
    assert "Ward 1 (Acute Medicine)" in raa and "Ward 7 (Elderly care)" in raa
    assert "Ward 9 (Surgery)" not in raa  # under 90% in 1 of 12 months: not frequent
    assert "frequently under 90" not in raa
    hist = re.findall(r"<tr><td>(\d{4}Q\d)</td><td><span class=\"band [^\"]+\">([^<]+)</span>", raa)
    assert hist == [("2012Q4", "4"), ("2013Q1", "3"), ("2013Q2", "2"), ("2013Q3", "1")]


def test_funnel_points_agree_with_flags(fixture_run: Path):
    """A trust lies outside the plotted 95% limit exactly when its adjusted z exceeds 1.96."""
    flags = pd.read_csv(fixture_run / "flags.csv", dtype={"trust_code": str})
    rows = flags[flags.indicator_id == "shmi"]
    data = funnel_plot_data(rows, "ratio", "SHMI")
    tau2 = float(rows.tau2.iloc[0])
    e = rows.sort_values("trust_code").expected.to_numpy(float)
    o = rows.sort_values("trust_code").observed.to_numpy(float)
    np.testing.assert_allclose(data.x, e)
    np.testing.assert_allclose(data.y, o / e)
    z_adj = rows.sort_values("trust_code").z_adjusted.to_numpy(float)
    upper95 = np.exp(1.959964 * np.sqrt(1 / e + tau2))
    lower95 = np.exp(-1.959964 * np.sqrt(1 / e + tau2))
    np.testing.assert_array_equal(data.y > upper95, z_adj > 1.959964)
    np.testing.assert_array_equal(data.y < lower95, z_adj < -1.959964)
    lim = {round(lim.level, 3): lim for lim in data.limits}
    np.testing.assert_allclose(
        lim[0.95].upper, np.exp(1.959964 * np.sqrt(1 / lim[0.95].x + tau2)), rtol=1e-6
    )
    np.testing.assert_allclose(
        lim[0.998].lower, np.exp(-3.090232 * np.sqrt(1 / lim[0.998].x + tau2)), rtol=1e-6
    )


QSG_QUESTIONS = (
    "1. What do the data and soft intelligence say about where there may be concerns?",
    "2. Where are we most worried?",
    "3. Do we need to do more to address concerns or gather intelligence?",
)


def _qsg_sections(site: Path, region: str) -> tuple[str, str, str]:
    html = (site / "qsg" / f"{slugify(region)}.html").read_text(encoding="utf-8")
    q1, rest = html.split('id="q1"')[1].split('id="q2"')
    q2, q3 = rest.split('id="q3"')
    return q1, q2, q3


def test_qsg_reports_answer_three_questions(site: Path, fixture_run: Path, catalogue):
    """The three questions in the QSG's own words and order; "most worried" holds bands 1-2,
    new alerts, uncertain bands that may belong in bands 1-2 and single-source soft concerns
    (never a band 6 trust for its band alone), ranked, each with why."""
    bands = pd.read_csv(fixture_run / "bands.csv", dtype=str)
    alerts = pd.read_csv(fixture_run / "alerts.csv", dtype=str)
    flags = pd.read_csv(fixture_run / "flags.csv", dtype={"trust_code": str})
    counted = flags[flags.in_banding & flags.flag.isin(["risk", "elevated_risk"])]
    soft_ids = set(catalogue.index[catalogue.derived_from == "intelligence"])
    for region, rb in bands.groupby("region"):
        html = (site / "qsg" / f"{slugify(region)}.html").read_text(encoding="utf-8")
        text = " ".join(parse(site / "qsg" / f"{slugify(region)}.html").text)
        positions = [text.index(q) for q in QSG_QUESTIONS]
        assert positions == sorted(positions), region
        assert "Where do we need more intelligence" not in text
        assert "@media print" in html
        q1, q2, q3 = _qsg_sections(site, region)
        for _, b in rb.iterrows():
            name = _escaped(b.trust_name)
            assert name in q1
            new_alert = ((alerts.trust_code == b.trust_code) & (alerts.status == "new")).any()
            p = [float(b[f"p_band_{k}"]) if b.band.isdigit() else 0.0 for k in range(1, 7)]
            uncertain_high = (
                b.band.isdigit()
                and int(b.band) > 2
                and p[int(b.band) - 1] < 0.5
                and p[0] + p[1] >= 0.25
            )
            mine = counted[counted.trust_code == b.trust_code]
            n_charts = alerts.loc[alerts.trust_code == b.trust_code, "diagnosis_group"].nunique()
            soft_only = len(mine) and set(mine.indicator_id) <= soft_ids and not n_charts
            single_soft = soft_only and (len(mine) + n_charts == 1 or len(mine) > 1)
            worried = b.band in ("1", "2") or new_alert or uncertain_high or single_soft
            assert (name in q2) == bool(worried), (region, b.trust_code)
            if b.band == "6" and not new_alert:
                assert name not in q2, b.trust_code
    # ranked: London's band 1 (with a new alert) before its band 2
    _, q2, q3 = _qsg_sections(site, "London")
    assert q2.index("Aldgate") < q2.index("&lt;script&gt;")
    assert "Why: band 1 by its score" in q2 and "new mortality alert: AMI" in q2
    # suggested actions, concrete and per trust
    assert "<strong>Follow up</strong> &middot; <a" in q3 and "Aldgate" in q3
    assert "<strong>Corroborate</strong>" in q3 and "Validated whistleblowing alerts" in q3
    _, q2, q3 = _qsg_sections(site, "South")
    assert "Kendal Royal NHS Trust" in q2 and "uncertain band 3: 30% chance of band 1 or 2" in q2
    assert "<strong>Watch</strong> &middot; " in q3 and "band 3 is uncertain" in q3
    assert "<strong>Request data</strong>" in q3 and "Luton Valley NHS Trust (1)" in q3
    missing = q3.split('id="missing-data"')[1].split("</details>")[0]
    assert "1 no data received (Staff survey: engagement)" in missing
    assert "1 too few cases to assess" in missing  # Hove's monthly chart
    _, _, q3 = _qsg_sections(site, "Midlands & East")
    assert "<strong>Check the data</strong>" in q3 and "late or missing NRLS uploads" in q3


def test_qsg_excluded_and_raw_reasons_once(site: Path, fixture_run: Path, catalogue):
    """Nationally excluded indicators are listed once per report, in plain words; no page
    shows the raw filter text (or the small expected count inside it)."""
    for page in _pages(site):
        text = " ".join(parse(page).text)
        assert "min_denominator" not in text and "0.120607" not in text, page
    name = catalogue.loc["inpatient_survey", "name"]
    for qsg in (site / "qsg").glob("*.html"):
        html = qsg.read_text(encoding="utf-8")
        q3 = html.split('id="q3"')[1]
        excluded = q3.split('id="excluded"')[1].split("</details>")[0]
        assert excluded.count(name) == 1 and html.count(name) == 1
        assert (
            "assessable at 5 of 12 trusts (at least 50% needed); mostly no data received"
            in excluded
        )


def test_counts_agree_with_bands_csv(site: Path, fixture_run: Path):
    """An indicator left out of banding is never counted: the QSG tables, the index summary and
    the trust pages count elevated risks and risks exactly as bands.csv does."""
    bands = pd.read_csv(fixture_run / "bands.csv", dtype={"trust_code": str})
    flags = pd.read_csv(fixture_run / "flags.csv", dtype={"trust_code": str})
    left_out = flags[~flags.in_banding & flags.flag.isin(["risk", "elevated_risk"])]
    assert set(left_out.trust_code) == {"RAA", "REE"}  # the fixture's trap
    seen = {}
    for qsg in (site / "qsg").glob("*.html"):
        rows = re.findall(
            r'<tr data-trust="(\w+)" data-elevated="(\d+)" data-risks="(\d+)">',
            qsg.read_text(encoding="utf-8"),
        )
        seen.update({c: (int(e), int(r)) for c, e, r in rows})
    want = {b.trust_code: (b.elevated_risks, b.risks) for b in bands.itertuples()}
    assert seen == want
    index = " ".join(parse(site / "index.html").text)
    assert (
        f"({bands.elevated_risks.sum()} elevated risks and {bands.risks.sum()} risks count in the "
        f"bands, and {len(left_out)} more flag(s) on indicators left out of banding)"
    ) in " ".join(index.split())
    data = next(
        s for s in parse(site / "index.html").scripts if s["attrs"].get("id") == "band-data"
    )
    rows = {r["trust_code"]: r for r in json.loads(data["body"])}
    for b in bands.itertuples():
        assert rows[b.trust_code]["flags_text"] == f"{b.elevated_risks} / {b.risks}"
        page = (site / "trusts" / f"{b.trust_code}.html").read_text(encoding="utf-8")
        summary = page.split('id="summary"')[1].split('id="detail"')[0]
        assert (
            f"{b.elevated_risks} elevated risk(s) and {b.risks} risk(s) count in the band"
            in summary
        )
    raa = (site / "trusts" / "RAA.html").read_text(encoding="utf-8")
    card = raa.split('id="ind-inpatient_survey"')[1].split('<div class="ind"')[0]
    assert "(left out of banding this quarter)" in card


def test_rebuild_is_byte_identical(fixture_run: Path, catalogue, tmp_path: Path):
    a = build_site(fixture_run, tmp_path / "a", catalogue=catalogue).parent
    b = build_site(fixture_run, tmp_path / "b", catalogue=catalogue).parent
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_history_argument_adds_quarters(fixture_run: Path, catalogue, tmp_path: Path):
    hist = pd.DataFrame({"trust_code": ["RAA"], "quarter": ["2012Q3"], "band": ["6"]})
    site = build_site(fixture_run, tmp_path / "h", catalogue=catalogue, history=hist).parent
    raa = (site / "trusts" / "RAA.html").read_text(encoding="utf-8")
    assert re.findall(r"<tr><td>(\d{4}Q\d)</td>", raa)[:2] == ["2012Q3", "2012Q4"]


def test_missing_contract_file_or_column_is_a_clear_error(
    fixture_run: Path, catalogue, tmp_path: Path
):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(fixture_run, broken, ignore=shutil.ignore_patterns("reports"))
    (broken / "alerts.csv").unlink()
    with pytest.raises(SurveillanceError, match="alerts.csv: required run output is missing"):
        build_site(broken, catalogue=catalogue)
    shutil.copy(fixture_run / "alerts.csv", broken / "alerts.csv")
    bands = pd.read_csv(broken / "bands.csv").drop(columns=["p_band_3"])
    bands.to_csv(broken / "bands.csv", index=False)
    with pytest.raises(
        SurveillanceError, match=r"bands.csv: missing required column\(s\) \['p_band_3'\]"
    ):
        build_site(broken, catalogue=catalogue)


@pytest.mark.parametrize("indicator_id", ["ae_4h", "rn_fill_day"])
def test_proportion_funnel_agrees_with_flags(fixture_run: Path, indicator_id: str):
    """Proportions are drawn as r/n against n (asin-scale limits with the flags' tau2): a trust
    is beyond the 95% limit on its adverse side exactly when its oriented adjusted z > 1.96."""
    flags = pd.read_csv(fixture_run / "flags.csv", dtype={"trust_code": str})
    rows = flags[(flags.indicator_id == indicator_id)].sort_values("trust_code")
    data = funnel_plot_data(rows, "proportion")
    ok = rows.flag != "not_applicable"
    r = rows.observed.to_numpy(float)[ok.to_numpy()]
    n = rows.denominator.to_numpy(float)[ok.to_numpy()]
    tau2 = float(rows.tau2.iloc[0])
    # The assessment's own pooled target: expected = n * p0 for every applicable trust.
    p0_all = rows.expected.to_numpy(float)[ok.to_numpy()] / n
    np.testing.assert_allclose(p0_all, p0_all[0], rtol=1e-9)
    p0 = p0_all[0]
    assert data.target == pytest.approx(p0, rel=1e-9)
    keep = np.isfinite(data.y)
    np.testing.assert_allclose(data.y[keep], r / n)
    t = np.arcsin(np.sqrt(p0))
    width = 1.959964 * np.sqrt(1 / (4 * n) + tau2)
    upper, lower = np.sin(t + width) ** 2, np.sin(t - width) ** 2
    z_adj = rows.z_adjusted.to_numpy(float)[ok.to_numpy()]
    adverse = (r / n > upper) if indicator_id == "ae_4h" else (r / n < lower)
    np.testing.assert_array_equal(adverse, z_adj > 1.959964)
    assert adverse.any()


def test_indicator_without_applicable_trusts_has_no_funnel(fixture_run: Path):
    flags = pd.read_csv(fixture_run / "flags.csv", dtype={"trust_code": str})
    rows = flags[flags.indicator_id == "shmi"].assign(flag="not_applicable")
    assert funnel_plot_data(rows, "ratio", "SHMI") is None
    assert funnel_plot_data(rows.iloc[0:0], "ratio", "SHMI") is None
    assert funnel_plot_data(flags[flags.indicator_id == "whistleblowing"], "rule") is None


def test_history_from_earlier_runs_beside_this_one(fixture_run: Path, catalogue, tmp_path: Path):
    """Without band_history.csv, earlier quarters come from sibling runs and previous_band."""
    import shutil

    out = tmp_path / "out"
    now = out / "2013Q3"
    shutil.copytree(fixture_run, now, ignore=shutil.ignore_patterns("reports", "band_history.csv"))
    earlier = out / "2012Q4"
    earlier.mkdir()
    pd.DataFrame({"trust_code": ["RAA", "RBB"], "band": ["5", "6"]}).to_csv(
        earlier / "bands.csv", index=False
    )
    (out / "notes").mkdir()  # not a quarter: ignored
    site = build_site(now, tmp_path / "site", catalogue=catalogue).parent
    raa = (site / "trusts" / "RAA.html").read_text(encoding="utf-8")
    hist = re.findall(r"<tr><td>(\d{4}Q\d)</td><td><span class=\"band [^\"]+\">([^<]+)</span>", raa)
    assert hist == [("2012Q4", "5"), ("2013Q2", "2"), ("2013Q3", "1")]
    rkk = (site / "trusts" / "RKK.html").read_text(encoding="utf-8")  # no previous band
    assert re.findall(r"<tr><td>(\d{4}Q\d)</td>", rkk) == ["2013Q3"]


def test_limit_formatting_caps_astronomical_limits():
    from surveillance.reports.site import _limit

    assert [_limit(v) for v in (0.123, 14.01549, 100.0, 1e27, float("nan"), None)] == [
        "0.12",
        "14.02",
        "100.00",
        ">100",
        "",
        "",
    ]


def test_run_without_spells_or_extras_renders(fixture_run: Path, catalogue, tmp_path: Path):
    """A run whose bundle had no spells: header-only alerts and mortality, no extras."""
    import shutil

    bare = tmp_path / "2013Q3"
    keep = {"flags.csv", "bands.csv", "manifest.json"}
    bare.mkdir()
    for f in keep:
        shutil.copy(fixture_run / f, bare / f)
    for f in ("alerts.csv", "mortality.csv"):
        header = (fixture_run / f).read_text().splitlines()[0]
        (bare / f).write_text(header + "\n")
    site = build_site(bare, catalogue=catalogue).parent
    raa = (site / "trusts" / "RAA.html").read_text(encoding="utf-8")
    assert "No mortality alerts for this trust." in raa
    assert "No mortality ratios for this trust." in raa
    assert "The run does not include ward staffing detail." in raa
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "No mortality alerts in the 12-month monitored window." in index
    problems, _ = broken_links(site)
    assert problems == []


def test_funnel_follows_the_method_the_assessment_applied(fixture_run: Path):
    """flags.csv ``method`` (e.g. "sqrt(CQC)+multiplicative") decides the scale and the
    overdispersion of the drawn limits, over the catalogue's defaults."""
    flags = pd.read_csv(fixture_run / "flags.csv", dtype={"trust_code": str})
    rows = flags[flags.indicator_id == "shmi"].assign(method="sqrt(CQC)+multiplicative")
    data = funnel_plot_data(rows, "ratio", "SHMI", "additive")
    phi = float(rows.phi.iloc[0])
    lim = {round(x.level, 3): x for x in data.limits}[0.95]
    # CQC scale, multiplicative: (1 +- z sqrt(phi) / (2 sqrt(E)))^2
    np.testing.assert_allclose(
        lim.upper, (1 + 1.959964 * np.sqrt(phi) / (2 * np.sqrt(lim.x))) ** 2, rtol=1e-6
    )


def test_window_alerts_show_the_month_each_began(site: Path, fixture_run: Path):
    """alerts.csv lists every signal of the 12-month window: the index, the trust pages and the
    QSG reports show one entry per chart with the month it began and new vs persisting, also
    for a chart that signalled in May and has not signalled since (RFF)."""
    alerts = pd.read_csv(fixture_run / "alerts.csv", dtype=str)
    charts = alerts.groupby(["trust_code", "diagnosis_group"])
    assert len(alerts) == 6 and charts.ngroups == 4
    index = (site / "index.html").read_text(encoding="utf-8")
    section = index.split('id="alerts"')[1].split('id="qsg"')[0]
    rows = re.findall(
        r'<tr><td><a href="trusts/(\w+)\.html#alerts">[^<]*</a></td><td>(\w+)</td>'
        r"<td>([\d-]+)</td><td>(\w+)</td><td>([\d, -]+)</td>",
        section,
    )
    # one row per chart, new (began in 2013Q3) first, then by trust
    assert rows == [
        ("RAA", "AMI", "2013-08", "new", "2013-08, 2013-09"),
        ("REE", "FRACTURED_NOF", "2013-08", "new", "2013-08"),
        ("RCC", "STROKE", "2013-04", "persisting", "2013-04, 2013-08"),
        ("RFF", "AMI", "2013-05", "persisting", "2013-05"),
    ]
    assert "mortality alerts on 4 chart(s) in the monitored window (2012-10 to 2013-09)" in index
    assert "2 new (first signal this quarter) and 2 persisting" in index
    # the band table's "New alerts" column counts new charts
    data = next(
        s for s in _parse(site / "index.html").scripts if s["attrs"].get("id") == "band-data"
    )
    new_alerts = {r["trust_code"]: r["new_alerts"] for r in json.loads(data["body"])}
    assert (new_alerts["RAA"], new_alerts["REE"], new_alerts["RCC"], new_alerts["RFF"]) == (
        1,
        1,
        0,
        0,
    )
    # trust pages: one block (and one CUSUM figure) per chart, the numbers of its latest signal
    rcc = (site / "trusts" / "RCC.html").read_text(encoding="utf-8")
    block = rcc.split('id="alerts"')[1].split('id="mortality"')[0]
    assert (
        "STROKE</strong> &mdash; persisting alert, began 2013-04 (first signal before this quarter)"
        in block
    )
    assert "signal month(s) 2013-04, 2013-08" in block and "At the latest signal (2013-08)" in block
    latest = alerts[(alerts.trust_code == "RCC")].iloc[-1]
    assert (
        f"CUSUM {float(latest.cusum):.2f} against threshold {float(latest.threshold):.2f}" in block
    )
    assert block.count("risk-adjusted CUSUM</title>") == 1
    rff = (site / "trusts" / "RFF.html").read_text(encoding="utf-8")
    assert "AMI</strong> &mdash; persisting alert, began 2013-05" in rff
    raa = (site / "trusts" / "RAA.html").read_text(encoding="utf-8")
    assert "AMI</strong> &mdash; new alert, began 2013-08 (first signal this quarter)" in raa
    # QSG: the month each began; RFF's earlier alert is shown, but only new ones make the
    # region worried
    bands = pd.read_csv(fixture_run / "bands.csv", dtype=str).set_index("trust_code")
    qsg = (site / "qsg" / f"{slugify(bands.loc['RFF', 'region'])}.html").read_text(encoding="utf-8")
    assert "AMI (persisting, began 2013-05)" in qsg.split('id="q2"')[0]
    assert "FRACTURED_NOF (new, began 2013-08)" in qsg.split('id="q2"')[0]
    london = (site / "qsg" / f"{slugify(bands.loc['RAA', 'region'])}.html").read_text(
        encoding="utf-8"
    )
    assert "AMI (new, began 2013-08; signals 2013-08, 2013-09)" in london


def test_run_summary_counts_new_alerts_by_chart(fixture_run: Path):
    """The CLI's "new mortality alerts": charts that began this quarter, not rows (RAA's AMI
    chart has two new rows, 2013-08 and 2013-09)."""
    from surveillance.pipeline import summarise

    alerts = pd.read_csv(fixture_run / "alerts.csv", dtype=str)
    assert (alerts.status == "new").sum() == 3
    assert summarise(fixture_run).new_alerts == 2


def _summary(site: Path, code: str) -> str:
    page = (site / "trusts" / f"{code}.html").read_text(encoding="utf-8")
    return page.split('id="summary"')[1].split('id="detail"')[0]


def test_trust_summary_leads_the_page(site: Path, fixture_run: Path):
    """The summary: the band with its probabilities as visible text, flagged indicators by
    domain (value vs expected), new and persisting alerts, what bands are and are not; the
    detail (cards, charts, full mortality table) after it, collapsed."""
    bands = pd.read_csv(fixture_run / "bands.csv", dtype={"trust_code": str}).set_index(
        "trust_code"
    )
    raa_page = (site / "trusts" / "RAA.html").read_text(encoding="utf-8")
    summary = _summary(site, "RAA")
    assert raa_page.index('id="summary"') < raa_page.index('id="detail"')
    cells = re.findall(r'<span class="p">([^<]*)</span>', summary)
    assert cells == [f"{bands.loc['RAA', f'p_band_{k}']:.0%}" for k in range(1, 7)]
    assert "Placed by its score: score" in summary and "screening tool" in summary
    # flagged indicators by domain: counts and the first indicators, linking to their cards
    rows = re.findall(
        r'<tr><td>([\w-]+)</td><td class="num">(?:<span class="flag-elevated_risk">)?(\d+)',
        summary,
    )
    flags = pd.read_csv(fixture_run / "flags.csv", dtype={"trust_code": str})
    mine = flags[(flags.trust_code == "RAA") & flags.flag.isin(["risk", "elevated_risk"])]
    domains = {"safe": "Safe", "effective": "Effective", "caring": "Caring", "well_led": "Well-led"}
    assert [d for d, _ in rows] == [domains[d] for d in domains if d in set(mine.domain)]
    elev = mine[mine.in_banding & (mine.flag == "elevated_risk")].groupby("domain").size()
    assert {d: int(n) for d, n in rows} == {
        domains[d]: int(elev.get(d, 0)) for d in domains if d in set(mine.domain)
    }
    assert '<a href="#ind-shmi">Summary hospital-level mortality indicator</a>' in summary
    shmi = mine.set_index("indicator_id").loc["shmi"]
    assert f"{shmi.observed:,.0f} vs {shmi.expected:,.1f} expected" in summary
    assert "2 validated case(s)" not in summary  # whistleblowing count 2 is suppressed
    assert "&lt;5 validated case(s)" in summary
    # alerts: RAA new, RCC persisting
    assert "<strong>New</strong> (first signal this quarter): AMI, began 2013-08" in summary
    rcc = _summary(site, "RCC")
    assert "<strong>Persisting</strong> (first signal earlier in the window): STROKE" in rcc
    # detail collapsed: the cards and alert charts sit in closed <details>
    assert re.search(r'<details id="why">', raa_page) and re.search(
        r'<details id="alerts">', raa_page
    )
    why = raa_page.split('<details id="why">')[1]
    assert why.index('<div class="ind" id="ind-shmi">') < why.index("</details>\n\n<details id=")
    # mortality: ALL and outliers open, the rest collapsed
    ratios = pd.read_csv(fixture_run / "mortality.csv", dtype={"trust_code": str})
    for code in ("RAA", "RBB", "RCC"):
        page = (site / "trusts" / f"{code}.html").read_text(encoding="utf-8")
        mort = page.split('<section id="mortality">')[1].split("</section>")[0]
        open_part, _, closed = mort.partition("<details>")
        mine = ratios[ratios.trust_code == code]
        is_open = (mine.diagnosis_group == "ALL") | (mine.banding != "as_expected")
        assert sorted(re.findall(r'data-group="(\w+)"', open_part)) == sorted(
            mine.diagnosis_group[is_open]
        )
        assert sorted(re.findall(r'data-group="(\w+)"', closed)) == sorted(
            mine.diagnosis_group[~is_open]
        )


def test_override_is_stated_with_the_score_it_overrode(site: Path, fixture_run: Path):
    bands = pd.read_csv(fixture_run / "bands.csv", dtype={"trust_code": str}).set_index(
        "trust_code"
    )
    b = bands.loc["RCC"]
    summary = _summary(site, "RCC")
    assert '<span class="tag">special-measures override</span>' in summary
    assert (
        "Band 1 because the trust is in special measures (an override), not because of its score"
        in summary
    )
    assert f"score {b.score} of {b.max_score} (proportion {b.proportion_score:.3f})" in summary
    # its proportion sits among the score-banded band-2 and band-3 trusts' range or between them
    assert re.search(r"would put it with the trusts in (between )?band \d", summary)
    assert "The override sets the band whatever the score" in summary
    assert '<span class="tag">special-measures override</span> <strong>Band 1' in summary
    # the index marks it
    data = next(
        s for s in parse(site / "index.html").scripts if s["attrs"].get("id") == "band-data"
    )
    rows = {r["trust_code"]: r for r in json.loads(data["body"])}
    assert rows["RCC"]["override"] == "override" and rows["RAA"]["override"] == ""
    assert rows["RCC"]["p_band_text"] == "override"


def test_score_band_text_reads_the_published_bands():
    from surveillance.reports.site import score_band_text

    ranges = {"1": (0.2, 0.5), "2": (0.1, 0.15), "4": (0.01, 0.05)}
    assert score_band_text(0.3, ranges) == "band 1"
    assert score_band_text(0.9, ranges) == "band 1"
    assert score_band_text(0.17, ranges) == "between band 1 and band 2"
    assert score_band_text(0.07, ranges) == "between band 2 and band 4"
    assert score_band_text(0.0, ranges) == "band 4"
    assert score_band_text(None, ranges) == ""


def test_index_sorted_by_score_within_band_with_drivers(site: Path, fixture_run: Path):
    data = next(
        s for s in parse(site / "index.html").scripts if s["attrs"].get("id") == "band-data"
    )
    rows = json.loads(data["body"])
    bands = pd.read_csv(fixture_run / "bands.csv", dtype={"trust_code": str, "band": str})
    from surveillance.reports.site import band_order

    want = bands.assign(o=bands.band.map(band_order)).sort_values(
        ["o", "proportion_score", "trust_code"], ascending=[True, False, True]
    )
    assert [r["trust_code"] for r in rows] == list(want.trust_code)
    assert [r["rank"] for r in rows] == list(range(len(rows)))
    expl = pd.read_csv(fixture_run / "explanations.csv", dtype={"trust_code": str})
    names = fixture_catalogue_names()
    for r in rows:
        top = expl[expl.trust_code == r["trust_code"]].sort_values("rank").indicator_id[:3]
        assert [d["name"] for d in r["drivers"]] == [names[i] for i in top], r["trust_code"]


def fixture_catalogue_names() -> dict[str, str]:
    from run_fixture import fixture_catalogue

    return fixture_catalogue()["name"].to_dict()


def test_drivers_follow_the_published_explanations(fixture_run: Path, catalogue, tmp_path: Path):
    """site.py does not re-rank: reversing a trust's ranks in explanations.csv reverses its
    drivers on the index and the order of its summary and cards."""
    import shutil

    run = tmp_path / "2013Q3"
    shutil.copytree(fixture_run, run, ignore=shutil.ignore_patterns("reports"))
    expl = pd.read_csv(run / "explanations.csv", dtype={"trust_code": str})
    raa = expl.trust_code == "RAA"
    expl.loc[raa, "rank"] = expl.loc[raa, "rank"].max() + 1 - expl.loc[raa, "rank"]
    expl.sort_values(["trust_code", "rank"]).to_csv(run / "explanations.csv", index=False)
    site = build_site(run, catalogue=catalogue).parent
    data = next(
        s for s in parse(site / "index.html").scripts if s["attrs"].get("id") == "band-data"
    )
    row = next(r for r in json.loads(data["body"]) if r["trust_code"] == "RAA")
    new = expl[raa].sort_values("rank").indicator_id
    names = catalogue["name"].to_dict()
    assert [d["name"] for d in row["drivers"]] == [names[i] for i in new[:3]]
    page = (site / "trusts" / "RAA.html").read_text(encoding="utf-8")
    cards = re.findall(r'<div class="ind" id="ind-([^"]+)">', page)
    in_rank = [i for i in new if i in cards]
    assert len(in_rank) == len(expl[raa]) > 1
    # within a domain the cards follow the file's (reversed) rank
    for dom in catalogue.domain.unique():
        got = [c for c in cards if c in in_rank and catalogue.domain[c] == dom]
        assert got == [i for i in new if catalogue.domain[i] == dom], dom
    summary = page.split('id="summary"')[1].split('id="detail"')[0]
    first = [i for i in new if catalogue.domain[i] == catalogue.domain[new.iloc[0]]]
    linked = re.findall(r'<a href="#ind-([^"]+)">', summary)
    assert [i for i in linked if i in first] == first[:3]


#: internal labels that must never reach a reader (issue 16 item 7)
INTERNAL_WORDS = (
    "recently_inspected",
    "not_banded",
    "cusum_z",
    "external_band",
    "type rule",
    "rn fill",
    "months under 90",
    "months_under_90",
    "share under 90",
    "as_expected",
    "higher_than_expected",
    "no_evidence",
    "elevated_risk",
    "special_measures",
)


def test_plain_words_for_internal_labels(site: Path):
    for page in _pages(site):
        text = " ".join(parse(page).text)
        for word in INTERNAL_WORDS:
            # "months under 90% of planned hours" is the plain label; a bare "months under 90" not
            assert not re.search(rf"{re.escape(word)}(?![%\w])", text), (
                page.relative_to(site),
                word,
            )
    raa = " ".join(parse(site / "trusts" / "RAA.html").text)
    assert "Months under 90% of planned hours" in raa
    jj = " ".join(parse(site / "trusts" / "RJJ.html").text)
    assert "inspected recently" in jj and "Not banded this quarter: inspected recently" in jj


def test_every_vocabulary_has_plain_words():
    """One mapping covers every code the output contracts allow."""
    from surveillance import output_contracts as oc
    from surveillance.reports.site import LABELS

    assert set(oc.INDICATOR_TYPES) <= set(LABELS["type"])
    assert set(oc.BAND_VALUES) <= set(LABELS["band"])
    assert set(oc.MOVEMENTS) <= set(LABELS["movement"])
    assert set(oc.ALERT_STATUSES) <= set(LABELS["alert_status"])
    assert set(oc.FLAG_VALUES) <= set(LABELS["flag"])
    assert set(oc.DOMAINS) == set(LABELS["domain"])
    for b in oc.MORTALITY_BANDING:
        assert plain("mortality_banding", b) == b.replace("_", " ")
        assert plain("mortality_banding", b.replace(" ", "_")) == b.replace("_", " ")


def test_footer_shows_run_id_and_code_version(site: Path, fixture_run: Path, catalogue, tmp_path):
    for page in _pages(site):
        text = " ".join(" ".join(parse(page).text).split())
        assert "Run fixture-2013Q3 · quarter 2013Q3 · code version 0.1.0." in text, page
    # the manifest's code_version object; and, before the manifest exists, the pipeline's own
    import shutil

    run = tmp_path / "2013Q3"
    shutil.copytree(fixture_run, run, ignore=shutil.ignore_patterns("reports"))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["code_version"] = {
        "package": "0.1.0",
        "git_commit": "937c6f52ac0cbe20",
        "git_dirty": True,
    }
    manifest["reports_code_version"] = {"package": "0.1.1", "git_commit": "aaaabbbbccccdddd"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    index = build_site(run, tmp_path / "a", catalogue=catalogue)
    text = " ".join(" ".join(parse(index).text).split())
    assert (
        "code version 0.1.0, commit 937c6f52ac0c, with uncommitted changes; reports rendered "
        "again with 0.1.1, commit aaaabbbbcccc." in text
    )
    (run / "manifest.json").unlink()
    index = build_site(run, tmp_path / "b", catalogue=catalogue)
    assert "Run not recorded" in " ".join(parse(index).text)
    index = build_site(
        run,
        tmp_path / "c",
        catalogue=catalogue,
        provenance={
            "run_id": "2013Q3-abc",
            "code_version": {"package": "0.2.0", "git_commit": None},
        },
    )
    text = " ".join(" ".join(parse(index).text).split())
    assert "Run 2013Q3-abc · quarter 2013Q3 · code version 0.2.0." in text
    # the pipeline renders the site before it writes the manifest: the footer comes from its
    # fingerprint
    from types import SimpleNamespace

    from surveillance.pipeline import render_reports

    staging = tmp_path / ".2013Q3.staging-test"
    shutil.copytree(run, staging)
    fp = SimpleNamespace(run_id="2013Q3-fp", code={"package": "0.3.0", "git_commit": None})
    index = render_reports(staging, catalogue, fp)
    text = " ".join(" ".join(parse(index).text).split())
    assert "Run 2013Q3-fp · quarter 2013Q3 · code version 0.3.0." in text
    assert "note(s) on the input data" not in text  # a run without input notes shows none


def test_index_lists_the_input_notes_with_spell_counts_suppressed(
    fixture_run: Path, catalogue, tmp_path
):
    """manifest.json ``input_notes`` (issue 17: nothing silent) are on the index, in plain words;
    a spell count of 1-4 in a note is a patient count and shows as <5."""
    import shutil

    run = tmp_path / "2013Q3"
    shutil.copytree(fixture_run, run, ignore=shutil.ignore_patterns("reports"))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["input_notes"] = [
        {
            "file": "spells.parquet",
            "column": "diagnosis_group",
            "note": "unknown_value",
            "message": "2 diagnosis group(s) not in the reference list (diagnosis_groups.csv): "
            "'Sepsis X' 3 spell(s); 'Other Y' 1,250 spell(s); each is fitted by the risk "
            "models as a group of its own",
            "rows": 1253,
        },
        {
            "file": "trusts.csv",
            "column": "region",
            "note": "normalised",
            "message": "'london ' read as 'London' (spacing and case; row(s) 4)",
            "rows": 3,
        },
    ]
    (run / "manifest.json").write_text(json.dumps(manifest))
    index = build_site(run, tmp_path / "site", catalogue=catalogue)
    text = " ".join(" ".join(parse(index).text).split())
    assert "2 note(s) on the input data" in text
    assert "not known to the models" in text and "spelling made consistent" in text
    assert "'Sepsis X' <5 spell(s); 'Other Y' 1,250 spell(s)" in text
    assert "3 spell(s)" not in text
    assert "spells.parquet diagnosis_group not known to the models 1,253" in text
    assert "trusts.csv region spelling made consistent <5" in text


def test_flag_numbers_in_a_few_words(site: Path):
    from surveillance.reports.site import _value_vs_expected

    # the run's cusum_z flags: the chart's CUSUM in ``cusum`` and h in ``method``
    real = {"cusum": 7.371984, "method": "cusum(k=0.5,h=5.48)", "observed": 115, "expected": 47.2}
    assert _value_vs_expected("cusum_z", real) == "trend 7.37 vs threshold 5.48"
    assert _value_vs_expected("cusum_z", {"observed": 6.1, "expected": 5.48}) == (
        "trend 6.10 vs threshold 5.48"
    )
    assert _value_vs_expected("ratio", {"observed": 3, "expected": 1.37}) == "<5 vs 1.4 expected"
    assert _value_vs_expected("ratio", {"observed": 45, "expected": 27.21}) == "45 vs 27.2 expected"
    assert _value_vs_expected("rule", {"observed": 2}) == "<5 validated case(s)"
    assert _value_vs_expected("score", {"observed": 3.55, "expected": 3.75}) == (
        "3.550 vs 3.750 expected"
    )
    raa = _summary(site, "RAA")
    assert (
        'Monthly mortality CUSUM</a> <span class="flag-elevated_risk">elevated risk</span> ' in raa
    )
    assert "trend 6.10 vs threshold 5.48" in raa
