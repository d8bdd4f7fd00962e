"""Every contract rule is rejected by at least one bad file, with file, rows, column and rule.

Rows are 1-based data rows: row 1 is the first line after the CSV header.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from contract_bundle import MONTHS, QUARTER, valid_frames, write_bundle

from surveillance.bundle import Bundle, read_bundle, type_columns
from surveillance.catalogue import load_catalogue
from surveillance.contracts import (
    MAX_ROWS_PER_RULE,
    check_bundle,
    iter_rules,
    rule_names,
    validate_bundle,
)
from surveillance.errors import ContractError

Frames = dict[str, pd.DataFrame]


def _set(table: str, row: int, column: str, value: str) -> Callable[[Frames], None]:
    """Mutation: set one cell (row is the 1-based data row)."""

    def mutate(frames: Frames) -> None:
        frames[table].loc[row - 1, column] = value

    return mutate


def _append(table: str, **cells: str) -> Callable[[Frames], None]:
    """Mutation: append a copy of data row 1 with some cells changed."""

    def mutate(frames: Frames) -> None:
        row = frames[table].iloc[[0]].copy()
        for column, value in cells.items():
            row[column] = value
        frames[table] = pd.concat([frames[table], row], ignore_index=True)

    return mutate


def _rows_of(frames: Frames, table: str, **equal: str) -> tuple[int, ...]:
    """1-based data rows where every given column equals the value (an independent lookup)."""
    frame = frames[table]
    mask = np.ones(len(frame), dtype=bool)
    for column, value in equal.items():
        mask &= (frame[column] == value).to_numpy()
    return tuple(int(i) + 1 for i in np.flatnonzero(mask))


N_IND = len(valid_frames()["indicators"])

# (case id, mutation, expected (file, rule, column, rows)); each mutation breaks exactly one rule.
CASES: list[tuple[str, Callable[[Frames], None], tuple[str, str, str | None, tuple[int, ...]]]] = [
    # trusts
    (
        "trusts-required",
        _set("trusts", 2, "trust_name", ""),
        ("trusts.csv", "required", "trust_name", (2,)),
    ),
    (
        "trusts-region-blank",
        _set("trusts", 3, "region", "  "),
        ("trusts.csv", "required", "region", (3,)),
    ),
    (
        "trusts-type",
        _set("trusts", 1, "trust_type", "community"),
        ("trusts.csv", "allowed_values", "trust_type", (1,)),
    ),
    (
        "trusts-bool",
        _set("trusts", 3, "foundation_trust", "yes"),
        ("trusts.csv", "not_boolean", "foundation_trust", (3,)),
    ),
    (
        "trusts-sm-bool",
        _set("trusts", 2, "special_measures", ""),
        ("trusts.csv", "required", "special_measures", (2,)),
    ),
    (
        "trusts-date",
        _set("trusts", 1, "last_inspection_date", "14/05/2012"),
        ("trusts.csv", "not_date", "last_inspection_date", (1,)),
    ),
    (
        "trusts-future",
        _set("trusts", 1, "last_inspection_date", "2013-10-01"),
        ("trusts.csv", "date_after_quarter", "last_inspection_date", (1,)),
    ),
    (
        "trusts-rating",
        _set("trusts", 1, "last_rating", "Poor"),
        ("trusts.csv", "allowed_values", "last_rating", (1,)),
    ),
    ("trusts-dup", _append("trusts"), ("trusts.csv", "unique_key", "trust_code", (1, 4))),
    # indicators: keys, catalogue, cross-file
    (
        "ind-unknown-trust",
        _set("indicators", 1, "trust_code", "ZZZ"),
        ("indicators.csv", "unknown_trust", "trust_code", (1,)),
    ),
    (
        "ind-unknown-id",
        _set("indicators", 1, "indicator_id", "wait_ae_5h"),
        ("indicators.csv", "unknown_indicator", "indicator_id", (1,)),
    ),
    (
        "ind-required-id",
        _set("indicators", 2, "indicator_id", ""),
        ("indicators.csv", "required", "indicator_id", (2,)),
    ),
    (
        "ind-derived",
        _append(
            "indicators",
            indicator_id="mort_ratio_all",
            period_start="2012-10-01",
            numerator="900",
            denominator="880.2",
        ),
        ("indicators.csv", "derived_indicator", "indicator_id", (N_IND + 1,)),
    ),
    (
        "ind-dup",
        _append("indicators"),
        ("indicators.csv", "unique_key", "trust_code", (1, N_IND + 1)),
    ),
    (
        "ind-one-row",
        _append("indicators", period_start="2013-08-01"),
        ("indicators.csv", "one_row_per_period", "indicator_id", (1, N_IND + 1)),
    ),
    # indicators: per type
    (
        "prop-required",
        _set("indicators", 1, "denominator", ""),
        ("indicators.csv", "required_for_type", "denominator", (1,)),
    ),
    (
        "prop-not-numeric",
        _set("indicators", 1, "numerator", "12a"),
        ("indicators.csv", "not_numeric", "numerator", (1,)),
    ),
    (
        "prop-inf",
        _set("indicators", 1, "denominator", "inf"),
        ("indicators.csv", "not_finite", "denominator", (1,)),
    ),
    (
        "prop-nan",
        _set("indicators", 1, "numerator", "NaN"),
        ("indicators.csv", "not_finite", "numerator", (1,)),
    ),
    (
        "prop-over",
        _set("indicators", 1, "numerator", "9021"),
        ("indicators.csv", "numerator_range", "numerator", (1,)),
    ),
    (
        "prop-negative",
        _set("indicators", 1, "numerator", "-1"),
        ("indicators.csv", "numerator_range", "numerator", (1,)),
    ),
    (
        "prop-den-zero",
        _set("indicators", 1, "denominator", "0"),
        ("indicators.csv", "denominator_positive", "denominator", (1,)),
    ),
    (
        "ratio-expected",
        _set("indicators", 2, "denominator", "0"),
        ("indicators.csv", "expected_positive", "denominator", (2,)),
    ),
    (
        "ratio-observed-frac",
        _set("indicators", 2, "numerator", "12.5"),
        ("indicators.csv", "observed_count", "numerator", (2,)),
    ),
    (
        "ratio-observed-neg",
        _set("indicators", 2, "numerator", "-3"),
        ("indicators.csv", "observed_count", "numerator", (2,)),
    ),
    (
        "ratio-required",
        _set("indicators", 2, "numerator", ""),
        ("indicators.csv", "required_for_type", "numerator", (2,)),
    ),
    (
        "rate-events",
        _set("indicators", 3, "numerator", "-2"),
        ("indicators.csv", "events_nonnegative", "numerator", (3,)),
    ),
    (
        "rate-exposure",
        _set("indicators", 3, "denominator", "0"),
        ("indicators.csv", "exposure_positive", "denominator", (3,)),
    ),
    (
        "count-events",
        _set("indicators", 4, "numerator", "1.5"),
        ("indicators.csv", "events_count", "numerator", (4,)),
    ),
    (
        "count-activity",
        _set("indicators", 4, "denominator", "-5"),
        ("indicators.csv", "activity_positive", "denominator", (4,)),
    ),
    (
        "score-se",
        _set("indicators", 5, "standard_error", "0"),
        ("indicators.csv", "se_positive", "standard_error", (5,)),
    ),
    (
        "score-value",
        _set("indicators", 5, "value", ""),
        ("indicators.csv", "required_for_type", "value", (5,)),
    ),
    (
        "score-value-inf",
        _set("indicators", 5, "value", "-inf"),
        ("indicators.csv", "not_finite", "value", (5,)),
    ),
    (
        "band-unknown",
        _set("indicators", 6, "band", "4"),
        ("indicators.csv", "band_unknown", "band", (6,)),
    ),
    (
        "band-required",
        _set("indicators", 6, "band", ""),
        ("indicators.csv", "required_for_type", "band", (6,)),
    ),
    (
        "rule-count",
        _set("indicators", 7, "numerator", "-1"),
        ("indicators.csv", "rule_count", "numerator", (7,)),
    ),
    (
        "rule-required",
        _set("indicators", 7, "numerator", ""),
        ("indicators.csv", "required_for_type", "numerator", (7,)),
    ),
    (
        "cusum-prop",
        _set("indicators", 8, "numerator", "3001"),
        ("indicators.csv", "numerator_range", "numerator", (8,)),
    ),
    (
        "cusum-score-se",
        _set("indicators", 9, "standard_error", "-1"),
        ("indicators.csv", "se_positive", "standard_error", (9,)),
    ),
    # indicators: periods
    (
        "period-date",
        _set("indicators", 1, "period_start", "2013/07/01"),
        ("indicators.csv", "not_date", "period_start", (1,)),
    ),
    (
        "period-order",
        lambda f: (
            _set("indicators", 1, "period_start", "2013-09-30")(f),
            _set("indicators", 1, "period_end", "2013-07-01")(f),
        ),
        ("indicators.csv", "period_order", "period_start", (1,)),
    ),
    (
        "period-quarterly",
        _set("indicators", 1, "period_start", "2013-04-01"),
        ("indicators.csv", "period_window", "period_start", (1,)),
    ),
    (
        "period-annual",
        _set("indicators", 5, "period_start", "2012-09-01"),
        ("indicators.csv", "period_window", "period_start", (5,)),
    ),
    (
        "period-future",
        _set("indicators", 2, "period_end", "2013-10-31"),
        ("indicators.csv", "period_window", "period_start", (2,)),
    ),
    (
        "monthly-row",
        _set("indicators", 8, "period_end", "2012-10-15"),
        ("indicators.csv", "monthly_row", "period_start", (8,)),
    ),
]


_CATALOGUE = load_catalogue()


def _run(tmp_path: Path | None, frames: Frames, parquet: tuple[str, ...] = ()) -> list:
    """Validate ``frames``: written to disk and read back, or (tmp_path None) typed in memory
    exactly as the CSV reader types text cells."""
    if tmp_path is None:
        typed = {
            name: type_columns(frame.reset_index(drop=True), name) for name, frame in frames.items()
        }
        bundle = Bundle(**typed, paths={}, directory=Path("."))
    else:
        bundle = read_bundle(write_bundle(tmp_path, frames, parquet))
    return validate_bundle(bundle, QUARTER, _CATALOGUE)


def _key(v) -> tuple:
    return (v.file, v.rule, v.column, v.rows)


def test_valid_bundle_passes(tmp_path, catalogue):
    bundle = read_bundle(write_bundle(tmp_path, valid_frames()))
    assert validate_bundle(bundle, QUARTER, catalogue) == []
    assert check_bundle(bundle, "2013Q3", catalogue) is bundle


def test_valid_bundle_passes_as_parquet(tmp_path, catalogue):
    frames = valid_frames()
    bundle = read_bundle(write_bundle(tmp_path, frames, parquet=("spells", "indicators")))
    assert bundle.paths["spells"].name == "spells.parquet"
    assert validate_bundle(bundle, QUARTER, catalogue) == []


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_indicator_and_trust_files(frames, mutate, expected):
    mutate(frames)
    violations = _run(None, frames)
    assert [_key(v) for v in violations] == [expected], [str(v) for v in violations]


SPELL_CASES = [
    (
        "spell-dup",
        _set("spells", 2, "spell_id", "S0001"),
        ("spells.csv", "unique_key", "spell_id", (1, 2)),
    ),
    (
        "spell-trust",
        _set("spells", 4, "trust_code", "RZZ"),
        ("spells.csv", "unknown_trust", "trust_code", (4,)),
    ),
    (
        "spell-group",
        _set("spells", 3, "diagnosis_group", ""),
        ("spells.csv", "required", "diagnosis_group", (3,)),
    ),
    (
        "spell-date-short",  # issue 17: ISO 8601 only, a one-digit month is not
        _set("spells", 1, "admission_date", "2010-10-1"),
        ("spells.csv", "not_date", "admission_date", (1,)),
    ),
    (
        "spell-date-time",  # issue 17: "times not allowed", not a spell_window violation
        _set("spells", 4, "discharge_date", "2013-09-30 23:59:00"),
        ("spells.csv", "time_in_date", "discharge_date", (4,)),
    ),
    (
        "spell-date-iso-time",
        _set("spells", 2, "admission_date", "2012-01-05T08:30"),
        ("spells.csv", "time_in_date", "admission_date", (2,)),
    ),
    (
        "spell-date",
        _set("spells", 2, "admission_date", "2012-02-30"),
        ("spells.csv", "not_date", "admission_date", (2,)),
    ),
    (
        "spell-window-adm",
        _set("spells", 1, "admission_date", "2010-09-30"),
        ("spells.csv", "spell_window", "admission_date", (1,)),
    ),
    (
        "spell-window-dis",
        _set("spells", 6, "discharge_date", "2013-10-01"),
        ("spells.csv", "spell_window", "discharge_date", (6,)),
    ),
    (
        "spell-order",
        _set("spells", 3, "discharge_date", "2013-03-01"),
        ("spells.csv", "discharge_before_admission", "discharge_date", (3,)),
    ),
    ("spell-age-high", _set("spells", 1, "age", "121"), ("spells.csv", "age_range", "age", (1,))),
    ("spell-age-neg", _set("spells", 2, "age", "-1"), ("spells.csv", "age_range", "age", (2,))),
    (
        "spell-age-frac",
        _set("spells", 1, "age", "45.5"),
        ("spells.csv", "not_integer", "age", (1,)),
    ),
    ("spell-age-text", _set("spells", 1, "age", "old"), ("spells.csv", "not_numeric", "age", (1,))),
    ("spell-sex", _set("spells", 5, "sex", "U"), ("spells.csv", "allowed_values", "sex", (5,))),
    (
        "spell-method",
        _set("spells", 2, "admission_method", "daycase"),
        ("spells.csv", "allowed_values", "admission_method", (2,)),
    ),
    (
        "spell-comorb",
        _set("spells", 4, "comorbidity", "-1"),
        ("spells.csv", "comorbidity_range", "comorbidity", (4,)),
    ),
    (
        "spell-comorb-frac",
        _set("spells", 4, "comorbidity", "1.2"),
        ("spells.csv", "not_integer", "comorbidity", (4,)),
    ),
    (
        "spell-dep-high",
        _set("spells", 1, "deprivation_quintile", "6"),
        ("spells.csv", "deprivation_range", "deprivation_quintile", (1,)),
    ),
    (
        "spell-dep-zero",
        _set("spells", 3, "deprivation_quintile", "0"),
        ("spells.csv", "deprivation_range", "deprivation_quintile", (3,)),
    ),
    (
        "spell-bool",
        _set("spells", 1, "palliative_care", "Y"),
        ("spells.csv", "not_boolean", "palliative_care", (1,)),
    ),
    (
        "spell-died-missing",
        _set("spells", 1, "died_30d", ""),
        ("spells.csv", "required", "died_30d", (1,)),
    ),
    (
        "spell-death",
        _set("spells", 3, "died_30d", "false"),
        ("spells.csv", "death_consistency", "died_30d", (3,)),
    ),
    # staffing
    (
        "staff-month",
        _set("staffing", 2, "month", "Sep-13"),
        ("staffing.csv", "not_month", "month", (2,)),
    ),
    (
        "staff-month-13",
        _set("staffing", 2, "month", "2013-13"),
        ("staffing.csv", "not_month", "month", (2,)),
    ),
    (
        "staff-window",
        _set("staffing", 13, "month", "2012-09"),
        ("staffing.csv", "month_window", "month", (13,)),
    ),
    (
        "staff-planned",
        _set("staffing", 1, "planned_hours", "0"),
        ("staffing.csv", "planned_positive", "planned_hours", (1,)),
    ),
    (
        "staff-actual",
        _set("staffing", 1, "actual_hours", "-1"),
        ("staffing.csv", "actual_nonnegative", "actual_hours", (1,)),
    ),
    (
        "staff-group",
        _set("staffing", 1, "staff_group", "doctor"),
        ("staffing.csv", "allowed_values", "staff_group", (1,)),
    ),
    (
        "staff-shift",
        _set("staffing", 1, "shift", "evening"),
        ("staffing.csv", "allowed_values", "shift", (1,)),
    ),
    ("staff-dup", _append("staffing"), ("staffing.csv", "unique_key", "trust_code", (1, 14))),
    (
        "staff-trust",
        _set("staffing", 13, "trust_code", "XX9"),
        ("staffing.csv", "unknown_trust", "trust_code", (13,)),
    ),
    (
        "staff-hours-text",
        _set("staffing", 3, "planned_hours", "many"),
        ("staffing.csv", "not_numeric", "planned_hours", (3,)),
    ),
    # intelligence
    (
        "intel-source",
        _set("intelligence", 1, "source", "twitter"),
        ("intelligence.csv", "allowed_values", "source", (1,)),
    ),
    (
        "intel-severity",
        _set("intelligence", 2, "severity", "minor"),
        ("intelligence.csv", "allowed_values", "severity", (2,)),
    ),
    (
        "intel-validated",
        _set("intelligence", 3, "validated", "maybe"),
        ("intelligence.csv", "not_boolean", "validated", (3,)),
    ),
    (
        "intel-future",
        _set("intelligence", 3, "received_date", "2013-10-01"),
        ("intelligence.csv", "date_after_quarter", "received_date", (3,)),
    ),
    (
        "intel-trust",
        _set("intelligence", 1, "trust_code", ""),
        ("intelligence.csv", "required", "trust_code", (1,)),
    ),
    # inspections
    (
        "insp-rating",
        _set("inspections", 2, "overall_rating", "Poor"),
        ("inspections.csv", "allowed_values", "overall_rating", (2,)),
    ),
    ("insp-dup", _append("inspections"), ("inspections.csv", "unique_key", "trust_code", (1, 4))),
    (
        "insp-future",
        _set("inspections", 1, "inspection_date", "2014-01-01"),
        ("inspections.csv", "date_after_quarter", "inspection_date", (1,)),
    ),
    (
        "insp-trust",
        _set("inspections", 1, "trust_code", "RA9"),
        ("inspections.csv", "unknown_trust", "trust_code", (1,)),
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in SPELL_CASES], ids=[c[0] for c in SPELL_CASES]
)
def test_bad_optional_files(frames, mutate, expected):
    mutate(frames)
    violations = _run(None, frames)
    assert [_key(v) for v in violations] == [expected], [str(v) for v in violations]


def test_monthly_series_needs_all_twelve_months(tmp_path, frames):
    ind = frames["indicators"]
    drop = (
        (ind["trust_code"] == "RA2")
        & (ind["indicator_id"] == "fft_inpatient_cusum")
        & (ind["period_start"] == MONTHS[4] + "-01")
    )
    frames["indicators"] = ind[~drop.to_numpy()].reset_index(drop=True)
    violations = _run(tmp_path, frames)
    expected_rows = _rows_of(
        frames, "indicators", trust_code="RA2", indicator_id="fft_inpatient_cusum"
    )
    assert len(expected_rows) == 11
    assert [_key(v) for v in violations] == [
        ("indicators.csv", "monthly_series", "indicator_id", expected_rows)
    ]
    assert f"RA2 fft_inpatient_cusum lacks {MONTHS[4]}" in violations[0].message


def test_missing_and_extra_columns(tmp_path, frames):
    frames["trusts"] = frames["trusts"].drop(columns=["region"])
    frames["indicators"]["note"] = "x"
    frames["spells"] = frames["spells"].drop(columns=["died_30d"])
    violations = _run(tmp_path, frames)
    keys = [(v.file, v.rule, v.column) for v in violations]
    assert keys == [
        ("trusts.csv", "missing_column", "region"),
        ("indicators.csv", "extra_column", "note"),
        ("spells.csv", "missing_column", "died_30d"),
    ]
    # the rule that needs the missing column is skipped, not crashed
    assert all(v.rule != "check_error" for v in violations)


EVERYTHING_AT_ONCE = {
    "trusts-type",
    "trusts-bool",
    "trusts-rating",
    "ind-unknown-id",
    "ratio-expected",
    "rate-events",
    "score-se",
    "band-unknown",
    "spell-sex",
    "spell-age-high",
    "spell-death",
    "staff-planned",
    "intel-source",
    "insp-rating",
}


def test_every_violation_reported_at_once(tmp_path, frames):
    # one mutation per distinct cell, in several files, all reported by a single run
    chosen = [c for c in CASES + SPELL_CASES if c[0] in EVERYTHING_AT_ONCE]
    assert len(chosen) == len(EVERYTHING_AT_ONCE)
    for _, mutate, _ in chosen:
        mutate(frames)
    violations = _run(tmp_path, frames)
    assert sorted(_key(v) for v in violations) == sorted(c[2] for c in chosen)


def test_row_numbers_capped_with_total(tmp_path, frames):
    frames["indicators"]["trust_code"] = "ZZZ"
    violations = _run(tmp_path, frames)
    unknown = [v for v in violations if v.rule == "unknown_trust"]
    assert len(unknown) == 1
    assert unknown[0].rows == tuple(range(1, MAX_ROWS_PER_RULE + 1))
    assert f"[{N_IND} row(s)]" in unknown[0].message


def test_no_rows(tmp_path, frames):
    frames["indicators"] = frames["indicators"].iloc[0:0]
    violations = _run(tmp_path, frames)
    assert [(v.file, v.rule) for v in violations] == [("indicators.csv", "no_rows")]


def test_parquet_types_checked(tmp_path, frames):
    spells = frames["spells"].copy()
    spells["trust_code"] = spells["trust_code"].astype(object)
    spells["age"] = spells["age"].astype(float)
    spells["died_30d"] = [False, False, True, True, None, False]
    spells["died_in_hospital"] = spells["died_in_hospital"] == "true"
    spells["palliative_care"] = spells["palliative_care"] == "true"
    spells["admission_date"] = pd.to_datetime(spells["admission_date"])
    spells["discharge_date"] = pd.to_datetime(spells["discharge_date"])
    spells["deprivation_quintile"] = pd.array([3, None, 5, 1, 2, 4], dtype="Int64")
    spells["comorbidity"] = spells["comorbidity"].astype(int)
    frames["spells"] = spells
    staffing = frames["staffing"].copy()
    # a code stored as a floating-point number (integers are read as their text: issue 17)
    staffing["ward_code"] = 7.0
    staffing = staffing.drop_duplicates(["trust_code", "month", "staff_group", "shift"])
    frames["staffing"] = staffing.reset_index(drop=True)
    violations = _run(tmp_path, frames, parquet=("spells", "staffing"))
    keys = [_key(v) for v in violations]
    assert ("spells.parquet", "required", "died_30d", (5,)) in keys
    assert ("staffing.parquet", "not_text", "ward_code", tuple(range(1, len(staffing) + 1))) in keys
    assert len(keys) == 2, keys


def test_rule_catalogue_is_documented(catalogue):
    documented = set(rule_names())
    used = {rule.rule for _, rule in iter_rules(QUARTER, catalogue)}
    assert used <= documented, used - documented
    tested = {c[2][1] for c in CASES + SPELL_CASES} | {
        "monthly_series",
        "missing_column",
        "extra_column",
        "no_rows",
        "not_text",
        "code_shape",  # tests/reliability/bad_bundles.py (a trust code changes every file)
        "duplicate_column",  # ... (a CSV header, not a frame)
        "missing_file",
        "ambiguous_file",
        "file_unreadable",
    }
    assert documented <= tested, documented - tested


def test_check_bundle_raises(tmp_path, frames, catalogue):
    _set("spells", 1, "sex", "X")(frames)
    bundle = read_bundle(write_bundle(tmp_path, frames))
    with pytest.raises(ContractError) as info:
        check_bundle(bundle, QUARTER, catalogue)
    assert "spells.csv row(s) 1 column 'sex': [allowed_values]" in str(info.value)


def test_parquet_nan_and_inf_in_required_numbers(tmp_path, frames):
    ind = frames["indicators"].copy()
    for column in ("numerator", "denominator", "value", "standard_error"):
        ind[column] = pd.to_numeric(ind[column].replace("", None))
    ind.loc[0, "numerator"] = float("nan")  # proportion row: missing numerator
    ind.loc[2, "denominator"] = float("inf")  # rate row: infinite exposure
    ind.loc[4, "value"] = float("-inf")  # score row
    frames["indicators"] = ind
    violations = _run(tmp_path, frames, parquet=("indicators",))
    assert sorted(_key(v) for v in violations) == sorted(
        [
            ("indicators.parquet", "required_for_type", "numerator", (1,)),
            ("indicators.parquet", "not_finite", "denominator", (3,)),
            ("indicators.parquet", "not_finite", "value", (5,)),
        ]
    )


def test_row_numbers_count_from_the_first_row_whatever_the_index() -> None:
    """A slice or a Dask partition keeps its file row numbers as index: rows are still 1-based
    positions in the frame checked."""
    from surveillance.contracts import validate_table
    from surveillance.periods import Quarter

    spells = valid_frames()["spells"].copy()
    spells.loc[1, "age"] = 150
    for index in (pd.RangeIndex(100, 100 + len(spells)), pd.Index(range(len(spells))[::-1])):
        frame = spells.set_axis(index)
        found = validate_table(
            "spells", "spells.csv", frame, Quarter.parse(QUARTER), load_catalogue(), None
        )
        assert [(v.rule, v.rows) for v in found] == [("age_range", (2,))]
