"""Reading a publisher's xlsx sheet with openpyxl, refusing a file that is not what it says.

Every refusal is a :class:`~surveillance.errors.ContractError` whose violation names the file
and sheet (``file [sheet 'NAME']``) and, for a header fault, the column.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd

from surveillance.errors import ContractError, Violation


def where(path: Path, sheet: str) -> str:
    """How a violation names a sheet of a workbook."""
    return f"{Path(path).name} [sheet '{sheet}']"


def read_sheet(path: Path, sheet: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """The sheet's rows under its first-row header, every cell as openpyxl gives it.

    The index is the 1-based data row (the sheet row below the header), as violations name rows.

    Raises
    ------
    ContractError
        ``unreadable_workbook`` (truncated or not an xlsx), ``missing_sheet``,
        ``required_column`` (one violation per expected header not found, e.g. renamed),
        ``empty_sheet`` (a header and no rows).
    """
    from openpyxl import load_workbook

    path = Path(path)
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise ContractError(
            [
                Violation(
                    path.name,
                    "unreadable_workbook",
                    f"not a readable xlsx workbook (truncated or damaged?): {exc}",
                )
            ]
        ) from None
    try:
        if sheet not in book.sheetnames:
            raise ContractError(
                [
                    Violation(
                        path.name,
                        "missing_sheet",
                        f"sheet '{sheet}' not found (sheets: {book.sheetnames})",
                    )
                ]
            )
        try:
            rows = list(book[sheet].iter_rows(values_only=True))
        except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
            raise ContractError(
                [
                    Violation(
                        where(path, sheet),
                        "unreadable_workbook",
                        f"sheet cannot be read to the end (truncated or damaged?): {exc}",
                    )
                ]
            ) from None
    finally:
        book.close()
    header = [str(c).strip() if c is not None else "" for c in (rows[0] if rows else ())]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ContractError(
            [
                Violation(
                    where(path, sheet),
                    "required_column",
                    f"header row lacks '{c}' (found {header})",
                    column=c,
                )
                for c in missing
            ]
        )
    # fully blank rows (a sheet's unused tail) are skipped; the index keeps the data row number
    body = [
        (n, r) for n, r in enumerate(rows[1:], start=1) if any(v is not None and v != "" for v in r)
    ]
    if not body:
        raise ContractError([Violation(where(path, sheet), "empty_sheet", "no data rows")])
    index = [header.index(c) for c in columns]
    return pd.DataFrame(
        [[r[i] if i < len(r) else None for i in index] for _, r in body],
        columns=list(columns),
        index=pd.Index([n for n, _ in body], name="data_row"),
    )
