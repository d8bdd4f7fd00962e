"""Scanners for published files: spreadsheet formulas in CSVs, markup and small counts in HTML."""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser
from pathlib import Path

#: a number as a spreadsheet reads it (also inf/nan, which a spreadsheet shows as text).
NUMBER = re.compile(r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?%?|inf|infinity|nan)$", re.I)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: table headers whose cells are counts of patients (or deaths, spells, cases).
COUNT_HEADER = re.compile(r"observed|deaths|patients|spells|admissions|cases", re.I)
#: a count of 1 to 4 written next to a patient word in running text.
COUNT_IN_TEXT = re.compile(
    r"\b(observed(?: deaths)?|deaths|patients|spells|admissions)\b\s*[:=]?\s*([1-4])(?!\d|[.,]\d)"
    r"|(?<![\d.,])([1-4])\s+(deaths|patients|spells|admissions)\b",
    re.I,
)
#: the page-footer sentence that explains the suppression (it names the range, not a count).
SUPPRESSION_NOTE = re.compile(r"1 to 4 patients are shown as\s*<5", re.I)


def formula_cells(path: Path) -> list[tuple[int, int, str]]:
    """(line, column, cell) of every CSV cell a spreadsheet would evaluate as a formula."""
    found = []
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            for col, cell in enumerate(row):
                if cell.startswith(FORMULA_START) and not NUMBER.match(cell.strip()):
                    found.append((line, col, cell))
    return found


class Page(HTMLParser):
    """Text nodes, tags and tables (header texts and body cell texts) of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.tables: list[dict] = []
        self._stack: list[dict] = []
        self._cell: list[str] | None = None
        self._cell_is_header = False
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        elif tag == "table":
            self._stack.append({"headers": [], "rows": [], "row": None})
        elif tag == "tr" and self._stack:
            self._stack[-1]["row"] = []
        elif tag in ("td", "th") and self._stack:
            self._cell, self._cell_is_header = [], tag == "th"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        elif tag in ("td", "th") and self._stack and self._cell is not None:
            text = " ".join("".join(self._cell).split())
            table = self._stack[-1]
            if self._cell_is_header and not table["rows"]:
                table["headers"].append(text)
            elif table["row"] is not None:
                table["row"].append(text)
            self._cell = None
        elif tag == "tr" and self._stack:
            table = self._stack[-1]
            if table["row"]:
                table["rows"].append(table["row"])
            table["row"] = None
        elif tag == "table" and self._stack:
            self.tables.append(self._stack.pop())

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
            return
        self.texts.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def small_counts(page: Page) -> list[str]:
    """Every place a page shows a patient count from 1 to 4."""
    found = []
    for table in page.tables:
        columns = [i for i, h in enumerate(table["headers"]) if COUNT_HEADER.search(h)]
        for row in table["rows"]:
            for i in columns:
                if i < len(row) and re.fullmatch(r"[1-4]", row[i].replace(",", "")):
                    found.append(f"table column {table['headers'][i]!r}: {row[i]!r} in {row}")
    text = SUPPRESSION_NOTE.sub("", " ".join(" ".join(page.texts).split()))
    found += [f"text: {m.group(0)!r}" for m in COUNT_IN_TEXT.finditer(text)]
    for script in page.scripts:  # data embedded for sortable tables
        found += [
            f"script: {m.group(0)!r}"
            for m in re.finditer(
                r'"(observed|deaths|patients|spells)"\s*:\s*"?([1-4])"?[,}]', script
            )
        ]
    return found
