"""Small-number suppression for everything the reports derive from patient counts.

The rule (DESIGN.md section 6): any published count between 1 and 4 **patients** is suppressed
in reports and public tables; the analytic CSVs keep the true values. A count is shown as "<5"
when it is itself 1-4, and it must not be recoverable from anything else on a page either:

* **charts over time** (VLAD, CUSUM): a monthly step of the variable life-adjusted display is
  expected minus observed deaths in that month, so a month with 1-4 deaths gives the count away
  to anyone who knows (or can estimate) the month's expected deaths. :func:`safe_periods` merges
  consecutive months into periods whose deaths are 0 or at least 5, and the figures are drawn at
  the end of each period (:func:`safe_series`); a chart whose total is 1-4 is not drawn at all;
* **tables with a total** (``mortality.csv``: ``ALL`` is the sum of the trust's groups): one
  suppressed group could be recovered as ``ALL`` minus the others, so
  :func:`complementary_suppression` hides further groups (smallest first) until the hidden
  groups hold at least 5 deaths between them and are at least two;
* **indicators**: only counts of people are suppressed. :func:`counts_patients` says which
  indicators' ``observed`` counts patients (deaths, infections, never events, patients waiting)
  or people's cases (complaints, whistleblowing, concerns: soft intelligence), from
  ``models/reports/count_units.yaml``: a count of months, posts, uploads or alerts is not and
  is shown as is (suppressing it hides information and protects no one).

References
----------
NHS Digital, Hospital Episode Statistics analysis guide: small number suppression (counts of 1 to
7 suppressed in HES outputs; this service uses 1 to 4, DESIGN.md section 6). Office for National
Statistics, Disclosure control guidance for tables (primary and secondary suppression: a
suppressed cell must not be recoverable from the margins).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

#: the smallest and largest suppressed patient count (DESIGN.md section 6)
SMALL_COUNT_MIN = 1
SMALL_COUNT_MAX = 4
#: how a suppressed count is shown
SUPPRESSED_TEXT = "<5"
#: how a count hidden only so that a suppressed one cannot be worked out from a total is shown
COMPLEMENT_TEXT = "hidden"

#: which counts are of patients (configuration as data, beside the other model configs)
_UNITS_FILE = Path(__file__).resolve().parents[2] / "models" / "reports" / "count_units.yaml"


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float, else None (text, empty, NaN or inf)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def is_small_count(value: Any) -> bool:
    """True for a count of 1 to 4 (suppressed as "<5" wherever it is published)."""
    v = finite_float(value)
    return v is not None and SMALL_COUNT_MIN <= v <= SMALL_COUNT_MAX


def suppress_count(value: Any) -> str:
    """A published patient count: "<5" for 1 to 4, "" when missing, else the integer."""
    v = finite_float(value)
    if v is None:
        return ""
    if SMALL_COUNT_MIN <= v <= SMALL_COUNT_MAX:
        return SUPPRESSED_TEXT
    return f"{v:,.0f}"


# --- which counts are of patients -----------------------------------------------------------------


@dataclass(frozen=True)
class CountUnits:
    """What each indicator's ``observed`` counts (``count_units.yaml``)."""

    by_type: dict[str, str]
    by_derived_from: dict[str, str]
    by_indicator: dict[str, str]
    patient_units: frozenset[str]

    def unit(self, indicator_id: str, typ: str, derived_from: str = "") -> str:
        """The unit of ``observed``: the indicator's own entry, else its source's, else its type's."""
        if indicator_id in self.by_indicator:
            return self.by_indicator[indicator_id]
        if derived_from and derived_from in self.by_derived_from:
            return self.by_derived_from[derived_from]
        return self.by_type.get(typ, "none")


@cache
def load_count_units(path: Path | str | None = None) -> CountUnits:
    """The count units of the indicators (``count_units.yaml``), validated."""
    import yaml
    from pydantic import BaseModel, ConfigDict, ValidationError

    from surveillance.errors import ConfigError

    class _Units(BaseModel):
        model_config = ConfigDict(extra="forbid")
        patient_units: list[str]
        by_type: dict[str, str]
        by_derived_from: dict[str, str] = {}
        by_indicator: dict[str, str] = {}

    file = Path(path) if path is not None else _UNITS_FILE
    try:
        raw = _Units.model_validate(yaml.safe_load(file.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{file}: invalid count units:\n{exc}") from exc
    return CountUnits(
        by_type=dict(raw.by_type),
        by_derived_from=dict(raw.by_derived_from),
        by_indicator=dict(raw.by_indicator),
        patient_units=frozenset(raw.patient_units),
    )


def counts_patients(indicator_id: str, typ: str, derived_from: str = "") -> bool:
    """True when the indicator's ``observed`` is a count of patients (suppressed 1-4)."""
    units = load_count_units()
    return units.unit(indicator_id, typ, derived_from) in units.patient_units


# --- series over time: VLAD and CUSUM -----------------------------------------------------------


def safe_periods(deaths: ArrayLike) -> list[tuple[int, int]] | None:
    """Consecutive months merged into periods whose deaths are 0 or at least 5.

    Parameters
    ----------
    deaths : array of int
        Deaths per month, in time order.

    Returns
    -------
    list of (first, last) month positions (inclusive), covering every month in order; ``None``
    when the total is 1-4 (no grouping can hide it: the chart is not drawn).
    """
    d = np.nan_to_num(np.asarray(deaths, float), nan=0.0)
    total = float(d.sum())
    if is_small_count(total):
        return None
    periods: list[tuple[int, int]] = []
    start, running = 0, 0.0
    for i, v in enumerate(d):
        running += v
        if running == 0 or running > SMALL_COUNT_MAX:
            periods.append((start, i))
            start, running = i + 1, 0.0
    if start < len(d):
        # a small remainder (1-4 deaths) joins the periods before it until together they hold
        # 5 or more (a period of 0 deaths would not hide it); the total is not small, so this ends
        first = start
        while periods and d[first:].sum() <= SMALL_COUNT_MAX:
            first = periods.pop()[0]
        periods.append((first, len(d) - 1))
    return periods


@dataclass(frozen=True)
class SafeSeries:
    """A monthly chart path at the resolution :func:`safe_periods` allows.

    ``months`` are the periods' last months (``YYYY-MM``); ``labels`` name each period (one
    month, or ``2013-01 to 2013-03``); ``vlad`` and ``cusum`` are the values at the end of each
    period; ``note`` says how the months were grouped (empty when every month is shown).
    """

    months: list[str]
    labels: list[str]
    vlad: np.ndarray
    cusum: np.ndarray | None
    note: str


def safe_series(
    months: list[str],
    observed: ArrayLike,
    expected: ArrayLike,
    cusum: ArrayLike | None = None,
) -> SafeSeries | None:
    """The VLAD (cumulative expected - observed deaths) and the CUSUM at the end of each safe
    period (:func:`safe_periods`); ``None`` when the chart's total deaths are 1-4.

    Parameters
    ----------
    months : list of ``YYYY-MM``, in time order, one per row of ``observed``.
    observed, expected : deaths and expected deaths per month.
    cusum : the chart's value at the end of each month (optional).
    """
    o = np.nan_to_num(np.asarray(observed, float), nan=0.0)
    e = np.nan_to_num(np.asarray(expected, float), nan=0.0)
    periods = safe_periods(o)
    if periods is None:
        return None
    ends = [b for _, b in periods]
    vlad = np.cumsum(e - o)[ends]
    path = None if cusum is None else np.asarray(cusum, float)[ends]
    labels = [months[a] if a == b else f"{months[a]} to {months[b]}" for a, b in periods]
    grouped = sum(1 for a, b in periods if a != b)
    note = (
        ""
        if grouped == 0
        else f"Months are grouped into {len(periods)} periods so that no period shows 1 to 4 "
        "deaths (small-number suppression)."
    )
    return SafeSeries([months[b] for b in ends], labels, vlad, path, note)


# --- tables with a total ------------------------------------------------------------------------


def complementary_suppression(observed: dict[str, Any], total_key: str = "ALL") -> set[str]:
    """Keys whose counts must be hidden so that no count of 1-4 can be worked out from the total.

    ``observed`` maps each row (e.g. diagnosis group) to its count; ``total_key`` is the row that
    is the sum of the others. Returns the keys to hide besides the small counts themselves
    (primary suppression): the smallest remaining rows, until the hidden rows hold at least 5
    between them and are at least two. When that is impossible the total itself is hidden too.
    """
    parts = {k: finite_float(v) for k, v in observed.items() if k != total_key}
    small = {k for k, v in parts.items() if is_small_count(v)}
    if not small:
        return set()
    hidden = set(small)
    extra: set[str] = set()
    candidates = sorted(
        (k for k, v in parts.items() if k not in hidden and v is not None),
        key=lambda k: (parts[k], k),
    )

    def hidden_sum() -> float:
        return sum(parts[k] or 0.0 for k in hidden)

    while (len(hidden) < 2 or hidden_sum() <= SMALL_COUNT_MAX) and candidates:
        k = candidates.pop(0)
        hidden.add(k)
        extra.add(k)
    if (len(hidden) < 2 or hidden_sum() <= SMALL_COUNT_MAX) and total_key in observed:
        extra.add(total_key)
    return extra


__all__ = [
    "COMPLEMENT_TEXT",
    "SMALL_COUNT_MAX",
    "SMALL_COUNT_MIN",
    "SUPPRESSED_TEXT",
    "CountUnits",
    "SafeSeries",
    "complementary_suppression",
    "counts_patients",
    "is_small_count",
    "load_count_units",
    "safe_periods",
    "safe_series",
    "suppress_count",
]
