"""NHS Staff Survey organisational results (publisher ``NHS Staff Survey``).

Format (the results by organisation and year, one row per organisation x survey year, latin-1
encoded CSV, ``feeds/staff_survey.csv``): ``ODS code``, ``Year`` (the survey year), ``Organisation
name``, ``Benchmarking group``, ``Weighting`` (``Occupation Group`` or ``Unweighted``), and for
each item ``<item>_base`` (respondents answering) and ``<item>_rate`` (per cent answering the
item's way). Which item each catalogue indicator means is data, in
``staff_survey_items.yaml``; catalogue staff-survey indicators not mapped there are not in the
file and are reported missing.

Periods: the survey of year ``Y`` is fielded in October-December ``Y`` (the row's
``period_start`` / ``period_end``) and published in March ``Y+1``. A quarter uses the latest
survey published by its last day whose fieldwork lies in its 12-month look-back; so a survey is
current for the quarters ending March to September ``Y+1``, and a feed whose latest survey is
older than that is late.

Values (catalogue type ``score``): ``value`` is the rate in per cent, ``standard_error``
``100 sqrt(p (1 - p) / base)``, and the row also carries ``numerator = base x rate / 100`` and
``denominator = base``. Caveat (recorded in the run's notes): the rates are weighted to each
trust's occupation-group mix where ``Weighting`` says so, so ``numerator`` is a weighted count
rather than a number of respondents, and the binomial standard error ignores the weighting's
design effect.

References
----------
NHS Staff Survey Coordination Centre, "NHS Staff Survey: local results" (Open Government Licence
v3.0), as compiled in ebmgt/NHS-Gender (GPL-3.0; not shipped with this project).
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from surveillance.errors import ContractError, Violation
from surveillance.periods import Quarter
from surveillance.sources.ae import _empty, _finish
from surveillance.sources.base import FeedResult, SourceAdapter, load_yaml_model

ITEMS_FILE = Path(__file__).with_name("staff_survey_items.yaml")
KEY_COLUMNS = ("ODS code", "Year", "Weighting")
LOOKBACK_MONTHS = 12
# commissioners surveyed together are listed as one row, "01T/01V"
_CODE_RE = re.compile(r"^[A-Z0-9]{3,10}(/[A-Z0-9]{3,10})*$")


class SurveyItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: str
    question: str


class SurveyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    file_encoding: str
    fieldwork_start_month: int
    fieldwork_end_month: int
    publication_month: int
    items: dict[str, SurveyItem]


def load_items(path: Path = ITEMS_FILE) -> SurveyConfig:
    """The staff-survey item map (``staff_survey_items.yaml``), validated."""
    return load_yaml_model(path, SurveyConfig)


def _rows(mask: pd.Series) -> tuple[int, ...]:
    return tuple(int(i) + 1 for i in np.flatnonzero(mask.to_numpy()))


class StaffSurveyAdapter(SourceAdapter):
    """Adapter for the NHS Staff Survey organisational results (see module docstring)."""

    source = "NHS Staff Survey"
    feed_name = "staff_survey"

    def __init__(self, items_path: Path = ITEMS_FILE):
        self.items_path = Path(items_path)

    @cached_property
    def config(self) -> SurveyConfig:
        return load_items(self.items_path)

    @property
    def provides(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(sorted(self.config.items))

    def fieldwork(self, year: int) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last day of survey year ``year``'s fieldwork (the row's period)."""
        c = self.config
        start = pd.Timestamp(year=year, month=c.fieldwork_start_month, day=1)
        end = pd.Timestamp(year=year, month=c.fieldwork_end_month, day=1) + pd.offsets.MonthEnd(0)
        return start, end

    def published(self, year: int) -> pd.Timestamp:
        """Last day of the month survey year ``year`` is published in (March of ``year + 1``)."""
        first = pd.Timestamp(year=year + 1, month=self.config.publication_month, day=1)
        return first + pd.offsets.MonthEnd(0)

    def current_through(self, latest: pd.Timestamp) -> pd.Timestamp:
        """The latest survey is current until its fieldwork leaves the 12-month look-back."""
        start, _ = self.fieldwork(pd.Timestamp(latest).year)
        return start + pd.DateOffset(months=LOOKBACK_MONTHS) - pd.Timedelta(days=1)

    def read(self, path: Path) -> pd.DataFrame:
        """Rows per organisation and year: ``org_code, year, weighting`` and, per mapped item,
        ``<item>_base`` and ``<item>_rate`` as numbers (blank = not reported)."""
        path = Path(path)
        encoding = self.config.file_encoding
        try:
            raw = pd.read_csv(path, dtype=str, encoding=encoding, keep_default_na=False)
        except UnicodeDecodeError as exc:
            raise ContractError(
                [Violation(path.name, "encoding", f"not readable as {encoding}: {exc}")]
            ) from None
        items = sorted({i.item for i in self.config.items.values()})
        needed = [*KEY_COLUMNS, *(f"{i}_{p}" for i in items for p in ("base", "rate"))]
        missing = [c for c in needed if c not in raw.columns]
        if missing:
            raise ContractError(
                [
                    Violation(path.name, "required_column", f"missing column '{c}'", column=c)
                    for c in missing
                ]
            )
        violations: list[Violation] = []

        def check(mask: pd.Series, column: str, rule: str, message: str) -> None:
            if mask.any():
                violations.append(
                    Violation(path.name, rule, message, column=column, rows=_rows(mask))
                )

        code = raw["ODS code"].str.strip()
        check(
            ~code.str.match(_CODE_RE),
            "ODS code",
            "ods_code",
            "ODS code must be ODS codes joined by '/'",
        )
        year = pd.to_numeric(raw["Year"].str.strip(), errors="coerce")
        check(year.isna() | (year % 1 != 0), "Year", "survey_year", "Year must be a year")
        check(
            pd.DataFrame({"c": code, "y": year}).duplicated(keep=False),
            "ODS code",
            "unique_key",
            "more than one row for the same ODS code and Year",
        )
        out = pd.DataFrame(
            {"org_code": code, "year": year, "weighting": raw["Weighting"].str.strip()}
        )
        for item in items:
            base = pd.to_numeric(
                raw[f"{item}_base"].str.strip().replace("", np.nan), errors="coerce"
            )
            rate = pd.to_numeric(
                raw[f"{item}_rate"].str.strip().replace("", np.nan), errors="coerce"
            )
            blank_b = raw[f"{item}_base"].str.strip() == ""
            blank_r = raw[f"{item}_rate"].str.strip() == ""
            check(base.isna() & ~blank_b, f"{item}_base", "numeric", "base must be a number")
            check(rate.isna() & ~blank_r, f"{item}_rate", "numeric", "rate must be a number")
            check(base < 0, f"{item}_base", "non_negative", "base must be >= 0")
            check((rate < 0) | (rate > 100), f"{item}_rate", "per_cent", "rate must be 0-100")
            out[f"{item}_base"] = base
            out[f"{item}_rate"] = rate
        if violations:
            raise ContractError(violations)
        out["year"] = out["year"].astype(int)
        return out.sort_values(["year", "org_code"], kind="mergesort").reset_index(drop=True)

    def to_indicators(
        self, feed: pd.DataFrame, quarter: Quarter, trust_codes: set[str] | None
    ) -> FeedResult:
        years = sorted(set(feed["year"]))
        _, latest = self.fieldwork(max(years))
        look_start = quarter.lookback_start(LOOKBACK_MONTHS)
        usable = [y for y in years if self.published(y) <= quarter.end]
        ids = self.provides
        if not usable or self.fieldwork(max(usable))[0] < look_start:
            reason = (
                f"no survey published by {quarter.end:%Y-%m-%d} with fieldwork in the 12 months "
                f"from {look_start:%Y-%m-%d} (surveys in file: {years})"
            )
            return FeedResult(_finish(_empty()), latest, {i: reason for i in ids})
        year = max(usable)
        start, end = self.fieldwork(year)
        rows = feed[feed["year"] == year]
        if trust_codes is not None:
            rows = rows[rows["org_code"].isin(trust_codes)]
        frames = []
        for indicator_id in ids:
            item = self.config.items[indicator_id].item
            base, rate = rows[f"{item}_base"], rows[f"{item}_rate"]
            ok = (base > 0) & rate.notna()
            b, r = base[ok].to_numpy(float), rate[ok].to_numpy(float)
            p = r / 100.0
            frames.append(
                pd.DataFrame(
                    {
                        "trust_code": rows.loc[ok, "org_code"].to_numpy(),
                        "indicator_id": indicator_id,
                        "period_start": start,
                        "period_end": end,
                        "numerator": b * p,
                        "denominator": b,
                        "value": r,
                        "standard_error": 100.0 * np.sqrt(p * (1.0 - p) / b),
                    }
                )
            )
        frame = pd.concat(frames, ignore_index=True)
        indicators = _finish(frame.drop(columns=["value", "standard_error"]))
        keyed = frame.set_index(["indicator_id", "trust_code"])
        key = pd.MultiIndex.from_frame(indicators[["indicator_id", "trust_code"]])
        indicators["value"] = keyed["value"].reindex(key).to_numpy()
        indicators["standard_error"] = keyed["standard_error"].reindex(key).to_numpy()
        weighted = int((rows["weighting"] != "Unweighted").sum())
        notes = [
            f"survey year {year} used (fieldwork {start:%Y-%m} to {end:%Y-%m}, published "
            f"{self.published(year):%Y-%m})",
            f"rates of {weighted} of {len(rows)} trusts are occupation-group weighted: numerator "
            "= base x rate / 100 is a weighted count, and the binomial standard error ignores "
            "the weighting's design effect",
        ]
        return FeedResult(indicators, latest, {}, notes)
