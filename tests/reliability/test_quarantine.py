"""``--quarantine`` (issue 7, DESIGN.md section 4): bad rows set aside with reasons, run continues."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from contract_bundle import valid_frames, write_bundle
from rel_common import QUARTER

from surveillance.bundle import read_bundle
from surveillance.catalogue import load_catalogue
from surveillance.contracts import MAX_ROWS_PER_RULE, validate_bundle
from surveillance.errors import ContractError
from surveillance.quarantine import QUARANTINE_COLUMNS, quarantine_bundle, split_bundle


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def _bundle(tmp_path: Path, frames) -> object:
    return read_bundle(write_bundle(tmp_path / "data", frames))


def test_bad_rows_are_set_aside_with_keys_and_reasons(tmp_path, catalogue) -> None:
    frames = valid_frames()
    frames["indicators"].loc[0, "numerator"] = "-5"  # row 1: RA1 wait_ae_4h
    frames["indicators"].loc[1, "denominator"] = "0"  # row 2: RA1 ratio, expected 0
    frames["indicators"].loc[1, "numerator"] = "12.5"  # and a fractional observed count
    frames["spells"].loc[1, "sex"] = "X"  # row 2: S0002
    result = quarantine_bundle(_bundle(tmp_path, frames), QUARTER, catalogue)

    q = result.rows
    assert list(q.columns) == QUARANTINE_COLUMNS
    assert q[["file", "row"]].values.tolist() == [
        ["indicators.csv", 1],
        ["indicators.csv", 2],
        ["spells.csv", 2],
    ]
    first = q.iloc[0]
    assert (first["column"], first["rule"]) == ("numerator", "numerator_range")
    assert (first["trust_code"], first["indicator_id"]) == ("RA1", "wait_ae_4h")
    assert (first["period_start"], first["period_end"]) == ("2013-07-01", "2013-09-30")
    second = q.iloc[1]
    assert set(second["rule"].split("; ")) == {"expected_positive", "observed_count"}
    assert q.iloc[2]["spell_id"] == "S0002" and q.iloc[2]["rule"] == "allowed_values"
    assert result.count == 3

    original = frames["indicators"]
    kept = result.bundle.indicators
    assert len(kept) == len(original) - 2
    assert kept["indicator_id"].tolist() == original["indicator_id"].iloc[2:].tolist()
    assert result.bundle.spells["spell_id"].tolist() == [
        "S0001",
        "S0003",
        "S0004",
        "S0005",
        "S0006",
    ]
    assert validate_bundle(result.bundle, QUARTER, catalogue) == []


def test_cascade_a_quarantined_trust_takes_its_rows_with_it(tmp_path, catalogue) -> None:
    frames = valid_frames()
    frames["trusts"] = pd.concat(
        [frames["trusts"], frames["trusts"].iloc[[1]]], ignore_index=True
    )  # RA2 twice: both rows break unique_key
    result = quarantine_bundle(_bundle(tmp_path, frames), QUARTER, catalogue)
    q = result.rows
    expected = {"trusts.csv": 2}
    for name in ("indicators", "spells", "staffing", "intelligence", "inspections"):
        n = int((frames[name]["trust_code"] == "RA2").sum())
        if n:
            expected[f"{name}.csv"] = n
    assert q.groupby("file").size().to_dict() == expected
    assert set(q.loc[q["file"] == "trusts.csv", "rule"]) == {"unique_key"}
    assert set(q.loc[q["file"] != "trusts.csv", "rule"]) == {"unknown_trust"}
    assert (q["trust_code"] == "RA2").all()
    assert "RA2" not in set(result.bundle.indicators["trust_code"])
    # row numbers are those of the files as read, not of the shrunken tables
    ra2_rows = (
        frames["indicators"].index[frames["indicators"]["trust_code"] == "RA2"] + 1
    ).tolist()
    assert q.loc[q["file"] == "indicators.csv", "row"].tolist() == ra2_rows
    assert validate_bundle(result.bundle, QUARTER, catalogue) == []


def test_more_bad_rows_than_a_violation_lists(tmp_path, catalogue) -> None:
    """Every bad row is quarantined, not only the first MAX_ROWS_PER_RULE the error lists."""
    frames = valid_frames()
    ind = frames["indicators"]
    monthly = ind.index[ind["indicator_id"] == "wait_ae_4h_cusum"]
    assert len(monthly) > MAX_ROWS_PER_RULE
    ind.loc[monthly, "numerator"] = "4000"  # above the denominator (3000) in all 36 rows
    result = quarantine_bundle(_bundle(tmp_path, frames), QUARTER, catalogue)
    assert result.rows["row"].tolist() == (monthly + 1).tolist()
    assert set(result.rows["rule"]) == {"numerator_range"}
    assert validate_bundle(result.bundle, QUARTER, catalogue) == []


def test_file_level_violations_still_stop(tmp_path, catalogue) -> None:
    frames = valid_frames()
    frames["spells"] = frames["spells"].drop(columns=["sex"])
    frames["indicators"].loc[0, "numerator"] = "-5"
    with pytest.raises(ContractError) as info:
        quarantine_bundle(_bundle(tmp_path, frames), QUARTER, catalogue)
    assert [(v.file, v.rule, v.column) for v in info.value.violations] == [
        ("spells.csv", "missing_column", "sex")
    ]


def test_all_trusts_bad_stops_the_run(tmp_path, catalogue) -> None:
    frames = valid_frames()
    frames["trusts"]["trust_type"] = "community"
    with pytest.raises(ContractError) as info:
        quarantine_bundle(_bundle(tmp_path, frames), QUARTER, catalogue)
    assert ("trusts.csv", "no_rows") in [(v.file, v.rule) for v in info.value.violations]


def test_split_bundle_refuses_rowless_violations(tmp_path) -> None:
    from surveillance.errors import Violation

    bundle = _bundle(tmp_path, valid_frames())
    with pytest.raises(ContractError):
        split_bundle(bundle, [Violation(file="trusts.csv", rule="missing_column", message="x")])


def test_run_with_quarantine_publishes_states_count_and_lists_rows(hostile_bundle, tmp_path):
    import json
    import shutil

    from rel_common import run_options
    from rich.console import Console

    from surveillance import pipeline
    from surveillance.cli import _print_summary

    data = tmp_path / "data"
    shutil.copytree(hostile_bundle, data)
    ind = pd.read_csv(data / "indicators.csv", dtype=str, keep_default_na=False)
    catalogue = load_catalogue()
    proportion = (ind["indicator_id"].map(catalogue["type"]) == "proportion").to_numpy()
    rows = proportion.nonzero()[0][[0, 5, 9]]
    ind.loc[rows, "numerator"] = "-3"
    ind.to_csv(data / "indicators.csv", index=False, lineterminator="\n")
    spells = pd.read_parquet(data / "spells.parquet")
    spells.loc[17, "age"] = 130
    spells.to_parquet(data / "spells.parquet", index=False)

    with pytest.raises(ContractError):  # without --quarantine the run stops
        pipeline.run_quarter(run_options(data, tmp_path / "strict"))
    summary = pipeline.run_quarter(run_options(data, tmp_path / "out", quarantine=True))

    run = tmp_path / "out" / QUARTER
    q = pd.read_csv(run / "quarantine.csv", dtype=str, keep_default_na=False)
    assert list(q.columns) == QUARANTINE_COLUMNS
    expected = [("indicators.csv", str(r + 1)) for r in rows] + [("spells.parquet", "18")]
    assert list(zip(q["file"], q["row"], strict=True)) == expected
    assert q["rule"].tolist() == ["numerator_range"] * 3 + ["age_range"]
    assert q["indicator_id"].tolist()[:3] == ind.loc[rows, "indicator_id"].tolist()
    assert q["trust_code"].tolist()[:3] == ind.loc[rows, "trust_code"].tolist()
    assert q["spell_id"].tolist()[3] == str(spells.loc[17, "spell_id"])

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["quarantined_rows"] == 4
    assert manifest["options"]["quarantine"] is True
    assert summary.quarantined == 4
    console = Console(record=True, width=200)
    _print_summary(console, summary)
    text = console.export_text()
    assert "rows quarantined" in text and "4 (see quarantine.csv)" in text
