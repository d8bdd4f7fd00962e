"""Issue 17, item 3 "nothing silent": what the reader accepts but changes is recorded, the rest is
refused with file, rows, column and rule (surveillance/bundle.py module docstring)."""

from __future__ import annotations

import pandas as pd
import pytest
from contract_bundle import QUARTER, valid_frames, write_bundle

from surveillance import pipeline
from surveillance.bundle import InputNote, read_bundle
from surveillance.contracts import validate_bundle
from surveillance.errors import ContractError
from surveillance.quarantine import quarantine_bundle


def _violations(directory, catalogue, lazy: bool = False):
    """Violations of the bundle, its spells in memory or (``lazy``) checked chunk by chunk."""
    try:
        if lazy:
            bundle = read_bundle(directory, lazy_spells=True)
            assert bundle.spells_source is not None
            return pipeline.contract_violations(bundle, QUARTER, catalogue)
        return validate_bundle(read_bundle(directory), QUARTER, catalogue)
    except ContractError as exc:
        return exc.violations


def _converted(bundle) -> dict[tuple[str, str], InputNote]:
    return {(n.file, n.column): n for n in bundle.notes if n.note == "converted"}


# ---- conversions: one rule for every column ----------------------------------------------


def test_integer_spell_ids_are_read_as_text_and_recorded(tmp_path, catalogue):
    frames = valid_frames()
    frames["spells"]["spell_id"] = [101, 102, 103, 104, 105, 9007199254740993]  # > 2**53
    write_bundle(tmp_path, frames, parquet=("spells",))
    for lazy in (False, True):
        bundle = read_bundle(tmp_path, lazy_spells=lazy)
        assert _violations(tmp_path, catalogue, lazy) == []
        note = _converted(bundle)[("spells.parquet", "spell_id")]
        assert "stored as integers (int64), read as text (lossless)" in note.message
    spells = read_bundle(tmp_path).spells
    assert spells["spell_id"].tolist()[-1] == "9007199254740993"  # exact, never via a float


def test_integer_codes_in_every_text_column_alike(tmp_path, catalogue):
    frames = valid_frames()
    staffing = frames["staffing"]
    staffing["ward_code"] = 7
    frames["staffing"] = staffing.drop_duplicates(
        ["trust_code", "month", "staff_group", "shift"]
    ).reset_index(drop=True)
    write_bundle(tmp_path, frames, parquet=("staffing",))
    bundle = read_bundle(tmp_path)
    assert validate_bundle(bundle, QUARTER, catalogue) == []
    assert bundle.staffing["ward_code"].unique().tolist() == ["7"]
    assert ("staffing.parquet", "ward_code") in _converted(bundle)


@pytest.mark.parametrize(
    ("ids", "rows"),
    [([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (1, 2, 3, 4, 5, 6)), ([1.5, 2.5, 3.5, 4.5, 5.5, 6.5], None)],
    ids=["whole", "fraction"],
)
def test_float_spell_ids_are_refused(tmp_path, catalogue, ids, rows):
    """A float id is lossy (1.0 or 1? and floats hold ids exactly only below 2**53)."""
    frames = valid_frames()
    frames["spells"]["spell_id"] = ids
    write_bundle(tmp_path, frames, parquet=("spells",))
    found = [(v.file, v.rule, v.column, v.rows) for v in _violations(tmp_path, catalogue)]
    assert found == [("spells.parquet", "not_text", "spell_id", (1, 2, 3, 4, 5, 6))]


def test_ages_fraction_refused_whole_floats_and_text_recorded(tmp_path, catalogue):
    frames = valid_frames()
    spells = frames["spells"]
    spells["age"] = spells["age"].astype(float)
    write_bundle(tmp_path / "whole", frames, parquet=("spells",))
    bundle = read_bundle(tmp_path / "whole")
    assert validate_bundle(bundle, QUARTER, catalogue) == []
    note = _converted(bundle)[("spells.parquet", "age")]
    assert "floating point (all whole)" in note.message

    spells.loc[2, "age"] = 42.5
    write_bundle(tmp_path / "fraction", frames, parquet=("spells",))
    found = [(v.rule, v.column, v.rows) for v in _violations(tmp_path / "fraction", catalogue)]
    assert found == [("not_integer", "age", (3,))]

    text = valid_frames()
    text["spells"].loc[0, "age"] = "74.0"
    write_bundle(tmp_path / "csv", text)
    bundle = read_bundle(tmp_path / "csv")
    assert validate_bundle(bundle, QUARTER, catalogue) == []
    note = _converted(bundle)[("spells.csv", "age")]
    assert note.rows == 1 and "42.0" in note.message


def test_one_zero_booleans_recorded_other_integers_refused(tmp_path, catalogue):
    frames = valid_frames()
    spells = frames["spells"]
    for column in ("palliative_care", "died_in_hospital", "died_30d"):
        spells[column] = (spells[column] == "true").astype("int64")
    write_bundle(tmp_path / "ok", frames, parquet=("spells",))
    bundle = read_bundle(tmp_path / "ok")
    assert validate_bundle(bundle, QUARTER, catalogue) == []
    assert "integers 1/0" in _converted(bundle)[("spells.parquet", "died_30d")].message
    # CSV: true/false is the text form, 1/0 a recorded conversion (valid_frames has one "1")
    csv = read_bundle(write_bundle(tmp_path / "csv", valid_frames()))
    note = _converted(csv)[("intelligence.csv", "validated")]
    assert note.rows == 1 and note.message == "1/0 read as true/false"

    spells.loc[1, "died_30d"] = 2
    write_bundle(tmp_path / "bad", frames, parquet=("spells",))
    found = [(v.rule, v.column, v.rows) for v in _violations(tmp_path / "bad", catalogue)]
    assert ("not_boolean", "died_30d", (2,)) in found


def test_native_types_need_no_note(tmp_path):
    """Stored as its kind (what the synthetic nation writes): no note, so no manifest change."""
    frames = valid_frames()
    spells = frames["spells"]
    for column in ("admission_date", "discharge_date"):
        spells[column] = pd.to_datetime(spells[column]).dt.date
    for column in ("age", "comorbidity"):
        spells[column] = spells[column].astype("int16")
    spells["deprivation_quintile"] = pd.array([3, None, 5, 1, 2, 4], dtype="Int8")
    for column in ("palliative_care", "died_in_hospital", "died_30d"):
        spells[column] = spells[column] == "true"
    frames["intelligence"]["validated"] = ["true", "false", "True"]
    write_bundle(tmp_path, frames, parquet=("spells",))
    assert read_bundle(tmp_path).notes == ()


# ---- dates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("2013-7-1", "not_date"),
        ("2013-07-1", "not_date"),
        ("13-07-01", "not_date"),
        ("2013-07-01T10:00", "time_in_date"),
        ("2013-07-01 10:00:00", "time_in_date"),
    ],
)
def test_dates_are_iso_8601_only(tmp_path, catalogue, value, rule):
    frames = valid_frames()
    frames["inspections"].loc[0, "inspection_date"] = value
    write_bundle(tmp_path, frames)
    found = [(v.rule, v.column, v.rows) for v in _violations(tmp_path, catalogue)]
    assert found == [(rule, "inspection_date", (1,))]


def test_times_in_spell_timestamps_are_not_window_violations(tmp_path, catalogue):
    """Timestamps at 23:59 on the quarter's last day (a time, not a date outside the window)."""
    frames = valid_frames()
    spells = frames["spells"]
    for column in ("admission_date", "discharge_date"):
        spells[column] = pd.to_datetime(spells[column]) + pd.Timedelta("23:59:00")
    write_bundle(tmp_path, frames, parquet=("spells",))
    for lazy in (False, True):
        found = [(v.rule, v.column, v.rows) for v in _violations(tmp_path, catalogue, lazy)]
        rows = (1, 2, 3, 4, 5, 6)
        assert found == [
            ("time_in_date", "admission_date", rows),
            ("time_in_date", "discharge_date", rows),
        ]
        assert "times are not allowed" in _violations(tmp_path, catalogue, lazy)[0].message


# ---- row numbers and headers -------------------------------------------------------------


def _with_blank_lines(tmp_path, table: str, after: tuple[int, ...]):
    """The CSV of ``table`` with a blank line after each of the given lines."""
    path = tmp_path / f"{table}.csv"
    lines = path.read_text().splitlines()
    for line in sorted(after, reverse=True):
        lines.insert(line, "")
    path.write_text("\n".join(lines) + "\n")
    return lines


def test_rows_after_blank_lines_are_their_line_minus_one(tmp_path, catalogue):
    frames = valid_frames()
    frames["spells"].loc[4, "sex"] = "X"  # data row 5: line 6, line 8 after two blank lines
    write_bundle(tmp_path, frames)
    lines = _with_blank_lines(tmp_path, "spells", (2, 4))
    found = [(v.rule, v.rows) for v in _violations(tmp_path, catalogue)]
    assert found == [("allowed_values", (7,))]
    assert ",X," in lines[7 + 1 - 1]  # line 8 (1-based) is row 7 + 1


def test_quarantine_names_the_file_row_after_blank_lines(tmp_path, catalogue):
    frames = valid_frames()
    frames["spells"].loc[4, "sex"] = "X"
    write_bundle(tmp_path, frames)
    _with_blank_lines(tmp_path, "spells", (2, 4))
    kept = quarantine_bundle(read_bundle(tmp_path), QUARTER, catalogue)
    assert kept.rows[["file", "row", "rule"]].values.tolist() == [
        ["spells.csv", 7, "allowed_values"]
    ]
    assert kept.rows["spell_id"].tolist() == ["S0005"]
    assert "S0005" not in kept.bundle.spells["spell_id"].tolist()


def test_a_value_spanning_lines_keeps_later_rows_on_their_line(tmp_path, catalogue):
    frames = valid_frames()
    frames["trusts"].loc[0, "trust_name"] = "Alpha\nHospitals"  # quoted, two lines
    frames["trusts"].loc[2, "trust_type"] = "community"  # data row 3 starts on line 5
    write_bundle(tmp_path, frames)
    found = [(v.rule, v.rows) for v in _violations(tmp_path, catalogue)]
    assert found == [("allowed_values", (4,))]


def test_duplicated_header_names_the_column_in_the_file(tmp_path, catalogue):
    write_bundle(tmp_path, valid_frames())
    path = tmp_path / "staffing.csv"
    text = path.read_text().replace("planned_hours,actual_hours", "actual_hours,actual_hours", 1)
    path.write_text(text)
    found = _violations(tmp_path, catalogue)
    assert [(v.file, v.rule, v.column) for v in found] == [
        ("staffing.csv", "duplicate_column", "actual_hours")
    ]
    assert all(".1" not in (v.column or "") and ".1" not in v.message for v in found)


# ---- region names ------------------------------------------------------------------------


def test_region_case_and_spacing_variants_are_one_region_with_a_note(tmp_path, catalogue):
    frames = valid_frames()
    frames["trusts"]["region"] = ["London", "london ", "  LONDON"]
    write_bundle(tmp_path, frames)
    bundle = read_bundle(tmp_path)
    assert bundle.trusts["region"].tolist() == ["London", "London", "London"]
    notes = [n for n in bundle.notes if n.note == "normalised"]
    assert [(n.file, n.column, n.rows) for n in notes] == [
        ("trusts.csv", "region", 1),
        ("trusts.csv", "region", 1),
    ]
    assert "'london ' read as 'London'" in " ".join(n.message for n in notes)
    assert validate_bundle(bundle, QUARTER, catalogue) == []


def test_most_used_spelling_wins(tmp_path):
    frames = valid_frames()
    frames["trusts"]["region"] = ["north  west", "North West", "North West"]
    write_bundle(tmp_path, frames)
    bundle = read_bundle(tmp_path)
    assert bundle.trusts["region"].tolist() == ["North West"] * 3
    (note,) = [n for n in bundle.notes if n.note == "normalised"]
    assert "row(s) 1" in note.message


def test_distinct_regions_untouched(tmp_path):
    write_bundle(tmp_path, valid_frames())
    bundle = read_bundle(tmp_path)
    assert bundle.trusts["region"].tolist() == ["London", "North", "Midlands"]
    assert [n for n in bundle.notes if n.note == "normalised"] == []


# ---- diagnosis groups the risk models do not know ------------------------------------------


def test_unknown_diagnosis_groups_named_with_counts(tmp_path):
    frames = valid_frames()
    frames["spells"]["diagnosis_group"] = [
        "Pneumonia",
        "pneumonia ",
        "Made up",
        "Made up",
        "Acute myocardial infarction",
        "Pneumonia",
    ]
    write_bundle(tmp_path, frames, parquet=("spells",))
    for lazy in (False, True):
        (note,) = pipeline.diagnosis_notes(read_bundle(tmp_path, lazy_spells=lazy))
        assert (note.file, note.column, note.note, note.rows) == (
            "spells.parquet",
            "diagnosis_group",
            "unknown_value",
            3,
        )
        assert note.message.startswith("2 diagnosis group(s) not in the reference list")
        assert "'Made up' 2 spell(s); 'pneumonia ' 1 spell(s), differs only in case or " in (
            note.message
        )
        assert "spacing from 'Pneumonia'" in note.message


def test_known_diagnosis_groups_give_no_note(tmp_path):
    frames = valid_frames()
    frames["spells"]["diagnosis_group"] = "Pneumonia"
    write_bundle(tmp_path, frames)
    assert pipeline.diagnosis_notes(read_bundle(tmp_path)) == []


def test_one_zero_integers_are_read_as_booleans(tmp_path):
    frames = valid_frames()
    spells = frames["spells"]
    spells["died_30d"] = (spells["died_30d"] == "true").astype("int8")
    write_bundle(tmp_path, frames, parquet=("spells",))
    read = read_bundle(tmp_path).spells["died_30d"]
    assert pd.api.types.is_bool_dtype(read.dtype)
    assert read.tolist() == [False, False, True, True, False, False]


def test_rows_after_rows_a_feed_superseded_keep_their_number(tmp_path, catalogue):
    """A source feed replaces the indicators.csv rows of its indicators (here the A&E rows, 1 and
    8-31 of each trust, even though the packaged feed is late for 2013Q3): a bad row after them
    is still named by its own row, in the check and in quarantine."""
    import shutil

    frames = valid_frames()
    frames["indicators"].loc[35, "standard_error"] = "0"  # row 36: RA2 ss_engagement
    write_bundle(tmp_path, frames)
    (tmp_path / "feeds").mkdir()
    feed = pipeline.PROJECT_ROOT / "surveillance" / "sources" / "data" / "ae_attendances.csv"
    shutil.copy(feed, tmp_path / "feeds" / "ae_attendances.csv")
    bundle, assembly = pipeline.read_inputs(tmp_path, catalogue, QUARTER)
    assert len(assembly.indicators) < len(bundle.indicators)  # rows were superseded
    found = pipeline.validation_violations(bundle, assembly, catalogue, QUARTER)
    assert [(v.file, v.rule, v.rows) for v in found] == [("indicators.csv", "se_positive", (36,))]
    kept = pipeline.validate(bundle, assembly, catalogue, QUARTER, quarantine=True)
    assert kept.quarantine[["file", "row", "rule"]].values.tolist() == [
        ["indicators.csv", 36, "se_positive"]
    ]


def test_a_field_over_the_csv_readers_limit_is_unreadable_not_a_crash(tmp_path, catalogue):
    write_bundle(tmp_path, valid_frames())
    with (tmp_path / "inspections.csv").open("a") as handle:
        handle.write("RA2,2013-01-01," + "x" * 200_000 + "\n")
    (v,) = _violations(tmp_path, catalogue)
    assert (v.file, v.rule) == ("inspections.csv", "file_unreadable")
    assert "line 5" in v.message
