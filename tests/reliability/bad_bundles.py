"""The bad-input catalogue: malformed bundles built from the small valid contract bundle.

Each :class:`Case` writes one bundle and names the violation it must produce: the file, the
rule (a name documented in :mod:`surveillance.contracts`), the column and the 1-based data rows.
Indicator rows of the valid bundle (per trust, 31 rows: RA1 rows 1-31, RA2 32-62, RB3 63-93):
1 ``wait_ae_4h`` proportion, 2 ``readm_emergency_30d`` ratio, 3 ``hcai_cdiff_rate`` rate,
4 ``never_events`` count, 5 ``ss_engagement`` score, 6 ``mort_shmi_band`` external band,
7 ``cas_alerts_overdue`` rule, 8-31 the two monthly ``cusum_z`` series (alternating).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

_CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
if str(_CONTRACTS) not in sys.path:
    sys.path.insert(0, str(_CONTRACTS))

from contract_bundle import valid_frames, write_bundle  # noqa: E402

Frames = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class Case:
    """One malformed bundle and the violation it must raise."""

    id: str
    build: Callable[[Path], None]
    file: str
    rule: str
    column: str | None = None
    rows: tuple[int, ...] | None = None  # None: the violation names no rows (file level)
    message: str = ""  # a fragment the message must contain


def _frames_case(mutate: Callable[[Frames], None], parquet: tuple[str, ...] = ()):
    def build(directory: Path) -> None:
        frames = valid_frames()
        mutate(frames)
        write_bundle(directory, frames, parquet=parquet)

    return build


def _set(table: str, row: int, column: str, value: str) -> Callable[[Frames], None]:
    """Set data row ``row`` (1-based) of ``table``."""

    def mutate(frames: Frames) -> None:
        frames[table].loc[row - 1, column] = value

    return mutate


def _raw(name: str, content: bytes, mutate: Callable[[Frames], None] | None = None):
    """Write the valid bundle, then replace file ``name`` with ``content``."""

    def build(directory: Path) -> None:
        frames = valid_frames()
        if mutate is not None:
            mutate(frames)
        write_bundle(directory, frames)
        (directory / name).write_bytes(content)

    return build


def _trusts_csv() -> bytes:
    return valid_frames()["trusts"].to_csv(index=False, lineterminator="\n").encode()


def _drop_column(table: str, column: str):
    def mutate(frames: Frames) -> None:
        frames[table] = frames[table].drop(columns=[column])

    return mutate


def _add_column(table: str, column: str):
    def mutate(frames: Frames) -> None:
        frames[table][column] = "x"

    return mutate


def _duplicate_row(table: str, row: int):
    def mutate(frames: Frames) -> None:
        frame = frames[table]
        frames[table] = pd.concat([frame, frame.iloc[[row - 1]]], ignore_index=True)

    return mutate


def _drop_file(table: str):
    def mutate(frames: Frames) -> None:
        frames[table] = None

    return mutate


def _header_only(table: str):
    def mutate(frames: Frames) -> None:
        frames[table] = frames[table].iloc[0:0]

    return mutate


def _corrupt_parquet(directory: Path) -> None:
    frames = valid_frames()
    write_bundle(directory, frames, parquet=("spells",))
    path = directory / "spells.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64  # pages and footer no longer agree
    data[-8:-4] = b"\xff\xff\xff\x7f"  # footer length beyond the file
    path.write_bytes(bytes(data))


def _truncated_parquet(directory: Path) -> None:
    frames = valid_frames()
    write_bundle(directory, frames, parquet=("spells",))
    path = directory / "spells.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _csv_named_parquet(directory: Path) -> None:
    frames = valid_frames()
    write_bundle(directory, frames)
    (directory / "spells.csv").rename(directory / "spells.parquet")


def _both_formats(directory: Path) -> None:
    frames = valid_frames()
    write_bundle(directory, frames)
    frames["spells"].to_parquet(directory / "spells.parquet", index=False)


def _latin1_name(directory: Path) -> None:
    frames = valid_frames()
    write_bundle(directory, frames)
    text = _trusts_csv().decode().replace("Alpha Hospitals", "H\u00f4pital Alpha")
    (directory / "trusts.csv").write_bytes(text.encode("latin-1"))


def _utf16(directory: Path) -> None:
    frames = valid_frames()
    write_bundle(directory, frames)
    (directory / "trusts.csv").write_bytes(_trusts_csv().decode().encode("utf-16"))


def _ragged_row(directory: Path) -> None:
    frames = valid_frames()
    write_bundle(directory, frames)
    lines = _trusts_csv().decode().splitlines()
    lines[2] += ",surplus"  # data row 2 has nine fields under an eight-column header
    (directory / "trusts.csv").write_text("\n".join(lines) + "\n")


def _unclosed_quote_line(directory: Path, size: int = 3 << 20) -> None:
    """A trust name that opens a quote and never closes it: 3 MiB on one line."""
    frames = valid_frames()
    write_bundle(directory, frames)
    with (directory / "trusts.csv").open("ab") as handle:
        handle.write(b'RZZ,"Runaway')
        block = b"x" * (1 << 16)
        for _ in range(size // len(block)):
            handle.write(block)
        handle.write(b"\n")


def _overlapping_month(frames: Frames) -> None:
    """A monthly series row spanning two months, overlapping its neighbours."""
    ind = frames["indicators"]
    ind.loc[7, "period_end"] = "2012-11-30"  # row 8: 2012-10-01 .. 2012-11-30


def _overlapping_quarterly(frames: Frames) -> None:
    """Two quarterly rows for one trust and indicator with overlapping periods."""
    ind = frames["indicators"]
    extra = ind.iloc[[0]].copy()
    extra["period_start"] = "2013-08-01"
    frames["indicators"] = pd.concat([ind, extra], ignore_index=True)


def _recode_trust(old: str, new: str):
    """Give trust ``old`` the code ``new`` in every file (trusts and the rows that name it)."""

    def mutate(frames: Frames) -> None:
        for frame in frames.values():
            if frame is not None and "trust_code" in frame.columns:
                frame.loc[frame["trust_code"] == old, "trust_code"] = new

    return mutate


def _lines_case(name: str, edit: Callable[[list[str]], None], mutate=None):
    """Write the valid bundle (``mutate``d), then edit ``name``'s lines (header is line 1)."""

    def build(directory: Path) -> None:
        frames = valid_frames()
        if mutate is not None:
            mutate(frames)
        write_bundle(directory, frames)
        path = directory / name
        lines = path.read_text().splitlines()
        edit(lines)
        path.write_text("\n".join(lines) + "\n")

    return build


def _duplicate_header(lines: list[str]) -> None:
    lines[0] = lines[0].replace("trust_type", "region")  # two 'region' columns


def _semicolons(lines: list[str]) -> None:
    lines[:] = [line.replace(",", ";") for line in lines]


def _renamed_key(lines: list[str]) -> None:
    lines[0] = lines[0].replace("trust_code", "org_code")


def _blank_lines(lines: list[str]) -> None:
    lines.insert(2, "")  # after data row 1: data row 2 is now on line 4
    lines.insert(3, "")


def _short_row(lines: list[str]) -> None:
    lines[2] = lines[2].rsplit(",", 1)[0]  # data row 2 lacks its last field


def _timestamps_with_times(frames: Frames) -> None:
    spells = frames["spells"]
    for column in ("admission_date", "discharge_date"):
        spells[column] = pd.to_datetime(spells[column])
    spells.loc[1, "discharge_date"] = pd.Timestamp("2012-01-05 17:45")


def _float_spell_ids(frames: Frames) -> None:
    frames["spells"]["spell_id"] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def _spells_unknown_trust(frames: Frames) -> None:
    frames["spells"].loc[0, "trust_code"] = "RZZ"


CASES: list[Case] = [
    # ---- files and columns
    Case(
        "missing_required_file",
        _frames_case(_drop_file("indicators")),
        "indicators.csv",
        "missing_file",
    ),
    Case("both_csv_and_parquet", _both_formats, "spells.csv", "ambiguous_file"),
    Case(
        "missing_column_trusts",
        _frames_case(_drop_column("trusts", "region")),
        "trusts.csv",
        "missing_column",
        "region",
    ),
    Case(
        "missing_column_indicators",
        _frames_case(_drop_column("indicators", "denominator")),
        "indicators.csv",
        "missing_column",
        "denominator",
    ),
    Case(
        "missing_column_spells",
        _frames_case(_drop_column("spells", "died_30d")),
        "spells.csv",
        "missing_column",
        "died_30d",
    ),
    Case(
        "extra_column_trusts",
        _frames_case(_add_column("trusts", "notes")),
        "trusts.csv",
        "extra_column",
        "notes",
    ),
    Case(
        "extra_column_staffing",
        _frames_case(_add_column("staffing", "cost")),
        "staffing.csv",
        "extra_column",
        "cost",
    ),
    Case("empty_file", _raw("trusts.csv", b""), "trusts.csv", "file_unreadable", message="empty"),
    Case("header_only_trusts", _frames_case(_header_only("trusts")), "trusts.csv", "no_rows"),
    Case(
        "header_only_indicators",
        _frames_case(_header_only("indicators")),
        "indicators.csv",
        "no_rows",
    ),
    Case("ragged_row", _ragged_row, "trusts.csv", "file_unreadable", message="line 3"),
    # ---- encodings and sizes
    Case(
        "latin1_text", _latin1_name, "trusts.csv", "file_unreadable", message="at byte 112, line 2"
    ),
    Case("utf16_text", _utf16, "trusts.csv", "file_unreadable", message="byte 0, line 1"),
    Case(
        "runaway_line",
        _unclosed_quote_line,
        "trusts.csv",
        "file_unreadable",
        message="line 5 is longer than 1,048,576 bytes",
    ),
    Case(
        "corrupted_parquet",
        _corrupt_parquet,
        "spells.parquet",
        "file_unreadable",
        message="Parquet",
    ),
    Case(
        "truncated_parquet",
        _truncated_parquet,
        "spells.parquet",
        "file_unreadable",
        message="Parquet",
    ),
    Case(
        "csv_named_parquet",
        _csv_named_parquet,
        "spells.parquet",
        "file_unreadable",
        message="Parquet",
    ),
    # ---- wrong types
    Case(
        "bool_not_boolean",
        _frames_case(_set("trusts", 2, "foundation_trust", "maybe")),
        "trusts.csv",
        "not_boolean",
        "foundation_trust",
        (2,),
    ),
    Case(
        "date_not_iso",
        _frames_case(_set("trusts", 1, "last_inspection_date", "14/05/2012")),
        "trusts.csv",
        "not_date",
        "last_inspection_date",
        (1,),
    ),
    Case(
        "number_is_text",
        _frames_case(_set("indicators", 1, "numerator", "twelve")),
        "indicators.csv",
        "not_numeric",
        "numerator",
        (1,),
    ),
    Case(
        "integer_is_fraction",
        _frames_case(_set("spells", 3, "age", "88.5")),
        "spells.csv",
        "not_integer",
        "age",
        (3,),
    ),
    Case(
        "month_not_yyyy_mm",
        _frames_case(_set("staffing", 1, "month", "2013/07")),
        "staffing.csv",
        "not_month",
        "month",
        (1,),
    ),
    Case(
        "enum_trust_type",
        _frames_case(_set("trusts", 1, "trust_type", "community")),
        "trusts.csv",
        "allowed_values",
        "trust_type",
        (1,),
    ),
    Case(
        "enum_sex",
        _frames_case(_set("spells", 2, "sex", "X")),
        "spells.csv",
        "allowed_values",
        "sex",
        (2,),
    ),
    Case(
        "required_code_empty",
        _frames_case(_set("indicators", 5, "trust_code", "")),
        "indicators.csv",
        "required",
        "trust_code",
        (5,),
    ),
    # ---- keys
    Case(
        "duplicate_trust",
        _frames_case(_duplicate_row("trusts", 2)),
        "trusts.csv",
        "unique_key",
        "trust_code",
        (2, 4),
    ),
    Case(
        "duplicate_spell_id",
        _frames_case(_set("spells", 2, "spell_id", "S0001")),
        "spells.csv",
        "unique_key",
        "spell_id",
        (1, 2),
    ),
    Case(
        "duplicate_indicator_row",
        _frames_case(_duplicate_row("indicators", 1)),
        "indicators.csv",
        "unique_key",
        None,
        (1, 94),
    ),
    Case(
        "unknown_trust_indicators",
        _frames_case(_set("indicators", 3, "trust_code", "RZZ")),
        "indicators.csv",
        "unknown_trust",
        "trust_code",
        (3,),
    ),
    Case(
        "unknown_trust_spells",
        _frames_case(_spells_unknown_trust),
        "spells.csv",
        "unknown_trust",
        "trust_code",
        (1,),
    ),
    Case(
        "unknown_indicator",
        _frames_case(_set("indicators", 4, "indicator_id", "made_up")),
        "indicators.csv",
        "unknown_indicator",
        "indicator_id",
        (4,),
    ),
    # ---- values
    Case(
        "numerator_above_denominator",
        _frames_case(_set("indicators", 1, "numerator", "9021")),
        "indicators.csv",
        "numerator_range",
        "numerator",
        (1,),
    ),
    Case(
        "negative_proportion_numerator",
        _frames_case(_set("indicators", 32, "numerator", "-1")),
        "indicators.csv",
        "numerator_range",
        "numerator",
        (32,),
    ),
    Case(
        "negative_count",
        _frames_case(_set("indicators", 4, "numerator", "-2")),
        "indicators.csv",
        "events_count",
        "numerator",
        (4,),
    ),
    Case(
        "negative_rate_events",
        _frames_case(_set("indicators", 3, "numerator", "-21")),
        "indicators.csv",
        "events_nonnegative",
        "numerator",
        (3,),
    ),
    Case(
        "zero_expected",
        _frames_case(_set("indicators", 2, "denominator", "0")),
        "indicators.csv",
        "expected_positive",
        "denominator",
        (2,),
    ),
    Case(
        "negative_expected",
        _frames_case(_set("indicators", 33, "denominator", "-4.5")),
        "indicators.csv",
        "expected_positive",
        "denominator",
        (33,),
    ),
    Case(
        "nan_text",
        _frames_case(_set("indicators", 2, "numerator", "NaN")),
        "indicators.csv",
        "not_finite",
        "numerator",
        (2,),
    ),
    Case(
        "inf_text",
        _frames_case(_set("indicators", 3, "denominator", "inf")),
        "indicators.csv",
        "not_finite",
        "denominator",
        (3,),
    ),
    Case(
        "minus_infinity_se",
        _frames_case(_set("indicators", 5, "standard_error", "-Infinity")),
        "indicators.csv",
        "not_finite",
        "standard_error",
        (5,),
    ),
    Case(
        "zero_standard_error",
        _frames_case(_set("indicators", 5, "standard_error", "0")),
        "indicators.csv",
        "se_positive",
        "standard_error",
        (5,),
    ),
    Case(
        "unknown_band",
        _frames_case(_set("indicators", 6, "band", "7")),
        "indicators.csv",
        "band_unknown",
        "band",
        (6,),
    ),
    Case(
        "type_column_missing",
        _frames_case(_set("indicators", 1, "denominator", "")),
        "indicators.csv",
        "required_for_type",
        "denominator",
        (1,),
    ),
    Case(
        "age_out_of_range",
        _frames_case(_set("spells", 1, "age", "150")),
        "spells.csv",
        "age_range",
        "age",
        (1,),
    ),
    Case(
        "death_inconsistent",
        _frames_case(_set("spells", 1, "died_in_hospital", "true")),
        "spells.csv",
        "death_consistency",
        None,
        (1,),
    ),
    Case(
        "planned_hours_zero",
        _frames_case(_set("staffing", 2, "planned_hours", "0")),
        "staffing.csv",
        "planned_positive",
        "planned_hours",
        (2,),
    ),
    Case(
        "actual_hours_negative",
        _frames_case(_set("staffing", 3, "actual_hours", "-1")),
        "staffing.csv",
        "actual_nonnegative",
        "actual_hours",
        (3,),
    ),
    # ---- dates and periods
    Case(
        "period_after_quarter",
        _frames_case(_set("indicators", 1, "period_end", "2013-10-31")),
        "indicators.csv",
        "period_window",
        None,
        (1,),
    ),
    Case(
        "inspection_after_quarter",
        _frames_case(_set("trusts", 1, "last_inspection_date", "2013-10-02")),
        "trusts.csv",
        "date_after_quarter",
        "last_inspection_date",
        (1,),
    ),
    Case(
        "period_before_lookback",
        _frames_case(_set("indicators", 2, "period_start", "2011-10-01")),
        "indicators.csv",
        "period_window",
        None,
        (2,),
    ),
    Case(
        "period_reversed",
        _frames_case(_set("indicators", 1, "period_start", "2013-10-01")),
        "indicators.csv",
        "period_order",
        None,
        (1,),
    ),
    Case(
        "overlapping_month",
        _frames_case(_overlapping_month),
        "indicators.csv",
        "monthly_row",
        None,
        (8,),
    ),
    Case(
        "overlapping_quarterly",
        _frames_case(_overlapping_quarterly),
        "indicators.csv",
        "one_row_per_period",
        None,
        (1, 94),
    ),
    Case(
        "intelligence_after_quarter",
        _frames_case(_set("intelligence", 1, "received_date", "2013-10-01")),
        "intelligence.csv",
        "date_after_quarter",
        "received_date",
        (1,),
    ),
    Case(
        "spell_outside_window",
        _frames_case(_set("spells", 1, "admission_date", "2010-06-01")),
        "spells.csv",
        "spell_window",
        None,
        (1,),
    ),
    Case(
        "discharge_before_admission",
        _frames_case(_set("spells", 3, "discharge_date", "2013-03-01")),
        "spells.csv",
        "discharge_before_admission",
        None,
        (3,),
    ),
    Case(
        "staffing_month_outside",
        _frames_case(_set("staffing", 1, "month", "2013-10")),
        "staffing.csv",
        "month_window",
        "month",
        (1,),
    ),
    # ---- issue 17: nothing silent (headers, row numbers, dates, codes, conversions)
    Case(
        "duplicate_header",
        _lines_case("trusts.csv", _duplicate_header),
        "trusts.csv",
        "duplicate_column",
        "region",
        message="'region' 2 times (columns 3, 4)",
    ),
    Case(
        "semicolon_delimited",
        _lines_case("trusts.csv", _semicolons),
        "trusts.csv",
        "file_unreadable",
        message="looks ';'-separated",
    ),
    Case(
        "renamed_key_header",
        _lines_case("trusts.csv", _renamed_key),
        "trusts.csv",
        "missing_column",
        "trust_code",
    ),
    Case(
        "indicators_without_indicator_id",
        _frames_case(_drop_column("indicators", "indicator_id")),
        "indicators.csv",
        "missing_column",
        "indicator_id",
    ),
    Case(
        "short_row",
        _lines_case("trusts.csv", _short_row),
        "trusts.csv",
        "file_unreadable",
        message="line 3 has 7",
    ),
    Case(
        "row_after_blank_lines",
        _lines_case("trusts.csv", _blank_lines, _set("trusts", 2, "trust_type", "community")),
        "trusts.csv",
        "allowed_values",
        "trust_type",
        (4,),  # line 5: data row N is on line N + 1, blank lines counted
    ),
    Case(
        "date_one_digit_month",
        _frames_case(_set("spells", 4, "admission_date", "2013-9-1")),
        "spells.csv",
        "not_date",
        "admission_date",
        (4,),
    ),
    Case(
        "date_with_time_text",
        _frames_case(_set("intelligence", 2, "received_date", "2012-11-02 09:15:00")),
        "intelligence.csv",
        "time_in_date",
        "received_date",
        (2,),
    ),
    Case(
        "timestamp_with_time_parquet",
        _frames_case(_timestamps_with_times, parquet=("spells",)),
        "spells.parquet",
        "time_in_date",
        "discharge_date",
        (2,),
    ),
    Case(
        "trust_code_path",
        _frames_case(_recode_trust("RA2", "../x")),
        "trusts.csv",
        "code_shape",
        "trust_code",
        (2,),
        message="'../x'",
    ),
    Case(
        "trust_code_slash",
        _frames_case(_recode_trust("RA1", "a/b")),
        "trusts.csv",
        "code_shape",
        "trust_code",
        (1,),
    ),
    Case(
        "trust_code_rtl_mark",
        _frames_case(_recode_trust("RB3", "RB\u202e3")),
        "trusts.csv",
        "code_shape",
        "trust_code",
        (3,),
        message="\\u202e",
    ),
    Case(
        "trust_code_markup",
        _frames_case(_recode_trust("RA1", "<b>RA1</b>")),
        "trusts.csv",
        "code_shape",
        "trust_code",
        (1,),
    ),
    Case(
        "trust_code_5000_characters",
        _frames_case(_recode_trust("RA2", "R" * 5000)),
        "trusts.csv",
        "code_shape",
        "trust_code",
        (2,),
        message="(5,000 characters)",
    ),
    Case(
        "zero_row_spells_csv",
        _frames_case(_header_only("spells")),
        "spells.csv",
        "no_rows",
    ),
    Case(
        "zero_row_spells_parquet",
        _frames_case(_header_only("spells"), parquet=("spells",)),
        "spells.parquet",
        "no_rows",
    ),
    Case(
        "float_spell_ids",
        _frames_case(_float_spell_ids, parquet=("spells",)),
        "spells.parquet",
        "not_text",
        "spell_id",
        (1, 2, 3, 4, 5, 6),
    ),
]


def _feed_case(content: bytes, name: str = "ae_attendances.csv"):
    def build(directory: Path) -> None:
        write_bundle(directory, valid_frames())
        (directory / "feeds").mkdir()
        (directory / "feeds" / name).write_bytes(content)

    return build


_AE_HEADER = b"period,org_code,type,attendances,breaches,admissions\n"

#: source feeds the run cannot read (issue 17): ``validate`` and ``run`` must refuse them alike.
#: The contract check of the bundle alone does not see them (they are read by the assembly).
FEED_CASES: list[Case] = [
    Case("feed_empty", _feed_case(b""), "feeds/ae_attendances.csv", "file_unreadable"),
    Case(
        "feed_latin1",
        _feed_case(_AE_HEADER + "2013-07-01,R\xe9,1,5,1,1\n".encode("latin-1")),
        "feeds/ae_attendances.csv",
        "file_unreadable",
        message="not valid UTF-8",
    ),
    Case(
        "feed_ragged",
        _feed_case(_AE_HEADER + b"2013-07-01,RA1,1,5,1\n2013-07-01,RA1,2,5,1,1,9\n"),
        "feeds/ae_attendances.csv",
        "file_unreadable",
        message="line 2 has 5, line 3 has 7",
    ),
    Case(
        "feed_not_parquet",
        _feed_case(b"period,org_code\n", "ae_attendances.parquet"),
        "feeds/ae_attendances.parquet",
        "file_unreadable",
        message="Parquet",
    ),
    Case(
        "feed_binary",
        _feed_case(bytes(range(256))),
        "feeds/ae_attendances.csv",
        "file_unreadable",
    ),
]
