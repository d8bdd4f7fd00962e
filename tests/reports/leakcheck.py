"""Read a rendered site back as an outsider would and list every patient count of 1 to 4 that can
be recovered from it (DESIGN.md section 6: such counts are suppressed in reports).

What is read: every text node (HTML text, SVG ``<text>`` and ``<title>``, tooltips), every
attribute value (``data-*``, ``aria-label``, ``title``), the inline JSON blocks, the mortality
table of each trust page (a cell, or a cell worked out as ``ALL`` minus the groups shown), and
every VLAD figure's plotted points, turned back into deaths per plotted step with the run's own
expected deaths (the worst case: an outsider who knows the expected counts exactly).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

#: a small count written next to a word that makes it a count of patients
_WORDS = r"(?:deaths?|died|patients?|never events?|cases?|admissions?|spells?)"
_AFTER_WORD = re.compile(
    rf"\b(?:observed(?: deaths)?|{_WORDS})\s*[:=]?\s*([1-4])(?![\d.,%])", re.IGNORECASE
)
_BEFORE_WORD = re.compile(rf"(?<![\d.,])([1-4])\s+{_WORDS}\b", re.IGNORECASE)
#: the rule itself ("1 to 4 events not shown", "1-4 deaths") is not a count
_RULE_TEXT = re.compile(r"\b1\s*(?:to|-|\u2013)\s*4\b")
_COUNT_KEYS = re.compile(r"observed|deaths|died|patients|cases", re.IGNORECASE)
#: a table column of patient counts, by its header
_COUNT_HEADER = re.compile(r"^(observed|deaths|observed deaths|patients)$", re.IGNORECASE)


#: elements whose text is read on its own (a number in one table cell and a word in the next
#: are not "3 deaths")
_BLOCKS = frozenset(
    {"td", "th", "tr", "li", "p", "div", "h1", "h2", "h3", "h4", "dt", "dd", "section", "text"}
)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []  # (tag, name, value)
        self.scripts: list[str] = []
        self.vlads: list[tuple[str, list[str], list[float]]] = []  # (svg title, months, values)
        self.rows: list[tuple[str, list[str]]] = []  # (data-group, cells) of mortality tables
        self._script: list[str] | None = None
        self._svg_title: str | None = None
        self._in_title = False
        self._row: tuple[str, list[str]] | None = None
        self._cell: list[str] | None = None
        #: every table: (header texts, rows of cell texts)
        self.tables: list[tuple[list[str], list[list[str]]]] = []
        self._table: tuple[list[str], list[list[str]]] | None = None
        self._tcells: list[str] | None = None
        self._tcell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in _BLOCKS:
            self.text.append(" | ")  # words in different cells or blocks are not read together
        a = {k: v or "" for k, v in attrs}
        for k, v in a.items():
            self.attrs.append((tag, k, v))
        if tag == "script":
            self._script = []
        if tag == "svg":
            self._svg_title = a.get("aria-label", "")
        if tag == "polyline" and "series" in a.get("class", "") and self._svg_title:
            if "VLAD" in self._svg_title:
                months = a.get("data-months", "").split()
                values = [float(v) for v in a.get("data-values", "").split()]
                self.vlads.append((self._svg_title, months, values))
        if tag == "g" and "series" in a.get("class", "") and self._svg_title:
            if "VLAD" in self._svg_title and a.get("data-values"):
                months = a.get("data-months", "").split()
                values = [float(v) for v in a.get("data-values", "").split()]
                self.vlads.append((self._svg_title, months, values))
        if tag == "tr" and "data-group" in a:
            self._row = (a["data-group"], [])
        if tag == "td" and self._row is not None:
            self._cell = []
        if tag == "table":
            self._table = ([], [])
        if tag == "tr" and self._table is not None:
            self._tcells = []
        if tag in ("td", "th") and self._tcells is not None:
            self._tcell = []

    def handle_endtag(self, tag):
        if tag in _BLOCKS:
            self.text.append(" | ")
        if tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None
        if tag == "svg":
            self._svg_title = None
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row[1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        if tag in ("td", "th") and self._tcell is not None and self._tcells is not None:
            self._tcells.append("".join(self._tcell).strip())
            self._tcell = None
        if tag == "tr" and self._table is not None and self._tcells is not None:
            if not self._table[0]:
                self._table[0].extend(self._tcells)
            else:
                self._table[1].append(self._tcells)
            self._tcells = None
        if tag == "table" and self._table is not None:
            self.tables.append(self._table)
            self._table = None

    def handle_data(self, data):
        if self._script is not None:
            self._script.append(data)
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._tcell is not None:
            self._tcell.append(data)


def _small(v: float) -> bool:
    return 1 <= round(v) <= 4 and abs(v - round(v)) < 0.25


def _text_leaks(where: str, text: str) -> list[str]:
    text = _RULE_TEXT.sub(" ", text)
    out = []
    for pattern in (_AFTER_WORD, _BEFORE_WORD):
        for m in pattern.finditer(text):
            out.append(f"{where}: text {m.group(0)!r}")
    return out


def _json_leaks(where: str, value, key: str = "") -> list[str]:
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _json_leaks(where, v, str(k))]
    if isinstance(value, list):
        return [x for v in value for x in _json_leaks(where, v, key)]
    if isinstance(value, int | float) and not isinstance(value, bool) and _COUNT_KEYS.search(key):
        if _small(float(value)):
            return [f"{where}: JSON {key}={value}"]
    return []


def _number(cell: str) -> float | None:
    """A count as written in a cell or attribute: digits only (3.221 is a score, not a count)."""
    text = cell.replace(",", "").strip()
    if not re.fullmatch(r"\d+(\.0+)?", text):
        return None
    return float(text)


def _table_leaks(where: str, rows: list[tuple[str, list[str]]]) -> list[str]:
    """A mortality table: its observed cells, and ALL minus the groups shown."""
    out = []
    observed = {group: cells[1] for group, cells in rows if len(cells) > 1}
    for group, cell in observed.items():
        v = _number(cell)
        if v is not None and _small(v):
            out.append(f"{where}: mortality {group} observed {cell}")
    total = _number(observed.get("ALL", ""))
    parts = {g: _number(c) for g, c in observed.items() if g != "ALL"}
    hidden = [g for g, v in parts.items() if v is None]
    if total is not None and hidden:
        rest = total - sum(v for v in parts.values() if v is not None)
        if _small(rest):
            out.append(f"{where}: mortality {', '.join(hidden)} = ALL - others = {rest:g}")
    return out


def _vlad_leaks(
    where: str, code: str, vlads: list[tuple[str, list[str], list[float]]], paths: pd.DataFrame
) -> list[str]:
    out = []
    for title, months, values in vlads:
        group = title.rsplit(": VLAD", 1)[0]
        p = paths[(paths["trust_code"] == code) & (paths["diagnosis_group"] == group)]
        if p.empty:
            continue
        p = p.sort_values("month")
        cum_e = p.set_index("month")["expected"].astype(float).cumsum()
        previous_e, previous_v = 0.0, 0.0
        for month, v in zip(months, values, strict=True):
            e = float(cum_e.loc[month])
            deaths = (e - previous_e) - (v - previous_v)
            if _small(deaths):
                out.append(f"{where}: VLAD {group} step to {month} = {deaths:.2f} deaths")
            previous_e, previous_v = e, v
    return out


def small_count_leaks(site: Path, run_dir: Path) -> list[str]:
    """Every way a patient count of 1 to 4 can be read back from the pages of ``site``."""
    paths_file = run_dir / "cusum_paths.csv"
    paths = (
        pd.read_csv(paths_file, dtype={"trust_code": str, "diagnosis_group": str, "month": str})
        if paths_file.is_file()
        else pd.DataFrame(columns=["trust_code", "diagnosis_group", "month", "expected"])
    )
    leaks: list[str] = []
    for page in sorted(site.rglob("*.html")):
        where = page.relative_to(site).as_posix()
        parsed = _Page()
        parsed.feed(page.read_text(encoding="utf-8"))
        leaks += _text_leaks(where, " ".join(parsed.text))
        for tag, name, value in parsed.attrs:
            if name in ("aria-label", "title", "alt"):
                leaks += _text_leaks(f"{where} <{tag} {name}>", value)
            elif name.startswith("data-") and _COUNT_KEYS.search(name):
                v = _number(value)
                if v is not None and _small(v):
                    leaks.append(f"{where}: <{tag} {name}={value!r}>")
        for body in parsed.scripts:
            try:
                leaks += _json_leaks(where, json.loads(body))
            except json.JSONDecodeError:
                continue
        leaks += _table_leaks(where, parsed.rows)
        for headers, rows in parsed.tables:
            for j, header in enumerate(headers):
                if not _COUNT_HEADER.match(header):
                    continue
                for cells in rows:
                    v = _number(cells[j]) if j < len(cells) else None
                    if v is not None and _small(v):
                        leaks.append(f"{where}: table column {header!r} cell {cells[j]}")
        if page.parent.name == "trusts":
            leaks += _vlad_leaks(where, page.stem, parsed.vlads, paths)
    return leaks


def vlad_count(site: Path) -> int:
    """How many VLAD figures the site draws (a check that the read-back saw some)."""
    n = 0
    for page in sorted(site.rglob("*.html")):
        parsed = _Page()
        parsed.feed(page.read_text(encoding="utf-8"))
        n += len(parsed.vlads)
    return n


__all__ = ["small_count_leaks", "vlad_count"]
