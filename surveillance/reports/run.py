"""Read a finished run directory (DESIGN.md section 6) for the reports and the notebooks.

The four contract tables (``flags.csv``, ``alerts.csv``, ``mortality.csv``, ``bands.csv``) are
required and ``manifest.json`` is read when present; the extras the pipeline writes beside them (explanations, ward
staffing, band history, CUSUM paths) are optional and read when present. Codes are read as
strings, never coerced; a missing required column is a clear error naming the file and column.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from surveillance.contracts import OUTPUT_COLUMNS as CONTRACT_COLUMNS
from surveillance.errors import SurveillanceError

#: Required columns per contract file (DESIGN.md section 6), in contract order.

#: Optional extras: logical name -> (candidate file names, required columns).
EXTRA_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "explanations": (
        ("explanations.csv", "explanation.csv", "band_explanations.csv"),
        ("trust_code", "indicator_id"),
    ),
    "wards": (
        ("staffing_wards.csv", "wards.csv", "ward_staffing.csv"),
        ("trust_code", "ward_code"),
    ),
    "band_history": (("band_history.csv",), ("trust_code", "quarter", "band")),
    "cusum_paths": (
        ("cusum_paths.csv", "cusum_path.csv"),
        ("trust_code", "diagnosis_group", "cusum"),
    ),
    "excluded": (("excluded_indicators.csv",), ("indicator_id", "reason")),
    "sources": (("sources.csv",), ("source", "indicator_id", "status", "reason")),
}

_STRING_COLUMNS = {
    "trust_code",
    "trust_name",
    "region",
    "indicator_id",
    "domain",
    "type",
    "flag",
    "method",
    "diagnosis_group",
    "signal_month",
    "first_signal_month",
    "status",
    "banding",
    "band",
    "band_reason",
    "previous_band",
    "movement",
    "ward_code",
    "ward_name",
    "quarter",
    "month",
}


@dataclass
class RunData:
    """Everything the reports need from one run directory."""

    directory: Path
    manifest: dict
    flags: pd.DataFrame
    alerts: pd.DataFrame
    mortality: pd.DataFrame
    bands: pd.DataFrame
    extras: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def quarter(self) -> str:
        """The manifest's quarter, else the quarter in the directory name (a staging directory
        such as ``.2013Q3.staging-x`` is rendered before its manifest is written)."""
        if self.manifest.get("quarter"):
            return str(self.manifest["quarter"])
        match = re.search(r"\d{4}Q[1-4]", self.directory.name)
        return match.group(0) if match else ""


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    # Read every column as text first so codes such as "001" or "NA" survive, then convert the
    # numeric columns explicitly.
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError as exc:
        raise SurveillanceError(
            f"{path}: file is empty (expected columns {list(required)})"
        ) from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SurveillanceError(f"{path}: missing required column(s) {missing}")
    for col in frame.columns:
        if col in _STRING_COLUMNS or col.endswith("_code") or col.endswith("_name"):
            continue
        converted = pd.to_numeric(frame[col], errors="coerce")
        # Keep a column as text when it holds non-numeric values (e.g. a free-text reason).
        if converted.notna().sum() == frame[col].notna().sum():
            frame[col] = converted
    return frame


def read_run(run_dir: Path | str) -> RunData:
    """Read a run directory: the four contract tables, the manifest and any known extras.

    Raises
    ------
    SurveillanceError
        When a required file or column is missing.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SurveillanceError(f"run directory {run_dir} does not exist")
    tables = {}
    for name, cols in CONTRACT_COLUMNS.items():
        path = run_dir / name
        if not path.is_file():
            raise SurveillanceError(f"{path}: required run output is missing")
        tables[name] = _read_csv(path, cols)
    # The pipeline renders the site before it writes the manifest (the manifest hashes the
    # reports), so the manifest is read when present.
    manifest_path = run_dir / "manifest.json"
    manifest: dict = {}
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SurveillanceError(f"{manifest_path}: not valid JSON ({exc})") from exc
    extras: dict[str, pd.DataFrame] = {}
    for logical, (candidates, cols) in EXTRA_TABLES.items():
        for candidate in candidates:
            path = run_dir / candidate
            if path.is_file():
                extras[logical] = _read_csv(path, cols)
                break
    return RunData(
        directory=run_dir,
        manifest=manifest,
        flags=tables["flags.csv"],
        alerts=tables["alerts.csv"],
        mortality=tables["mortality.csv"],
        bands=tables["bands.csv"],
        extras=extras,
    )
