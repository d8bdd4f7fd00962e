"""NHS England KH03 bed availability and occupancy (publisher ``NHS England KH03``).

Format (the nhs-r-community compilation of the quarterly KH03 returns, ``feeds/kh03.parquet``):
one row per financial quarter x organisation x specialty group x specialty, columns ``quarter``
(``YYYY-YY Qn``, financial year), ``period_start``, ``period_end``, ``org_code``, ``org_name``,
``specialty_group`` (``general_and_acute``, ``maternity``, ``learning_disabilities``,
``mental_illness``), ``available_total`` and ``occupied_total`` (the organisation's average
daily beds available / occupied overnight in the specialty group, repeated on each specialty's
row), ``specialty_code``, ``specialty_name``, ``occupied`` (that specialty's share).

The quarter is taken from the ``quarter`` label: financial Q1 is April-June of the first year,
Q4 January-March of the second. The compilation's ``period_start`` / ``period_end`` of every Q4
row are one year early (a known fault); rows whose dates disagree with the label in any other way
are refused.

Indicators given (general and acute beds only, as NHS England's headline occupancy):

- ``bed_occupancy`` (proportion): occupied / available bed-days in the quarter, i.e. the
  average beds occupied and available times the quarter's days (so the catalogue's minimum
  denominator of 1,000 bed-days reads as about 11 beds).
- ``bed_occupancy_over_90`` (rule): 1 when the quarter's average general and acute occupancy is
  above 90%, else 0 (KH03 is quarterly, so a month above 90% cannot be seen).

References
----------
NHS England, "Bed Availability and Occupancy Data - Overnight" (KH03), quarterly statistics
(Open Government Licence v3.0), as compiled in nhs-r-community/demos-and-how-tos (MIT).
Contains public sector information licensed under the Open Government Licence v3.0.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from surveillance.errors import ContractError, Violation
from surveillance.periods import Quarter
from surveillance.sources.ae import _empty, _finish
from surveillance.sources.base import FeedResult, SourceAdapter

COLUMNS = (
    "quarter",
    "period_start",
    "period_end",
    "org_code",
    "org_name",
    "specialty_group",
    "available_total",
    "occupied_total",
)
GROUPS = ("general_and_acute", "maternity", "learning_disabilities", "mental_illness")
GENERAL_AND_ACUTE = "general_and_acute"
OCCUPANCY_ID = "bed_occupancy"
OVER_90_ID = "bed_occupancy_over_90"
OVER_90 = 0.90
_QUARTER_RE = re.compile(r"^(\d{4})-(\d{2}) Q([1-4])$")
_CODE_RE = re.compile(r"^[A-Z0-9]{3,10}$")


def quarter_from_label(label: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day of a KH03 financial quarter label (``"2019-20 Q3"`` -> Oct-Dec 2019)."""
    m = _QUARTER_RE.match(label)
    if m is None:
        raise ValueError(f"not a KH03 quarter label: {label!r}")
    year, q = int(m.group(1)), int(m.group(3))
    start = pd.Timestamp(year=year + (q == 4), month=(3 * q + 1) if q < 4 else 1, day=1)
    return start, start + pd.offsets.QuarterEnd(0)


def _rows(mask: pd.Series) -> tuple[int, ...]:
    return tuple(int(i) + 1 for i in np.flatnonzero(mask.to_numpy()))


def validate_kh03(raw: pd.DataFrame, name: str) -> tuple[list[Violation], int]:
    """Rules of the KH03 compilation broken by ``raw``; and how many Q4 rows had the known
    one-year-early dates (handled from the label, not a violation)."""
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        return [
            Violation(name, "required_column", f"missing column '{c}'", column=c) for c in missing
        ], 0
    violations: list[Violation] = []

    def check(mask: pd.Series, column: str, rule: str, message: str) -> None:
        if mask.any():
            violations.append(Violation(name, rule, message, column=column, rows=_rows(mask)))

    label = raw["quarter"].astype(str).str.strip()
    bad_label = ~label.str.match(_QUARTER_RE)
    check(bad_label, "quarter", "kh03_quarter", "quarter must read 'YYYY-YY Qn' (financial year)")
    check(
        ~raw["org_code"].astype(str).str.strip().str.match(_CODE_RE),
        "org_code",
        "ods_code",
        "org_code must be an ODS code",
    )
    check(
        ~raw["specialty_group"].isin(GROUPS),
        "specialty_group",
        "kh03_group",
        f"specialty_group must be one of {list(GROUPS)}",
    )
    for column in ("available_total", "occupied_total"):
        values = pd.to_numeric(raw[column], errors="coerce")
        check(
            values.isna() | (values < 0), column, "non_negative", f"{column} must be a number >= 0"
        )
    avail = pd.to_numeric(raw["available_total"], errors="coerce")
    occ = pd.to_numeric(raw["occupied_total"], errors="coerce")
    # only the group used is held to it: the published mental illness returns of one trust
    # (RP1, 2021-22 Q3-Q4) have more beds occupied than available
    check(
        (raw["specialty_group"] == GENERAL_AND_ACUTE) & (occ > avail),
        "occupied_total",
        "occupied_le_available",
        "general and acute occupied beds exceed available",
    )
    q4_shifted = 0
    if not bad_label.any():
        bounds = {q: quarter_from_label(q) for q in label.unique()}
        start = label.map(lambda q: bounds[q][0])
        end = label.map(lambda q: bounds[q][1])
        given_start = pd.to_datetime(raw["period_start"], errors="coerce")
        given_end = pd.to_datetime(raw["period_end"], errors="coerce")
        q4 = label.str.endswith("Q4")
        shifted = (
            q4
            & (given_start == start - pd.DateOffset(years=1))
            & (given_end == end - pd.DateOffset(years=1))
        )
        q4_shifted = int(shifted.sum())
        check(
            ((given_start != start) | (given_end != end)) & ~shifted,
            "period_start",
            "period_matches_label",
            "period_start/period_end disagree with the quarter label",
        )
    return violations, q4_shifted


class Kh03Adapter(SourceAdapter):
    """Adapter for the KH03 bed availability and occupancy compilation (see module docstring)."""

    source: ClassVar[str] = "NHS England KH03"
    feed_name: ClassVar[str] = "kh03"
    provides: ClassVar[tuple[str, ...]] = (OCCUPANCY_ID, OVER_90_ID)

    def read(self, path: Path) -> pd.DataFrame:
        """General and acute beds per organisation and quarter: ``quarter, period_start,
        period_end, org_code, org_name, available, occupied`` (average daily beds)."""
        path = Path(path)
        raw = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
        violations, _ = validate_kh03(raw, path.name)
        if violations:
            raise ContractError(violations)
        ga = raw[raw["specialty_group"] == GENERAL_AND_ACUTE]
        per = ga.groupby(["quarter", "org_code"], sort=True).agg(
            org_name=("org_name", "first"),
            available=("available_total", "first"),
            occupied=("occupied_total", "first"),
            n_available=("available_total", "nunique"),
            n_occupied=("occupied_total", "nunique"),
        )
        uneven = per[(per["n_available"] > 1) | (per["n_occupied"] > 1)]
        if len(uneven):
            raise ContractError(
                [
                    Violation(
                        path.name,
                        "one_total_per_org_quarter",
                        f"{q} {code}: available_total/occupied_total differ between specialty rows",
                        column="available_total",
                    )
                    for q, code in uneven.index[:20]
                ]
            )
        out = per.reset_index()
        bounds = {q: quarter_from_label(q) for q in out["quarter"].unique()}
        out["period_start"] = out["quarter"].map(lambda q: bounds[q][0]).astype("datetime64[ns]")
        out["period_end"] = out["quarter"].map(lambda q: bounds[q][1]).astype("datetime64[ns]")
        out["available"] = out["available"].astype(float)
        out["occupied"] = out["occupied"].astype(float)
        columns = ["quarter", "period_start", "period_end", "org_code", "org_name"]
        out = out[[*columns, "available", "occupied"]]
        return out.sort_values(["period_start", "org_code"], kind="mergesort").reset_index(
            drop=True
        )

    def to_indicators(
        self, feed: pd.DataFrame, quarter: Quarter, trust_codes: set[str] | None
    ) -> FeedResult:
        latest = pd.Timestamp(feed["period_end"].max())
        rows = feed[feed["period_start"] == quarter.start]
        if trust_codes is not None:
            rows = rows[rows["org_code"].isin(trust_codes)]
        rows = rows[rows["available"] > 0]
        unavailable: dict[str, str] = {}
        if not (feed["period_start"] == quarter.start).any():
            reason = f"no KH03 quarter covering {quarter}"
            unavailable = {OCCUPANCY_ID: reason, OVER_90_ID: reason}
            return FeedResult(_finish(_empty()), latest, unavailable)
        days = float((quarter.end - quarter.start).days + 1)
        common = {
            "trust_code": rows["org_code"].to_numpy(),
            "period_start": quarter.start,
            "period_end": quarter.end,
        }
        occupancy = pd.DataFrame(
            {
                **common,
                "indicator_id": OCCUPANCY_ID,
                "numerator": rows["occupied"].to_numpy() * days,
                "denominator": rows["available"].to_numpy() * days,
            }
        )
        over = pd.DataFrame(
            {
                **common,
                "indicator_id": OVER_90_ID,
                "numerator": (rows["occupied"] / rows["available"] > OVER_90)
                .astype(float)
                .to_numpy(),
                "denominator": 1.0,
            }
        )
        indicators = _finish(pd.concat([occupancy, over], ignore_index=True))
        return FeedResult(indicators, latest, unavailable)
