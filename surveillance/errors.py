"""Exceptions. Every error says where (file, rows, column) and which rule broke."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

#: how a message says that more rows broke a rule than are listed
_ROW_TOTAL = re.compile(r" \[(\d+) row\(s\)\]$")


def with_row_total(message: str, total: int, listed: int) -> str:
    """``message`` followed by `` [total row(s)]`` when more than the ``listed`` rows broke it."""
    return message + (f" [{total} row(s)]" if total > listed else "")


def split_row_total(message: str) -> tuple[str, int | None]:
    """The message without its :func:`with_row_total` suffix, and the total (``None``: none)."""
    m = _ROW_TOTAL.search(message)
    return (message[: m.start()], int(m.group(1))) if m else (message, None)


class SurveillanceError(Exception):
    """Base class for errors raised by the service."""


@dataclass(frozen=True)
class Violation:
    """One broken input rule: which file, which rows (1-based data rows), which column, which rule."""

    file: str
    rule: str
    message: str
    column: str | None = None
    rows: tuple[int, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        where = self.file
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:10])
            more = f" (+{len(self.rows) - 10} more)" if len(self.rows) > 10 else ""
            where += f" row(s) {shown}{more}"
        if self.column:
            where += f" column '{self.column}'"
        return f"{where}: [{self.rule}] {self.message}"

    def shifted(self, offset: int) -> Violation:
        """The same violation with its rows moved by ``offset`` (chunk rows -> file rows)."""
        return replace(self, rows=tuple(r + offset for r in self.rows))


class ContractError(SurveillanceError):
    """Input bundle broke one or more contract rules; nothing may be published."""

    def __init__(self, violations: list[Violation]):
        self.violations = list(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations[:50])
        more = f"\n  ... and {len(self.violations) - 50} more" if len(self.violations) > 50 else ""
        super().__init__(f"{len(self.violations)} input contract violation(s):\n{lines}{more}")


class ConfigError(SurveillanceError):
    """A configuration file (catalogue, model spec, banding config) is invalid."""
