"""NHS England Cancer Waiting Times provider extracts (publisher ``NHS England Cancer Waiting Times``).

Format (the publisher's monthly "CWT CRS Data Extract - Provider" workbooks, unchanged): one sheet
``CWT CRS Provider Extract`` with one row per month x standard x provider x stage/route x
treatment modality x cancer type, columns ``PERIOD`` (first day of the month), ``YEAR``,
``MONTH``, ``STANDARD`` (``28-day FDS``, ``31-day Combined``, ``62-day Combined``), ``ORG CODE``
(ODS code), ``STAGE/ROUTE``, ``TREATMENT MODALITY``, ``CANCER TYPE``, ``TOTAL TREATED``,
``WITHIN STANDARD``, ``BREACHES``. The feed is the directory ``feeds/cancer_waiting_times/``
holding one or more such workbooks; a workbook whose name contains ``Provisional`` holds
provisional months, which ``sources.csv`` marks as such.

Counting rules (NHS England, "Cancer Waiting Times: guidance", CWT CRS data extract notes):

- 28-day Faster Diagnosis Standard: rows have no treatment modality; every row counts once.
- 31- and 62-day standards: the extract gives each pathway once per treatment modality and
  again in an ``ALL MODALITIES`` row, so only ``ALL MODALITIES`` rows are counted (summing all
  rows counts every patient twice).
- A pathway shared between two providers counts 0.5 at each, so counts are multiples of 0.5;
  they are kept exact (float64 sums of halves are exact), never rounded.

Provider rows counted this way add up exactly to NHS England's national time series of the same
release, for every month and standard (tested on the real files).

Indicators given (quarterly proportions of patients *not* within the standard, breaches / total,
summed over the quarter's three months for providers reporting the standard in all three):
``wait_cancer_28d_fds``, ``wait_cancer_31d``, ``wait_cancer_62d``.

References
----------
NHS England, "Cancer Waiting Times", monthly provider-based statistics, April-October 2023
(Open Government Licence v3.0). Contains public sector information licensed under the Open
Government Licence v3.0.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import ClassVar

import pandas as pd

from surveillance.errors import ContractError, Violation
from surveillance.periods import Quarter
from surveillance.sources.ae import _empty, _finish
from surveillance.sources.base import FeedResult, SourceAdapter
from surveillance.sources.xlsx import read_sheet, where

SHEET = "CWT CRS Provider Extract"
COLUMNS = (
    "PERIOD",
    "YEAR",
    "MONTH",
    "STANDARD",
    "ORG CODE",
    "STAGE/ROUTE",
    "TREATMENT MODALITY",
    "CANCER TYPE",
    "TOTAL TREATED",
    "WITHIN STANDARD",
    "BREACHES",
)
COUNT_COLUMNS = ("TOTAL TREATED", "WITHIN STANDARD", "BREACHES")
ALL_MODALITIES = "ALL MODALITIES"
FDS = "28-day FDS"
#: the extract's standard -> catalogue indicator
INDICATOR_BY_STANDARD = {
    FDS: "wait_cancer_28d_fds",
    "31-day Combined": "wait_cancer_31d",
    "62-day Combined": "wait_cancer_62d",
}
STANDARDS = tuple(INDICATOR_BY_STANDARD)
_CODE_RE = re.compile(r"^[A-Z0-9]{3,10}$")
PROVISIONAL_MARK = "provisional"
#: monthly table columns returned by :meth:`CancerWaitingTimesAdapter.read`
MONTHLY_COLUMNS = (
    "period",
    "org_code",
    "standard",
    "total_treated",
    "within_standard",
    "breaches",
    "provisional",
    "file",
)


def _rows(mask: pd.Series) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.index[mask.to_numpy()])


def _text(series: pd.Series) -> pd.Series:
    return series.map(lambda v: "" if v is None else str(v).strip())


def validate_provider_extract(raw: pd.DataFrame, name: str) -> list[Violation]:
    """Every rule of the provider extract broken by ``raw`` (one sheet, as read by openpyxl)."""
    violations: list[Violation] = []

    def check(mask: pd.Series, column: str, rule: str, message: str) -> None:
        if mask.any():
            violations.append(Violation(name, rule, message, column=column, rows=_rows(mask)))

    period = raw["PERIOD"]
    is_date = period.map(lambda v: isinstance(v, dt.datetime | dt.date))
    first = period.map(lambda v: isinstance(v, dt.datetime | dt.date) and v.day == 1)
    check(~(is_date & first), "PERIOD", "first_of_month_date", "PERIOD must be a month's first day")
    standard = _text(raw["STANDARD"])
    check(
        ~standard.isin(STANDARDS),
        "STANDARD",
        "cwt_standard",
        f"STANDARD must be one of {list(STANDARDS)}",
    )
    code = _text(raw["ORG CODE"])
    check(~code.str.match(_CODE_RE), "ORG CODE", "ods_code", "ORG CODE must be an ODS code")
    modality = _text(raw["TREATMENT MODALITY"])
    check(
        (standard == FDS) & (modality != ""),
        "TREATMENT MODALITY",
        "fds_no_modality",
        "28-day FDS rows have no treatment modality",
    )
    counts = {}
    for column in COUNT_COLUMNS:
        values = pd.to_numeric(raw[column], errors="coerce").astype(float)
        counts[column] = values
        check(values.isna(), column, "numeric", f"{column} must be a number")
        ok = values.notna()
        check(ok & (values < 0), column, "non_negative", f"{column} must be >= 0")
        check(
            ok & ((values * 2) % 1 != 0),
            column,
            "half_patients",
            f"{column} must be a whole number of patients or a half (shared pathway)",
        )
    total, within, breaches = (counts[c] for c in COUNT_COLUMNS)
    check(
        total.notna() & within.notna() & breaches.notna() & (within + breaches != total),
        "TOTAL TREATED",
        "total_is_within_plus_breaches",
        "TOTAL TREATED must equal WITHIN STANDARD + BREACHES",
    )
    if violations:
        return violations
    # a file cut short loses whole standards for its last month: every month has all three
    months = pd.to_datetime(period)
    have = pd.DataFrame({"m": months, "s": standard}).groupby("m")["s"].agg(set)
    for month, found in have.items():
        lacking = sorted(set(STANDARDS) - found)
        if lacking:
            violations.append(
                Violation(
                    name,
                    "all_standards_each_month",
                    f"{month:%Y-%m} has no rows for {lacking} (file truncated?)",
                    column="STANDARD",
                )
            )
    return violations


def monthly_counts(raw: pd.DataFrame) -> pd.DataFrame:
    """Provider x month x standard counts: FDS rows summed, 31/62-day ``ALL MODALITIES`` rows."""
    standard = _text(raw["STANDARD"])
    modality = _text(raw["TREATMENT MODALITY"])
    counted = (standard == FDS) | (modality == ALL_MODALITIES)
    frame = pd.DataFrame(
        {
            "period": pd.to_datetime(raw["PERIOD"]).astype("datetime64[ns]"),
            "org_code": _text(raw["ORG CODE"]),
            "standard": standard,
            "total_treated": pd.to_numeric(raw["TOTAL TREATED"]).astype(float),
            "within_standard": pd.to_numeric(raw["WITHIN STANDARD"]).astype(float),
            "breaches": pd.to_numeric(raw["BREACHES"]).astype(float),
        }
    )[counted.to_numpy()]
    return (
        frame.groupby(["period", "org_code", "standard"], sort=True)[
            ["total_treated", "within_standard", "breaches"]
        ]
        .sum()
        .reset_index()
    )


class CancerWaitingTimesAdapter(SourceAdapter):
    """Adapter for the NHS England CWT provider extracts (see module docstring)."""

    source: ClassVar[str] = "NHS England Cancer Waiting Times"
    feed_name: ClassVar[str] = "cancer_waiting_times"
    provides: ClassVar[tuple[str, ...]] = tuple(INDICATOR_BY_STANDARD.values())

    def find(self, feeds_dir: Path) -> Path | None:
        """The directory ``feeds/cancer_waiting_times/`` when it holds an xlsx workbook."""
        path = Path(feeds_dir) / self.feed_name
        return path if path.is_dir() and any(path.glob("*.xlsx")) else None

    def read(self, path: Path) -> pd.DataFrame:
        """Monthly counts per provider and standard from every workbook in ``path``.

        A month in two workbooks is taken from the later (non-provisional) one; two final
        workbooks with the same month are refused.
        """
        path = Path(path)
        return self.read_files(sorted(path.glob("*.xlsx")) if path.is_dir() else [path])

    def read_files(self, files: list[Path]) -> pd.DataFrame:
        """:meth:`read` over a list of workbooks."""
        files = [Path(f) for f in files]
        frames = []
        for file in files:
            raw = read_sheet(file, SHEET, COLUMNS)
            violations = validate_provider_extract(raw, where(file, SHEET))
            if violations:
                raise ContractError(violations)
            counts = monthly_counts(raw)
            counts["provisional"] = PROVISIONAL_MARK in file.name.lower()
            counts["file"] = file.name
            frames.append(counts)
        feed = pd.concat(frames, ignore_index=True)
        months = feed[["period", "provisional", "file"]].drop_duplicates()
        clash = months[months.duplicated(["period", "provisional"], keep=False)]
        clash = clash[~clash["provisional"]]
        if len(clash):
            raise ContractError(
                [
                    Violation(
                        str(f),
                        "one_final_file_per_month",
                        f"{m:%Y-%m} is also in another final extract",
                        column="PERIOD",
                    )
                    for m, f in zip(clash["period"], clash["file"], strict=True)
                ]
            )
        finals = set(feed.loc[~feed["provisional"], "period"])
        feed = feed[~feed["provisional"] | ~feed["period"].isin(finals)]
        keep = feed.drop_duplicates(["period", "org_code", "standard"], keep="last")
        if len(keep) != len(feed):
            raise ContractError(
                [
                    Violation(
                        ", ".join(f.name for f in files),
                        "one_file_per_month",
                        "a month appears in two provisional extracts",
                        column="PERIOD",
                    )
                ]
            )
        out = feed.sort_values(["period", "standard", "org_code"], kind="mergesort")
        return out[list(MONTHLY_COLUMNS)].reset_index(drop=True)

    def to_indicators(
        self, feed: pd.DataFrame, quarter: Quarter, trust_codes: set[str] | None
    ) -> FeedResult:
        months = pd.to_datetime([f"{m}-01" for m in quarter.months()])
        rows = feed if trust_codes is None else feed[feed["org_code"].isin(trust_codes)]
        rows = rows[rows["period"].isin(months)]
        unavailable: dict[str, str] = {}
        notes: list[str] = []
        frames = []
        present = set(feed["period"])
        lacking = [f"{m:%Y-%m}" for m in months if m not in present]
        for standard, indicator_id in INDICATOR_BY_STANDARD.items():
            if lacking:
                unavailable[indicator_id] = f"no {standard} rows for {', '.join(lacking)}"
                continue
            sub = rows[rows["standard"] == standard]
            sums = sub.groupby("org_code").agg(
                n_months=("period", "nunique"),
                numerator=("breaches", "sum"),
                denominator=("total_treated", "sum"),
            )
            complete = sums[sums["n_months"] == len(months)]
            if len(complete) < len(sums):
                notes.append(
                    f"{indicator_id}: {len(sums) - len(complete)} provider(s) without {standard} "
                    f"returns in all three months of {quarter} left out"
                )
            frames.append(
                pd.DataFrame(
                    {
                        "trust_code": complete.index.to_numpy(),
                        "indicator_id": indicator_id,
                        "period_start": quarter.start,
                        "period_end": quarter.end,
                        "numerator": complete["numerator"].to_numpy(),
                        "denominator": complete["denominator"].to_numpy(),
                    }
                )
            )
        used = feed[feed["period"].isin(months) & feed["provisional"]]
        provisional = tuple(sorted(f"{m:%Y-%m}" for m in set(used["period"])))
        if provisional:
            notes.append(
                f"months {', '.join(provisional)} are provisional in "
                f"{', '.join(sorted(set(used['file'])))}"
            )
        indicators = _finish(pd.concat(frames, ignore_index=True) if frames else _empty())
        indicators["numerator"] = indicators["numerator"].astype(float)
        indicators["denominator"] = indicators["denominator"].astype(float)
        latest = pd.Timestamp(feed["period"].max())
        return FeedResult(indicators, latest, unavailable, notes, provisional=provisional)


def national_series(path: Path, sheet: str = "Monthly Performance") -> pd.DataFrame:
    """NHS England's national monthly totals per standard from the National Time Series workbook.

    The sheet has three side-by-side blocks (28-day, 31-day, 62-day), each ``Monthly``,
    ``Total``, ``Within Standard``, ``Outside Standard``, ``Performance (%)`` under a header row
    whose second cell is ``Monthly``. Returns ``period, standard, total_treated,
    within_standard, breaches`` (rows with counts only).
    """
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    try:
        if sheet not in book.sheetnames:
            raise ContractError(
                [Violation(Path(path).name, "missing_sheet", f"sheet '{sheet}' not found")]
            )
        rows = list(book[sheet].iter_rows(values_only=True))
    finally:
        book.close()
    header_at = next(
        (i for i, r in enumerate(rows) if any(str(c).strip() == "Monthly" for c in r if c)), None
    )
    if header_at is None:
        raise ContractError(
            [
                Violation(
                    where(path, sheet), "required_column", "no 'Monthly' header", column="Monthly"
                )
            ]
        )
    header = rows[header_at]
    starts = [j for j, c in enumerate(header) if c is not None and str(c).strip() == "Monthly"]
    if len(starts) != len(STANDARDS):
        raise ContractError(
            [
                Violation(
                    where(path, sheet),
                    "three_blocks",
                    f"expected {len(STANDARDS)} 'Monthly' blocks, found {len(starts)}",
                    column="Monthly",
                )
            ]
        )
    out = []
    for standard, j in zip(STANDARDS, starts, strict=True):
        for r in rows[header_at + 1 :]:
            month, total, within, outside = r[j], r[j + 1], r[j + 2], r[j + 3]
            if isinstance(month, dt.datetime) and total is not None:
                out.append(
                    (pd.Timestamp(month), standard, float(total), float(within), float(outside))
                )
    return pd.DataFrame(
        out, columns=["period", "standard", "total_treated", "within_standard", "breaches"]
    ).astype({"period": "datetime64[ns]"})


__all__ = [
    "CancerWaitingTimesAdapter",
    "INDICATOR_BY_STANDARD",
    "monthly_counts",
    "national_series",
    "validate_provider_extract",
]
