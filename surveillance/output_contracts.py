"""Output contracts (DESIGN.md section 6): one pandera schema per published table.

``flags.csv``, ``alerts.csv``, ``mortality.csv`` and ``bands.csv`` are read by other tools by
their column names, so a run that would publish a malformed table must stop before publishing.
:func:`check_outputs` validates the four in-memory tables (the frames handed to the CSV writer)
and raises :class:`OutputContractError` listing every broken rule. Given the run's ``period``
(its quarter, or the monthly run's month), the alerts rules that need it are checked too: every
alert in the 12-month monitored window, ``status`` ``new`` exactly when the chart's first signal
falls in the period.

Each table has a pandera ``DataFrameSchema`` (:func:`output_schema`): its contract columns are
required, extra columns are allowed after them, and every rule below is a named, vectorised check
run in lazy mode, so that *every* violation is collected. Types are checked row by row rather than
by pandera dtypes: an empty table (no spells: no mortality, no alerts) has ``object`` columns,
and a column of Python numbers in an ``object`` column is still numbers.

Row numbers are **0-based positions** in the frame checked (``frame.iloc[row]``), not CSV lines
and not index labels. The CSV writer sorts rows by the table key; the pipeline's frames normally
are in that order already, and then position p is line p + 2 of the CSV (after the header). At
most :data:`MAX_ROWS_PER_RULE` rows are listed per rule; the message gives the total.

Values (DESIGN.md section 6, METHODS.md sections 4-6, and what ``assess``, ``banding`` and
``mortality`` produce): codes and labels are text, numbers numeric. Never empty: codes, labels,
the counts of bands, every number of alerts, observed and expected of mortality. May be empty:
the statistics of flags (``not_applicable``, and types without them, e.g. ``rule``), ``method``,
ratio and limits of a mortality cell with expected 0, ``proportion_score`` with no applicable
indicator, ``p_band_*`` (override bands, no bootstrap), ``previous_band`` (no previous quarter).
``z`` and ``z_adjusted`` of flags and the upper funnel limits of mortality may be infinite (zero
events on a log scale without zero correction; ``exp`` of the limits of a cell with E near 0); no
other number may.

The data dictionary (``data_dictionary.csv``, :func:`data_dictionary`) is built from
:data:`PUBLISHED_COLUMNS`, the one description of every column of every published CSV; a
published column without one is refused (rule ``undocumented_column``). The columns
:data:`surveillance.contracts.ADDED_COLUMNS` were added to the contract after DESIGN.md section 6
(names, the alert caution, the note on infinite numbers); they follow the DESIGN columns and are
checked when present. No published CSV holds ``inf`` (:func:`blank_infinities`).

Rule names (``Violation.rule``):

===========================  =====================================================================
``missing_file``             one of the four tables was not produced
``duplicate_column``         a column name appears twice
``missing_column``           a DESIGN.md section 6 column is absent
``column_order``             contract columns not first and in contract order (extras after them)
``not_text``                 a code or text column holds a value that is not text
``not_numeric``              a number column holds a value that is not a number
``required``                 empty or missing value in a column that must be filled
``not_finite``               infinity in a number column that must be finite
``not_integer``              a count holds a fraction
``nonnegative``              a count, statistic or limit below 0
``positive``                 expected (where defined) or a threshold <= 0
``probability_range``        a probability or proportion outside [0, 1] (false alarm rate (0, 1))
``allowed_values``           a value outside the column's enumeration
``not_month``                signal_month or first_signal_month that is not ``YYYY-MM``
``unique_key``               the table's key is duplicated (all rows sharing a key are listed)
``flag_statistic``           flags: an assessed z-scored indicator without z_adjusted, or a
                             ``not_applicable`` row with one
``unknown_trust``            trust_code not in the run's trust list (flags, bands)
``missing_trust``            a trust of the run's trust list has no row (flags, bands)
``signal_threshold``         alert whose cusum is below its threshold (a signal is X >= h)
``first_signal_order``       alert whose first_signal_month is after its signal_month
``first_signal_row``         alert whose first_signal_month is not its chart's earliest
                             signal_month in the table (every signal of the window is listed)
``signal_window``            alert whose signal_month is outside the 12 months to the run's
                             period end (with a period)
``status_consistent``        alert whose status is not ``new`` exactly when the chart's first
                             signal falls in the run's quarter or month (with a period)
``all_row``                  mortality: a trust without its ``ALL`` row
``all_totals``               mortality: ``ALL`` observed/expected not the sum of the trust's groups
``ratio_consistent``         mortality: ratio is not observed / expected (NaN iff expected = 0)
``limit_order``              mortality: not lower998 <= lower95 <= upper95 <= upper998
``banding_limits``           mortality: banding disagrees with the ratio and the 99.8% limits
``risk_counts``              bands: risks + elevated_risks > applicable
``score_bounds``             bands: score > max_score
``proportion_consistent``    bands: proportion_score is not score / max_score (NaN iff max 0)
``band_probabilities``       bands: p_band_1..6 partly missing, or not summing to 1
``movement_consistent``      bands: movement disagrees with band and previous_band
``check_error``              a rule could not be evaluated (a bug: please report)
===========================  =====================================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from surveillance.contracts import (
    ADDED_COLUMNS,
    ALERTS_COLUMNS,
    BANDS_COLUMNS,
    FLAGS_COLUMNS,
    MORTALITY_COLUMNS,
    OUTPUT_COLUMNS,
)
from surveillance.errors import ContractError, Violation, with_row_total

MAX_ROWS_PER_RULE = 20

#: DESIGN.md sections 5-6, METHODS.md sections 4-6 (and what the current code writes).
FLAG_VALUES = ("no_evidence", "risk", "elevated_risk", "not_applicable")
DOMAINS = ("safe", "effective", "caring", "responsive", "well_led")
INDICATOR_TYPES = (
    "proportion",
    "ratio",
    "rate",
    "count",
    "score",
    "external_band",
    "rule",
    "cusum_z",
)
ALERT_STATUSES = ("new", "persisting")
MORTALITY_BANDING = ("higher than expected", "as expected", "lower than expected")
ALL_GROUP = "ALL"
BAND_VALUES = tuple(str(b) for b in range(1, 7)) + ("recently_inspected", "not_banded")
MOVEMENTS = ("up", "down", "same", "new")
P_BAND_COLUMNS = [f"p_band_{b}" for b in range(1, 7)]

#: table keys (DESIGN.md section 6 "one row per")
OUTPUT_KEYS: dict[str, tuple[str, ...]] = {
    "flags.csv": ("trust_code", "indicator_id"),
    "alerts.csv": ("trust_code", "diagnosis_group", "signal_month"),
    "mortality.csv": ("trust_code", "diagnosis_group"),
    "bands.csv": ("trust_code",),
}

#: flags types whose observed is a count of events (whole, >= 0), whose observed is >= 0, and
#: whose expected must be > 0 where present (input rules observed_count, events_count, rule_count;
#: METHODS.md section 1: proportions have expected n sin^2(target) >= 0)
_WHOLE_OBSERVED_TYPES = ("ratio", "count", "rule")
_NONNEGATIVE_OBSERVED_TYPES = ("proportion", "ratio", "rate", "count", "rule")
_POSITIVE_EXPECTED_TYPES = ("ratio", "rate", "count")
_NONNEGATIVE_EXPECTED_TYPES = ("proportion",)
#: types assessed by a z-score (METHODS.md sections 1, 4): a flag of theirs comes with z_adjusted
_Z_SCORED_TYPES = ("proportion", "ratio", "rate", "score", "count", "cusum_z")

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
#: relative tolerance of recomputed ratios and sums (the CSV keeps 10 significant digits)
_REL_TOL = 1e-8
_P_SUM_TOL = 1e-6

Mask = np.ndarray

#: alerts.csv lists every signal in this many months to the period end (DESIGN.md section 6)
ALERT_WINDOW_MONTHS = 12


@dataclass(frozen=True)
class AlertPeriod:
    """The run's current period for ``alerts.csv``: its months (``new`` = the chart's first
    signal is one of them) and the monitored window (the 12 months ending with it)."""

    label: str
    current: tuple[str, ...]
    window: tuple[str, ...]


def alert_period(period: str) -> AlertPeriod:
    """The :class:`AlertPeriod` of a quarter (``2013Q4``: its three months) or a month of the
    monthly run (``2013-11``: that month)."""
    text = str(period).strip()
    if _MONTH_RE.match(text):
        end = pd.Period(text, freq="M")
        current: tuple[str, ...] = (text,)
    else:
        from surveillance.periods import Quarter

        try:
            q = Quarter.parse(text)
        except ValueError:
            raise ValueError(
                f"alerts.csv period must be a quarter (2013Q4) or a month (2013-11), got {period!r}"
            ) from None
        end = q.end.to_period("M")
        current = tuple(q.months())
    window = pd.period_range(end=end, periods=ALERT_WINDOW_MONTHS, freq="M")
    return AlertPeriod(text, current, tuple(str(p) for p in window))


class OutputContractError(ContractError):
    """A run would publish an output table that breaks DESIGN.md section 6; nothing is published.

    ``violations`` name the file, column, rule and the first offending rows as **0-based
    positions** in the frame checked.
    """

    def __init__(self, violations: list[Violation]):
        super().__init__(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations[:50])
        more = f"\n  ... and {len(self.violations) - 50} more" if len(self.violations) > 50 else ""
        self.args = (
            f"{len(self.violations)} output contract violation(s) (rows are 0-based positions "
            f"in the tables about to be written):\n{lines}{more}",
        )


# --------------------------------------------------------------------------------------------
# Column parsing: row-level types of possibly object-typed columns
# --------------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


class _Frame:
    """A frame with cached, vectorised parses of its columns (RangeIndex: position = label)."""

    def __init__(self, file: str, frame: pd.DataFrame):
        self.file = file
        self.frame = frame
        self._cache: dict[tuple[str, str], object] = {}

    def __len__(self) -> int:
        return len(self.frame)

    def has(self, *columns: str) -> bool:
        return all(c in self.frame.columns for c in columns)

    def _cached(self, key: tuple[str, str], make: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def missing(self, column: str) -> Mask:
        return self._cached((column, "missing"), lambda: self.frame[column].isna().to_numpy(bool))

    def number(self, column: str) -> tuple[np.ndarray, Mask]:
        """(values as float, NaN where missing or not a number; mask of non-number values)."""

        def make():
            series = self.frame[column]
            n = len(series)
            if pd.api.types.is_bool_dtype(series.dtype):
                return np.full(n, np.nan), ~self.missing(column)
            if pd.api.types.is_numeric_dtype(series.dtype):
                return series.to_numpy(dtype=float, na_value=np.nan), np.zeros(n, dtype=bool)
            raw = series.to_numpy(dtype=object)
            numeric = np.fromiter((_is_number(v) for v in raw), dtype=bool, count=n)
            values = np.full(n, np.nan)
            values[numeric] = raw[numeric].astype(float)
            return values, ~numeric & ~self.missing(column)

        return self._cached((column, "number"), make)

    def values(self, column: str) -> np.ndarray:
        return self.number(column)[0]

    def text(self, column: str) -> tuple[np.ndarray, Mask]:
        """(object array: the str values, None elsewhere; mask of non-text values)."""

        def make():
            raw = self.frame[column].astype(object).to_numpy(dtype=object)
            n = len(raw)
            is_text = np.fromiter((isinstance(v, str) for v in raw), dtype=bool, count=n)
            out = np.where(is_text, raw, None)
            return out, ~is_text & ~self.missing(column)

        return self._cached((column, "text"), make)

    def empty(self, column: str) -> Mask:
        """Missing, or text that is empty or whitespace only."""

        def make():
            strings, _ = self.text(column)
            blank = np.fromiter(
                (isinstance(v, str) and not v.strip() for v in strings), dtype=bool, count=len(self)
            )
            return self.missing(column) | blank

        return self._cached((column, "empty"), make)

    def label(self, column: str) -> np.ndarray:
        """Enumeration labels as written: text as is, whole numbers (not bools) as their digits;
        None for missing values and for anything else (which no enumeration allows)."""

        def make():
            raw = self.frame[column].astype(object).to_numpy(dtype=object)
            missing = self.missing(column)
            out = np.empty(len(raw), dtype=object)
            for i, v in enumerate(raw):
                if missing[i]:
                    out[i] = None
                elif isinstance(v, str):
                    out[i] = v
                elif isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
                    out[i] = str(int(v))
                else:
                    out[i] = f"\x00{v!r}"  # never an allowed value
            return out

        return self._cached((column, "label"), make)

    def key_text(self, column: str) -> np.ndarray:
        """Any value as a comparable key (str of the value; missing as None)."""
        raw = self.frame[column].astype(object).to_numpy(dtype=object)
        return np.array(
            [None if m else str(v) for v, m in zip(raw, self.missing(column), strict=True)],
            dtype=object,
        )

    def types(self) -> np.ndarray:
        """flags.csv ``type`` labels (None where not a label)."""
        return self.label("type")


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------

RuleResult = Mask | str | None


@dataclass(frozen=True)
class OutputRule:
    """One output rule: which file and column, a name, and a vectorised test.

    ``bad`` returns the mask of offending rows; a ``rowless`` rule returns a message when it
    fails (no rows to point at) and ``None`` when it holds.
    """

    file: str
    column: str
    rule: str
    message: str
    bad: Callable[[_Frame], RuleResult]
    needs: tuple[str, ...] = field(default_factory=tuple)
    rowless: bool = False


def _in(values: np.ndarray, allowed: Iterable[str]) -> Mask:
    allowed = set(allowed)
    return np.fromiter((v in allowed for v in values), dtype=bool, count=len(values))


def _text_rules(file: str, column: str, required: bool = True) -> list[OutputRule]:
    rules = [
        OutputRule(file, column, "not_text", "value must be text", lambda t: t.text(column)[1])
    ]
    if required:
        rules.append(
            OutputRule(file, column, "required", "value is required", lambda t: t.empty(column))
        )
    return rules


def _enum_rules(
    file: str, column: str, allowed: tuple[str, ...], required: bool = True
) -> list[OutputRule]:
    rules = []
    if required:
        rules.append(
            OutputRule(file, column, "required", "value is required", lambda t: t.empty(column))
        )

    def bad(t: _Frame) -> Mask:
        labels = t.label(column)
        return ~_in(labels, allowed) & ~t.empty(column)

    shown = ", ".join(allowed)
    optional = "" if required else " (or empty)"
    rules.append(
        OutputRule(file, column, "allowed_values", f"value must be one of: {shown}{optional}", bad)
    )
    return rules


def _where_types(types: tuple[str, ...]) -> Callable[[_Frame], Mask]:
    return lambda t: _in(t.types(), types)


def _everywhere(t: _Frame) -> Mask:
    return np.ones(len(t), dtype=bool)


def _number_rules(
    file: str,
    column: str,
    *,
    required: bool = False,
    finite: bool = True,
    whole: Callable[[_Frame], Mask] | None = None,
    nonnegative: Callable[[_Frame], Mask] | None = None,
    positive: Callable[[_Frame], Mask] | None = None,
    probability: tuple[bool, bool] | None = None,
    scope: str = "",
    needs: tuple[str, ...] = (),
) -> list[OutputRule]:
    """Type, presence, finiteness and range rules of a number column.

    ``whole`` / ``nonnegative`` / ``positive`` select the rows the rule applies to (reading the
    columns ``needs``); ``probability`` is (lower bound inclusive, upper bound inclusive) of [0, 1].
    """
    where = f" {scope}" if scope else ""
    rules = [
        OutputRule(
            file, column, "not_numeric", "value must be a number", lambda t: t.number(column)[1]
        )
    ]
    if required:
        rules.append(
            OutputRule(
                file,
                column,
                "required",
                "value is required",
                lambda t: t.missing(column),
            )
        )
    if finite:
        rules.append(
            OutputRule(
                file,
                column,
                "not_finite",
                "value must be finite (no infinity)",
                lambda t: np.isinf(t.values(column)),
            )
        )
    if whole is not None:

        def fraction(t: _Frame) -> Mask:
            v = t.values(column)
            with np.errstate(invalid="ignore"):
                return whole(t) & np.isfinite(v) & (v != np.floor(v))

        rules.append(
            OutputRule(
                file,
                column,
                "not_integer",
                f"value must be a whole number{where}",
                fraction,
                needs=needs,
            )
        )
    if nonnegative is not None:
        rules.append(
            OutputRule(
                file,
                column,
                "nonnegative",
                f"value must be >= 0{where}",
                lambda t: nonnegative(t) & (t.values(column) < 0),
                needs=needs,
            )
        )
    if positive is not None:
        rules.append(
            OutputRule(
                file,
                column,
                "positive",
                f"value must be > 0{where}",
                lambda t: positive(t) & (t.values(column) <= 0),
                needs=needs,
            )
        )
    if probability is not None:
        closed_low, closed_high = probability

        def outside(t: _Frame) -> Mask:
            v = t.values(column)
            low = v < 0 if closed_low else v <= 0
            high = v > 1 if closed_high else v >= 1
            return low | high

        interval = f"{'[' if closed_low else '('}0, 1{']' if closed_high else ')'}"
        rules.append(
            OutputRule(file, column, "probability_range", f"value must be in {interval}", outside)
        )
    return rules


def _unique_rule(file: str) -> OutputRule:
    key = OUTPUT_KEYS[file]

    def bad(t: _Frame) -> Mask:
        frame = pd.DataFrame({c: t.key_text(c) for c in key})
        return frame.duplicated(keep=False).to_numpy(dtype=bool)

    return OutputRule(
        file,
        key[0],
        "unique_key",
        f"duplicate key ({' + '.join(key)}): each key may appear once",
        bad,
        needs=key,
    )


def _trust_rules(file: str, trust_codes: frozenset[str] | None) -> list[OutputRule]:
    if trust_codes is None:
        return []

    def unknown(t: _Frame) -> Mask:
        return ~_in(t.key_text("trust_code"), trust_codes) & ~t.empty("trust_code")

    def missing(t: _Frame) -> str | None:
        present = set(t.key_text("trust_code"))
        lacking = sorted(trust_codes - present)
        if not lacking:
            return None
        shown = ", ".join(lacking[:10]) + (" ..." if len(lacking) > 10 else "")
        return f"{len(lacking)} trust(s) of the run have no row: {shown}"

    return [
        OutputRule(
            file, "trust_code", "unknown_trust", "trust_code is not in the run's trusts", unknown
        ),
        OutputRule(
            file,
            "trust_code",
            "missing_trust",
            "every trust of the run needs a row",
            missing,
            rowless=True,
        ),
    ]


# ---- flags.csv ------------------------------------------------------------------------------


def _flags_rules(trust_codes: frozenset[str] | None) -> list[OutputRule]:
    f = "flags.csv"

    def flag_statistic(t: _Frame) -> Mask:
        flag, (z, not_numeric) = t.label("flag"), t.number("z_adjusted")
        have = ~np.isnan(z)
        assessed = _in(flag, FLAG_VALUES[:3]) & _in(t.types(), _Z_SCORED_TYPES)
        return ~not_numeric & ((assessed & ~have) | ((flag == "not_applicable") & have))

    return [
        *_text_rules(f, "trust_code"),
        *_trust_rules(f, trust_codes),
        _unique_rule(f),
        *_text_rules(f, "indicator_id"),
        *_enum_rules(f, "domain", DOMAINS),
        *_enum_rules(f, "type", INDICATOR_TYPES),
        *_number_rules(
            f,
            "observed",
            whole=_where_types(_WHOLE_OBSERVED_TYPES),
            nonnegative=_where_types(_NONNEGATIVE_OBSERVED_TYPES),
            scope="for ratio, count, rule (>= 0 also for proportion, rate)",
            needs=("type",),
        ),
        *_number_rules(
            f,
            "expected",
            nonnegative=_where_types(_NONNEGATIVE_EXPECTED_TYPES),
            positive=_where_types(_POSITIVE_EXPECTED_TYPES),
            scope="where present (ratio, rate, count: > 0; proportion: >= 0)",
            needs=("type",),
        ),
        *_number_rules(f, "z", finite=False),
        *_number_rules(f, "z_adjusted", finite=False),
        OutputRule(
            f,
            "z_adjusted",
            "flag_statistic",
            f"an assessed {', '.join(_Z_SCORED_TYPES)} indicator needs z_adjusted; a "
            "not_applicable row has none",
            flag_statistic,
            needs=("type", "flag"),
        ),
        *_number_rules(f, "p_value", probability=(True, True)),
        *_enum_rules(f, "flag", FLAG_VALUES),
        *_text_rules(f, "method", required=False),
        *_number_rules(f, "phi", nonnegative=_everywhere),
        *_number_rules(f, "tau2", nonnegative=_everywhere),
        # added columns (checked when present)
        *_text_rules(f, "trust_name"),
        *_text_rules(f, "indicator_name"),
    ]


# ---- alerts.csv -----------------------------------------------------------------------------


def _alerts_rules(period: AlertPeriod | None = None) -> list[OutputRule]:
    f = "alerts.csv"

    def months_of(t: _Frame, column: str) -> tuple[np.ndarray, Mask]:
        """(the column's ``YYYY-MM`` text, None elsewhere; mask of valid months)."""
        strings, _ = t.text(column)
        ok = np.fromiter(
            (isinstance(v, str) and bool(_MONTH_RE.match(v)) for v in strings),
            dtype=bool,
            count=len(t),
        )
        return np.where(ok, strings, None), ok

    def not_month(column: str) -> Callable[[_Frame], Mask]:
        def bad(t: _Frame) -> Mask:
            not_text = t.text(column)[1]
            return ~months_of(t, column)[1] & ~t.empty(column) | not_text

        return bad

    def below(t: _Frame) -> Mask:
        cusum, h = t.values("cusum"), t.values("threshold")
        margin = np.where(np.isfinite(h), _REL_TOL * np.abs(h), 0.0)
        return cusum < h - margin

    def first_after_signal(t: _Frame) -> Mask:
        signal, ok_s = months_of(t, "signal_month")
        first, ok_f = months_of(t, "first_signal_month")
        both = ok_s & ok_f
        return both & (np.where(both, first, "") > np.where(both, signal, ""))

    def first_not_earliest(t: _Frame) -> Mask:
        # judged on charts whose months are all valid (a bad month is not_month already)
        signal, ok_s = months_of(t, "signal_month")
        first, ok_f = months_of(t, "first_signal_month")
        frame = pd.DataFrame(
            {
                "trust": t.key_text("trust_code"),
                "group": t.key_text("diagnosis_group"),
                "signal": np.where(ok_s, signal, ""),
                "ok": ok_s & ok_f,
            }
        )
        by_chart = frame.groupby(["trust", "group"], dropna=False, sort=False)
        earliest = by_chart["signal"].transform("min").to_numpy(dtype=object)
        judged = by_chart["ok"].transform("all").to_numpy(dtype=bool)
        return judged & (np.where(judged, first, "") != np.where(judged, earliest, ""))

    def outside_window(column: str) -> Callable[[_Frame], Mask]:
        def bad(t: _Frame) -> Mask:
            months, ok = months_of(t, column)
            return ok & ~_in(months, period.window)

        return bad

    def status_inconsistent(t: _Frame) -> Mask:
        first, ok = months_of(t, "first_signal_month")
        status = t.label("status")
        judged = ok & _in(status, ALERT_STATUSES)
        want_new = _in(first, period.current)
        return judged & ((status == "new") != want_new)

    rules = [
        *_text_rules(f, "trust_code"),
        _unique_rule(f),
        *_text_rules(f, "diagnosis_group"),
    ]
    for column in ("signal_month", "first_signal_month"):
        rules += [
            OutputRule(f, column, "required", "value is required", lambda t, c=column: t.empty(c)),
            OutputRule(f, column, "not_month", f"{column} must be text YYYY-MM", not_month(column)),
        ]
        if column == "signal_month" and period is not None:
            # first_signal_month is then inside too: it is one of the chart's signal months
            rules.append(
                OutputRule(
                    f,
                    column,
                    "signal_window",
                    f"{column} must be in the {ALERT_WINDOW_MONTHS} months to {period.label}'s "
                    f"end ({period.window[0]} to {period.window[-1]})",
                    outside_window(column),
                )
            )
    rules += [
        OutputRule(
            f,
            "first_signal_month",
            "first_signal_order",
            "first_signal_month must not be after signal_month",
            first_after_signal,
            needs=("signal_month",),
        ),
        OutputRule(
            f,
            "first_signal_month",
            "first_signal_row",
            "first_signal_month must be the earliest signal_month of the chart "
            "(trust_code + diagnosis_group): alerts.csv lists every signal of the window",
            first_not_earliest,
            needs=("signal_month", "trust_code", "diagnosis_group"),
        ),
    ]
    rules += [
        *_number_rules(f, "cusum", required=True, nonnegative=_everywhere),
        OutputRule(
            f,
            "cusum",
            "signal_threshold",
            "an alert is a signal: cusum must be >= threshold",
            below,
            needs=("threshold",),
        ),
        *_number_rules(f, "threshold", required=True, positive=_everywhere),
        *_number_rules(f, "observed", required=True, whole=_everywhere, nonnegative=_everywhere),
        *_number_rules(f, "expected", required=True, positive=_everywhere),
        *_number_rules(f, "false_alarm_rate", required=True, probability=(False, False)),
        *_enum_rules(f, "status", ALERT_STATUSES),
        *_text_rules(f, "caution", required=False),  # added column (checked when present)
    ]
    if period is not None:
        shown = ", ".join(period.current)
        rules.append(
            OutputRule(
                f,
                "status",
                "status_consistent",
                f"status must be new when first_signal_month is in {period.label} ({shown}), "
                "else persisting",
                status_inconsistent,
                needs=("first_signal_month",),
            )
        )
    return rules


# ---- mortality.csv --------------------------------------------------------------------------


def _mortality_rules() -> list[OutputRule]:
    f = "mortality.csv"

    def groups(t: _Frame) -> tuple[np.ndarray, Mask]:
        codes = t.key_text("trust_code")
        is_all = t.key_text("diagnosis_group") == ALL_GROUP
        return codes, is_all

    def no_all_row(t: _Frame) -> Mask:
        codes, is_all = groups(t)
        with_all = set(codes[is_all])
        return ~_in(codes, with_all) & ~t.empty("trust_code")

    def totals(column: str) -> Callable[[_Frame], Mask]:
        def bad(t: _Frame) -> Mask:
            codes, is_all = groups(t)
            values = t.values(column)
            cells = pd.DataFrame({"code": codes, "value": values, "gap": ~np.isfinite(values)})
            by_trust = cells[~is_all].groupby("code", dropna=True)
            sums = by_trust["value"].sum().reindex(codes).fillna(0.0).to_numpy()
            gaps = by_trust["gap"].any().reindex(codes).fillna(False).to_numpy(dtype=bool)
            wrong = np.abs(values - sums) > _REL_TOL * np.maximum(1.0, np.abs(values))
            return is_all & np.isfinite(values) & ~gaps & wrong

        return bad

    def ratio_consistent(t: _Frame) -> Mask:
        o, e, r = t.values("observed"), t.values("expected"), t.values("ratio")
        with np.errstate(invalid="ignore", divide="ignore"):
            want = np.where(e > 0, o / e, np.nan)
            off = np.abs(r - want) > _REL_TOL * np.maximum(1.0, np.abs(want))
        have_inputs = np.isfinite(o) & np.isfinite(e)
        present = ~np.isnan(r)
        judged = have_inputs & ~t.number("ratio")[1]  # a non-number is not_numeric already
        return judged & (((e > 0) & (~present | off)) | ((e == 0) & present))

    def order(low: str, high: str) -> Callable[[_Frame], Mask]:
        return lambda t: t.values(low) > t.values(high)

    def banding_limits(t: _Frame) -> Mask:
        o, e, r = t.values("observed"), t.values("expected"), t.values("ratio")
        lo, up = t.values("lower998"), t.values("upper998")
        label = t.label("banding")
        with np.errstate(invalid="ignore"):
            clear_high = r > up * (1 + _REL_TOL)
            clear_low = r < lo * (1 - _REL_TOL)
            near = (np.abs(r - up) <= _REL_TOL * np.abs(up)) | (
                np.abs(r - lo) <= _REL_TOL * np.abs(lo)
            )
        want = np.where(
            clear_high,
            MORTALITY_BANDING[0],
            np.where(clear_low, MORTALITY_BANDING[2], MORTALITY_BANDING[1]),
        )
        known = _in(label, MORTALITY_BANDING)
        judged = (o > 0) & np.isfinite(r) & ~np.isnan(lo) & ~np.isnan(up) & ~near
        no_information = (e == 0) & (label != MORTALITY_BANDING[1])
        return known & ((judged & (label != want)) | no_information)

    return [
        *_text_rules(f, "trust_code"),
        _unique_rule(f),
        *_text_rules(f, "diagnosis_group"),
        OutputRule(
            f,
            "diagnosis_group",
            "all_row",
            f"every trust needs its diagnosis_group {ALL_GROUP} row",
            no_all_row,
            needs=("trust_code",),
        ),
        *_number_rules(f, "observed", required=True, whole=_everywhere, nonnegative=_everywhere),
        OutputRule(
            f,
            "observed",
            "all_totals",
            f"the {ALL_GROUP} row must hold the sum of the trust's diagnosis groups",
            totals("observed"),
            needs=("trust_code", "diagnosis_group"),
        ),
        *_number_rules(f, "expected", required=True, nonnegative=_everywhere),
        OutputRule(
            f,
            "expected",
            "all_totals",
            f"the {ALL_GROUP} row must hold the sum of the trust's diagnosis groups",
            totals("expected"),
            needs=("trust_code", "diagnosis_group"),
        ),
        *_number_rules(f, "ratio", nonnegative=_everywhere),
        OutputRule(
            f,
            "ratio",
            "ratio_consistent",
            "ratio must be observed / expected (empty when expected is 0)",
            ratio_consistent,
            needs=("observed", "expected"),
        ),
        *_number_rules(f, "lower95", nonnegative=_everywhere),
        OutputRule(
            f,
            "lower95",
            "limit_order",
            "lower95 must be <= upper95",
            order("lower95", "upper95"),
            needs=("upper95",),
        ),
        *_number_rules(f, "upper95", finite=False, nonnegative=_everywhere),
        *_number_rules(f, "lower998", nonnegative=_everywhere),
        OutputRule(
            f,
            "lower998",
            "limit_order",
            "lower998 must be <= lower95",
            order("lower998", "lower95"),
            needs=("lower95",),
        ),
        *_number_rules(f, "upper998", finite=False, nonnegative=_everywhere),
        OutputRule(
            f,
            "upper998",
            "limit_order",
            "upper998 must be >= upper95",
            order("upper95", "upper998"),
            needs=("upper95",),
        ),
        *_enum_rules(f, "banding", MORTALITY_BANDING),
        OutputRule(
            f,
            "banding",
            "banding_limits",
            "banding must be 'higher than expected' above upper998, 'lower than expected' "
            "below lower998, else (and when expected is 0) 'as expected'",
            banding_limits,
            needs=("observed", "expected", "ratio", "lower998", "upper998"),
        ),
    ]


# ---- bands.csv ------------------------------------------------------------------------------


def _movement(current: str | None, previous: str | None) -> str | None:
    """The movement :func:`surveillance.banding.explain.add_movement` documents."""
    if current is None:
        return None
    if previous is None or previous == "":
        return "new"
    if current == previous:
        return "same"
    if current.isdigit() and previous.isdigit():
        return "up" if int(current) < int(previous) else "down"
    return "new"


def _bands_rules(trust_codes: frozenset[str] | None) -> list[OutputRule]:
    f = "bands.csv"
    counts = ("applicable", "risks", "elevated_risks", "score", "max_score")

    def risk_counts(t: _Frame) -> Mask:
        return t.values("risks") + t.values("elevated_risks") > t.values("applicable")

    def score_bounds(t: _Frame) -> Mask:
        return t.values("score") > t.values("max_score")

    def proportion(t: _Frame) -> Mask:
        s, m, p = t.values("score"), t.values("max_score"), t.values("proportion_score")
        with np.errstate(invalid="ignore", divide="ignore"):
            want = np.where(m > 0, s / m, np.nan)
            off = np.abs(p - want) > _REL_TOL
        present = ~np.isnan(p)
        judged = ~t.number("proportion_score")[1]  # a non-number is not_numeric already
        return judged & (((m > 0) & (~present | off)) | ((m == 0) & present))

    def probabilities(t: _Frame) -> Mask:
        p = np.column_stack([t.values(c) for c in P_BAND_COLUMNS])
        present = ~np.isnan(p)
        partial = present.any(axis=1) & ~present.all(axis=1)
        with np.errstate(invalid="ignore"):
            off = present.all(axis=1) & (np.abs(p.sum(axis=1) - 1.0) > _P_SUM_TOL)
        numbers = ~np.column_stack([t.number(c)[1] for c in P_BAND_COLUMNS]).any(axis=1)
        return numbers & (partial | off)

    def movement(t: _Frame) -> Mask:
        band, previous, moved = t.label("band"), t.label("previous_band"), t.label("movement")
        want = np.array(
            [_movement(c, p) for c, p in zip(band, previous, strict=True)], dtype=object
        )
        comparable = _in(previous, BAND_VALUES) | t.empty("previous_band")
        judged = _in(band, BAND_VALUES) & comparable & _in(moved, MOVEMENTS)
        return judged & (want != moved)

    rules = [*_text_rules(f, "trust_code"), *_trust_rules(f, trust_codes), _unique_rule(f)]
    rules += [*_text_rules(f, "trust_name"), *_text_rules(f, "region")]
    for column in counts:
        rules += _number_rules(f, column, required=True, whole=_everywhere, nonnegative=_everywhere)
        if column == "risks":
            rules.append(
                OutputRule(
                    f,
                    "risks",
                    "risk_counts",
                    "risks + elevated_risks must not exceed applicable",
                    risk_counts,
                    needs=("elevated_risks", "applicable"),
                )
            )
        if column == "score":
            rules.append(
                OutputRule(
                    f,
                    "score",
                    "score_bounds",
                    "score must not exceed max_score",
                    score_bounds,
                    needs=("max_score",),
                )
            )
    rules += [
        *_number_rules(f, "proportion_score", probability=(True, True)),
        OutputRule(
            f,
            "proportion_score",
            "proportion_consistent",
            "proportion_score must be score / max_score (empty when max_score is 0)",
            proportion,
            needs=("score", "max_score"),
        ),
        *_enum_rules(f, "band", BAND_VALUES),
        *_text_rules(f, "band_reason"),
    ]
    for column in P_BAND_COLUMNS:
        rules += _number_rules(f, column, probability=(True, True))
    rules += [
        OutputRule(
            f,
            "p_band_1",
            "band_probabilities",
            "p_band_1..p_band_6 must be all empty, or all present and summing to 1",
            probabilities,
            needs=tuple(P_BAND_COLUMNS),
        ),
        *_enum_rules(f, "previous_band", BAND_VALUES, required=False),
        *_enum_rules(f, "movement", MOVEMENTS),
        OutputRule(
            f,
            "movement",
            "movement_consistent",
            "movement must follow band and previous_band: new (no comparable previous band), "
            "same, up (to a lower band number), down",
            movement,
            needs=("band", "previous_band"),
        ),
    ]
    return rules


def output_rules(
    file: str, trust_codes: Iterable[str] | None = None, period: str | None = None
) -> list[OutputRule]:
    """The rules of ``file`` (one of :data:`surveillance.contracts.OUTPUT_COLUMNS`), in order.

    ``period`` (a quarter ``2013Q4`` or a monthly run's ``2013-11``) adds the alerts.csv rules
    that need it (``signal_window``, ``status_consistent``)."""
    known = None if trust_codes is None else frozenset(str(c) for c in trust_codes)
    alert_period_ = None if period is None else alert_period(period)
    makers = {
        "flags.csv": lambda: _flags_rules(known),
        "alerts.csv": lambda: _alerts_rules(alert_period_),
        "mortality.csv": _mortality_rules,
        "bands.csv": lambda: _bands_rules(known),
    }
    if file not in makers:
        raise ValueError(f"{file!r} is not an output table; expected one of {list(makers)}")
    return makers[file]()


# --------------------------------------------------------------------------------------------
# Running the rules through pandera
# --------------------------------------------------------------------------------------------


def _column_order_ok(columns: list[str], contract: list[str]) -> bool:
    """Present contract columns in contract order, all before any extra column."""
    present = [c for c in columns if c in contract]
    if present != [c for c in contract if c in columns]:
        return False
    last = max((columns.index(c) for c in present), default=-1)
    return all(c in contract for c in columns[: last + 1])


def _first_misplaced(columns: list[str], contract: list[str]) -> str | None:
    """The first column (in frame order) that is not where the contract order puts it."""
    expected = [c for c in contract if c in columns]
    for position, column in enumerate(columns[: len(expected)]):
        if column != expected[position]:
            return str(column)
    return None


def output_schema(
    file: str,
    frame: pd.DataFrame,
    trust_codes: Iterable[str] | None = None,
    outcomes: dict[str, tuple[OutputRule, Mask | str]] | None = None,
    period: str | None = None,
):
    """The pandera ``DataFrameSchema`` of ``file``, its checks bound to ``frame``.

    Validate ``frame`` itself or :func:`_pandera_view` of it (lazy mode collects every failure).
    Cross-column rules read the other columns of ``frame``, so a schema serves one frame.
    ``outcomes`` (optional) receives each failing rule's offending rows.
    """
    import pandera.pandas as pa

    contract = OUTPUT_COLUMNS[file]
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        frame = frame.reset_index(drop=True)
    table = _Frame(file, frame)
    added = [c for c in ADDED_COLUMNS.get(file, []) if c not in contract]
    checks: dict[str, list] = {c: [] for c in [*contract, *added]}
    for number, rule in enumerate(output_rules(file, trust_codes, period)):
        key = f"{rule.rule}#{number}"

        def run(series: pd.Series, rule: OutputRule = rule, key: str = key):
            if not table.has(rule.column, *rule.needs):
                return True  # the missing_column violation already stops the run
            with np.errstate(all="ignore"):  # NaN and inf compare False: no rule fires on them
                result = rule.bad(table)
            if rule.rowless:
                if result is not None and outcomes is not None:
                    outcomes[key] = (rule, str(result))
                return result is None
            mask = np.asarray(result, dtype=bool)
            if mask.any() and outcomes is not None:
                outcomes[key] = (rule, mask)
            return pd.Series(~mask, index=series.index)

        checks[rule.column].append(
            pa.Check(run, name=key, ignore_na=False, n_failure_cases=MAX_ROWS_PER_RULE)
        )
    columns = {c: pa.Column(checks=checks[c], nullable=True, required=True) for c in contract}
    # the added columns are checked when present (runs published before have none)
    columns.update({c: pa.Column(checks=checks[c], nullable=True, required=False) for c in added})
    order = pa.Check(lambda df: _column_order_ok(list(df.columns), contract), name="column_order")
    return pa.DataFrameSchema(columns, checks=[order], strict=False, name=file)


def _pandera_view(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s columns (same names and order) holding row positions.

    The checks read the real values through :class:`_Frame`; pandera only needs the index of
    failing rows and never has to hash or list odd cell values (lists, mixed objects).
    """
    positions = np.arange(len(frame))
    return pd.DataFrame({c: positions for c in frame.columns}, columns=list(frame.columns))


def validate_output(
    file: str,
    frame: pd.DataFrame,
    trust_codes: Iterable[str] | None = None,
    period: str | None = None,
) -> list[Violation]:
    """Every violation of ``file``'s contract by ``frame`` (rows: 0-based positions; ``period``
    as in :func:`output_rules`)."""
    import pandera.pandas as pa

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{file}: expected a pandas DataFrame, got {type(frame).__name__}")
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        return [
            Violation(
                file=file,
                rule="duplicate_column",
                column=c,
                message="column name appears more than once",
            )
            for c in duplicated
        ]
    rules = output_rules(file, trust_codes, period)
    outcomes: dict[str, tuple[OutputRule, Mask | str]] = {}
    schema = output_schema(file, frame, trust_codes, outcomes, period)
    try:
        schema.validate(_pandera_view(frame), lazy=True)
        return []
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    violations: list[Violation] = []
    contract = OUTPUT_COLUMNS[file]
    for check, column in zip(cases["check"], cases["failure_case"], strict=True):
        if check == "column_in_dataframe":
            violations.append(
                Violation(
                    file=file,
                    rule="missing_column",
                    column=str(column),
                    message=f"column is missing; {file} needs {', '.join(contract)}",
                )
            )
    if "column_order" in set(cases["check"]):
        violations.append(
            Violation(
                file=file,
                rule="column_order",
                column=_first_misplaced(list(map(str, frame.columns)), contract),
                message=f"columns must start with {', '.join(contract)} in this order "
                f"(extra columns after them); got {', '.join(map(str, frame.columns))}",
            )
        )
    failed = set(cases["check"])
    for number, rule in enumerate(rules):
        key = f"{rule.rule}#{number}"
        if key not in failed:
            continue
        if key not in outcomes:  # the check raised
            message = cases.loc[cases["check"] == key, "failure_case"].astype(str).iloc[0]
            violations.append(
                Violation(
                    file=file,
                    rule="check_error",
                    column=rule.column,
                    message=f"rule {rule.rule} could not be evaluated: {message}",
                )
            )
            continue
        _, result = outcomes[key]
        if isinstance(result, str):
            violations.append(
                Violation(file=file, rule=rule.rule, column=rule.column, message=result)
            )
            continue
        positions = np.flatnonzero(result)
        rows = tuple(int(i) for i in positions[:MAX_ROWS_PER_RULE])
        violations.append(
            Violation(
                file=file,
                rule=rule.rule,
                column=rule.column,
                rows=rows,
                message=with_row_total(rule.message, len(positions), len(rows)),
            )
        )
    return violations


def check_output(
    file: str,
    frame: pd.DataFrame,
    trust_codes: Iterable[str] | None = None,
    period: str | None = None,
) -> None:
    """:func:`check_outputs` for one table (e.g. the monthly run's ``alerts.csv``, whose
    ``period`` is its month)."""
    violations = validate_output(file, frame, trust_codes, period)
    if violations:
        raise OutputContractError(violations)


def validate_outputs(
    tables: Mapping[str, pd.DataFrame],
    trust_codes: Iterable[str] | None = None,
    period: str | None = None,
) -> list[Violation]:
    """Every output contract violation of ``tables`` (keyed by file name); empty when valid.

    Files in DESIGN.md order (flags, alerts, mortality, bands); within a file, rules follow the
    column order. Rows are 0-based positions in each frame.
    """
    unknown = sorted(set(tables) - set(OUTPUT_COLUMNS))
    if unknown:
        raise ValueError(f"not output tables: {unknown}; expected {list(OUTPUT_COLUMNS)}")
    codes = None if trust_codes is None else frozenset(str(c) for c in trust_codes)
    violations: list[Violation] = []
    for file in OUTPUT_COLUMNS:
        if file not in tables:
            violations.append(
                Violation(file=file, rule="missing_file", message="table was not produced")
            )
            continue
        violations += validate_output(file, tables[file], codes, period)
    return violations


def check_outputs(
    tables: Mapping[str, pd.DataFrame],
    trust_codes: Iterable[str] | None = None,
    period: str | None = None,
) -> None:
    """Validate the four output tables before they are written; raise if any rule is broken.

    Parameters
    ----------
    tables : mapping
        ``{"flags.csv": frame, "alerts.csv": ..., "mortality.csv": ..., "bands.csv": ...}``: the
        frames about to be written (contract columns first, extras after).
    trust_codes : iterable of str, optional
        The run's trusts (``trusts.csv``): every trust_code of flags and bands must be one of
        them and each of them must have rows there. ``None`` skips these two rules.
    period : str, optional
        The run's quarter (``2013Q4``): every alert must lie in the 12 months to its end and be
        ``new`` exactly when its chart first signalled in the quarter. ``None`` skips these two
        rules.

    Raises
    ------
    OutputContractError
        Listing every violation: file, column, rule and the first offending rows as **0-based
        positions** in the frame given (``frame.iloc[row]``).
    """
    violations = validate_outputs(tables, trust_codes, period)
    if violations:
        raise OutputContractError(violations)


def output_rule_names() -> list[str]:
    """The rule names documented in this module's docstring (for reports and tests)."""
    return re.findall(r"^``(\w+)``\s{2,}", __doc__ or "", flags=re.MULTILINE)


def iter_output_rules(
    with_trusts: bool = True, with_period: bool = True
) -> Iterable[tuple[str, str, str]]:
    """Every (file, column, rule) of the value checks (``with_trusts``: with a trust list;
    ``with_period``: with a run period)."""
    for file in OUTPUT_COLUMNS:
        for rule in output_rules(
            file, () if with_trusts else None, "2013Q4" if with_period else None
        ):
            yield file, rule.column, rule.rule


# --------------------------------------------------------------------------------------------
# The data dictionary: every column of every published CSV (one source of truth)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDoc:
    """One column of a published file, as ``data_dictionary.csv`` describes it.

    ``type`` is one of ``text``, ``integer``, ``number``, ``boolean``, ``month`` (``YYYY-MM``),
    ``date`` (ISO 8601); ``unit`` is empty for codes and labels. ``may_hold_small_numbers`` is
    true for a count of patients (or a value the count can be worked out from, e.g. a ratio
    beside its expected count) that may be 1 to 4: such columns are kept exact in the analytic
    CSVs, which are therefore restricted, and suppressed in the reports (DESIGN.md section 6).
    """

    column: str
    meaning: str
    type: str
    unit: str = ""
    may_hold_small_numbers: bool = False


def _c(column: str, meaning: str, type_: str, unit: str = "", small: bool = False) -> ColumnDoc:
    return ColumnDoc(column, meaning, type_, unit, small)


_TRUST = _c("trust_code", "ODS code of the trust", "text")
_INDICATOR = _c("indicator_id", "catalogue id of the indicator", "text")
_GROUP = _c("diagnosis_group", "diagnosis group of the risk models (ALL: every group)", "text")
_INFINITE_NOTE = _c(
    "infinite_note",
    "which numbers of the row were infinite and why (written as empty cells: the CSVs hold no "
    "inf); empty when none",
    "text",
)

#: file -> its columns in order: the DESIGN.md section 6 contract columns, the columns added to
#: the contract (:data:`surveillance.contracts.ADDED_COLUMNS`), then the extras the run writes
PUBLISHED_COLUMNS: dict[str, tuple[ColumnDoc, ...]] = {
    "flags.csv": (
        _TRUST,
        _INDICATOR,
        _c("domain", "CQC key question: safe, effective, caring, responsive, well_led", "text"),
        _c("type", "indicator type (how it is assessed, DESIGN.md section 5)", "text"),
        _c(
            "observed",
            "the trust's value: events or patients (ratio, count, rule, proportion numerator), "
            "a rate's numerator, a score, or the largest monthly CUSUM (cusum_z)",
            "number",
            "as the indicator",
            True,
        ),
        _c(
            "expected",
            "expected value under the national target (expected events, denominator x national "
            "proportion, national mean score, or the CUSUM threshold for cusum_z)",
            "number",
            "as the indicator",
        ),
        _c("z", "z-score before overdispersion adjustment", "number", "standard deviations"),
        _c(
            "z_adjusted",
            "z-score after the overdispersion adjustment (positive = worse)",
            "number",
            "standard deviations",
        ),
        _c(
            "p_value",
            "one-sided p-value of the trust's value (worse direction)",
            "number",
            "probability",
        ),
        _c("flag", "no_evidence, risk, elevated_risk or not_applicable", "text"),
        _c("method", "transform and overdispersion adjustment applied", "text"),
        _c("phi", "overdispersion factor of the indicator (national)", "number", "ratio"),
        _c(
            "tau2",
            "additive between-trust variance of the indicator (national)",
            "number",
            "transformed scale squared",
        ),
        _c("trust_name", "name of the trust (trusts.csv)", "text"),
        _c("indicator_name", "name of the indicator (catalogue)", "text"),
        _INFINITE_NOTE,
        _c("value", "the input value (scores, rates) as read", "number", "as the indicator"),
        _c(
            "denominator",
            "denominator of proportions and rates (patients, attendances, hours)",
            "number",
            "as the indicator",
        ),
        _c(
            "reason",
            "why the trust is not_applicable (validity gate, coverage, specialist)",
            "text",
        ),
        _c("in_banding", "whether the indicator counts towards the band this quarter", "boolean"),
        _c("persistent", "flagged this quarter and last quarter", "boolean"),
        _c("polarity", "higher_is_worse or lower_is_worse", "text"),
        _c("z_sd", "standard deviation of the adjusted z (1 / overdispersion scale)", "number"),
        _c("threshold_risk", "z_adjusted (or p-value) threshold for risk", "number"),
        _c("threshold_elevated", "z_adjusted (or p-value) threshold for elevated_risk", "number"),
        _c("p_risk", "p-value threshold for risk (count and rule types)", "number", "probability"),
        _c("p_elevated", "p-value threshold for elevated_risk", "number", "probability"),
        _c("band", "the publisher's own band (external_band type)", "text"),
        _c("cusum", "largest monthly CUSUM of the quarter (cusum_z type)", "number"),
    ),
    "alerts.csv": (
        _TRUST,
        _GROUP,
        _c("signal_month", "month of the signal", "month"),
        _c(
            "first_signal_month",
            "month of the chart's first signal in the 12-month window",
            "month",
        ),
        _c("cusum", "chart value at the signal (before the restart)", "number"),
        _c("threshold", "the chart's threshold h", "number"),
        _c("observed", "deaths from the window start to the signal", "integer", "deaths", True),
        _c("expected", "expected deaths from the window start to the signal", "number", "deaths"),
        _c(
            "false_alarm_rate",
            "probability of any false alarm in 12 months the threshold is set for",
            "number",
            "probability",
        ),
        _c("status", "new (first signal this quarter) or persisting", "text"),
        _c(
            "caution",
            "why the alert needs care before follow-up (expected deaths below the minimum of "
            "monitoring.yaml, alert_min_expected); empty when none",
            "text",
        ),
        _c("signals_in_month", "number of signals of the chart in the month", "integer", "signals"),
        _c(
            "chart_volume",
            "patients (spells) in the chart's 12-month window",
            "integer",
            "patients",
            True,
        ),
        _c("detector", "alert detector (component) that signalled", "text"),
        _c("risk_model", "risk model of the charts", "text"),
    ),
    "mortality.csv": (
        _TRUST,
        _GROUP,
        _c("observed", "deaths in the 12 months", "integer", "deaths", True),
        _c("expected", "expected deaths (risk model)", "number", "deaths"),
        _c("ratio", "observed / expected (empty when expected is 0)", "number", "ratio", True),
        _c("lower95", "lower 95% funnel limit of the ratio", "number", "ratio"),
        _c(
            "upper95",
            "upper 95% funnel limit (empty if infinite: see infinite_note)",
            "number",
            "ratio",
        ),
        _c("lower998", "lower 99.8% funnel limit of the ratio", "number", "ratio"),
        _c(
            "upper998",
            "upper 99.8% funnel limit (empty if infinite: see infinite_note)",
            "number",
            "ratio",
        ),
        _c(
            "banding",
            "higher than expected, as expected or lower than expected (99.8% limits)",
            "text",
        ),
        _INFINITE_NOTE,
        _c("spells", "spells (patients) in the 12 months", "integer", "patients", True),
        _c(
            "z",
            "z-score of the ratio before overdispersion adjustment",
            "number",
            "standard deviations",
        ),
        _c(
            "z_adjusted", "z-score after overdispersion adjustment", "number", "standard deviations"
        ),
        _c("phi", "overdispersion factor of the diagnosis group", "number", "ratio"),
        _c("tau2", "additive between-trust variance of the group", "number"),
        _c("previous_observed", "deaths in the previous 12 months", "integer", "deaths", True),
        _c("previous_expected", "expected deaths in the previous 12 months", "number", "deaths"),
        _c("previous_ratio", "previous 12 months' observed / expected", "number", "ratio", True),
        _c("previous_banding", "previous 12 months' banding", "text"),
        _c("persistent", "outlier this year and last (Keogh selection)", "boolean"),
        _c("palliative_rate", "share of spells coded palliative", "number", "proportion"),
        _c(
            "palliative_death_rate",
            "share of deaths coded palliative",
            "number",
            "proportion",
            True,
        ),
        _c("mean_comorbidity", "mean Charlson-style comorbidity index", "number", "index"),
        _c(
            "dq_palliative_rate_quarter",
            "palliative coding rate in the run's quarter",
            "number",
            "proportion",
        ),
        _c(
            "dq_palliative_death_rate_quarter",
            "palliative share of deaths in the run's quarter",
            "number",
            "proportion",
            True,
        ),
        _c(
            "dq_mean_comorbidity_quarter",
            "mean comorbidity index in the run's quarter",
            "number",
            "index",
        ),
        _c(
            "dq_palliative_death_rate_change_z",
            "adjusted z of the change in palliative share of deaths since last quarter",
            "number",
            "standard deviations",
        ),
        _c(
            "dq_mean_comorbidity_change_z",
            "adjusted z of the change in mean comorbidity since last quarter",
            "number",
            "standard deviations",
        ),
        _c("dq_sudden_change_12m", "coding measures with a sudden change in the 12 months", "text"),
    ),
    "bands.csv": (
        _TRUST,
        _c("trust_name", "name of the trust", "text"),
        _c("region", "NHS region (QSG report)", "text"),
        _c(
            "applicable",
            "indicators applicable to the trust and used in banding",
            "integer",
            "indicators",
        ),
        _c("risks", "indicators flagged risk", "integer", "indicators"),
        _c("elevated_risks", "indicators flagged elevated_risk", "integer", "indicators"),
        _c("score", "points: 1 per risk, 2 per elevated risk", "number", "points"),
        _c("max_score", "2 x applicable", "number", "points"),
        _c("proportion_score", "score / max_score", "number", "proportion"),
        _c(
            "band", "priority band 1 (inspect first) to 6, recently_inspected or not_banded", "text"
        ),
        _c(
            "band_reason",
            "why the band: score, special_measures, recently_inspected, too_few_indicators",
            "text",
        ),
        *(
            _c(
                f"p_band_{b}",
                f"probability of band {b} over resampled scorings",
                "number",
                "probability",
            )
            for b in range(1, 7)
        ),
        _c("previous_band", "last quarter's band", "text"),
        _c("movement", "up, down, same or new", "text"),
    ),
    "cusum_paths.csv": (
        _TRUST,
        _GROUP,
        _c("month", "month of the chart", "month"),
        _c("cusum", "chart value at the month's end", "number"),
        _c("threshold", "the chart's threshold h", "number"),
        _c("observed", "deaths in the month", "integer", "deaths", True),
        _c("expected", "expected deaths in the month", "number", "deaths"),
        _c("signal", "the chart signalled in the month", "boolean"),
    ),
    "explanations.csv": (
        _TRUST,
        _INDICATOR,
        _c("domain", "CQC key question", "text"),
        _c("points", "points the flag adds to the score", "integer", "points"),
        _c("z_adjusted", "adjusted z of the flag", "number", "standard deviations"),
        _c("rank", "rank of the indicator among the trust's drivers (1 = strongest)", "integer"),
    ),
    "excluded_indicators.csv": (
        _INDICATOR,
        _c("applicable", "trusts with an applicable value", "integer", "trusts"),
        _c("in_scope", "trusts the indicator applies to", "integer", "trusts"),
        _c("coverage", "applicable / in_scope", "number", "proportion"),
        _c(
            "min_coverage",
            "minimum national coverage for banding (catalogue)",
            "number",
            "proportion",
        ),
        _c("reason", "why the indicator is left out of banding", "text"),
    ),
    "sources.csv": (
        _c("source", "publisher feed", "text"),
        _INDICATOR,
        _c("status", "ok, missing or late", "text"),
        _c("reason", "why missing or late", "text"),
        _c("file", "feed file read", "text"),
        _c("sha256", "sha256 of the feed file", "text"),
        _c("latest_period", "latest period in the feed", "text"),
        _c("provisional", "months used that the publisher marks provisional", "text"),
    ),
    "staffing_wards.csv": (
        _TRUST,
        _c("ward_code", "ward code", "text"),
        _c("ward_name", "ward name", "text"),
        _c("months", "ward-months with planned registered-nurse hours", "integer", "months"),
        _c("months_under_90", "months with registered-nurse fill under 90%", "integer", "months"),
        _c("share_under_90", "months_under_90 / months", "number", "proportion"),
        _c("rn_fill", "registered-nurse fill rate: actual / planned hours", "number", "proportion"),
        _c("ward_months", "ward-months in the quarter", "integer", "months"),
        _c("mean_fill_rate", "mean fill rate", "number", "proportion"),
        _c("frequently_under_90", "under 90% fill in enough months to be listed", "boolean"),
    ),
    "band_history.csv": (
        _TRUST,
        _c("quarter", "quarter", "text"),
        _c("band", "band in that quarter", "text"),
    ),
    "quarantine.csv": (
        _c("file", "input file of the bad row", "text"),
        _c("row", "row number in the file", "integer"),
        _c("column", "column that broke the rule", "text"),
        _c("rule", "input contract rule broken", "text"),
        _c("message", "what is wrong", "text"),
        _TRUST,
        _INDICATOR,
        _c("period_start", "indicators.csv period start", "date"),
        _c("period_end", "indicators.csv period end", "date"),
        _c("spell_id", "spells.parquet spell id", "text"),
        _c("ward_code", "staffing.csv ward", "text"),
        _c("month", "staffing.csv month", "month"),
        _c("staff_group", "staffing.csv staff group", "text"),
        _c("shift", "staffing.csv shift", "text"),
        _c("received_date", "intelligence.csv date received", "date"),
        _c("source", "intelligence.csv source", "text"),
        _c("inspection_date", "inspections.csv inspection date", "date"),
    ),
    "data_dictionary.csv": (
        _c("file", "published file", "text"),
        _c("column", "column of the file", "text"),
        _c("meaning", "what the column holds", "text"),
        _c("unit", "unit of the values (empty for codes and labels)", "text"),
        _c("type", "text, integer, number, boolean, month (YYYY-MM) or date", "text"),
        _c(
            "may_hold_small_numbers",
            "the column may hold (or reveal) a patient count of 1 to 4",
            "boolean",
        ),
    ),
}

#: the columns of the data dictionary itself
DICTIONARY_COLUMNS = ["file", "column", "meaning", "unit", "type", "may_hold_small_numbers"]


def column_docs(file: str) -> dict[str, ColumnDoc]:
    """The documented columns of a published file, by name (empty for an unknown file)."""
    return {d.column: d for d in PUBLISHED_COLUMNS.get(file, ())}


def data_dictionary(columns: Mapping[str, Iterable[str]]) -> pd.DataFrame:
    """``data_dictionary.csv`` for the published files' actual columns.

    Parameters
    ----------
    columns : mapping
        File name -> its columns, in file order (what the run wrote).

    Returns
    -------
    DataFrame
        :data:`DICTIONARY_COLUMNS`, one row per file x column, files in name order.

    Raises
    ------
    OutputContractError
        When a published column has no entry in :data:`PUBLISHED_COLUMNS` (rule
        ``undocumented_column``): every published column is documented, or nothing is published.
    """
    rows, missing = [], []
    for file in sorted(columns):
        docs = column_docs(file)
        for column in columns[file]:
            doc = docs.get(str(column))
            if doc is None:
                missing.append(
                    Violation(
                        file=file,
                        rule="undocumented_column",
                        column=str(column),
                        message="column has no entry in output_contracts.PUBLISHED_COLUMNS",
                    )
                )
                continue
            rows.append(
                {
                    "file": file,
                    "column": doc.column,
                    "meaning": doc.meaning,
                    "unit": doc.unit,
                    "type": doc.type,
                    "may_hold_small_numbers": doc.may_hold_small_numbers,
                }
            )
    if missing:
        raise OutputContractError(missing)
    return pd.DataFrame.from_records(rows, columns=DICTIONARY_COLUMNS)


def blank_infinities(frame: pd.DataFrame, note_column: str = "infinite_note") -> pd.DataFrame:
    """A copy of ``frame`` with every infinite number written as an empty cell and the reason in
    ``note_column`` (created when absent; empty where the row had none), so no CSV holds ``inf``.

    Infinite values are legitimate in memory (a funnel limit of a cell expecting almost no
    deaths, the z of zero events on a log scale: see the module docstring); a spreadsheet cannot
    read ``inf``, and "infinite" is said in words instead.
    """
    out = frame.copy()
    notes = [[] for _ in range(len(out))]
    for column in out.columns:
        series = out[column]
        if not pd.api.types.is_float_dtype(series.dtype):
            continue
        values = series.to_numpy(dtype=float)
        bad = np.isinf(values)
        if not bad.any():
            continue
        for i in np.flatnonzero(bad):
            sign = "+" if values[i] > 0 else "-"
            notes[i].append(f"{column} {sign}infinite{_INFINITE_WHY.get(column, '')}")
        out[column] = np.where(bad, np.nan, values)
    text = ["; ".join(n) for n in notes]
    if note_column in out.columns:
        old = out[note_column].fillna("").astype(str).to_numpy()
        text = ["; ".join(x for x in (o, t) if x) for o, t in zip(old, text, strict=True)]
    out[note_column] = text
    return out


#: why a column can be infinite (the reason written in ``infinite_note``)
_INFINITE_WHY = {
    "upper95": " (expected deaths too few for a finite funnel limit)",
    "upper998": " (expected deaths too few for a finite funnel limit)",
    "lower95": " (expected deaths too few for a finite funnel limit)",
    "lower998": " (expected deaths too few for a finite funnel limit)",
    "z": " (zero events on a log scale)",
    "z_adjusted": " (zero events on a log scale)",
}


__all__ = [
    "ADDED_COLUMNS",
    "ALERTS_COLUMNS",
    "ColumnDoc",
    "DICTIONARY_COLUMNS",
    "PUBLISHED_COLUMNS",
    "blank_infinities",
    "column_docs",
    "data_dictionary",
    "ALERT_WINDOW_MONTHS",
    "AlertPeriod",
    "BANDS_COLUMNS",
    "FLAGS_COLUMNS",
    "MORTALITY_COLUMNS",
    "OutputContractError",
    "OutputRule",
    "alert_period",
    "check_output",
    "check_outputs",
    "iter_output_rules",
    "output_rule_names",
    "output_rules",
    "output_schema",
    "validate_output",
    "validate_outputs",
]
