"""Published outputs (issue 7, parts 1, 4 and 5): reproducible, verifiable, neutralised,
escaped, disclosure-controlled.

One small synthetic quarter (12 trusts; six named with spreadsheet formulas or HTML, two hostile
region names) is published twice from the same inputs (``conftest.published``).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
from rel_common import HOSTILE_NAMES, HOSTILE_REGIONS, QUARTER
from scan import formula_cells, parse, small_counts
from typer.testing import CliRunner

from surveillance.cli import app
from surveillance.manifest import TIMINGS_FILE

runner = CliRunner()
#: files of a published quarter that legitimately differ between reruns: wall times, peak
#: memory, host, pid, finish time and MLflow's random run ids (the manifest records none of them).
VOLATILE = {TIMINGS_FILE}


def _files(run_dir: Path) -> dict[str, Path]:
    return {p.relative_to(run_dir).as_posix(): p for p in sorted(run_dir.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ reproducibility


def test_two_runs_are_byte_identical(published) -> None:
    a = _files(published["a"] / QUARTER)
    b = _files(published["b"] / QUARTER)
    assert set(a) == set(b)
    kinds = {Path(n).suffix for n in a}
    assert {".csv", ".json", ".html"} <= kinds
    assert len([n for n in a if n.endswith(".html")]) > 20
    differ = [n for n in sorted(a) if n not in VOLATILE and a[n].read_bytes() != b[n].read_bytes()]
    assert differ == []
    assert set(a) & VOLATILE == VOLATILE  # the volatile file exists and is the only exception


def test_verify_passes_then_detects_changed_output_and_input(published, hostile_bundle, tmp_path):
    run = tmp_path / "out" / QUARTER
    shutil.copytree(published["b"] / QUARTER, run)
    data = tmp_path / "data"
    shutil.copytree(hostile_bundle, data)
    ok = runner.invoke(app, ["verify", str(run), "--data", str(data)])
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output

    bands = run / "bands.csv"
    bands.write_bytes(bands.read_bytes().replace(b",1,", b",2,", 1))
    changed = runner.invoke(app, ["verify", str(run)])
    assert changed.exit_code == 1, changed.output
    assert "bands.csv" in changed.output

    shutil.copy2(published["b"] / QUARTER / "bands.csv", bands)
    trusts = data / "trusts.csv"
    trusts.write_bytes(trusts.read_bytes() + b"\n")
    changed_input = runner.invoke(app, ["verify", str(run), "--data", str(data)])
    assert changed_input.exit_code == 1, changed_input.output
    assert "trusts.csv" in changed_input.output


# ------------------------------------------------------------------ injection


def test_no_csv_cell_starts_a_formula(published) -> None:
    run = published["a"] / QUARTER
    csvs = sorted(run.rglob("*.csv"))
    assert len(csvs) >= 6
    hits = {p.relative_to(run).as_posix(): formula_cells(p) for p in csvs}
    assert {k: v for k, v in hits.items() if v} == {}
    bands = pd.read_csv(run / "bands.csv", dtype=str, keep_default_na=False)
    names = set(bands["trust_name"])
    for name in HOSTILE_NAMES[:4]:  # kept, with the apostrophe that stops evaluation
        assert "'" + name in names


def test_mlflow_csv_artifacts_are_neutralised(published) -> None:
    artifacts = sorted((published["a"] / "mlartifacts").rglob("*.csv"))
    assert artifacts
    hits = {p.name: formula_cells(p) for p in artifacts}
    assert {k: v for k, v in hits.items() if v} == {}


def test_html_escapes_hostile_names(published) -> None:
    run = published["a"] / QUARTER
    pages = sorted(run.rglob("*.html"))
    shown = set()
    for path in pages:
        raw = path.read_text(encoding="utf-8")
        assert '<script>alert("x")' not in raw, path
        assert "<img src=x" not in raw, path
        assert "<b>Nowhere</b>" not in raw, path
        page = parse(path)
        for tag, attrs in page.tags:
            assert not any(k.startswith("on") for k in attrs), (path, tag, attrs)
            assert tag not in ("img", "b") or "Nowhere" not in str(attrs)
        # data embedded in <script> blocks must not be able to close the block or open a tag
        assert not any(re.search(r"</?(script|img|b)[\s>/]", s, re.I) for s in page.scripts)
        text = " ".join(page.texts)
        shown |= {n for n in HOSTILE_NAMES + HOSTILE_REGIONS if n in text}
    # every hostile string is shown as text somewhere, i.e. escaped rather than dropped
    assert shown == set(HOSTILE_NAMES + HOSTILE_REGIONS)


def test_region_names_cannot_place_files_outside_the_reports(published) -> None:
    run = published["a"] / QUARTER
    qsg = sorted(p.name for p in (run / "reports" / "qsg").glob("*.html"))
    assert all(re.fullmatch(r"[a-z0-9-]+\.html", n) for n in qsg), qsg
    assert "tmp-escape.html" in qsg
    everything = [p.resolve() for p in published["a"].rglob("*")]
    assert all(published["a"].resolve() in p.parents for p in everything)


# ------------------------------------------------------------------ disclosure control


def test_no_page_shows_a_patient_count_from_1_to_4(published) -> None:
    run = published["a"] / QUARTER
    pages = sorted((run / "reports").rglob("*.html"))
    found = {p.relative_to(run).as_posix(): small_counts(parse(p)) for p in pages}
    assert {k: v for k, v in found.items() if v} == {}


def test_small_mortality_counts_are_suppressed_on_trust_pages(published) -> None:
    """Value check: every trust x group with 1-4 observed deaths shows "<5", never the number."""
    run = published["a"] / QUARTER
    mort = pd.read_csv(run / "mortality.csv", dtype={"trust_code": str})
    small = mort[(mort["observed"] >= 1) & (mort["observed"] <= 4)]
    assert len(small) >= 5  # the test quarter has small counts to suppress
    checked = 0
    for path in sorted((run / "reports" / "trusts").glob("*.html")):
        page = parse(path)
        for table in page.tables:
            if table["headers"][:2] != ["Diagnosis group", "Observed deaths"]:
                continue
            shown = {row[0]: row[1] for row in table["rows"] if len(row) > 1}
            code = path.stem.split("-")[0].upper()
            for r in small[small["trust_code"].str.upper() == code].itertuples():
                if r.diagnosis_group in shown:
                    assert shown[r.diagnosis_group] == "<5", (path.name, r.diagnosis_group)
                    checked += 1
    assert checked >= 5


def test_spell_level_data_never_leaves_the_run(published, hostile_bundle) -> None:
    spells = pd.read_parquet(hostile_bundle / "spells.parquet", columns=["spell_id"])
    ids = set(spells["spell_id"].astype(str))
    width = {len(i) for i in ids}
    assert len(width) == 1
    token = re.compile(rb"(?<!\d)\d{%d}(?!\d)" % width.pop())
    for out in published.values():
        files = [p for p in out.rglob("*") if p.is_file()]
        assert any("mlartifacts" in p.parts for p in files) or out == published["b"]
        for path in files:
            data = path.read_bytes()
            leaked = {m.group(0).decode() for m in token.finditer(data)} & ids
            assert not leaked, (path, sorted(leaked)[:3])
            if path.suffix == ".csv":
                header = data.split(b"\n", 1)[0].decode()
                assert "spell_id" not in header and "admission_date" not in header, path


def test_manifest_holds_hashes_not_data(published, hostile_bundle) -> None:
    path = published["a"] / QUARTER / "manifest.json"
    manifest = json.loads(path.read_text())
    assert path.stat().st_size < 200_000
    for name, entry in manifest["inputs"].items():
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), name
    for name, digest in manifest["outputs"].items():
        assert re.fullmatch(
            r"[0-9a-f]{64}", str(digest if isinstance(digest, str) else digest.get("sha256"))
        ), name
    text = path.read_text()
    trusts = pd.read_csv(hostile_bundle / "trusts.csv", dtype=str, keep_default_na=False)
    for name in trusts["trust_name"]:  # no data rows, not even trust names
        assert json.dumps(name)[1:-1] not in text


# ------------------------------------------------------------------ the scanners themselves


def test_scanners_find_what_they_look_for(tmp_path) -> None:
    page = tmp_path / "p.html"
    page.write_text(
        "<table><tr><th>Group</th><th>Observed</th></tr><tr><td>AMI</td><td>3</td></tr>"
        "<tr><td>COPD</td><td>&lt;5</td></tr><tr><td>CABG</td><td>12</td></tr></table>"
        "<p>observed deaths 2, expected 1.4</p><p>1 to 4 patients are shown as &lt;5.</p>"
        '<script>var d = {"observed": 4};</script>'
    )
    found = small_counts(parse(page))
    assert len(found) == 3, found
    assert "'3'" in found[0] and "observed deaths 2" in found[1] and "script" in found[2]
    sheet = tmp_path / "s.csv"
    sheet.write_text('a,b\n-1.5,"=HYPERLINK(""x"")"\n+3e-4,@SUM(A1)\n-inf,\'=safe\n')
    assert [(r, c) for r, c, _ in formula_cells(sheet)] == [(2, 1), (3, 1)]
