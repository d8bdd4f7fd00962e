"""Spells -> compact integer arrays (covariate pattern codes, chart keys, months).

Everything downstream (risk-model fit, prediction, ratios, CUSUM) works on these arrays, so a
national file (45 million spells) is encoded once and the wide frame can be dropped. Bad values
raise :class:`~surveillance.errors.ContractError` naming the column, the rows and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from surveillance.errors import ContractError, Violation
from surveillance.mortality.spec import COVARIATE_NAMES, RiskSpec

SPELL_COLUMNS = (
    "spell_id",
    "trust_code",
    "admission_date",
    "discharge_date",
    "diagnosis_group",
    "age",
    "sex",
    "admission_method",
    "comorbidity",
    "deprivation_quintile",
    "palliative_care",
    "died_in_hospital",
    "died_30d",
)
_STRING_COLUMNS = ("spell_id", "trust_code", "diagnosis_group", "sex", "admission_method")
FILE = "spells"


def read_spells(
    path: Path | str,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
    date_column: str = "discharge_date",
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Read ``spells.parquet`` memory-frugally: string codes as categoricals, dates as datetime64.

    ``start``/``end`` (inclusive days) filter on ``date_column`` while reading.
    """
    import pyarrow.dataset as ds

    cols = list(columns) if columns is not None else [c for c in SPELL_COLUMNS if c != "spell_id"]
    dict_cols = [c for c in _STRING_COLUMNS if c in cols and c != "spell_id"]
    fmt = ds.ParquetFileFormat(read_options={"dictionary_columns": dict_cols})
    dataset = ds.dataset(str(path), format=fmt)
    flt = None
    field = ds.field(date_column)
    typ = dataset.schema.field(date_column).type
    if start is not None:
        flt = field >= _scalar(start, typ)
    if end is not None:
        cond = field <= _scalar(end, typ)
        flt = cond if flt is None else flt & cond
    table = dataset.to_table(columns=cols, filter=flt)
    return table.to_pandas(date_as_object=False, self_destruct=True, split_blocks=True)


def _scalar(value: pd.Timestamp | str, typ: object) -> object:
    import pyarrow as pa

    ts = pd.Timestamp(value)
    if pa.types.is_date(typ):
        return pa.scalar(ts.date(), type=typ)
    if pa.types.is_timestamp(typ):
        return pa.scalar(ts.to_datetime64(), type=typ)
    return pa.scalar(ts.strftime("%Y-%m-%d"))


def fail(column: str, mask: np.ndarray, rule: str, message: str) -> None:
    """Raise a ContractError for the rows where ``mask`` is true (1-based data rows)."""
    rows = tuple(int(r) + 1 for r in np.flatnonzero(mask)[:50])
    raise ContractError([Violation(FILE, rule, message, column=column, rows=rows)])


def require_columns(spells: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> None:
    missing = [c for c in columns if c not in spells.columns]
    if missing:
        raise ContractError(
            [Violation(FILE, "required_columns", f"missing column(s) {missing}", column=missing[0])]
        )


def factorize_sorted(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (int32) into the sorted unique string values actually present."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = np.asarray(series.cat.categories.astype(str))
        codes = series.cat.codes.to_numpy()
        if (codes < 0).any():
            fail(series.name, codes < 0, "not_null", "missing code")
        used = np.bincount(codes, minlength=len(cats)) > 0
        kept = np.flatnonzero(used)
        order = kept[np.argsort(cats[kept], kind="stable")]
        remap = np.full(len(cats), -1, dtype=np.int32)
        remap[order] = np.arange(len(order), dtype=np.int32)
        return remap[codes], cats[order]
    if series.isna().any():
        fail(series.name, series.isna().to_numpy(), "not_null", "missing code")
    # via a categorical: dictionary-encodes Arrow strings without building Python strings
    return factorize_sorted(series.astype("category"))


def codes_for(series: pd.Series, levels: list[str] | np.ndarray) -> np.ndarray:
    """Codes (int32) of ``series`` in the given ``levels`` (-1 where not a level)."""
    levels = [str(v) for v in levels]
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = series.cat.categories.astype(str)
        lookup = pd.Index(levels).get_indexer(cats).astype(np.int32)
        codes = series.cat.codes.to_numpy()
        out = np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1)
        return out.astype(np.int32)
    return codes_for(series.astype("category"), levels)


def as_bool(spells: pd.DataFrame, column: str) -> np.ndarray:
    s = spells[column]
    if s.dtype == bool:
        return s.to_numpy()
    if str(s.dtype) == "boolean" or s.dtype == object or pd.api.types.is_numeric_dtype(s):
        if s.isna().any():
            fail(column, s.isna().to_numpy(), "not_null", "must be true/false")
        values = s.to_numpy()
        if s.dtype == object:
            text = pd.Series(values).astype(str).str.lower()
            ok = text.isin(["true", "false", "1", "0"]).to_numpy()
            if not ok.all():
                fail(column, ~ok, "boolean", "must be true/false")
            return text.isin(["true", "1"]).to_numpy()
        values = values.astype(float)
        ok = np.isin(values, (0.0, 1.0))
        if not ok.all():
            fail(column, ~ok, "boolean", "must be true/false")
        return values == 1.0
    fail(column, np.ones(len(s), bool), "boolean", f"unsupported dtype {s.dtype}")
    raise AssertionError  # unreachable


def as_dates(spells: pd.DataFrame, column: str) -> np.ndarray:
    """Days since 1970-01-01 (int64)."""
    s = spells[column]
    if not pd.api.types.is_datetime64_any_dtype(s):
        s = pd.to_datetime(s, errors="coerce")
    if s.isna().any():
        fail(column, s.isna().to_numpy(), "date", "missing or unparseable date (ISO 8601)")
    values = s.to_numpy()
    unit, count = np.datetime_data(values.dtype)
    per_day = {
        "D": 1,
        "h": 24,
        "m": 1440,
        "s": 86_400,
        "ms": 86_400_000,
        "us": 86_400_000_000,
        "ns": 86_400_000_000_000,
    }.get(unit)
    if per_day is None or count != 1:
        return values.astype("datetime64[D]").astype(np.int64).astype(np.int32)
    return (values.view(np.int64) // per_day).astype(np.int32)


def days_to_months(days: np.ndarray) -> np.ndarray:
    """Months since 1970-01 for day numbers (look-up over the range of days present)."""
    days = np.asarray(days)
    if days.size == 0:
        return days.astype(np.int32)
    lo, hi = int(days.min()), int(days.max())
    lut = np.arange(lo, hi + 1).astype("datetime64[D]").astype("datetime64[M]").astype(np.int32)
    return lut[days - lo]


def _banded(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Band codes; integer columns go through a look-up table (fast at 45 million rows)."""
    if np.issubdtype(values.dtype, np.integer) and values.size:
        lo, hi = int(values.min()), int(values.max())
        lut = band_codes(np.arange(lo, hi + 1, dtype=float), edges)
        return lut[values - lo]
    return band_codes(values.astype(float), edges)


def month_number(month: str | pd.Timestamp) -> int:
    """Months since 1970-01 of ``YYYY-MM`` or a timestamp."""
    p = pd.Period(month, freq="M")
    return (p.year - 1970) * 12 + p.month - 1


def month_label(number: int) -> str:
    return f"{1970 + number // 12:04d}-{number % 12 + 1:02d}"


def band_codes(values: np.ndarray, edges: list[float]) -> np.ndarray:
    return (np.searchsorted(np.asarray(edges, float), values, side="right") - 1).astype(np.int32)


def level_counts(spec: RiskSpec) -> np.ndarray:
    """Number of levels of each covariate, in :data:`COVARIATE_NAMES` order."""
    c = spec.covariates
    dep = len(c.deprivation.levels) + (1 if c.deprivation.missing_level else 0)
    month = 12 if c.admission_month.encoding == "month" else 4
    return np.array(
        [
            len(c.age_band.edges),
            len(c.sex.levels),
            len(c.admission_method.levels),
            len(c.comorbidity_band.edges),
            dep,
            month,
            spec.n_years,
            1 if c.palliative is None else 2,
        ],
        dtype=np.int64,
    )


def covariate_digits(
    spells: pd.DataFrame, spec: RiskSpec, end_month: int, admission_day: np.ndarray | None = None
) -> np.ndarray:
    """Per spell the level code of each covariate, shape (n, 8), int16 in COVARIATE_NAMES order.

    ``end_month`` (months since 1970-01) is the reference month (the quarter end): year index 0
    is the 12 months ending there, 1 the 12 before, ...; later admissions are clipped to 0,
    earlier to the oldest year. Without a palliative covariate its code is 0 (one level).
    """
    c = spec.covariates
    require_columns(
        spells,
        [
            c.age_band.source,
            c.sex.source,
            c.admission_method.source,
            c.comorbidity_band.source,
            c.deprivation.source,
            c.admission_month.source,
        ],
    )
    n = len(spells)
    out = np.empty((len(COVARIATE_NAMES), n), dtype=np.int16)  # returned transposed

    age = _numeric(spells[c.age_band.source])
    bad = _not_finite(age) | (age < c.age_band.edges[0])
    if bad.any():
        fail(c.age_band.source, bad, "range", f"age must be a number >= {c.age_band.edges[0]}")
    out[0] = _banded(age, c.age_band.edges)

    for j, cov in ((1, c.sex), (2, c.admission_method)):
        codes = codes_for(spells[cov.source], cov.levels)
        if (codes < 0).any():
            fail(cov.source, codes < 0, "allowed_values", f"must be one of {cov.levels}")
        out[j] = codes

    com = _numeric(spells[c.comorbidity_band.source])
    bad = _not_finite(com) | (com < c.comorbidity_band.edges[0])
    if bad.any():
        fail(c.comorbidity_band.source, bad, "range", "comorbidity index must be an integer >= 0")
    out[3] = _banded(com, c.comorbidity_band.edges)

    out[4] = _deprivation_codes(spells[c.deprivation.source], c.deprivation)

    if admission_day is None:
        admission_day = as_dates(spells, c.admission_month.source)
    adm_months = days_to_months(admission_day)
    month_of_year = adm_months % 12
    out[5] = month_of_year if c.admission_month.encoding == "month" else month_of_year // 3
    out[6] = np.clip((end_month - adm_months) // 12, 0, spec.n_years - 1)
    if c.palliative is None:
        out[7] = 0
    else:
        require_columns(spells, [c.palliative.source])
        out[7] = as_bool(spells, c.palliative.source)
    return out.T


def _numeric(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_integer_dtype(s) and not s.hasnans:
        return s.to_numpy()
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _not_finite(values: np.ndarray) -> np.ndarray:
    if np.issubdtype(values.dtype, np.integer):
        return np.zeros(values.shape, bool)
    return ~np.isfinite(values)


def _deprivation_codes(s: pd.Series, cov) -> np.ndarray:
    levels = [str(v) for v in cov.levels]
    if pd.api.types.is_numeric_dtype(s):
        values = s.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(values)
        level_values = np.array([float(v) for v in levels])
        whole = np.nan_to_num(values, nan=-1.0)
        if whole.size == 0:
            return np.zeros(0, dtype=np.int32)
        if np.all(whole == np.round(whole)) and (level_values == np.round(level_values)).all():
            ints = whole.astype(np.int64)
            lo, hi = min(int(ints.min()), 0), max(int(ints.max()), int(level_values.max()))
            lut = np.full(hi - lo + 1, -1, dtype=np.int32)
            lut[level_values.astype(np.int64) - lo] = np.arange(len(levels), dtype=np.int32)
            codes = lut[ints - lo]
        else:
            order = np.argsort(level_values)
            pos = np.clip(np.searchsorted(level_values[order], values), 0, len(levels) - 1)
            hit = level_values[order][pos] == values
            codes = np.where(hit, order[pos], -1).astype(np.int32)
    else:
        codes = codes_for(s, levels)
        missing = s.isna().to_numpy() | (s.astype(str).str.strip() == "").to_numpy()
    bad = (codes < 0) & ~missing
    if bad.any():
        fail(s.name, bad, "allowed_values", f"must be one of {levels} or empty")
    if missing.any():
        if not cov.missing_level:
            fail(s.name, missing, "not_null", "missing deprivation and no missing level in spec")
        codes = np.where(missing, len(levels), codes)
    return codes.astype(np.int32)


def pattern_index(digits: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Mixed-radix pattern number of each row of ``digits`` (int64)."""
    strides = np.cumprod(np.r_[1, sizes[::-1][:-1]])[::-1]
    out = np.zeros(len(digits), dtype=np.int64)
    for j, stride in enumerate(strides):
        out += digits[:, j].astype(np.int64) * int(stride)
    return out


def pattern_digits(patterns: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pattern_index`."""
    strides = np.cumprod(np.r_[1, sizes[::-1][:-1]])[::-1]
    return (patterns[:, None] // strides[None, :]) % sizes[None, :]


@dataclass
class EncodedSpells:
    """Spells as integer arrays (one entry per spell, input order)."""

    trust: np.ndarray  # int32 codes into ``trusts``
    trusts: np.ndarray  # sorted trust codes (str)
    group: np.ndarray  # int32 codes into ``groups``
    groups: np.ndarray  # sorted diagnosis groups (str)
    period_day: np.ndarray  # days since 1970 of the period date (discharge by default)
    period_month: np.ndarray  # months since 1970-01 of the period date
    admission_day: np.ndarray
    died: np.ndarray  # bool, the spec's outcome
    palliative: np.ndarray  # bool
    comorbidity: np.ndarray  # float


def encode_spells(spells: pd.DataFrame, outcome: str, period_date: str) -> EncodedSpells:
    """Encode the non-covariate columns (keys, dates, outcome, context)."""
    require_columns(
        spells,
        [
            "trust_code",
            "diagnosis_group",
            "admission_date",
            period_date,
            outcome,
            "palliative_care",
            "comorbidity",
        ],
    )
    trust, trusts = factorize_sorted(spells["trust_code"])
    group, groups = factorize_sorted(spells["diagnosis_group"])
    period_day = as_dates(spells, period_date)
    admission_day = as_dates(spells, "admission_date")
    if period_date == "discharge_date":
        bad = period_day < admission_day
        if bad.any():
            fail("discharge_date", bad, "order", "discharge_date before admission_date")
    return EncodedSpells(
        trust=trust,
        trusts=trusts,
        group=group,
        groups=groups,
        period_day=period_day,
        period_month=days_to_months(period_day),
        admission_day=admission_day,
        died=as_bool(spells, outcome),
        palliative=as_bool(spells, "palliative_care"),
        comorbidity=pd.to_numeric(spells["comorbidity"], errors="coerce").to_numpy(dtype=float),
    )
