"""Exceptions. Every error says where (file, rows, column) and which rule broke."""

from __future__ import annotations

from dataclasses import dataclass, field


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


class ContractError(SurveillanceError):
    """Input bundle broke one or more contract rules; nothing may be published."""

    def __init__(self, violations: list[Violation]):
        self.violations = list(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations[:50])
        more = f"\n  ... and {len(self.violations) - 50} more" if len(self.violations) > 50 else ""
        super().__init__(f"{len(self.violations)} input contract violation(s):\n{lines}{more}")


class ConfigError(SurveillanceError):
    """A configuration file (catalogue, model spec, banding config) is invalid."""
