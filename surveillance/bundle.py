"""Read an input bundle (DESIGN.md section 4) without modifying it.

Each table is ``<name>.csv`` or ``<name>.parquet``. CSV cells are read as text (codes stay strings,
``"NA"`` stays the text ``NA``, an empty cell is the empty string ``""``); Parquet keeps its own
types (a null stays missing, ``""`` stays an empty string; the spells' code columns in
:data:`DICTIONARY_COLUMNS` arrive as categoricals of their strings). Columns whose declared kind is a number,
date or boolean are then converted only when every non-empty cell parses exactly: a column with any
cell that does not parse is left as text so that :func:`surveillance.contracts.validate_bundle` can
name the offending rows. Nothing is dropped, rounded or guessed here.

Row numbers used across the service are 1-based data rows: data row 1 is the first row after the
header (line 2 of a CSV file), and data row N is on line N + 1 of its CSV file. A blank line (which
the reader skips) or a quoted value spanning lines keeps that true: rows after it are numbered by
the line they start on (:attr:`Bundle.row_numbers`), so a message never points one line off.

CSV layout (:func:`csv_layout`, one streaming pass before parsing): the header may not repeat a
column name (``duplicate_column``, naming the column as the file spells it, not as a reader would
rename it); a header that is one column holding ``;``, a tab or ``|`` is a file in another
delimiter (``file_unreadable``); every row must have as many fields as the header
(``file_unreadable`` naming the line: a row with a field too many or too few would shift values
into the wrong columns).

Conversions (one rule for every column): a value is read without a note when it is stored as its
column's kind (DESIGN.md section 4) in its documented form: text for codes; a whole number; a
number; ``YYYY-MM-DD`` (a Parquet date, or a timestamp at midnight); ``true`` / ``false`` (any
case, or a Parquet boolean). A value stored another way is accepted only when the conversion is
**lossless** (the value read back gives the stored value again), and then every such conversion
is recorded as an :class:`InputNote` (``converted``: file, column, what to what, how many rows),
printed by ``validate`` and ``run`` and written to the run's ``manifest.json`` (``input_notes``):

- integers in a code or text column become their decimal text (a numeric spell id ``123`` is the
  code ``"123"``);
- text holding a number, a date or a boolean in a Parquet column of that kind is parsed;
- a floating-point column of a whole-number kind (age, comorbidity, deprivation quintile) whose
  values are all whole, or text such as ``42.0``, becomes whole numbers;
- integers in a number column become floating point (exact below 2**53);
- ``1`` / ``0`` (text, or Parquet integers) in a boolean column become true / false.

Everything else is refused by the contracts, naming file, rows, column and rule: floating-point
codes (``not_text``: ``1.0`` or ``1.5`` is not an id), fractions in a whole-number column
(``not_integer``: age ``42.5``), other integers in a boolean column (``not_boolean``), dates
that are not ``YYYY-MM-DD`` or carry a time of day (``not_date``, ``time_in_date``).

Region names (``trusts.region``): leading, trailing and repeated spaces are removed, and names
that differ only in case are written as the spelling most trusts use (ties: the first in the
file), each with a ``normalised`` note, so one region is never split in two in bands and QSG
reports.

Text encoding and size limits (CSV): files are UTF-8. A UTF-8 byte-order mark at the start of a file
is accepted and stripped (spreadsheet programs write one). Any other encoding (Latin-1,
Windows-1252, UTF-16) is rejected as ``file_unreadable`` naming the file, the byte offset and the
line of the first byte that is not UTF-8. No line may be longer than :data:`MAX_LINE_BYTES` (so no
field either): a bundle row is well under a kilobyte, and a runaway line (a missing closing quote,
a binary file renamed ``.csv``) is rejected as ``file_unreadable`` naming the line, after reading
it in :data:`_SCAN_CHUNK_BYTES` chunks, never whole, so it cannot exhaust memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from surveillance.contracts import COLUMN_KINDS, OPTIONAL_TABLES, REQUIRED_TABLES, TABLES
from surveillance.errors import ContractError, Violation

#: longest CSV line (hence field) accepted, in bytes; see the module docstring.
MAX_LINE_BYTES = 1 << 20
_SCAN_CHUNK_BYTES = 1 << 20
_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


#: column kinds read as text (codes, names, enumerations, months)
TEXT_KINDS = frozenset({"code", "text", "enum", "month"})
_KIND_WORDS = {
    "code": "text",
    "text": "text",
    "enum": "text",
    "month": "text",
    "int": "whole numbers",
    "float": "numbers",
    "date": "dates",
    "bool": "true/false",
}


@dataclass(frozen=True)
class InputNote:
    """Something the reader accepted but changed, recorded for the manifest and the run summary.

    ``note``: ``converted`` (a lossless conversion, see the module docstring), ``normalised``
    (a region spelling), ``unknown_value`` (a value the models do not know, e.g. a diagnosis
    group outside the reference list). ``rows``: how many rows it concerns (0: the whole column).
    """

    file: str
    column: str
    note: str
    message: str
    rows: int = 0

    def __str__(self) -> str:
        count = f" ({self.rows:,} row(s))" if self.rows else ""
        return f"{self.file} column '{self.column}': [{self.note}] {self.message}{count}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "column": self.column,
            "note": self.note,
            "message": self.message,
            "rows": self.rows,
        }


def parquet_conversions(schema: pa.Schema, name: str, file: str) -> list[InputNote]:
    """The conversions (module docstring) a Parquet file's column types imply, type by type."""
    notes = []
    for column, kind in COLUMN_KINDS[name].items():
        if column not in schema.names:
            continue
        t = schema.field(column).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        text = pa.types.is_string(t) or pa.types.is_large_string(t)
        stored = None
        if kind in TEXT_KINDS and pa.types.is_integer(t):
            stored = "integers"
        elif kind not in TEXT_KINDS and text:
            stored = "text"
        elif kind == "int" and pa.types.is_floating(t):
            stored = "floating point (all whole)"
        elif kind == "float" and pa.types.is_integer(t):
            stored = "integers"
        elif kind == "bool" and pa.types.is_integer(t):
            stored = "integers 1/0"
        if stored is not None:
            notes.append(
                InputNote(
                    file,
                    column,
                    "converted",
                    f"stored as {stored} ({t}), read as {_KIND_WORDS[kind]} (lossless)",
                )
            )
    return notes


_PLAIN_INTEGER = r"^[+-]?\d+$"


def text_conversions(frame: pd.DataFrame, name: str, file: str) -> list[InputNote]:
    """The conversions of a CSV file's text cells, value by value: ``1`` / ``0`` booleans and
    whole numbers not written as plain integers (``42.0``), each counted."""
    notes = []
    for column, kind in COLUMN_KINDS[name].items():
        if column not in frame.columns or not _is_text(frame[column]):
            continue
        series = frame[column].astype("string").str.strip()
        if kind == "bool":
            count = int(series.isin(["1", "0"]).fillna(False).sum())
            if count:
                notes.append(InputNote(file, column, "converted", "1/0 read as true/false", count))
        elif kind == "int":
            number = pd.to_numeric(series.where(series != "", None), errors="coerce")
            whole = (number.notna() & (number == number.round())).fillna(False)
            plain = series.str.match(_PLAIN_INTEGER).fillna(False)
            count = int((whole & ~plain).sum())
            if count:
                notes.append(
                    InputNote(
                        file,
                        column,
                        "converted",
                        "whole numbers written as decimals (42.0) read as whole numbers",
                        count,
                    )
                )
    return notes


def normalise_regions(trusts: pd.DataFrame, file: str) -> tuple[pd.DataFrame, list[InputNote]]:
    """Region names with spaces tidied and case variants of one name merged (module docstring).

    Returns the trusts (unchanged, not copied, when nothing needed changing) and one note per
    spelling changed.
    """
    if "region" not in trusts.columns or not _is_text(trusts["region"]) or not len(trusts):
        return trusts, []
    original = trusts["region"].astype("string")
    tidy = original.str.replace(r"\s+", " ", regex=True).str.strip()
    key = tidy.str.casefold()
    counts = pd.DataFrame({"key": key, "tidy": tidy, "order": np.arange(len(tidy))})
    counts = counts[counts["tidy"].fillna("") != ""]
    ranked = (
        counts.groupby(["key", "tidy"], sort=False)["order"]
        .agg(["size", "min"])
        .reset_index()
        .sort_values(["key", "size", "min"], ascending=[True, False, True], kind="mergesort")
    )
    canonical = ranked.drop_duplicates("key").set_index("key")["tidy"]
    target = key.map(canonical).where(tidy.fillna("") != "", original)
    changed = (target != original).fillna(False).to_numpy(dtype=bool)
    if not changed.any():
        return trusts, []
    notes = []
    pairs = pd.DataFrame({"from": original[changed], "to": target[changed]})
    for (old, new), group in pairs.groupby(["from", "to"], sort=True):
        rows = ", ".join(str(i + 1) for i in group.index[:10])
        how = (
            "spaces tidied"
            if str(old).strip() and " ".join(str(old).split()) == new
            else "same region as another spelling, differing only in case or spacing"
        )
        notes.append(
            InputNote(
                file,
                "region",
                "normalised",
                f"{str(old)!r} read as {new!r} ({how}; row(s) {rows})",
                len(group),
            )
        )
    out = trusts.copy(deep=False)
    out["region"] = target.astype(object).where(changed, trusts["region"])
    return out, notes


@dataclass(frozen=True)
class SpellSource:
    """``spells.parquet`` left on (shared) storage, read in chunks where it is processed.

    ``chunks`` are ``(start, stop)`` row ranges (0-based, stop exclusive), one per Parquet row
    group: the partitions of the Dask data frame of the spell-level steps
    (:mod:`surveillance.spell_engine`).
    """

    path: Path
    n_rows: int
    chunks: tuple[tuple[int, int], ...]

    @property
    def file(self) -> str:
        return self.path.name


def spell_source(path: Path) -> SpellSource:
    """The :class:`SpellSource` of a Parquet spells file (reads its footer only)."""
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _unreadable(path, f"cannot read Parquet: {exc}") from None
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    stops = np.cumsum(sizes, dtype=np.int64)
    starts = stops - np.asarray(sizes, dtype=np.int64)
    chunks = tuple((int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b > a)
    return SpellSource(path=path, n_rows=int(meta.num_rows), chunks=chunks)


@dataclass
class Bundle:
    """The tables of one input bundle, as read (see module docstring).

    ``spells`` is ``None`` either when the bundle has no spells or when they were left on disk
    (``read_bundle(..., lazy_spells=True)``): then ``spells_source`` says where; use
    :attr:`has_spells` to ask whether there are spells at all.
    """

    trusts: pd.DataFrame
    indicators: pd.DataFrame
    spells: pd.DataFrame | None = None
    staffing: pd.DataFrame | None = None
    intelligence: pd.DataFrame | None = None
    inspections: pd.DataFrame | None = None
    paths: dict[str, Path] = field(default_factory=dict)
    directory: Path = Path(".")
    spells_source: SpellSource | None = None
    #: table -> the 1-based data row (CSV line - 1) of each frame row, for tables where that is
    #: not simply position + 1 (a CSV with blank lines or values spanning lines)
    row_numbers: dict[str, np.ndarray] = field(default_factory=dict)
    #: what the reader accepted but changed (lossless conversions, region spellings)
    notes: tuple[InputNote, ...] = ()

    @property
    def has_spells(self) -> bool:
        return self.spells is not None or self.spells_source is not None

    def table(self, name: str) -> pd.DataFrame | None:
        """The frame for table ``name`` (``None`` when the optional file is absent)."""
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; tables are {', '.join(TABLES)}")
        return getattr(self, name)

    def file_name(self, name: str) -> str:
        """The file actually read for ``name`` (e.g. ``spells.parquet``), or ``name.csv``."""
        path = self.paths.get(name)
        return path.name if path is not None else f"{name}.csv"


def _locate(directory: Path, name: str) -> Path | None:
    candidates = [directory / f"{name}.csv", directory / f"{name}.parquet"]
    found = [p for p in candidates if p.is_file()]
    if len(found) > 1:
        raise ContractError(
            [
                Violation(
                    file=f"{name}.csv",
                    rule="ambiguous_file",
                    message=f"both {name}.csv and {name}.parquet exist; keep one",
                )
            ]
        )
    return found[0] if found else None


def _string_mapper(arrow_type: pa.DataType):
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    return None


def _unreadable(path: Path, message: str) -> ContractError:
    return ContractError([Violation(file=path.name, rule="file_unreadable", message=message)])


def scan_text(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> None:
    """Check a CSV file is UTF-8 with no line longer than ``max_line_bytes``, streaming it.

    Reads the file in fixed chunks (memory stays bounded whatever the file holds) and raises
    :class:`ContractError` (``file_unreadable``) naming the line and byte offset of the first
    problem. A leading UTF-8 byte-order mark is allowed (the CSV reader strips it).
    """
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    offset = 0  # bytes read before the current chunk
    line = 1  # 1-based line number at the start of the current chunk
    line_start = 0  # byte offset where the current line starts
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise _unreadable(path, f"cannot open: {exc.strerror or exc}") from None
    with handle:
        while True:
            chunk = handle.read(_SCAN_CHUNK_BYTES)
            if not chunk:
                break
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = offset - len(pending) + exc.start
                bad_line = line + chunk.count(b"\n", 0, max(at - offset, 0))
                raise _unreadable(
                    path,
                    f"not valid UTF-8 text ({exc.reason} at byte {at}, line {bad_line}); "
                    "save the file as UTF-8",
                ) from None
            last = chunk.rfind(b"\n")
            newlines = chunk.count(b"\n")
            if last < 0:
                if offset + len(chunk) - line_start > max_line_bytes:
                    raise _unreadable(
                        path,
                        f"line {line} is longer than {max_line_bytes:,} bytes (the maximum "
                        "line and field size); is a closing quote missing?",
                    )
            else:
                first = chunk.find(b"\n")
                if offset + first - line_start > max_line_bytes:
                    raise _unreadable(
                        path,
                        f"line {line} is longer than {max_line_bytes:,} bytes (the maximum "
                        "line and field size); is a closing quote missing?",
                    )
                if newlines > 1 and last - first - 1 > max_line_bytes:
                    pieces = chunk[first + 1 : last].split(b"\n")
                    longest = max(len(piece) for piece in pieces)
                    if longest > max_line_bytes:
                        k = next(i for i, piece in enumerate(pieces) if len(piece) == longest)
                        raise _unreadable(
                            path,
                            f"line {line + 1 + k} is longer than {max_line_bytes:,} bytes (the "
                            "maximum line and field size); is a closing quote missing?",
                        )
                line_start = offset + last + 1
                line += newlines
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _unreadable(
                path, f"not valid UTF-8 text (truncated character at the end, byte {offset - 1})"
            ) from None
    if offset - line_start > max_line_bytes:
        raise _unreadable(
            path, f"line {line} is longer than {max_line_bytes:,} bytes (the maximum line size)"
        )


#: delimiters a one-column header betrays (bundle files are comma-separated)
_OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}
#: how many ragged lines a message lists
_RAGGED_SHOWN = 5


@dataclass(frozen=True)
class CsvLayout:
    """What :func:`csv_layout` found: the header and the line each data row starts on."""

    header: tuple[str, ...]
    #: 1-based line on which each data row starts (blank lines skipped); ``None`` when data row i
    #: is simply on line i + 1
    lines: np.ndarray | None


def csv_layout(path: Path, name: str | None = None) -> CsvLayout:
    """Check a CSV file's header and row widths in one streaming pass; see the module docstring.

    Raises :class:`ContractError`: ``duplicate_column`` (one violation per repeated name),
    ``file_unreadable`` for another delimiter or rows whose field count differs from the header.
    ``name`` is how messages name the file (default: its file name).
    """
    import csv
    from array import array

    shown = name or path.name
    starts = array("q")  # 8 bytes a row, not a Python int each
    ragged: list[tuple[int, int]] = []
    n_ragged = 0
    header: list[str] | None = None
    shifted = False
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        line = 0  # lines consumed so far
        try:
            for record in reader:
                start = line + 1
                line = reader.line_num
                if header is None:
                    if not record:
                        shifted = True
                        continue
                    header = record
                    width = len(header)
                    continue
                if not record or (len(record) == 1 and not record[0].strip()):
                    shifted = True  # a blank line: the CSV reader skips it, its number is kept
                    continue
                starts.append(start)
                if line != start:
                    shifted = True  # a quoted value with a line break
                if len(record) != width:
                    n_ragged += 1
                    if len(ragged) < _RAGGED_SHOWN:
                        ragged.append((start, len(record)))
        except csv.Error as exc:  # e.g. a field over csv.field_size_limit() (128 KiB)
            raise ContractError(
                [
                    Violation(
                        file=shown,
                        rule="file_unreadable",
                        message=f"cannot parse CSV at line {reader.line_num}: {exc}",
                    )
                ]
            ) from None
    if header is None:
        return CsvLayout((), None)
    violations: list[Violation] = []
    counts: dict[str, list[int]] = {}
    for position, column in enumerate(header, start=1):
        counts.setdefault(column, []).append(position)
    for column, positions in counts.items():
        if len(positions) > 1:
            violations.append(
                Violation(
                    file=shown,
                    rule="duplicate_column",
                    column=column,
                    message=(
                        f"the header names {column!r} {len(positions)} times (columns "
                        f"{', '.join(str(p) for p in positions)}); each column appears once"
                    ),
                )
            )
    if len(header) == 1:
        other = [label for d, label in _OTHER_DELIMITERS.items() if d in header[0]]
        if other:
            text = header[0] if len(header[0]) <= 60 else header[0][:60] + "..."
            violations.append(
                Violation(
                    file=shown,
                    rule="file_unreadable",
                    message=(
                        f"the header is one column {text!r}: bundle files are comma-separated "
                        f"and this one looks {other[0]}-separated; save it as CSV with commas"
                    ),
                )
            )
            raise ContractError(violations)
    if ragged:
        where = ", ".join(f"line {at} has {n}" for at, n in ragged)
        more = f" (and {n_ragged - len(ragged)} more lines)" if n_ragged > len(ragged) else ""
        violations.append(
            Violation(
                file=shown,
                rule="file_unreadable",
                message=(
                    f"rows must have as many fields as the header ({width}): {where}{more}; "
                    "a comma inside a value needs quotes"
                ),
            )
        )
    if violations:
        raise ContractError(violations)
    lines = np.frombuffer(starts, dtype=np.int64).copy() if shifted else None
    return CsvLayout(tuple(header), lines)


def _read_csv(path: Path) -> pd.DataFrame:
    frame, _ = _read_csv_rows(path)
    return frame


def _read_csv_rows(path: Path) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The CSV as text cells, and its data rows' numbers when they are not position + 1."""
    scan_text(path)
    layout = csv_layout(path)
    try:
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8",
            encoding_errors="strict",
        )
    except pd.errors.EmptyDataError:
        raise ContractError(
            [
                Violation(
                    file=path.name,
                    rule="file_unreadable",
                    message="file is empty (no header line)",
                )
            ]
        ) from None
    except UnicodeDecodeError as exc:
        raise ContractError(
            [
                Violation(
                    file=path.name,
                    rule="file_unreadable",
                    message=f"not valid UTF-8 text ({exc.reason} at byte {exc.start})",
                )
            ]
        ) from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise ContractError(
            [Violation(file=path.name, rule="file_unreadable", message=f"cannot parse CSV: {exc}")]
        ) from None
    rows = None
    if layout.lines is not None:
        if len(layout.lines) != len(frame):  # the two readers disagree: say so, never guess
            raise _unreadable(
                path,
                f"cannot parse CSV: {len(frame)} rows read but {len(layout.lines)} found by line",
            )
        rows = layout.lines - 1
    return frame, rows


#: Parquet columns read dictionary-encoded (pandas categoricals of the code strings): a national
#: spells file has 45 million rows but a few hundred distinct trust and diagnosis codes, so the
#: codes are stored once and every later factorisation is an integer operation.
DICTIONARY_COLUMNS: dict[str, tuple[str, ...]] = {
    "spells": ("trust_code", "diagnosis_group", "sex", "admission_method"),
}


def _read_parquet(
    path: Path,
    name: str = "",
    rows: tuple[int, int] | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Read a Parquet table (all of it, or the 0-based row range ``rows``, stop exclusive;
    ``columns``: only those, with ``rows`` only)."""
    try:
        schema = pq.read_schema(path)
        dictionary = [
            c
            for c in DICTIONARY_COLUMNS.get(name, ())
            if c in schema.names
            and (
                pa.types.is_string(schema.field(c).type)
                or pa.types.is_large_string(schema.field(c).type)
            )
        ]
        with_nulls: list[str] = []
        if rows is None:
            table = pq.read_table(path, read_dictionary=dictionary or None)
        else:
            table, with_nulls = _read_rows(path, rows, dictionary, columns)
        fields = []
        for f in table.schema:  # dates become datetime64[ns], as everywhere in the service
            if pa.types.is_date(f.type) or (pa.types.is_timestamp(f.type) and f.type.unit != "ns"):
                fields.append(pa.field(f.name, pa.timestamp("ns", tz=getattr(f.type, "tz", None))))
            else:
                fields.append(f)
        kinds = COLUMN_KINDS.get(name, {})
        for i, f in enumerate(fields):  # integer codes are their decimal text (lossless)
            if kinds.get(f.name) in TEXT_KINDS and pa.types.is_integer(f.type):
                fields[i] = pa.field(f.name, pa.large_string())
        table = table.cast(pa.schema(fields, metadata=table.schema.metadata))
        frame = table.to_pandas(
            types_mapper=_string_mapper,
            date_as_object=False,
            split_blocks=True,
            self_destruct=True,
        )
        del table
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _unreadable(path, f"cannot read Parquet: {exc}") from None
    for column in with_nulls:  # the dtype the whole file gets (float64), nulls here or not
        if not pd.api.types.is_float_dtype(frame[column].dtype):
            frame[column] = frame[column].astype("float64")
    if isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1:
        return frame  # already 0..n-1: reset_index would copy every column (seconds at 45M rows)
    return frame.reset_index(drop=True)


def _read_rows(
    path: Path, rows: tuple[int, int], dictionary: list[str], columns: list[str] | None = None
) -> tuple[pa.Table, list[str]]:
    """Rows ``[start, stop)`` of a Parquet file (the row groups that hold them, sliced), and the
    integer columns read that have a null anywhere in the file: pandas makes those float64 when
    the whole file is read, so a range must be made float64 too."""
    start, stop = rows
    pf = pq.ParquetFile(path, read_dictionary=dictionary or None)
    meta = pf.metadata
    if not 0 <= start <= stop <= meta.num_rows:
        raise ValueError(f"rows {start}-{stop} outside the file's {meta.num_rows} rows")
    sizes = np.array([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], np.int64)
    ends = np.cumsum(sizes)
    begins = ends - sizes
    groups = [i for i in range(len(sizes)) if begins[i] < stop and ends[i] > start]
    if columns is not None:
        columns = [c for c in columns if c in pf.schema_arrow.names]
    with_nulls = [
        f.name
        for j, f in enumerate(pf.schema_arrow)
        if pa.types.is_integer(f.type)
        and (columns is None or f.name in columns)
        and _file_has_nulls(pf, j)
    ]
    if not groups:
        table = pf.schema_arrow.empty_table()
        return (table.select(columns) if columns is not None else table), with_nulls
    table = pf.read_row_groups(groups, columns=columns)
    return table.slice(start - int(begins[groups[0]]), stop - start), with_nulls


def _file_has_nulls(pf: pq.ParquetFile, column: int) -> bool:
    """Whether column ``column`` has a null in any row group (footer statistics, else a read)."""
    meta = pf.metadata
    nulls = 0
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(column).statistics
        if stats is None or not stats.has_null_count:
            return pf.read(columns=[pf.schema_arrow.names[column]]).column(0).null_count > 0
        nulls += stats.null_count
    return nulls > 0


def read_rows(
    path: Path | str, name: str, start: int, stop: int, columns: list[str] | None = None
) -> pd.DataFrame:
    """Rows ``[start, stop)`` of a bundle's Parquet table (only ``columns`` when given, those the
    file has), typed as :func:`read_table` types the whole file (the index is the 0-based row
    number within the slice)."""
    return type_columns(_read_parquet(Path(path), name, (start, stop), columns), name)


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)


def _empty(series: pd.Series) -> np.ndarray:
    """Cells that are missing or the empty string."""
    missing = series.isna().to_numpy(dtype=bool)
    if _is_text(series):
        missing |= (series.astype("string").str.strip() == "").fillna(True).to_numpy(dtype=bool)
    return missing


def _try_number(series: pd.Series, integer: bool) -> pd.Series | None:
    if not _is_text(series):
        return None
    empty = _empty(series)
    values = pd.to_numeric(series.where(~empty, None), errors="coerce")
    if np.any(values.isna().to_numpy() & ~empty):
        return None
    values = values.astype(float)
    finite = values[~empty]
    if integer:
        if not np.all(np.isfinite(finite)) or np.any(finite != np.round(finite)):
            return None
        return values.astype("Int64") if empty.any() else values.astype("int64")
    return values


def _try_date(series: pd.Series) -> pd.Series | None:
    if not _is_text(series):
        return None
    empty = _empty(series)
    iso = series.astype("string").str.match(_DATE_RE).fillna(False).to_numpy(dtype=bool)
    if np.any(~iso & ~empty):  # 2013-7-1, a time of day: left as text for the contract to name
        return None
    values = pd.to_datetime(series.where(~empty, None), format="%Y-%m-%d", errors="coerce")
    if np.any(values.isna().to_numpy() & ~empty):
        return None
    return values.astype("datetime64[ns]")


def _try_bool(series: pd.Series) -> pd.Series | None:
    if pd.api.types.is_integer_dtype(series.dtype):  # Parquet 1/0: booleans if nothing else
        values = series.dropna()
        if not values.isin([0, 1]).all():
            return None  # left as integers for the contract (not_boolean) to name
        if series.isna().any():
            return series.astype("boolean")
        return series.astype(bool)
    if not _is_text(series):
        return None
    empty = _empty(series)
    lowered = series.astype("string").str.strip().str.lower()
    is_true = lowered.isin(_TRUE).fillna(False).to_numpy(dtype=bool)
    is_false = lowered.isin(_FALSE).fillna(False).to_numpy(dtype=bool)
    if np.any(~(is_true | is_false | empty)):
        return None
    if empty.any():
        out = pd.array(np.where(is_true, True, False), dtype="boolean")
        out[empty] = pd.NA
        return pd.Series(out, index=series.index)
    return pd.Series(is_true, index=series.index)


def type_columns(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Convert the declared number/date/boolean columns of CSV text, losslessly (see module docstring)."""
    kinds = COLUMN_KINDS[name]
    out = frame.copy(deep=False)  # converted columns are replaced, never written into

    for column, kind in kinds.items():
        if column not in out.columns:
            continue
        converted = None
        if kind in ("float", "int"):
            converted = _try_number(out[column], integer=kind == "int")
        elif kind == "date":
            converted = _try_date(out[column])
        elif kind == "bool":
            converted = _try_bool(out[column])
        if converted is not None:
            out[column] = converted
    return out


def read_table(path: Path, name: str) -> pd.DataFrame:
    """Read one bundle file (CSV or Parquet) as described in the module docstring."""
    return read_table_rows(path, name)[0]


def read_table_rows(path: Path, name: str) -> tuple[pd.DataFrame, np.ndarray | None]:
    """:func:`read_table`, and the data row number of each frame row when it is not position + 1
    (:attr:`Bundle.row_numbers`)."""
    frame, rows, _ = read_table_notes(path, name)
    return frame, rows


def read_table_notes(
    path: Path, name: str
) -> tuple[pd.DataFrame, np.ndarray | None, list[InputNote]]:
    """:func:`read_table_rows`, and the conversions made (:class:`InputNote`)."""
    rows = None
    if path.suffix == ".parquet":
        frame = _read_parquet(path, name)
        notes = parquet_conversions(pq.read_schema(path), name, path.name)
    else:
        frame, rows = _read_csv_rows(path)
        notes = text_conversions(frame, name, path.name)
    return type_columns(frame, name), rows, notes


def read_bundle(data_dir: Path | str, lazy_spells: bool = False) -> Bundle:
    """Read the bundle in ``data_dir``; never writes anything.

    ``lazy_spells``: leave ``spells.parquet`` on disk (``Bundle.spells_source``: its path and row
    groups) for the chunked spell-level steps; a ``spells.csv`` is read as usual.

    Raises
    ------
    ContractError
        When a required file (``trusts``, ``indicators``) is absent, a table exists as both CSV and
        Parquet, or a file cannot be parsed at all (empty file, bad encoding, corrupted Parquet);
        the violation names the file.
    """
    directory = Path(data_dir)
    if not directory.is_dir():
        raise ContractError(
            [
                Violation(
                    file=str(directory), rule="missing_file", message="bundle directory not found"
                )
            ]
        )
    violations: list[Violation] = []
    frames: dict[str, pd.DataFrame | None] = {}
    paths: dict[str, Path] = {}
    row_numbers: dict[str, np.ndarray] = {}
    notes: list[InputNote] = []
    source: SpellSource | None = None
    for name in TABLES:
        try:
            path = _locate(directory, name)
            if path is None:
                if name in REQUIRED_TABLES:
                    violations.append(
                        Violation(
                            file=f"{name}.csv",
                            rule="missing_file",
                            message=f"required file {name}.csv (or {name}.parquet) is absent",
                        )
                    )
                frames[name] = None
                continue
            paths[name] = path
            if name == "spells" and lazy_spells and path.suffix == ".parquet":
                source = spell_source(path)
                notes += parquet_conversions(pq.read_schema(path), name, path.name)
                frames[name] = None
                continue
            frames[name], rows, converted = read_table_notes(path, name)
            notes += converted
            if rows is not None:
                row_numbers[name] = rows
            if name == "trusts":
                frames[name], tidied = normalise_regions(frames[name], path.name)
                notes += tidied
        except ContractError as exc:
            violations.extend(exc.violations)
            frames[name] = None
    if violations:
        raise ContractError(violations)
    assert set(OPTIONAL_TABLES) | set(REQUIRED_TABLES) == set(TABLES)
    return Bundle(
        trusts=frames["trusts"],
        indicators=frames["indicators"],
        spells=frames["spells"],
        staffing=frames["staffing"],
        intelligence=frames["intelligence"],
        inspections=frames["inspections"],
        paths=paths,
        directory=directory,
        spells_source=source,
        row_numbers=row_numbers,
        notes=tuple(notes),
    )
