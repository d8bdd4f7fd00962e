"""``--quarantine``: set rows that break the input contracts aside and run on the rest.

DESIGN.md section 4: bad input is never silently dropped. Without ``--quarantine`` any violation
stops the run. With it, every row named by a row-level violation is removed from its table and
listed in ``<run>/quarantine.csv``: one line per quarantined input row with the file, the 1-based
data row, the column(s), rule(s) and message(s) it broke (several joined by ``"; "``) and the
row's key columns (:data:`KEY_COLUMNS`), so the publisher can find and fix it. File-level
violations (a missing file or column, an unreadable file, a file with no data rows) name no rows
and still stop the run, as does anything left after quarantining.

Removing rows can break other rows: a quarantined trust leaves its indicator rows with an unknown
trust, a quarantined month leaves its monthly series short. The check is therefore repeated on
the cleaned bundle and the new offenders quarantined too (each round with its own rule), until
the bundle is clean or :data:`MAX_ROUNDS` rounds have passed. Row numbers always refer to the
file as read (not to the table after earlier rounds removed rows).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from surveillance.errors import ContractError, Violation

if TYPE_CHECKING:  # pragma: no cover
    from surveillance.bundle import Bundle

#: the columns that identify a row of each bundle file (DESIGN.md section 4).
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "trusts": ("trust_code",),
    "indicators": ("trust_code", "indicator_id", "period_start", "period_end"),
    "spells": ("spell_id", "trust_code"),
    "staffing": ("trust_code", "ward_code", "month", "staff_group", "shift"),
    "intelligence": ("trust_code", "received_date", "source"),
    "inspections": ("trust_code", "inspection_date"),
}
#: the key columns of quarantine.csv: the union of :data:`KEY_COLUMNS` in a fixed order.
KEY_ORDER: tuple[str, ...] = tuple(dict.fromkeys(c for keys in KEY_COLUMNS.values() for c in keys))
QUARANTINE_COLUMNS: list[str] = ["file", "row", "column", "rule", "message", *KEY_ORDER]
MAX_ROUNDS = 10


@dataclass
class Quarantine:
    """A bundle split into the rows a run may use and the rows set aside."""

    bundle: Bundle
    rows: pd.DataFrame  # quarantine.csv, one line per quarantined input row
    violations: list[Violation] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Number of input rows set aside."""
        return len(self.rows)


def file_level(violations: Iterable[Violation]) -> list[Violation]:
    """Violations that name no rows: they cannot be quarantined and stop the run."""
    return [v for v in violations if not v.rows]


def _table_name(bundle: Bundle, file: str) -> str:
    for name, path in bundle.paths.items():
        if Path(path).name == file:
            return name
    return Path(file).stem


def _key_text(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series.dt.strftime("%Y-%m-%d").fillna("")
    return series.astype("string").fillna("").astype(object)


def split_bundle(
    bundle: Bundle,
    violations: Iterable[Violation],
    row_ids: dict[str, np.ndarray] | None = None,
) -> tuple[Bundle, pd.DataFrame]:
    """Remove the rows named by ``violations`` from ``bundle``; return (clean bundle, records).

    ``row_ids`` maps a table to the original 1-based row number of each of its current rows
    (after earlier rounds removed some); by default row ``i`` is row ``i``. Raises
    :class:`ContractError` with the file-level violations if there are any.
    """
    violations = list(violations)
    unrowed = file_level(violations)
    if unrowed:
        raise ContractError(unrowed)
    by_row: dict[tuple[str, int], list[Violation]] = {}
    for v in violations:
        table = _table_name(bundle, v.file)
        for row in v.rows:
            by_row.setdefault((table, int(row)), []).append(v)
    records = []
    cleaned = bundle
    for table in sorted({t for t, _ in by_row}):
        frame = bundle.table(table)
        if frame is None:
            continue
        ids = (row_ids or {}).get(table)
        if ids is None:
            ids = np.arange(1, len(frame) + 1)
        rows = sorted(r for t, r in by_row if t == table and 0 < r <= len(frame))
        positions = np.asarray([r - 1 for r in rows], dtype=int)
        keys = [c for c in KEY_COLUMNS.get(table, ()) if c in frame.columns]
        key_values = {c: _key_text(frame[c].iloc[positions]).tolist() for c in keys}
        for i, (row, pos) in enumerate(zip(rows, positions, strict=True)):
            broken = by_row[(table, row)]
            record = {
                "file": broken[0].file,
                "row": int(ids[pos]),
                "column": "; ".join(dict.fromkeys(v.column or "" for v in broken)),
                "rule": "; ".join(dict.fromkeys(v.rule for v in broken)),
                "message": "; ".join(dict.fromkeys(v.message for v in broken)),
            }
            record.update({c: key_values[c][i] for c in keys})
            records.append(record)
        keep = np.ones(len(frame), dtype=bool)
        keep[positions] = False
        cleaned = replace(cleaned, **{table: frame[keep].reset_index(drop=True)})
        if row_ids is not None:
            row_ids[table] = ids[keep]
    out = pd.DataFrame.from_records(records, columns=QUARANTINE_COLUMNS)
    return cleaned, out.fillna("")


def quarantine_bundle(bundle: Bundle, quarter: str, catalogue: pd.DataFrame) -> Quarantine:
    """Check ``bundle`` and set every offending row aside (see the module docstring).

    Raises
    ------
    ContractError
        For file-level violations, or when the bundle is still not clean after
        :data:`MAX_ROUNDS` rounds.
    """
    from surveillance.contracts import TABLES, validate_bundle

    row_ids: dict[str, np.ndarray] = {}
    numbers = dict(getattr(bundle, "row_numbers", {}) or {})
    for name in TABLES:
        frame = bundle.table(name)
        if frame is not None:
            # file row numbers (a CSV with blank lines), else position + 1
            known = numbers.get(name)
            ids = np.arange(1, len(frame) + 1)
            if known is not None:
                ids[: min(len(known), len(ids))] = known[: len(ids)]
                tail = len(ids) - len(known)
                if tail > 0:
                    ids[len(known) :] = (known[-1] if len(known) else 0) + np.arange(1, tail + 1)
            row_ids[name] = ids
    # the rounds below check positions in the shrinking tables; row_ids maps them to the file
    current = replace(bundle, row_numbers={}) if numbers else bundle
    found: list[Violation] = []
    parts: list[pd.DataFrame] = []
    for _ in range(MAX_ROUNDS):
        violations = validate_bundle(current, quarter, catalogue, max_rows=None)
        if not violations:
            break
        found += violations
        current, records = split_bundle(current, violations, row_ids)
        parts.append(records)
    else:
        remaining = validate_bundle(current, quarter, catalogue)
        if remaining:
            raise ContractError(remaining)
    rows = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    )
    rows = rows.sort_values(["file", "row"], kind="mergesort").reset_index(drop=True)
    return Quarantine(current, rows, found)
