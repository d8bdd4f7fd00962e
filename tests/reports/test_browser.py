"""Open the rendered site in headless Chromium (DevTools protocol): no console errors, no failed
loads or broken images, the band table sorts and filters, injected markup stays text, and
screenshots of the index, a trust page and a QSG report are saved under test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SCREENSHOTS
from run_fixture import SCRIPT_NAME

pytestmark = pytest.mark.browser


def test_every_page_loads_cleanly(browser, site: Path):
    page = browser.open()
    try:
        pages = sorted(site.rglob("*.html"))
        assert len(pages) > 15
        for path in pages:
            report = page.goto(path.resolve().as_uri())
            assert report.problems == [], (path.relative_to(site), report.problems)
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length"
            )
            assert broken == 0, path
            assert page.evaluate("document.querySelectorAll('svg').length") >= 0
            assert page.evaluate("document.body.innerText.includes('not a rating')"), path
    finally:
        page.close()


def test_band_table_sorts_filters_and_shows_script_name_as_text(browser, site: Path):
    page = browser.open()
    try:
        report = page.goto((site / "index.html").resolve().as_uri())
        rows = "Array.from(document.querySelectorAll('#band-table tbody tr'))"
        assert page.evaluate(f"{rows}.length") == 12
        # Default order: band 1 first, by score within the band; overrides marked.
        bands = page.evaluate(f"{rows}.map(r => r.children[2].innerText)")
        assert sorted(bands[:2]) == ["1", "1 override"] and bands[-1] == "not banded"
        scores = page.evaluate(f"{rows}.map(r => Number(r.children[4].innerText))")
        band_of = [b.split()[0] for b in bands]
        for band in set(band_of):
            within = [s for s, b in zip(scores, band_of, strict=True) if b == band]
            assert within == sorted(within, reverse=True), band
        # Sort by trust name, then reverse.
        page.evaluate("document.querySelector('th[data-key=trust_name]').click()")
        names = page.evaluate(f"{rows}.map(r => r.children[0].innerText)")
        assert names == sorted(names, key=lambda s: s.lower()) or names == sorted(names)
        page.evaluate("document.querySelector('th[data-key=trust_name]').click()")
        names_desc = page.evaluate(f"{rows}.map(r => r.children[0].innerText)")
        assert names_desc == list(reversed(names))
        # Sort by proportion score (numeric, ascending on the first click).
        page.evaluate("document.querySelector('th[data-key=score_text]').click()")
        scores = page.evaluate(f"{rows}.map(r => Number(r.children[4].innerText))")
        assert scores == sorted(scores)
        # Filter by region.
        page.evaluate(
            "const s = document.getElementById('region-filter'); s.value = 'London';"
            "s.dispatchEvent(new Event('change'))"
        )
        regions = page.evaluate(f"{rows}.map(r => r.children[1].innerText)")
        assert regions == ["London"] * 3
        assert page.evaluate("document.getElementById('band-shown').innerText") == "3"
        # The <script> in a trust name is text, not an element, and never ran.
        assert SCRIPT_NAME in page.evaluate(f"{rows}.map(r => r.children[0].innerText)")
        assert page.evaluate("document.querySelectorAll('script').length") == 3
        assert report.dialogs == [] and page.report.problems == []
    finally:
        page.close()


def test_screenshots(browser, site: Path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.open()
    try:
        shots = {
            "index.png": site / "index.html",
            "trust_RAA.png": site / "trusts" / "RAA.html",  # band 1 by score
            "trust_RCC_override.png": site / "trusts" / "RCC.html",  # band 1 by special measures
            "qsg_london.png": site / "qsg" / "london.html",
            "trust_script_name.png": site / "trusts" / "RBB.html",
        }
        for name, path in shots.items():
            report = page.goto(path.resolve().as_uri())
            assert report.problems == []
            out = page.screenshot(SCREENSHOTS / name)
            data = out.read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, name
        # The RBB page shows its name as text in the heading.
        page.goto((site / "trusts" / "RBB.html").resolve().as_uri())
        assert page.evaluate("document.querySelector('h1').innerText") == SCRIPT_NAME
        assert page.report.dialogs == []
    finally:
        page.close()


def test_qsg_reports_print_to_pdf(chromium, site: Path, tmp_path: Path):
    import shutil

    from surveillance.reports.pdf import export_qsg_pdfs

    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    pdfs = export_qsg_pdfs(copy, chromium)
    assert [p.name for p in pdfs] == sorted(
        p.with_suffix(".pdf").name for p in (copy / "qsg").glob("*.html")
    )
    for pdf in pdfs:
        data = pdf.read_bytes()
        assert data.startswith(b"%PDF-") and b"%%EOF" in data[-1024:]
        assert data.count(b"/Type /Page") + data.count(b"/Type/Page") >= 1


def test_pdf_export_errors_are_clear(tmp_path: Path):
    from surveillance.errors import SurveillanceError
    from surveillance.reports.pdf import export_pdf, export_qsg_pdfs

    with pytest.raises(SurveillanceError, match="page to print does not exist"):
        export_pdf(tmp_path / "missing.html", tmp_path / "x.pdf", chromium="/bin/false")
    (tmp_path / "p.html").write_text("<p>x</p>")
    with pytest.raises(SurveillanceError, match="could not print it to PDF"):
        export_pdf(tmp_path / "p.html", tmp_path / "x.pdf", chromium="/bin/false")
    assert not (tmp_path / "x.pdf").exists()
    with pytest.raises(SurveillanceError, match="no QSG reports"):
        export_qsg_pdfs(tmp_path)


def _viewport(page, width: int, height: int = 1000, media: str = "screen") -> None:
    page.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    page.send("Emulation.setEmulatedMedia", {"media": media})


def test_trust_summary_fits_the_first_screen(browser, site: Path):
    """At 1400 px wide the summary (band, probabilities, flags by domain, alerts, what the band
    is and is not) ends within the first 1,000 px; the detail below it is collapsed."""
    page = browser.open()
    try:
        _viewport(page, 1400)
        for code in ("RAA", "RCC", "RJJ", "RHH"):
            report = page.goto((site / "trusts" / f"{code}.html").resolve().as_uri())
            assert report.problems == []
            bottom = page.evaluate(
                "document.getElementById('summary').getBoundingClientRect().bottom + scrollY"
            )
            assert bottom <= 1000, (code, bottom)
            shown = page.evaluate("document.getElementById('summary').innerText")
            assert "not a rating" in shown and "Flagged indicators by domain" in shown
            assert page.evaluate("document.getElementById('why').open") is False
            assert page.evaluate("document.getElementById('alerts').open") is False
        # the probabilities are on the page as text, not only in tooltips
        page.goto((site / "trusts" / "RAA.html").resolve().as_uri())
        cells = page.evaluate(
            "Array.from(document.querySelectorAll('table.probs td')).map(td => td.innerText)"
        )
        assert len(cells) == 6 and all(c.endswith("%") for c in cells)
        # a summary link to a card opens the collapsed detail and scrolls to it
        page.evaluate("document.querySelector('#summary a[href=\"#ind-shmi\"]').click()")
        page.evaluate("new Promise(r => setTimeout(r, 100))", await_promise=True)
        assert page.evaluate("document.getElementById('why').open") is True
        top = page.evaluate("document.getElementById('ind-shmi').getBoundingClientRect().top")
        assert 0 <= top < 1000
    finally:
        page.close()


def test_index_usable_at_800px_and_on_paper(browser, site: Path):
    """At 800 px the band table is not cut off and trust names take at most three lines;
    printed, the controls go and the table still fits the page width."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.open()
    try:
        for media in ("screen", "print"):
            _viewport(page, 800, media=media)
            report = page.goto((site / "index.html").resolve().as_uri())
            assert report.problems == []
            width = page.evaluate("document.documentElement.scrollWidth")
            right = page.evaluate(
                "document.getElementById('band-table').getBoundingClientRect().right"
            )
            assert width <= 800 and right <= 800, (media, width, right)
            lines = page.evaluate(
                "Array.from(document.querySelectorAll('#band-table tbody td:first-child a'))"
                ".map(a => Math.round(a.getClientRects().length))"
            )
            assert len(lines) == 12 and max(lines) <= 3, (media, lines)
            if media == "screen":
                page.screenshot(SCREENSHOTS / "index_800px.png")
            else:
                hidden = page.evaluate(
                    "getComputedStyle(document.querySelector('.controls')).display"
                )
                assert hidden == "none"
        _viewport(page, 1200)
    finally:
        page.close()
