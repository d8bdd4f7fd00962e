"""`surveillance validate`: exit codes, output, and the input left untouched."""

from __future__ import annotations

import hashlib

from contract_bundle import valid_frames, write_bundle
from typer.testing import CliRunner

from surveillance.cli import app

runner = CliRunner()


def _fingerprint(directory):
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(directory.iterdir())
    }


def test_clean_bundle_exits_0_and_is_untouched(tmp_path):
    write_bundle(tmp_path, valid_frames(), parquet=("spells",))
    before = _fingerprint(tmp_path)
    result = runner.invoke(app, ["validate", "--data", str(tmp_path), "--quarter", "2013Q3"])
    assert result.exit_code == 0, result.output
    assert "no contract violations" in result.output
    assert _fingerprint(tmp_path) == before


def test_violations_exit_1_and_are_listed(tmp_path):
    frames = valid_frames()
    frames["spells"].loc[1, "sex"] = "X"
    frames["indicators"].loc[0, "numerator"] = "99999"
    write_bundle(tmp_path, frames)
    before = _fingerprint(tmp_path)
    result = runner.invoke(app, ["validate", "--data", str(tmp_path), "--quarter", "2013Q3"])
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    assert "2 contract violation(s)" in out
    for text in ("spells.csv", "allowed_values", "sex", "indicators.csv", "numerator_range"):
        assert text in out
    assert _fingerprint(tmp_path) == before


def test_unreadable_file_exits_1(tmp_path):
    write_bundle(tmp_path, valid_frames())
    (tmp_path / "staffing.csv").write_bytes(b"")
    result = runner.invoke(app, ["validate", "--data", str(tmp_path), "--quarter", "2013Q3"])
    assert result.exit_code == 1
    assert "file_unreadable" in result.output


def test_wrong_quarter_is_a_violation(tmp_path):
    write_bundle(tmp_path, valid_frames())
    result = runner.invoke(app, ["validate", "--data", str(tmp_path), "--quarter", "2014Q1"])
    assert result.exit_code == 1
    assert "period_window" in result.output


def test_usage_errors_exit_2(tmp_path):
    write_bundle(tmp_path, valid_frames())
    cases = [
        ["validate", "--quarter", "2013Q3"],  # no data
        ["validate", "--data", str(tmp_path), "--quarter", "2013Q5"],
        ["validate", "--data", str(tmp_path / "absent"), "--quarter", "2013Q3"],
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)


def test_quarter_is_inferred_and_said(tmp_path):
    """Issue 17: without --quarter, the quarter the data cover is checked, and the output says so."""
    write_bundle(tmp_path, valid_frames())
    result = runner.invoke(app, ["validate", "--data", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "no --quarter given: checking for 2013Q3, the quarter the data cover" in text
    assert "valid for 2013Q3" in text


def test_wrong_quarter_names_the_quarter_the_data_cover(tmp_path):
    write_bundle(tmp_path, valid_frames())
    result = runner.invoke(
        app, ["validate", "--data", str(tmp_path), "--quarter", "2014Q1"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1
    assert "did you mean --quarter 2013Q3?" in " ".join(result.output.split())


def test_violation_text_is_printed_as_is(tmp_path):
    """A code like '[bold]X' in a message is text, not Rich markup (issue 17: messages exact)."""
    frames = valid_frames()
    for frame in frames.values():
        frame.loc[frame["trust_code"] == "RA1", "trust_code"] = "[bold]X"
    write_bundle(tmp_path, frames)
    result = runner.invoke(
        app, ["validate", "--data", str(tmp_path), "--quarter", "2013Q3"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 1
    assert "code_shape" in result.output and "'[bold]X'" in result.output
