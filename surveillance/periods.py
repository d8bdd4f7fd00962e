"""Calendar quarters and look-back windows (DESIGN.md section 4)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

_QUARTER_RE = re.compile(r"^(\d{4})Q([1-4])$")


@dataclass(frozen=True, order=True)
class Quarter:
    """A calendar quarter, e.g. ``Quarter.parse("2013Q3")`` is July to September 2013."""

    year: int
    q: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        match = _QUARTER_RE.match(str(text).strip())
        if not match:
            raise ValueError(f"quarter must look like 2013Q3, got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.year}Q{self.q}"

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(year=self.year, month=3 * self.q - 2, day=1)

    @property
    def end(self) -> pd.Timestamp:
        """Last day of the quarter (inclusive)."""
        return (self.start + pd.offsets.QuarterEnd(0)).normalize()

    def previous(self) -> Quarter:
        return Quarter(self.year - 1, 4) if self.q == 1 else Quarter(self.year, self.q - 1)

    def next(self) -> Quarter:
        return Quarter(self.year + 1, 1) if self.q == 4 else Quarter(self.year, self.q + 1)

    def months(self) -> list[str]:
        """The quarter's three months as ``YYYY-MM``."""
        return [f"{self.year}-{m:02d}" for m in range(3 * self.q - 2, 3 * self.q + 1)]

    def lookback_start(self, months: int) -> pd.Timestamp:
        """First day of the ``months``-month window that ends on the quarter's last day."""
        return (self.end + pd.offsets.MonthBegin(-months)).normalize()

    def lookback_months(self, months: int) -> list[str]:
        """The ``months`` months (``YYYY-MM``) ending with the quarter's last month, oldest first."""
        periods = pd.period_range(end=self.end.to_period("M"), periods=months, freq="M")
        return [str(p) for p in periods]
