"""Deterministic writers: same frame -> same bytes (fixed float formats, order, line endings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv


def format_fixed(values: pd.Series | np.ndarray, decimals: int) -> pd.Series:
    """Floats as fixed-decimal text (``%.{decimals}f``, half away from zero); NaN as missing.

    Vectorised with Arrow compute: the value is scaled to an integer, cast to text, zero-padded
    and split at the decimal point.
    """
    index = values.index if isinstance(values, pd.Series) else None
    arr = np.asarray(values, dtype=float)
    missing = ~np.isfinite(arr)
    scaled = np.floor(np.abs(np.where(missing, 0.0, arr)) * 10.0**decimals + 0.5).astype(np.int64)
    text = pa.array(scaled).cast(pa.string())
    if decimals > 0:
        text = pc.utf8_lpad(text, decimals + 1, "0")
        whole = pc.utf8_slice_codeunits(text, 0, -decimals)
        frac = pc.utf8_slice_codeunits(text, -decimals, np.iinfo(np.int32).max)
        text = pc.binary_join_element_wise(whole, frac, ".")
    negative = pa.array((arr < 0) & (scaled > 0))
    text = pc.if_else(negative, pc.binary_join_element_wise("-", text, ""), text)
    text = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), text)
    return pd.Series(text.to_numpy(zero_copy_only=False), index=index, dtype=object)


def format_bool(values: pd.Series) -> pd.Series:
    return values.map({True: "True", False: "False"}).astype(object)


def format_date(values: pd.Series) -> pd.Series:
    """ISO dates (YYYY-MM-DD); missing as empty."""
    dt = pd.to_datetime(values)
    return dt.dt.strftime("%Y-%m-%d").fillna("").astype(object)


def _as_text(series: pd.Series) -> pa.Array:
    if pd.api.types.is_bool_dtype(series.dtype):
        return pa.array(series.map({True: "True", False: "False"}).to_numpy(object), pa.string())
    if pd.api.types.is_integer_dtype(series.dtype):
        return pa.array(series.to_numpy()).cast(pa.string())
    if pd.api.types.is_float_dtype(series.dtype):
        raise TypeError(f"column {series.name!r}: format floats with format_fixed first")
    return pa.array(series.astype(object).where(series.notna(), None).to_numpy(object), pa.string())


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write an already formatted frame (text, ints, bools) as UTF-8 CSV with ``\n`` endings.

    Arrow's writer with no quoting: it refuses (raises) any value with a comma, quote or newline,
    so a bad value can never shift columns silently. Empty strings and missing values are empty.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_arrays(
        [_as_text(frame[c]) for c in frame.columns], names=[str(c) for c in frame.columns]
    )
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    tmp.replace(path)
    return path


def _round(obj: Any, digits: int = 6) -> Any:
    if isinstance(obj, float | np.floating):
        return round(float(obj), digits)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, dict):
        return {str(k): _round(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_round(v, digits) for v in obj]
    return obj


def write_json(payload: dict[str, Any], path: Path) -> Path:
    """Sorted keys, floats rounded to 6 decimals, trailing newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_round(payload), indent=1, sort_keys=True) + "\n")
    return path
