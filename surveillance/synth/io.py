"""Deterministic writers: same frame -> same bytes (fixed float formats, order, line endings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def format_fixed(values: pd.Series, decimals: int) -> pd.Series:
    """Floats as fixed-decimal strings; missing values as empty strings."""
    arr = values.to_numpy(dtype=float)
    out = np.char.mod(f"%.{decimals}f", np.nan_to_num(arr, nan=0.0)).astype(object)
    out[np.isnan(arr)] = ""
    return pd.Series(out, index=values.index)


def format_bool(values: pd.Series) -> pd.Series:
    return values.map({True: "True", False: "False"}).astype(object)


def format_date(values: pd.Series) -> pd.Series:
    """ISO dates (YYYY-MM-DD); missing as empty."""
    dt = pd.to_datetime(values)
    return dt.dt.strftime("%Y-%m-%d").fillna("").astype(object)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` (already formatted: strings, ints, bools) as UTF-8 CSV with ``\\n``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_csv(tmp, index=False, lineterminator="\n", na_rep="")
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
