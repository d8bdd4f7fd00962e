"""Bad input catalogue (issue 7, part 1): every malformed bundle is refused with a clear error.

For each case in :data:`bad_bundles.CASES`: the contract check names the file, rule, column and
rows; ``surveillance validate`` exits 1 printing them; the quarterly run stops with the same
violation before publishing (``<out>/<quarter>/`` and any staging directory are absent).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_bundles import CASES, Case
from contract_bundle import valid_frames, write_bundle
from rel_common import CODE, QUARTER
from typer.testing import CliRunner

from surveillance import pipeline
from surveillance.bundle import read_bundle
from surveillance.catalogue import load_catalogue
from surveillance.cli import app
from surveillance.contracts import rule_names, validate_bundle
from surveillance.errors import ContractError, Violation

runner = CliRunner()


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def _violations(directory: Path, catalogue) -> list[Violation]:
    try:
        return validate_bundle(read_bundle(directory), QUARTER, catalogue)
    except ContractError as exc:
        return exc.violations


def _matches(case: Case, v: Violation) -> bool:
    return (
        v.file == case.file
        and v.rule == case.rule
        and (case.column is None or v.column == case.column)
        and (case.rows is None or v.rows == case.rows)
        and case.message in v.message
    )


def test_catalogue_size_and_rules_are_documented() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.rule for c in CASES} <= set(rule_names())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_names_file_row_column_rule(case: Case, tmp_path: Path, catalogue) -> None:
    data = tmp_path / "data"
    case.build(data)
    violations = _violations(data, catalogue)
    assert any(_matches(case, v) for v in violations), [str(v) for v in violations]

    result = runner.invoke(app, ["validate", "--data", str(data), "--quarter", QUARTER])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert case.file in text and case.rule in text, text
    if case.column:
        assert case.column in text
    if case.rows:
        assert ", ".join(str(r) for r in case.rows) in text


@pytest.mark.parametrize("spells", ["memory", "chunked"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_run_stops_before_publishing(case: Case, spells: str, tmp_path: Path) -> None:
    """In memory and with the spells chunked (left on disk, read by row group)."""
    data, out = tmp_path / "data", tmp_path / "out"
    case.build(data)
    options = pipeline.RunOptions(
        data_dir=data,
        quarter=QUARTER,
        out=out,
        mlflow=False,
        render_reports=False,
        code=CODE,
        spells=spells,
    )
    with pytest.raises(ContractError) as info:
        pipeline.run_quarter(options)
    assert any(_matches(case, v) for v in info.value.violations), str(info.value)
    assert not (out / QUARTER).exists()
    assert not list(out.glob(f".{QUARTER}.staging-*"))
    assert not (out / "catalogue.duckdb").exists()


def test_utf8_bom_is_accepted_and_stripped(tmp_path: Path, catalogue) -> None:
    """Decision: a UTF-8 byte-order mark is accepted (spreadsheets write one) and stripped."""
    frames = valid_frames()
    write_bundle(tmp_path, frames)
    text = (tmp_path / "trusts.csv").read_bytes()
    (tmp_path / "trusts.csv").write_bytes(b"\xef\xbb\xbf" + text)
    bundle = read_bundle(tmp_path)
    assert list(bundle.trusts.columns)[0] == "trust_code"
    assert bundle.trusts["trust_code"].tolist() == ["RA1", "RA2", "RB3"]
    assert validate_bundle(bundle, QUARTER, catalogue) == []
    result = runner.invoke(app, ["validate", "--data", str(tmp_path), "--quarter", QUARTER])
    assert result.exit_code == 0, result.output


def test_long_line_is_rejected_without_reading_it_whole(tmp_path: Path) -> None:
    """A 64 MiB line is refused while reading stays bounded (peak traced memory << the line)."""
    import tracemalloc

    from surveillance.bundle import MAX_LINE_BYTES, scan_text

    path = tmp_path / "trusts.csv"
    with path.open("wb") as handle:
        handle.write(b"trust_code,trust_name\nRA1,ok\nRA2,")
        block = b"y" * (1 << 20)
        for _ in range(64):
            handle.write(block)
        handle.write(b"\n")
    tracemalloc.start()
    try:
        with pytest.raises(ContractError) as info:
            scan_text(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (v,) = info.value.violations
    assert v.rule == "file_unreadable" and v.file == "trusts.csv"
    assert f"line 3 is longer than {MAX_LINE_BYTES:,} bytes" in v.message
    assert peak < 8 * MAX_LINE_BYTES  # a few chunks, never the 64 MiB line


def test_scan_reports_first_bad_byte_exactly(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    body = b"a,b\n" + b"1,2\n" * 500_000 + "\u00e9t\u00e9,3\n".encode("cp1252")
    path.write_bytes(body)
    from surveillance.bundle import scan_text

    with pytest.raises(ContractError) as info:
        scan_text(path)
    offset = 4 + 4 * 500_000
    assert f"at byte {offset}, line {500_002}" in info.value.violations[0].message
    assert body[offset] == 0xE9


# `surveillance run` over every case (refused before Prefect starts): test_refusals.py
