"""Reading a bundle: CSV or Parquet, codes as text, unreadable files named, nothing written."""

from __future__ import annotations

import pandas as pd
import pytest
from contract_bundle import valid_frames, write_bundle

from surveillance.bundle import read_bundle
from surveillance.errors import ContractError


def _violations(path):
    with pytest.raises(ContractError) as info:
        read_bundle(path)
    return [(v.file, v.rule) for v in info.value.violations], str(info.value)


def test_reads_csv_with_types_and_text(tmp_path):
    frames = valid_frames()
    frames["staffing"].loc[0, "ward_code"] = "NA"  # a real ward code, not a missing value
    frames["trusts"].loc[1, "trust_code"] = "RA2"
    bundle = read_bundle(write_bundle(tmp_path, frames))
    assert bundle.directory == tmp_path
    assert set(bundle.paths) == {
        "trusts",
        "indicators",
        "spells",
        "staffing",
        "intelligence",
        "inspections",
    }
    assert bundle.staffing.loc[0, "ward_code"] == "NA"
    assert bundle.trusts["trust_code"].tolist() == ["RA1", "RA2", "RB3"]
    # empty cells of text columns stay empty strings; of number/date columns become missing
    assert bundle.trusts.loc[1, "last_rating"] == ""
    assert pd.isna(bundle.trusts.loc[1, "last_inspection_date"])
    assert bundle.intelligence.loc[1, "category"] == ""
    assert bundle.trusts["foundation_trust"].tolist() == [False, True, True]
    assert bundle.indicators["period_start"].dtype == "datetime64[ns]"
    assert bundle.indicators.loc[0, "numerator"] == 412.0
    assert bundle.spells["age"].tolist() == [74, 0, 88, 120, 61, 45]
    assert bundle.spells["deprivation_quintile"].isna().tolist() == [
        False,
        True,
        False,
        False,
        False,
        False,
    ]
    assert bundle.indicators["band"].tolist()[5] == "2"  # band labels stay text


def test_codes_with_leading_zeros_stay_text(tmp_path):
    frames = valid_frames()
    frames["staffing"]["ward_code"] = "007"
    frames["staffing"] = frames["staffing"].drop_duplicates(
        ["trust_code", "month", "staff_group", "shift"]
    )
    bundle = read_bundle(write_bundle(tmp_path, frames))
    assert set(bundle.staffing["ward_code"]) == {"007"}


def test_unparseable_column_left_as_text(tmp_path):
    frames = valid_frames()
    frames["spells"].loc[2, "age"] = "old"
    bundle = read_bundle(write_bundle(tmp_path, frames))
    assert bundle.spells["age"].tolist()[2] == "old"  # not coerced: the contract names the row


def test_parquet_keeps_empty_string_and_missing_apart(tmp_path):
    frames = valid_frames()
    intel = frames["intelligence"].copy()
    intel["category"] = ["staffing", "", None]
    frames["intelligence"] = intel
    bundle = read_bundle(write_bundle(tmp_path, frames, parquet=("intelligence",)))
    cats = bundle.intelligence["category"]
    assert cats[1] == "" and pd.isna(cats[2])
    assert bundle.file_name("intelligence") == "intelligence.parquet"


def test_missing_required_file(tmp_path):
    frames = valid_frames()
    del frames["trusts"]
    write_bundle(tmp_path, frames)
    found, message = _violations(tmp_path)
    assert found == [("trusts.csv", "missing_file")]
    assert "trusts.csv (or trusts.parquet) is absent" in message


def test_optional_files_may_be_absent(tmp_path):
    frames = valid_frames()
    for name in ("spells", "staffing", "intelligence", "inspections"):
        del frames[name]
    bundle = read_bundle(write_bundle(tmp_path, frames))
    assert bundle.spells is None and bundle.inspections is None


def test_ambiguous_file(tmp_path):
    write_bundle(tmp_path, valid_frames())
    valid_frames()["spells"].to_parquet(tmp_path / "spells.parquet")
    found, _ = _violations(tmp_path)
    assert found == [("spells.csv", "ambiguous_file")]


def test_empty_file(tmp_path):
    write_bundle(tmp_path, valid_frames())
    (tmp_path / "inspections.csv").write_bytes(b"")
    found, message = _violations(tmp_path)
    assert found == [("inspections.csv", "file_unreadable")]
    assert "empty" in message


def test_bad_encoding(tmp_path):
    write_bundle(tmp_path, valid_frames())
    text = (tmp_path / "trusts.csv").read_text().replace("Alpha", "Alph\u00e9")
    (tmp_path / "trusts.csv").write_bytes(text.encode("latin-1"))
    found, message = _violations(tmp_path)
    assert found == [("trusts.csv", "file_unreadable")]
    assert "UTF-8" in message


def test_corrupted_parquet(tmp_path):
    write_bundle(tmp_path, valid_frames(), parquet=("spells",))
    path = tmp_path / "spells.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    found, _ = _violations(tmp_path)
    assert found == [("spells.parquet", "file_unreadable")]


def test_ragged_csv(tmp_path):
    write_bundle(tmp_path, valid_frames())
    with open(tmp_path / "inspections.csv", "a") as handle:
        handle.write("RA1,2013-01-01,Good,extra,cells\n")
    found, _ = _violations(tmp_path)
    assert found == [("inspections.csv", "file_unreadable")]


def test_all_unreadable_files_reported_together(tmp_path):
    write_bundle(tmp_path, valid_frames())
    (tmp_path / "staffing.csv").write_bytes(b"")
    (tmp_path / "indicators.csv").unlink()
    found, _ = _violations(tmp_path)
    assert found == [("indicators.csv", "missing_file"), ("staffing.csv", "file_unreadable")]


def test_missing_directory(tmp_path):
    found, _ = _violations(tmp_path / "nope")
    assert found[0][1] == "missing_file"
