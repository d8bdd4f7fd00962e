"""Input contracts (DESIGN.md section 4): one pandera schema per bundle file plus cross-file rules.

Every rule is a vectorised check over whole columns, run by a pandera ``DataFrameSchema`` in lazy
mode so that *every* violation is collected. Pandera's failure cases carry the frame index, which
:func:`validate_bundle` turns into row numbers.

Row numbers are **1-based data rows**: row 1 is the first row after the header, i.e. line 2 of a
CSV file (a spreadsheet shows it as row 2), and row N is on line N + 1 also after blank lines or
values spanning lines (:attr:`surveillance.bundle.Bundle.row_numbers`, applied by
:func:`validate_bundle`). For each rule at most :data:`MAX_ROWS_PER_RULE` row
numbers are listed (the first ones); the message gives the total number of offending rows.

Rule names (``Violation.rule``):

==========================  ======================================================================
``missing_file``            a required file (trusts, indicators) is absent
``ambiguous_file``          both ``name.csv`` and ``name.parquet`` exist
``file_unreadable``         empty file, not UTF-8, unparseable CSV, corrupted Parquet
``missing_column``          a column of DESIGN.md section 4 is absent
``extra_column``            a column not in DESIGN.md section 4 is present
``duplicate_column``        a CSV header names a column twice
``no_rows``                 trusts, indicators or spells has a header but no data rows
``required``                empty or missing cell in a column that must be filled
``not_text``                a code/text column is stored with a non-text type (Parquet)
``not_numeric``             a number column holds text that is not a number
``not_finite``              NaN or infinity in a number column
``not_integer``             an integer column (age, comorbidity, quintile) holds a fraction
``not_date``                a date that is not ISO 8601 ``YYYY-MM-DD`` (``2013-7-1`` is not)
``time_in_date``            a date with a time of day (text ``2013-07-01 10:00``, or a Parquet
                            timestamp that is not midnight): dates carry no time
``not_month``               a month that is not ``YYYY-MM``
``not_boolean``             a boolean that is not true/false/1/0
``allowed_values``          a value outside the column's enumeration
``code_shape``              trust_code is not an ODS-style code (:data:`TRUST_CODE_PATTERN`)
``unique_key``              the file's key is duplicated (all rows sharing a key are listed)
``unknown_trust``           trust_code not in trusts
``date_after_quarter``      a date after the run quarter's last day
``unknown_indicator``       indicator_id not in the catalogue
``derived_indicator``       the indicator is computed by the service from another file
``required_for_type``       a column the indicator's type needs is empty
``numerator_range``         proportion: numerator < 0 or numerator > denominator
``denominator_positive``    proportion: denominator <= 0
``expected_positive``       ratio: expected (denominator) <= 0
``observed_count``          ratio: observed (numerator) negative or not a whole number
``events_nonnegative``      rate: events (numerator) < 0
``exposure_positive``       rate: exposure (denominator) <= 0
``events_count``            count: events (numerator) negative or not a whole number
``activity_positive``       count: activity (denominator) <= 0
``se_positive``             score: standard_error <= 0
``band_unknown``            external_band: band not in the indicator's band_map
``rule_count``              rule: count (numerator) negative or not a whole number
``period_order``            period_start after period_end
``period_window``           period outside the quarter / look-back its cadence implies
``monthly_row``             monthly series row that is not one calendar month
``monthly_series``          monthly series without exactly one row for each of the 12 months
``one_row_per_period``      more than one row for a trust and a non-monthly indicator
``spell_window``            spell dates outside the 36 months to the quarter end
``discharge_before_admission``  discharge_date before admission_date
``age_range``               age outside 0-120
``comorbidity_range``       comorbidity negative
``deprivation_range``       deprivation_quintile outside 1-5 (empty allowed)
``death_consistency``       died_in_hospital true but died_30d false
``month_window``            staffing month outside the 12 months to the quarter end
``planned_positive``        planned_hours <= 0
``actual_nonnegative``      actual_hours < 0
==========================  ======================================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from surveillance.errors import ContractError, Violation, with_row_total
from surveillance.periods import Quarter

# ============================================================================================
# Output contracts (DESIGN.md section 6): the column order other tools read us by. One place;
# every writer imports these.

FLAGS_COLUMNS = [
    "trust_code",
    "indicator_id",
    "domain",
    "type",
    "observed",
    "expected",
    "z",
    "z_adjusted",
    "p_value",
    "flag",
    "method",
    "phi",
    "tau2",
]
ALERTS_COLUMNS = [
    "trust_code",
    "diagnosis_group",
    "signal_month",
    "first_signal_month",
    "cusum",
    "threshold",
    "observed",
    "expected",
    "false_alarm_rate",
    "status",
]
MORTALITY_COLUMNS = [
    "trust_code",
    "diagnosis_group",
    "observed",
    "expected",
    "ratio",
    "lower95",
    "upper95",
    "lower998",
    "upper998",
    "banding",
]
BANDS_COLUMNS = [
    "trust_code",
    "trust_name",
    "region",
    "applicable",
    "risks",
    "elevated_risks",
    "score",
    "max_score",
    "proportion_score",
    "band",
    "band_reason",
    *(f"p_band_{b}" for b in range(1, 7)),
    "previous_band",
    "movement",
]
#: contract file -> its required columns, in contract order
OUTPUT_COLUMNS: dict[str, list[str]] = {
    "flags.csv": FLAGS_COLUMNS,
    "alerts.csv": ALERTS_COLUMNS,
    "mortality.csv": MORTALITY_COLUMNS,
    "bands.csv": BANDS_COLUMNS,
}
#: columns added to the output contracts after DESIGN.md section 6 (issue 16): every run writes
#: them right after the DESIGN columns, in this order, and other tools may read them by name.
#: Nothing was renamed or removed; runs published before have none, so readers of a published
#: run require only the DESIGN columns (:data:`OUTPUT_COLUMNS`).
#: ``trust_name``/``indicator_name``: flags.csv readable without a join; ``caution``: an alert
#: on a chart expecting fewer deaths than ``alert_min_expected`` (models/risk/monitoring.yaml);
#: ``infinite_note``: which numbers of the row were infinite (written empty: no CSV holds inf).
ADDED_COLUMNS: dict[str, list[str]] = {
    "flags.csv": ["trust_name", "indicator_name", "infinite_note"],
    "alerts.csv": ["caution"],
    "mortality.csv": ["infinite_note"],
    "bands.csv": [],
}
#: indicators.csv columns in order (input contract, DESIGN.md section 4)
INDICATOR_COLUMNS = [
    "trust_code",
    "indicator_id",
    "period_start",
    "period_end",
    "numerator",
    "denominator",
    "value",
    "standard_error",
    "band",
]

if TYPE_CHECKING:
    from surveillance.bundle import Bundle

MAX_ROWS_PER_RULE = 20

TABLES: tuple[str, ...] = (
    "trusts",
    "indicators",
    "spells",
    "staffing",
    "intelligence",
    "inspections",
)
REQUIRED_TABLES: tuple[str, ...] = ("trusts", "indicators")
OPTIONAL_TABLES: tuple[str, ...] = ("spells", "staffing", "intelligence", "inspections")

#: Column kinds per file (DESIGN.md section 4), in file order. Kinds: code, text, enum, float, int,
#: date, month, bool.
COLUMN_KINDS: dict[str, dict[str, str]] = {
    "trusts": {
        "trust_code": "code",
        "trust_name": "text",
        "region": "text",
        "trust_type": "enum",
        "foundation_trust": "bool",
        "special_measures": "bool",
        "last_inspection_date": "date",
        "last_rating": "enum",
    },
    "indicators": {
        "trust_code": "code",
        "indicator_id": "code",
        "period_start": "date",
        "period_end": "date",
        "numerator": "float",
        "denominator": "float",
        "value": "float",
        "standard_error": "float",
        "band": "text",
    },
    "spells": {
        "spell_id": "code",
        "trust_code": "code",
        "admission_date": "date",
        "discharge_date": "date",
        "diagnosis_group": "code",
        "age": "int",
        "sex": "enum",
        "admission_method": "enum",
        "comorbidity": "int",
        "deprivation_quintile": "int",
        "palliative_care": "bool",
        "died_in_hospital": "bool",
        "died_30d": "bool",
    },
    "staffing": {
        "trust_code": "code",
        "ward_code": "code",
        "month": "month",
        "staff_group": "enum",
        "shift": "enum",
        "planned_hours": "float",
        "actual_hours": "float",
    },
    "intelligence": {
        "trust_code": "code",
        "received_date": "date",
        "source": "enum",
        "category": "text",
        "severity": "enum",
        "validated": "bool",
    },
    "inspections": {
        "trust_code": "code",
        "inspection_date": "date",
        "overall_rating": "enum",
    },
}

#: Columns that may be empty (indicators' value columns are required per indicator type instead).
OPTIONAL_COLUMNS: dict[str, frozenset[str]] = {
    "trusts": frozenset({"last_inspection_date", "last_rating"}),
    "indicators": frozenset({"numerator", "denominator", "value", "standard_error", "band"}),
    "spells": frozenset({"deprivation_quintile"}),
    "staffing": frozenset(),
    "intelligence": frozenset({"category"}),
    "inspections": frozenset(),
}

RATINGS = ("Outstanding", "Good", "Requires improvement", "Inadequate")
ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("trusts", "trust_type"): ("acute", "acute_specialist"),
    ("trusts", "last_rating"): RATINGS,
    ("spells", "sex"): ("M", "F"),
    ("spells", "admission_method"): ("elective", "emergency"),
    ("staffing", "staff_group"): ("registered_nurse", "care_staff"),
    ("staffing", "shift"): ("day", "night"),
    ("intelligence", "source"): (
        "whistleblowing",
        "complaint",
        "qsg_concern",
        "coroner_report",
        "healthwatch",
    ),
    ("intelligence", "severity"): ("death", "serious_injury", "near_miss", "other"),
    ("inspections", "overall_rating"): RATINGS,
}

UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    "trusts": ("trust_code",),
    "indicators": ("trust_code", "indicator_id", "period_start"),
    "spells": ("spell_id",),
    "staffing": ("trust_code", "ward_code", "month", "staff_group", "shift"),
    "inspections": ("trust_code", "inspection_date"),
}

#: The columns each value type needs in indicators.csv (cusum_z rows use their series_type).
TYPE_COLUMNS: dict[str, tuple[str, ...]] = {
    "proportion": ("numerator", "denominator"),
    "ratio": ("numerator", "denominator"),
    "rate": ("numerator", "denominator"),
    "count": ("numerator", "denominator"),
    "score": ("value", "standard_error"),
    "external_band": ("band",),
    "rule": ("numerator",),
}

SPELL_WINDOW_MONTHS = 36
LOOKBACK_MONTHS = 12

_NONFINITE_RE = re.compile(r"^\s*[+-]?(nan|inf|infinity)\s*$", re.IGNORECASE)
_MONTH_RE = r"^\d{4}-(0[1-9]|1[0-2])$"
#: a date as the contract writes it: four-digit year, two-digit month and day (ISO 8601)
_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
#: a date followed by a time of day (``T`` or a space, then at least hours and minutes)
_DATE_TIME_RE = r"^\s*\d{4}-\d{1,2}-\d{1,2}[T ]\d{1,2}:\d{2}"
#: ODS-style organisation code: 3 to 10 capital letters and digits (``RXX``, ``R1H``, ``RXX01``);
#: nothing else may reach file names, page names or published tables as a trust code
TRUST_CODE_PATTERN = r"^[A-Z0-9]{3,10}$"
_TRUE = ("true", "1")
_FALSE = ("false", "0")


# --------------------------------------------------------------------------------------------
# Column parsing (cached per table): numbers, dates, booleans from either typed or text columns
# --------------------------------------------------------------------------------------------


def _is_text_dtype(series: pd.Series) -> bool:
    if isinstance(series.dtype, pd.CategoricalDtype):  # dictionary-encoded codes (Parquet)
        categories = series.dtype.categories
        return pd.api.types.is_object_dtype(categories) or pd.api.types.is_string_dtype(categories)
    return pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)


def _per_category(series: pd.Series, test: Callable[[pd.Series], np.ndarray], na: bool) -> Mask:
    """``test`` evaluated once per category of a categorical and spread to its rows (``na`` for
    missing cells): a 45-million-row code column has a few hundred distinct values."""
    categories = pd.Series(series.dtype.categories).astype("string")
    per = np.append(np.asarray(test(categories), dtype=bool), na)
    return per[series.cat.codes.to_numpy()]  # code -1 (missing) picks the appended ``na``


class _Table:
    """A frame with cached, vectorised parses of its columns."""

    def __init__(self, name: str, file: str, frame: pd.DataFrame):
        self.name = name
        self.file = file
        self.frame = frame
        self._cache: dict[tuple[str, str], Any] = {}

    def release(self) -> None:
        """Drop the frame and its parses once the checks have run.

        Pandera keeps the schema of every validated frame in a module-level registry for as long
        as that frame lives, and the schema's checks close over this table: holding the frame
        here would keep it (and the parses) alive for ever, one bundle per run.
        """
        self.frame = None  # type: ignore[assignment]
        self._cache.clear()

    def has(self, *columns: str) -> bool:
        return all(c in self.frame.columns for c in columns)

    def cached(self, key: tuple[str, str], fn: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def text(self, column: str) -> pd.Series:
        """The column as pandas string dtype (missing stays <NA>)."""

        def make() -> pd.Series:
            series = self.frame[column]
            if isinstance(series.dtype, pd.StringDtype):
                return series
            if isinstance(series.dtype, pd.CategoricalDtype) and _is_text_dtype(series):
                return series  # isin/equality work on the categories (see also empty())
            return series.astype("string")  # object text, or a code stored as a number

        return self.cached((column, "text"), make)

    def empty(self, column: str) -> np.ndarray:
        """Missing, empty or whitespace-only cells."""

        def make() -> np.ndarray:
            series = self.frame[column]
            missing = series.isna().to_numpy(dtype=bool)
            if isinstance(series.dtype, pd.CategoricalDtype) and _is_text_dtype(series):
                blank = _per_category(
                    series, lambda c: (c.str.strip() == "").fillna(True).to_numpy(bool), True
                )
                missing = missing | blank
            elif _is_text_dtype(series):
                blank = (self.text(column).str.strip() == "").fillna(True).to_numpy(dtype=bool)
                missing = missing | blank
            return missing

        return self.cached((column, "empty"), make)

    def number(self, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values as float with NaN where unusable, not_numeric mask, not_finite mask)."""

        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            series = self.frame[column]
            empty = self.empty(column)
            if pd.api.types.is_bool_dtype(series.dtype):
                values = np.full(len(series), np.nan)
                return values, ~empty, np.zeros(len(series), dtype=bool)
            if _is_text_dtype(series):
                text = self.text(column)
                values = pd.to_numeric(text.where(~empty, None), errors="coerce")
                values = values.to_numpy(dtype=float, na_value=np.nan)
                nonfinite_text = (
                    text.str.match(_NONFINITE_RE.pattern, case=False)
                    .fillna(False)
                    .to_numpy(dtype=bool)
                )
                not_numeric = np.isnan(values) & ~empty & ~nonfinite_text
                not_finite = nonfinite_text | (np.isinf(values) & ~empty)
            else:
                values = series.to_numpy(dtype=float, na_value=np.nan)
                not_numeric = np.zeros(len(series), dtype=bool)
                not_finite = np.isinf(values)
            values = np.where(np.isfinite(values), values, np.nan)
            return values, not_numeric, not_finite

        return self.cached((column, "number"), make)

    def date(self, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(datetime64[ns] values with NaT where unusable, not_date mask, time_in_date mask).

        Text must be ``YYYY-MM-DD`` exactly (``2013-7-1`` is not_date); a date with a time of day
        (text, or a timestamp that is not midnight) is time_in_date and, like a not_date cell,
        NaT for every other rule (so it is not also reported as outside a window).
        """

        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            series = self.frame[column]
            empty = self.empty(column)
            none = np.zeros(len(series), dtype=bool)
            if pd.api.types.is_datetime64_any_dtype(series.dtype):
                if isinstance(series.dtype, pd.DatetimeTZDtype):
                    series = series.dt.tz_localize(None)
                values = series.to_numpy(dtype="datetime64[ns]")
                timed = ~np.isnat(values) & (values != values.astype("datetime64[D]"))
                if timed.any():
                    values = np.where(timed, np.datetime64("NaT"), values)
                return values, none, timed
            if _is_text_dtype(series):
                text = self.text(column)
                iso = text.str.match(_DATE_RE).fillna(False).to_numpy(dtype=bool)
                parsed = pd.to_datetime(
                    text.where(iso & ~empty, None).astype(object),
                    format="%Y-%m-%d",
                    errors="coerce",
                )
                values = parsed.to_numpy(dtype="datetime64[ns]")
                timed = text.str.match(_DATE_TIME_RE).fillna(False).to_numpy(dtype=bool) & ~empty
                return values, np.isnat(values) & ~empty & ~timed, timed
            return np.full(len(series), np.datetime64("NaT"), dtype="datetime64[ns]"), ~empty, none

        return self.cached((column, "date"), make)

    def boolean(self, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(is_true, is_false, not_boolean) masks."""

        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            series = self.frame[column]
            empty = self.empty(column)
            if pd.api.types.is_bool_dtype(series.dtype):
                values = series.to_numpy(dtype=bool, na_value=False)
                valid = ~series.isna().to_numpy(dtype=bool)
                return values & valid, ~values & valid, np.zeros(len(series), dtype=bool)
            text = self.text(column).str.strip().str.lower()
            is_true = text.isin(_TRUE).fillna(False).to_numpy(dtype=bool)
            is_false = text.isin(_FALSE).fillna(False).to_numpy(dtype=bool)
            return is_true, is_false, ~(is_true | is_false | empty)

        return self.cached((column, "bool"), make)


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------

Mask = np.ndarray
RuleResult = Mask | tuple[Mask, str]


@dataclass(frozen=True)
class Rule:
    """One contract rule: where it applies and a vectorised test returning the offending rows."""

    column: str
    rule: str
    message: str
    bad: Callable[[_Table], RuleResult]
    needs: tuple[str, ...] = field(default_factory=tuple)


def _column_rules(table: str, column: str, kind: str) -> list[Rule]:
    """Presence, type and enumeration rules for one column."""
    rules: list[Rule] = []
    optional = column in OPTIONAL_COLUMNS[table]
    if not optional:
        rules.append(Rule(column, "required", "value is required", lambda t: t.empty(column)))
    if kind in ("code", "text", "enum", "month"):
        rules.append(
            Rule(
                column,
                "not_text",
                "must be stored as text (codes are strings)",
                lambda t: (
                    np.full(len(t.frame), not _is_text_dtype(t.frame[column])) & ~t.empty(column)
                ),
            )
        )
    if kind in ("float", "int"):
        rules.append(Rule(column, "not_numeric", "must be a number", lambda t: t.number(column)[1]))
        rules.append(
            Rule(
                column,
                "not_finite",
                "must be finite (no NaN or infinity)",
                lambda t: t.number(column)[2],
            )
        )
    if kind == "int":
        rules.append(
            Rule(
                column,
                "not_integer",
                "must be a whole number",
                lambda t: _fraction(t.number(column)[0]),
            )
        )
    if kind == "date":
        rules.append(
            Rule(
                column,
                "not_date",
                "must be an ISO 8601 date YYYY-MM-DD (four-digit year, two-digit month and day)",
                lambda t: t.date(column)[1],
            )
        )
        rules.append(
            Rule(
                column,
                "time_in_date",
                "times are not allowed: a date is YYYY-MM-DD, without a time of day",
                lambda t: t.date(column)[2],
            )
        )
    if kind == "bool":
        rules.append(
            Rule(column, "not_boolean", "must be true or false", lambda t: t.boolean(column)[2])
        )
    if kind == "month":
        rules.append(
            Rule(
                column,
                "not_month",
                "must be a month YYYY-MM",
                lambda t: (
                    ~t.text(column).str.match(_MONTH_RE).fillna(True).to_numpy(dtype=bool)
                    & ~t.empty(column)
                ),
            )
        )
    if kind == "enum":
        allowed = ENUMS[(table, column)]
        rules.append(
            Rule(
                column,
                "allowed_values",
                "must be one of " + ", ".join(repr(a) for a in allowed),
                lambda t: (
                    ~t.text(column).isin(allowed).fillna(False).to_numpy(dtype=bool)
                    & ~t.empty(column)
                ),
            )
        )
    return rules


def _fraction(values: np.ndarray) -> Mask:
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values != np.round(values))


def _duplicated(t: _Table, columns: tuple[str, ...]) -> Mask:
    """Rows whose key occurs more than once (every occurrence is marked)."""
    if len(columns) == 1:
        return _duplicated_values(t.frame[columns[0]])
    frame = t.frame[list(columns)]
    return frame.duplicated(keep=False).to_numpy(dtype=bool)


def _duplicated_values(series: pd.Series) -> Mask:
    """Every row whose value occurs more than once, by an Arrow sort and a neighbour comparison.

    Sorting is faster and lighter than hashing tens of millions of distinct string ids. Missing
    values are not compared (the ``required`` rule reports them).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.array(series, from_pandas=True)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    n = len(values)
    mask = np.zeros(n, dtype=bool)
    if n < 2:
        return mask
    order = pc.sort_indices(values)
    ordered = values.take(order)
    same = pc.equal(ordered.slice(1), ordered.slice(0, n - 1))
    same = same.to_numpy(zero_copy_only=False)
    same = np.asarray(np.where(pd.isna(same), False, same), dtype=bool)
    if not same.any():
        return mask
    in_order = np.zeros(n, dtype=bool)
    in_order[1:] |= same
    in_order[:-1] |= same
    mask[order.to_numpy()] = in_order
    return mask


def _unique_rule(table: str) -> Rule:
    key = UNIQUE_KEYS[table]
    return Rule(
        key[0],
        "unique_key",
        f"duplicate key ({' + '.join(key)}): each key may appear once",
        lambda t: _duplicated(t, key),
        needs=key,
    )


def _known_trust_rule(known: pd.Index | None) -> Rule:
    def bad(t: _Table) -> Mask:
        if known is None:
            return np.zeros(len(t.frame), dtype=bool)
        return ~t.text("trust_code").isin(known).fillna(False).to_numpy(dtype=bool) & ~t.empty(
            "trust_code"
        )

    return Rule("trust_code", "unknown_trust", "trust_code is not in trusts", bad)


def _not_after(column: str, quarter: Quarter) -> Rule:
    end = np.datetime64(quarter.end.date(), "ns")
    return Rule(
        column,
        "date_after_quarter",
        f"date is after the end of {quarter} ({quarter.end.date()})",
        lambda t: t.date(column)[0] > end,
    )


def _ns(ts: pd.Timestamp) -> np.datetime64:
    return np.datetime64(ts.normalize().to_datetime64(), "ns")


# ---- trusts ---------------------------------------------------------------------------------


def _trust_code_shape(t: _Table) -> RuleResult:
    text = t.text("trust_code")
    bad = ~text.str.match(TRUST_CODE_PATTERN).fillna(False).to_numpy(dtype=bool) & ~t.empty(
        "trust_code"
    )
    message = (
        "trust_code must be an ODS-style code: 3 to 10 capital letters and digits (e.g. RXX, "
        "R1H); no spaces, punctuation, path separators, markup or invisible characters"
    )
    if bad.any():
        first = str(text[bad].iloc[0])
        shown = ascii(first[:24]) + (f"... ({len(first):,} characters)" if len(first) > 24 else "")
        message += f"; e.g. {shown}"
    return bad, message


def _trusts_rules(quarter: Quarter) -> list[Rule]:
    return [
        Rule(
            "trust_code",
            "code_shape",
            "trust_code must be an ODS-style code (3 to 10 capital letters and digits)",
            _trust_code_shape,
        ),
        _unique_rule("trusts"),
        _not_after("last_inspection_date", quarter),
    ]


# ---- indicators -----------------------------------------------------------------------------


def _value_types(t: _Table, catalogue: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: catalogue type, value type (series_type for cusum_z), cadence ('' when unknown)."""

    def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = t.text("indicator_id").astype(object)
        kind = ids.map(catalogue["type"]).fillna("").to_numpy(dtype=object)
        series = ids.map(catalogue["series_type"]).to_numpy(dtype=object)
        cadence = ids.map(catalogue["cadence"]).fillna("").to_numpy(dtype=object)
        value_type = np.where(kind == "cusum_z", series, kind)
        value_type = np.where(pd.isna(value_type), "", value_type).astype(object)
        return kind, value_type, cadence

    return t.cached(("indicator_id", "types"), make)


def _indicator_rules(quarter: Quarter, catalogue: pd.DataFrame) -> list[Rule]:
    rules: list[Rule] = [_unique_rule("indicators")]
    known_ids = catalogue.index

    def unknown_indicator(t: _Table) -> Mask:
        return ~t.text("indicator_id").isin(known_ids).fillna(False).to_numpy(
            dtype=bool
        ) & ~t.empty("indicator_id")

    rules.append(
        Rule(
            "indicator_id",
            "unknown_indicator",
            "indicator_id is not in the catalogue",
            unknown_indicator,
        )
    )

    derived = catalogue.index[catalogue["derived_from"].fillna("") != ""]
    derived_from = catalogue["derived_from"]

    def derived_indicator(t: _Table) -> RuleResult:
        ids = t.text("indicator_id")
        mask = ids.isin(derived).fillna(False).to_numpy(dtype=bool)
        sources = sorted({str(derived_from[i]) for i in pd.unique(ids[mask].astype(object))})
        files = " / ".join(f"{s} file" for s in sources) or "another file"
        return mask, (
            f"indicator is computed by the service from the {files}; remove it from "
            "indicators.csv (it is not read from there)"
        )

    rules.append(
        Rule(
            "indicator_id",
            "derived_indicator",
            "indicator is computed by the service",
            derived_indicator,
        )
    )

    # -- per-type requirements ----------------------------------------------------------------
    for column in ("numerator", "denominator", "value", "standard_error", "band"):
        types_needing = tuple(k for k, cols in TYPE_COLUMNS.items() if column in cols)

        def need(
            t: _Table, column: str = column, types_needing: tuple = types_needing
        ) -> RuleResult:
            _, value_type, _ = _value_types(t, catalogue)
            mask = np.isin(value_type, types_needing) & t.empty(column)
            found = sorted(set(value_type[mask]))
            return (
                mask,
                f"{column} is required for {', '.join(found) or '/'.join(types_needing)} indicators",
            )

        rules.append(Rule(column, "required_for_type", f"{column} is required for this type", need))

    def typed(types: tuple[str, ...], test: Callable[[_Table], Mask]) -> Callable[[_Table], Mask]:
        def bad(t: _Table) -> Mask:
            _, value_type, _ = _value_types(t, catalogue)
            return np.isin(value_type, types) & test(t)

        return bad

    def num(t: _Table) -> np.ndarray:
        return t.number("numerator")[0]

    def den(t: _Table) -> np.ndarray:
        return t.number("denominator")[0]

    rules += [
        Rule(
            "denominator",
            "denominator_positive",
            "proportion denominator must be > 0",
            typed(("proportion",), lambda t: den(t) <= 0),
        ),
        Rule(
            "numerator",
            "numerator_range",
            "proportion numerator must satisfy 0 <= numerator <= denominator",
            typed(("proportion",), lambda t: (num(t) < 0) | ((num(t) > den(t)) & (den(t) > 0))),
        ),
        Rule(
            "denominator",
            "expected_positive",
            "ratio expected count (denominator) must be > 0",
            typed(("ratio",), lambda t: den(t) <= 0),
        ),
        Rule(
            "numerator",
            "observed_count",
            "ratio observed count (numerator) must be a whole number >= 0",
            typed(("ratio",), lambda t: (num(t) < 0) | _fraction(num(t))),
        ),
        Rule(
            "numerator",
            "events_nonnegative",
            "rate events (numerator) must be >= 0",
            typed(("rate",), lambda t: num(t) < 0),
        ),
        Rule(
            "denominator",
            "exposure_positive",
            "rate exposure (denominator) must be > 0",
            typed(("rate",), lambda t: den(t) <= 0),
        ),
        Rule(
            "numerator",
            "events_count",
            "count events (numerator) must be a whole number >= 0",
            typed(("count",), lambda t: (num(t) < 0) | _fraction(num(t))),
        ),
        Rule(
            "denominator",
            "activity_positive",
            "count activity (denominator) must be > 0",
            typed(("count",), lambda t: den(t) <= 0),
        ),
        Rule(
            "standard_error",
            "se_positive",
            "score standard_error must be > 0",
            typed(("score",), lambda t: t.number("standard_error")[0] <= 0),
        ),
        Rule(
            "numerator",
            "rule_count",
            "rule count (numerator) must be a whole number >= 0",
            typed(("rule",), lambda t: (num(t) < 0) | _fraction(num(t))),
        ),
    ]

    band_maps = catalogue["band_map"]

    def band_unknown(t: _Table) -> RuleResult:
        _, value_type, _ = _value_types(t, catalogue)
        rows = (value_type == "external_band") & ~t.empty("band")
        mask = np.zeros(len(t.frame), dtype=bool)
        if not rows.any():
            return mask
        ids = t.text("indicator_id").to_numpy(dtype=object)
        bands = t.text("band").str.strip().to_numpy(dtype=object)
        examples: list[str] = []
        for ident in pd.unique(ids[rows]):
            allowed = list(band_maps[ident].keys())
            sel = rows & (ids == ident)
            bad = sel & ~np.isin(bands, allowed)
            if bad.any():
                examples.append(f"{ident}: {', '.join(repr(a) for a in allowed)}")
            mask |= bad
        return mask, "band is not in the indicator's band_map (" + "; ".join(examples) + ")"

    rules.append(
        Rule("band", "band_unknown", "band is not in the indicator's band_map", band_unknown)
    )

    # -- periods ------------------------------------------------------------------------------
    q_start, q_end = _ns(quarter.start), _ns(quarter.end)
    look_start = _ns(quarter.lookback_start(LOOKBACK_MONTHS))

    def period_order(t: _Table) -> Mask:
        return t.date("period_start")[0] > t.date("period_end")[0]

    rules.append(
        Rule(
            "period_start",
            "period_order",
            "period_start must not be after period_end",
            period_order,
            needs=("period_end",),
        )
    )

    def period_window(t: _Table) -> Mask:
        _, _, cadence = _value_types(t, catalogue)
        start, end = t.date("period_start")[0], t.date("period_end")[0]
        quarterly = cadence == "quarterly"
        longer = np.isin(cadence, ("annual", "rolling_12m", "monthly"))
        return (quarterly & ((start < q_start) | (end > q_end))) | (
            longer & ((start < look_start) | (end > q_end))
        )

    rules.append(
        Rule(
            "period_start",
            "period_window",
            f"period must lie within {quarter} ({quarter.start.date()} to {quarter.end.date()}) for "
            f"quarterly indicators, or within the 12 months {look_start.astype('datetime64[D]')} to "
            f"{quarter.end.date()} for annual, rolling_12m and monthly indicators",
            period_window,
            needs=("period_end",),
        )
    )

    def monthly_row(t: _Table) -> Mask:
        _, _, cadence = _value_types(t, catalogue)
        start = pd.DatetimeIndex(t.date("period_start")[0])
        end = pd.DatetimeIndex(t.date("period_end")[0])
        ok = (start.day == 1) & (end == start + pd.offsets.MonthEnd(0))
        valid = ~(start.isna() | end.isna())
        return (cadence == "monthly") & valid & ~np.asarray(ok)

    rules.append(
        Rule(
            "period_start",
            "monthly_row",
            "monthly series rows must cover one calendar month (first to last day)",
            monthly_row,
            needs=("period_end",),
        )
    )

    months = quarter.lookback_months(LOOKBACK_MONTHS)

    def monthly_series(t: _Table) -> RuleResult:
        _, _, cadence = _value_types(t, catalogue)
        rows = cadence == "monthly"
        mask = np.zeros(len(t.frame), dtype=bool)
        if not rows.any():
            return mask
        start = pd.DatetimeIndex(t.date("period_start")[0])
        frame = pd.DataFrame(
            {
                "trust_code": t.text("trust_code").astype(object),
                "indicator_id": t.text("indicator_id").astype(object),
                "month": start.strftime("%Y-%m"),
            }
        )[rows]
        present = frame[frame["month"].isin(months)].drop_duplicates()
        counts = present.groupby(["trust_code", "indicator_id"]).size()
        series = frame[["trust_code", "indicator_id"]].drop_duplicates()
        series = series.merge(counts.rename("n").reset_index(), how="left").fillna({"n": 0})
        incomplete = series[series["n"] < len(months)]
        if incomplete.empty:
            return mask
        keys = pd.MultiIndex.from_frame(incomplete[["trust_code", "indicator_id"]])
        row_keys = pd.MultiIndex.from_frame(frame[["trust_code", "indicator_id"]])
        bad_rows = frame.index[row_keys.isin(keys)]
        mask[bad_rows] = True
        first = incomplete.iloc[0]
        have = set(
            present[
                (present.trust_code == first.trust_code)
                & (present.indicator_id == first.indicator_id)
            ]["month"]
        )
        lacking = [m for m in months if m not in have]
        return mask, (
            f"monthly series must have one row for each month {months[0]} to {months[-1]}; "
            f"{len(incomplete)} trust x indicator series incomplete, e.g. "
            f"{first.trust_code} {first.indicator_id} lacks {', '.join(lacking)}"
        )

    rules.append(
        Rule(
            "indicator_id",
            "monthly_series",
            "monthly series must have one row for each of the 12 months",
            monthly_series,
            needs=("trust_code", "period_start"),
        )
    )

    def one_row(t: _Table) -> Mask:
        _, _, cadence = _value_types(t, catalogue)
        rows = np.isin(cadence, ("quarterly", "annual", "rolling_12m"))
        frame = pd.DataFrame(
            {
                "trust_code": t.text("trust_code").astype(object),
                "indicator_id": t.text("indicator_id").astype(object),
            }
        )
        dup = frame.duplicated(keep=False).to_numpy(dtype=bool)
        exact = _duplicated(t, UNIQUE_KEYS["indicators"])
        return rows & dup & ~exact

    rules.append(
        Rule(
            "indicator_id",
            "one_row_per_period",
            "only one row per trust is allowed for a quarterly, annual or rolling_12m indicator",
            one_row,
            needs=("trust_code", "period_start"),
        )
    )
    return rules


# ---- spells, staffing, intelligence, inspections -------------------------------------------


def _spells_rules(quarter: Quarter) -> list[Rule]:
    window_start = _ns(quarter.lookback_start(SPELL_WINDOW_MONTHS))
    q_end = _ns(quarter.end)

    def window(column: str) -> Callable[[_Table], Mask]:
        return lambda t: (t.date(column)[0] < window_start) | (t.date(column)[0] > q_end)

    text = (
        f"date must lie within the {SPELL_WINDOW_MONTHS} months "
        f"{window_start.astype('datetime64[D]')} to {quarter.end.date()}"
    )

    def death_consistency(t: _Table) -> Mask:
        return t.boolean("died_in_hospital")[0] & t.boolean("died_30d")[1]

    return [
        _unique_rule("spells"),
        Rule("admission_date", "spell_window", text, window("admission_date")),
        Rule("discharge_date", "spell_window", text, window("discharge_date")),
        Rule(
            "discharge_date",
            "discharge_before_admission",
            "discharge_date must not be before admission_date",
            lambda t: t.date("discharge_date")[0] < t.date("admission_date")[0],
            needs=("admission_date",),
        ),
        Rule(
            "age",
            "age_range",
            "age must be between 0 and 120",
            lambda t: (t.number("age")[0] < 0) | (t.number("age")[0] > 120),
        ),
        Rule(
            "comorbidity",
            "comorbidity_range",
            "comorbidity index must be >= 0",
            lambda t: t.number("comorbidity")[0] < 0,
        ),
        Rule(
            "deprivation_quintile",
            "deprivation_range",
            "deprivation_quintile must be 1 to 5 (or empty)",
            lambda t: (
                (t.number("deprivation_quintile")[0] < 1)
                | (t.number("deprivation_quintile")[0] > 5)
            ),
        ),
        Rule(
            "died_30d",
            "death_consistency",
            "died_in_hospital is true, so died_30d must be true",
            death_consistency,
            needs=("died_in_hospital",),
        ),
    ]


def _staffing_rules(quarter: Quarter) -> list[Rule]:
    months = quarter.lookback_months(LOOKBACK_MONTHS)

    def month_window(t: _Table) -> Mask:
        text = t.text("month")
        valid = text.str.match(_MONTH_RE).fillna(False).to_numpy(dtype=bool)
        return valid & ~text.isin(months).fillna(False).to_numpy(dtype=bool)

    return [
        _unique_rule("staffing"),
        Rule(
            "month",
            "month_window",
            f"month must be one of the 12 months {months[0]} to {months[-1]}",
            month_window,
        ),
        Rule(
            "planned_hours",
            "planned_positive",
            "planned_hours must be > 0",
            lambda t: t.number("planned_hours")[0] <= 0,
        ),
        Rule(
            "actual_hours",
            "actual_nonnegative",
            "actual_hours must be >= 0",
            lambda t: t.number("actual_hours")[0] < 0,
        ),
    ]


def _intelligence_rules(quarter: Quarter) -> list[Rule]:
    return [_not_after("received_date", quarter)]


def _inspections_rules(quarter: Quarter) -> list[Rule]:
    return [_unique_rule("inspections"), _not_after("inspection_date", quarter)]


# --------------------------------------------------------------------------------------------
# Running the rules through pandera
# --------------------------------------------------------------------------------------------


def _rules_for(
    name: str, quarter: Quarter, catalogue: pd.DataFrame, known_trusts: pd.Index | None
) -> list[Rule]:
    rules: list[Rule] = []
    for column, kind in COLUMN_KINDS[name].items():
        rules += _column_rules(name, column, kind)
    if name != "trusts":
        rules.append(_known_trust_rule(known_trusts))
    specific = {
        "trusts": lambda: _trusts_rules(quarter),
        "indicators": lambda: _indicator_rules(quarter, catalogue),
        "spells": lambda: _spells_rules(quarter),
        "staffing": lambda: _staffing_rules(quarter),
        "intelligence": lambda: _intelligence_rules(quarter),
        "inspections": lambda: _inspections_rules(quarter),
    }[name]
    return rules + specific()


def _schema(
    table: _Table,
    rules: list[Rule],
    outcomes: dict[str, tuple[Rule, int, str]],
    max_rows: int | None = MAX_ROWS_PER_RULE,
):
    """A pandera schema whose checks run ``rules`` on ``table`` and record totals in ``outcomes``."""
    import pandera.pandas as pa

    checks: dict[str, list] = {c: [] for c in COLUMN_KINDS[table.name]}
    for number, rule in enumerate(rules):
        key = f"{rule.rule}#{number}"

        def run(series: pd.Series, rule: Rule = rule, key: str = key) -> pd.Series:
            if not table.has(rule.column, *rule.needs):
                return pd.Series(True, index=series.index)
            result = rule.bad(table)
            mask, message = result if isinstance(result, tuple) else (result, rule.message)
            mask = np.asarray(mask, dtype=bool)
            outcomes[key] = (rule, int(mask.sum()), message)
            return pd.Series(~mask, index=series.index)

        checks[rule.column].append(
            pa.Check(run, name=key, ignore_na=False, n_failure_cases=max_rows)
        )
    columns = {
        c: pa.Column(checks=checks[c], nullable=True, required=True)
        for c in COLUMN_KINDS[table.name]
    }
    return pa.DataFrameSchema(columns, strict=True, name=table.file)


def _pandera_view(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with categorical columns as their integer codes, columns not copied.

    The checks read the real columns through :class:`_Table`; pandera only reports the index of
    failing rows, and cannot list failure cases of a categorical column holding missing values.
    """
    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    if not categorical:
        return frame
    columns = {c: frame[c].cat.codes if c in categorical else frame[c] for c in frame.columns}
    return pd.DataFrame(columns, index=frame.index, copy=False)


#: tables that may not be a header alone: the two required ones, and spells (an empty spells file
#: would give every mortality indicator as missing data rather than say the extract is empty)
NONEMPTY_TABLES: tuple[str, ...] = (*REQUIRED_TABLES, "spells")


def no_rows(name: str, file: str) -> Violation:
    """The ``no_rows`` violation of a table with a header and no data rows."""
    message = "file has no data rows"
    if name == "spells":
        message += " (remove the file to run without the mortality indicators)"
    return Violation(file=file, rule="no_rows", message=message)


def validate_table(
    name: str,
    file: str,
    frame: pd.DataFrame,
    quarter: Quarter,
    catalogue: pd.DataFrame,
    known_trusts: pd.Index | None,
    max_rows: int | None = MAX_ROWS_PER_RULE,
) -> list[Violation]:
    """All violations of one file's contract (see module docstring for the rule names).

    ``max_rows`` caps the row numbers listed per rule (``None``: every offending row, as
    :mod:`surveillance.quarantine` needs).
    """
    import pandera.pandas as pa

    # row numbers come from the index: anything but 0..n-1 (a slice, a Dask partition) is reset
    plain = isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
    frame = frame if plain and frame.index.step == 1 else frame.reset_index(drop=True)
    table = _Table(name, file, frame)
    rules = _rules_for(name, quarter, catalogue, known_trusts)
    outcomes: dict[str, tuple[Rule, int, str]] = {}
    schema = _schema(table, rules, outcomes, max_rows)
    violations: list[Violation] = []
    if name in NONEMPTY_TABLES and len(frame) == 0:
        violations.append(no_rows(name, file))
    try:
        schema.validate(_pandera_view(frame), lazy=True, inplace=True)
        return violations
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    finally:
        table.release()
    order = {f"{r.rule}#{i}": i for i, r in enumerate(rules)}
    structural = cases[cases["check"].isin(["column_in_dataframe", "column_in_schema"])]
    expected = list(COLUMN_KINDS[name])
    for _, case in structural.iterrows():
        column = str(case["failure_case"])
        if case["check"] == "column_in_dataframe":
            violations.append(
                Violation(
                    file=file,
                    rule="missing_column",
                    column=column,
                    message=f"column is missing; {file} needs {', '.join(expected)}",
                )
            )
        else:
            violations.append(
                Violation(
                    file=file,
                    rule="extra_column",
                    column=column,
                    message=f"unexpected column; {file} has exactly {', '.join(expected)}",
                )
            )
    checked = cases[cases["check"].isin(order.keys())]
    grouped = {k: g for k, g in checked.groupby("check", sort=False)}
    missing_columns = [c for c in COLUMN_KINDS[name] if c not in frame.columns]
    for key in sorted(grouped, key=order.__getitem__):
        if key not in outcomes:  # the rule raised: it reads a column the file lacks
            if missing_columns:
                continue  # the missing_column violation already stops the run
            rule = rules[order[key]]
            violations.append(
                Violation(
                    file=file,
                    rule="check_error",
                    column=rule.column,
                    message=f"rule {rule.rule} could not be evaluated on this file",
                )
            )
            continue
        rule, total, message = outcomes[key]
        index = pd.to_numeric(grouped[key]["index"], errors="coerce").dropna().astype(int)
        rows = tuple(sorted(int(i) + 1 for i in index.unique())[:max_rows])
        violations.append(
            Violation(
                file=file,
                rule=rule.rule,
                column=rule.column,
                rows=rows,
                message=with_row_total(message, total, len(rows)),
            )
        )
    unexpected = cases[
        ~cases["check"].isin([*order.keys(), "column_in_dataframe", "column_in_schema"])
    ]
    for _, case in unexpected.iterrows():  # a check that raised, or pandera's own checks
        violations.append(
            Violation(
                file=file,
                rule="check_error",
                column=None if pd.isna(case["column"]) else str(case["column"]),
                message=f"{case['check']}: {case['failure_case']}",
            )
        )
    return violations


def validate_bundle(
    bundle: Bundle,
    quarter: Quarter | str,
    catalogue: pd.DataFrame,
    max_rows: int | None = MAX_ROWS_PER_RULE,
    chunked_spells: Callable[[pd.Index | None], list[Violation]] | None = None,
) -> list[Violation]:
    """Every contract violation of ``bundle`` for the run ``quarter``; empty when the bundle is valid.

    ``chunked_spells(known_trusts)``: the spells check when the spells were left on disk
    (:func:`surveillance.spell_engine.validate_spells`), in their place in the file order.

    Files are checked in DESIGN.md order; within a file, rules follow the column order. Row numbers
    are 1-based data rows (line = row + 1 in a CSV file with its header); at most ``max_rows`` are
    listed per rule (``None``: all).
    """
    quarter = quarter if isinstance(quarter, Quarter) else Quarter.parse(str(quarter))
    known = known_trusts(bundle)
    violations: list[Violation] = []
    for name in TABLES:
        frame = bundle.table(name)
        lazy = getattr(bundle, "spells_source", None) is not None
        if name == "spells" and frame is None and lazy and chunked_spells is not None:
            if bundle.spells_source.n_rows == 0:
                violations.append(no_rows(name, bundle.file_name(name)))
            violations += chunked_spells(known)
            continue
        if frame is None:
            continue
        found = validate_table(
            name, bundle.file_name(name), frame, quarter, catalogue, known, max_rows
        )
        numbers = getattr(bundle, "row_numbers", {}).get(name)
        violations += found if numbers is None else [file_rows(v, numbers) for v in found]
    return violations


def file_rows(violation: Violation, numbers: np.ndarray) -> Violation:
    """``violation`` with its rows (positions + 1 in the frame checked) turned into the file's
    data row numbers ``numbers`` (:attr:`surveillance.bundle.Bundle.row_numbers`); rows past
    ``numbers`` (indicator rows assembled from source feeds) keep counting on from the last."""
    from dataclasses import replace

    if not violation.rows:
        return violation
    last = int(numbers[-1]) if len(numbers) else 0
    rows = tuple(
        int(numbers[r - 1]) if r <= len(numbers) else last + r - len(numbers)
        for r in violation.rows
    )
    return replace(violation, rows=rows)


def known_trusts(bundle: Bundle) -> pd.Index | None:
    """The trust codes of ``trusts`` (what ``unknown_trust`` checks against), if readable."""
    trusts = bundle.trusts
    if trusts is not None and "trust_code" in trusts.columns:
        return pd.Index(trusts["trust_code"].dropna().astype(str).unique())
    return None


def check_bundle(bundle: Bundle, quarter: Quarter | str, catalogue: pd.DataFrame) -> Bundle:
    """Validate ``bundle`` and return it; raise :class:`ContractError` listing every violation."""
    violations = validate_bundle(bundle, quarter, catalogue)
    if violations:
        raise ContractError(violations)
    return bundle


def rule_names() -> list[str]:
    """The rule names documented in this module's docstring (for reports and tests)."""
    return re.findall(r"^``(\w+)``", __doc__ or "", flags=re.MULTILINE)


def iter_rules(quarter: Quarter | str, catalogue: pd.DataFrame) -> Iterable[tuple[str, Rule]]:
    """Every (file, rule) the contracts run, for documentation and tests."""
    quarter = quarter if isinstance(quarter, Quarter) else Quarter.parse(str(quarter))
    for name in TABLES:
        for rule in _rules_for(name, quarter, catalogue, pd.Index([])):
            yield name, rule
