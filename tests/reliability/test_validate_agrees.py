"""One definition of "valid" (issue 17, item 2): ``surveillance validate`` and the run's checks
before Prefect starts (:func:`surveillance.pipeline.preflight`, what ``surveillance run`` calls
first) agree on every case of the bad-input catalogue, the source-feed cases and bundles that are
accepted with notes: both refuse, with the same violations (file, rule, column, rows), or both
accept; and neither prints a traceback on stdout or stderr. No Prefect server is started: the
run's side is the preflight, in process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_bundles import CASES, FEED_CASES, Case, _frames_case
from rel_common import QUARTER, run_options
from typer.testing import CliRunner

from surveillance import pipeline
from surveillance.cli import app
from surveillance.errors import ContractError, SurveillanceError

runner = CliRunner()


def _int_spell_ids(frames) -> None:
    frames["spells"]["spell_id"] = [11, 12, 13, 14, 15, 16]


def _region_variants(frames) -> None:
    frames["trusts"]["region"] = ["London", "london", "North"]


def _unknown_group(frames) -> None:
    frames["spells"].loc[0, "diagnosis_group"] = "Not a group"


#: bundles accepted with input notes (conversions, normalised regions, unknown groups)
ACCEPTED: list[Case] = [
    Case("int_spell_ids", _frames_case(_int_spell_ids, parquet=("spells",)), "", ""),
    Case("region_variants", _frames_case(_region_variants), "", ""),
    Case("unknown_group", _frames_case(_unknown_group), "", ""),
]
ALL = CASES + FEED_CASES + ACCEPTED


def _preflight(data: Path, out: Path):
    """What the run decides before orchestration: ``(violations, message)``; both empty when the
    run would go on to start the flow."""
    try:
        pipeline.preflight(run_options(data, out))
    except ContractError as exc:
        return exc.violations, str(exc)
    except SurveillanceError as exc:
        return None, str(exc)
    return [], ""


def _no_traceback(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream, stream


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_validate_and_the_run_agree(case: Case, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    case.build(data)
    violations, message = _preflight(data, out)
    checked = runner.invoke(
        app, ["validate", "--data", str(data), "--quarter", QUARTER], env={"COLUMNS": "250"}
    )
    _no_traceback(checked)
    text = " ".join(checked.output.split())
    if case in ACCEPTED:
        assert violations == [] and message == "", message
        assert checked.exit_code == 0, checked.output
        assert "input note(s)" in text
        return
    assert checked.exit_code == 1, checked.output
    assert violations != [], f"the run would start the flow on {case.id}"
    if violations is None:  # a plain refusal (not a contract violation): the same words
        assert f"error: {' '.join(message.split())}" in text
        return
    assert f"{len(violations)} contract violation(s)" in text
    for v in violations:
        assert v.file in text and v.rule in text, (str(v), text)
        if v.column:
            assert v.column in text
        if v.rows:
            assert ", ".join(str(r) for r in v.rows[:5]) in text
    assert any(v.file == case.file and v.rule == case.rule for v in violations)


@pytest.mark.parametrize("case", FEED_CASES, ids=[c.id for c in FEED_CASES])
def test_run_refuses_bad_feeds_plainly(case: Case, tmp_path: Path) -> None:
    """``surveillance run`` itself on the feed cases (refused before Prefect: no server)."""
    data, out = tmp_path / "data", tmp_path / "out"
    case.build(data)
    result = runner.invoke(
        app,
        ["run", "--data", str(data), "--quarter", QUARTER, "--out", str(out), "--no-mlflow"],
        env={"COLUMNS": "250"},
    )
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert f"{case.file}: [{case.rule}]" in text and case.message in text, text
    assert text.endswith("nothing was published")
    assert not out.exists()
