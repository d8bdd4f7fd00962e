"""What every source adapter provides, and the record of what each source gave a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pandas as pd

from surveillance.periods import Quarter

#: columns of the assembled indicators frame (DESIGN.md section 4, ``indicators.csv``).

#: values of :attr:`SourceStatus.status`.
STATUS_OK = "ok"  # read from the publisher's feed this run
STATUS_PRE_ASSEMBLED = "pre_assembled"  # rows taken from the bundle's indicators.csv
STATUS_DERIVED = "derived"  # computed by the service from spells / staffing / intelligence
STATUS_MISSING = "missing"  # no feed and no rows: indicators not_applicable
STATUS_LATE = "late"  # feed present but its latest period is before the quarter end
UNAVAILABLE = (STATUS_MISSING, STATUS_LATE)


@dataclass(frozen=True)
class SourceStatus:
    """What one publisher's source gave this run, for the flags, reports and manifest.

    ``status`` is one of ``ok``, ``pre_assembled``, ``derived``, ``missing``, ``late``; for the
    last two ``reason`` says why and every indicator in ``indicator_ids`` is ``not_applicable``.
    """

    source: str
    indicator_ids: tuple[str, ...]
    status: str
    reason: str = ""
    file: str | None = None
    sha256: str | None = None
    latest_period: str | None = None
    rows: int = 0
    provisional: str = ""  # months used that the publisher marks provisional ("YYYY-MM, ...")

    @property
    def available(self) -> bool:
        return self.status not in UNAVAILABLE

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "indicator_ids": list(self.indicator_ids),
            "status": self.status,
            "reason": self.reason,
            "file": self.file,
            "sha256": self.sha256,
            "latest_period": self.latest_period,
            "rows": self.rows,
            "provisional": self.provisional,
        }


@dataclass
class FeedResult:
    """Indicator rows one adapter produced from its feed, and per-indicator gaps."""

    indicators: pd.DataFrame
    latest_period: pd.Timestamp
    unavailable: dict[str, str] = field(default_factory=dict)  # indicator_id -> reason
    notes: list[str] = field(default_factory=list)
    provisional: tuple[str, ...] = ()  # months used ("YYYY-MM") the publisher marks provisional


class SourceAdapter:
    """One publisher file format: validate the file, turn it into catalogue indicator rows.

    Subclasses set ``source`` (the catalogue's ``source`` value), ``feed_name`` (the file stem
    looked for in the feeds directory, ``<feed_name>.csv``) and ``provides`` (the indicator ids
    the format can give), and implement :meth:`read` and :meth:`to_indicators`.
    """

    source: ClassVar[str]
    feed_name: ClassVar[str]
    provides: ClassVar[tuple[str, ...]]

    def find(self, feeds_dir: Path) -> Path | None:
        """The feed file in ``feeds_dir`` (CSV or Parquet), or ``None``."""
        for suffix in (".csv", ".parquet"):
            path = Path(feeds_dir) / f"{self.feed_name}{suffix}"
            if path.is_file():
                return path
        return None

    def current_through(self, latest: pd.Timestamp) -> pd.Timestamp:
        """Last day the feed's data may be used as current: by default its latest period (a
        feed whose latest month is before the quarter's last month is late)."""
        return pd.Timestamp(latest)

    def read(self, path: Path) -> pd.DataFrame:  # pragma: no cover - interface
        """Read and validate the publisher's file; raise ContractError naming row/column/rule."""
        raise NotImplementedError

    def to_indicators(
        self, feed: pd.DataFrame, quarter: Quarter, trust_codes: set[str] | None
    ) -> FeedResult:  # pragma: no cover - interface
        """Indicator rows for ``quarter`` (only ``trust_codes`` when given)."""
        raise NotImplementedError


def load_yaml_model(path: Path | str, model: type):
    """A source's YAML config validated by the pydantic ``model``; any fault in the file is a
    :class:`~surveillance.errors.ConfigError` naming it."""
    import yaml

    from surveillance.errors import ConfigError

    try:
        return model.model_validate(yaml.safe_load(Path(path).read_text()))
    except Exception as exc:  # noqa: BLE001 - any fault in the file is a config error naming it
        raise ConfigError(f"{path}: {exc}") from None
