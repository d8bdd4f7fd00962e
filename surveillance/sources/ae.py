"""NHS England monthly A&E attendances and emergency admissions (publisher ``NHS England A&E``).

Format (one row per month x organisation x A&E type, as published by NHS England and packaged in
the NHSRdatasets R package): ``period`` (first day of the month, ISO date), ``org_code`` (ODS
code), ``type`` (``1`` major A&E, ``2`` single specialty, ``other`` = types 3/4), ``attendances``,
``breaches`` (attendances over 4 hours from arrival to admission, transfer or discharge),
``admissions`` (emergency admissions via A&E). Counts may be written as ``21289.0``.

Indicators given (catalogue ``source: NHS England A&E``):

- ``wait_ae_4h`` (proportion, quarterly): type-1 breaches / type-1 attendances summed over the
  quarter's three months, for trusts reporting type-1 activity in all three months.
- ``wait_ae_4h_cusum`` (cusum_z over monthly proportions): the same ratio for each of the 12 months
  to the quarter end, for trusts reporting type 1 in all 12 months.

Why type 1 only: the indicator compares acute trusts' major emergency departments. All-type
performance (the NHS headline figure) mixes in single-specialty units and walk-in / minor injury
services, whose share of a trust's attendances depends on local service configuration rather than
on how the emergency department copes, and which almost never breach; including them would flatter
trusts that happen to run walk-in centres. A trust with no type-1 department has no row and so gets
``not_applicable``.

The other ``NHS England A&E`` indicators (12-hour trolley waits, the clinical-quality band) are not
in this file; they come from ``indicators.csv`` or are reported missing.

References
----------
NHS England, "A&E Attendances and Emergency Admissions", monthly statistics (Open Government
Licence v3.0). Contains public sector information licensed under the Open Government Licence v3.0.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from surveillance.contracts import INDICATOR_COLUMNS
from surveillance.errors import ContractError, Violation
from surveillance.periods import Quarter
from surveillance.sources.base import FeedResult, SourceAdapter

PACKAGED_FILE = Path(__file__).with_name("data") / "ae_attendances.csv"
COLUMNS = ("period", "org_code", "type", "attendances", "breaches", "admissions")
TYPES = ("1", "2", "other")
COUNT_COLUMNS = ("attendances", "breaches", "admissions")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-01$")
_CODE_RE = re.compile(r"^[A-Z0-9]{3,10}$")
QUARTERLY_ID = "wait_ae_4h"
MONTHLY_ID = "wait_ae_4h_cusum"
MONTHS_MONTHLY = 12


def _rows(mask: pd.Series) -> tuple[int, ...]:
    """1-based data row numbers where ``mask`` is true."""
    return tuple(int(i) + 1 for i in np.flatnonzero(mask.to_numpy()))


def validate_ae_attendances(raw: pd.DataFrame, name: str) -> list[Violation]:
    """Every rule of the A&E monthly format broken by ``raw`` (all columns read as text)."""
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        return [
            Violation(name, "required_column", f"missing column(s) {missing}", column=c)
            for c in missing
        ]
    violations: list[Violation] = []

    def check(mask: pd.Series, column: str, rule: str, message: str) -> None:
        if mask.any():
            violations.append(Violation(name, rule, message, column=column, rows=_rows(mask)))

    period = raw["period"].fillna("").str.strip()
    bad_period = ~period.str.match(_DATE_RE)
    parsed = pd.to_datetime(period.where(~bad_period), format="%Y-%m-%d", errors="coerce")
    check(
        bad_period | parsed.isna(),
        "period",
        "first_of_month_date",
        "period must be the first day of a month as YYYY-MM-01",
    )
    code = raw["org_code"].fillna("").str.strip()
    check(
        ~code.str.match(_CODE_RE),
        "org_code",
        "ods_code",
        "org_code must be an ODS code (3-10 upper-case letters or digits)",
    )
    check(
        ~raw["type"].fillna("").str.strip().isin(TYPES),
        "type",
        "ae_type",
        f"type must be one of {list(TYPES)}",
    )
    numbers = {}
    for column in COUNT_COLUMNS:
        values = pd.to_numeric(raw[column].fillna("").str.strip(), errors="coerce")
        numbers[column] = values
        check(values.isna(), column, "numeric", f"{column} must be a number")
        ok = values.notna()
        check(ok & (values < 0), column, "non_negative", f"{column} must be >= 0")
        check(
            ok & np.isfinite(values) & (values % 1 != 0),
            column,
            "whole_number",
            f"{column} must be a whole number of patients",
        )
    both = numbers["breaches"].notna() & numbers["attendances"].notna()
    check(
        both & (numbers["breaches"] > numbers["attendances"]),
        "breaches",
        "breaches_le_attendances",
        "breaches cannot exceed attendances",
    )
    key = pd.DataFrame({"p": period, "o": code, "t": raw["type"].fillna("").str.strip()})
    check(
        key.duplicated(keep=False),
        "org_code",
        "unique_key",
        "more than one row for the same period, org_code and type",
    )
    return violations


class AeAttendancesAdapter(SourceAdapter):
    """Adapter for the NHS England monthly A&E attendances file (see module docstring)."""

    source: ClassVar[str] = "NHS England A&E"
    feed_name: ClassVar[str] = "ae_attendances"
    provides: ClassVar[tuple[str, ...]] = (QUARTERLY_ID, MONTHLY_ID)

    def read(self, path: Path) -> pd.DataFrame:
        path = Path(path)
        if path.suffix == ".parquet":
            raw = pd.read_parquet(path).astype("string").astype(object)
        else:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
        violations = validate_ae_attendances(raw, path.name)
        if violations:
            raise ContractError(violations)
        return pd.DataFrame(
            {
                "period": pd.to_datetime(raw["period"].str.strip(), format="%Y-%m-%d"),
                "org_code": raw["org_code"].str.strip(),
                "type": raw["type"].str.strip(),
                **{c: pd.to_numeric(raw[c]).astype(np.int64) for c in COUNT_COLUMNS},
            }
        )

    def to_indicators(
        self, feed: pd.DataFrame, quarter: Quarter, trust_codes: set[str] | None
    ) -> FeedResult:
        type1 = feed[feed["type"] == "1"]
        if trust_codes is not None:
            type1 = type1[type1["org_code"].isin(trust_codes)]
        latest = feed["period"].max()
        first = feed["period"].min()
        unavailable: dict[str, str] = {}
        notes: list[str] = []
        frames = []

        quarter_months = pd.to_datetime([f"{m}-01" for m in quarter.months()])
        if first > quarter_months[0]:
            unavailable[QUARTERLY_ID] = (
                f"feed starts {first:%Y-%m}, after the start of {quarter} ({quarter.start:%Y-%m})"
            )
        else:
            rows, dropped = _aggregate(type1, quarter_months, quarter.start, quarter.end)
            frames.append(rows.assign(indicator_id=QUARTERLY_ID))
            if dropped:
                notes.append(
                    f"{QUARTERLY_ID}: {dropped} trust(s) without type-1 returns in all three "
                    f"months of {quarter} left out"
                )

        window = pd.to_datetime([f"{m}-01" for m in quarter.lookback_months(MONTHS_MONTHLY)])
        if first > window[0]:
            unavailable[MONTHLY_ID] = (
                f"feed starts {first:%Y-%m}, after the start of the {MONTHS_MONTHLY}-month "
                f"look-back ({window[0]:%Y-%m})"
            )
        else:
            complete = type1[type1["period"].isin(window)].groupby("org_code")["period"].nunique()
            keep = set(complete.index[complete == len(window)])
            dropped = type1.loc[type1["period"].isin(window), "org_code"].nunique() - len(keep)
            monthly = type1[type1["org_code"].isin(keep) & type1["period"].isin(window)]
            frames.append(
                pd.DataFrame(
                    {
                        "trust_code": monthly["org_code"].to_numpy(),
                        "indicator_id": MONTHLY_ID,
                        "period_start": monthly["period"].to_numpy(),
                        "period_end": (monthly["period"] + pd.offsets.MonthEnd(0)).to_numpy(),
                        "numerator": monthly["breaches"].to_numpy(),
                        "denominator": monthly["attendances"].to_numpy(),
                    }
                )
            )
            if dropped:
                notes.append(
                    f"{MONTHLY_ID}: {dropped} trust(s) without type-1 returns in all "
                    f"{MONTHS_MONTHLY} months left out"
                )
        indicators = pd.concat(frames, ignore_index=True) if frames else _empty()
        indicators = _finish(indicators)
        return FeedResult(indicators, latest, unavailable, notes)


def _aggregate(
    type1: pd.DataFrame, months: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[pd.DataFrame, int]:
    """Quarter sums for trusts with type-1 returns in every month of ``months``."""
    in_window = type1[type1["period"].isin(months)]
    sums = in_window.groupby("org_code").agg(
        n_months=("period", "nunique"),
        numerator=("breaches", "sum"),
        denominator=("attendances", "sum"),
    )
    complete = sums[sums["n_months"] == len(months)]
    rows = pd.DataFrame(
        {
            "trust_code": complete.index.to_numpy(),
            "period_start": start,
            "period_end": end,
            "numerator": complete["numerator"].to_numpy(),
            "denominator": complete["denominator"].to_numpy(),
        }
    )
    return rows, len(sums) - len(complete)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in INDICATOR_COLUMNS})


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Order columns as indicators.csv, fill value = numerator / denominator, sort by key."""
    out = frame.copy()
    out["value"] = out["numerator"].astype(float) / out["denominator"].astype(float)
    out["standard_error"] = np.nan
    out["band"] = pd.Series([None] * len(out), dtype=object)
    out = out[INDICATOR_COLUMNS].sort_values(
        ["indicator_id", "trust_code", "period_start"], kind="mergesort"
    )
    return out.reset_index(drop=True)
