"""Assemble a quarter's indicators from the publishers' feeds (the quarterly flow's first stage).

Each catalogue ``source`` is looked up in :data:`ADAPTERS`. When the feeds directory holds that
adapter's file, the file is validated in its own format, hashed, and turned into indicator rows;
its rows replace any pre-assembled rows for the same indicators (also when the feed is late or
does not reach back to the quarter: the feed is the record, and its indicators are then
``not_applicable`` rather than filled from another copy). Indicators no adapter provides
are taken from the bundle's ``indicators.csv`` when it has rows for them. Indicators derived from
``spells``/``staffing``/``intelligence`` are left to the assessment and mortality stages, provided
the bundle has that file.

Whatever is left has no data this quarter: a source that is ``missing`` (no feed, no rows) or
``late`` (its latest period is before the quarter's last month) gives its indicators
``not_applicable`` with the reason, recorded in :class:`Assembly.sources` for flags, reports and
the manifest. Nothing stale is ever passed on as current.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from surveillance.contracts import INDICATOR_COLUMNS
from surveillance.manifest import sha256_file
from surveillance.periods import Quarter
from surveillance.sources.ae import AeAttendancesAdapter
from surveillance.sources.base import (
    STATUS_DERIVED,
    STATUS_LATE,
    STATUS_MISSING,
    STATUS_OK,
    STATUS_PRE_ASSEMBLED,
    SourceAdapter,
    SourceStatus,
)
from surveillance.sources.cwt import CancerWaitingTimesAdapter
from surveillance.sources.kh03 import Kh03Adapter
from surveillance.sources.staff_survey import StaffSurveyAdapter

#: adapters by the catalogue's ``source`` value.
ADAPTERS: dict[str, SourceAdapter] = {
    a.source: a
    for a in (
        AeAttendancesAdapter(),
        CancerWaitingTimesAdapter(),
        Kh03Adapter(),
        StaffSurveyAdapter(),
    )
}
#: where derived indicators come from (catalogue ``derived_from`` -> bundle file name).
DERIVED_FILES = {
    "spells": "spells.parquet",
    "staffing": "staffing.csv",
    "intelligence": "intelligence.csv",
}


@dataclass
class Assembly:
    """The quarter's indicator rows and what each source contributed."""

    indicators: pd.DataFrame
    sources: list[SourceStatus]
    feed_files: dict[str, Path] = field(default_factory=dict)  # "feeds/<name>" -> path read
    notes: list[str] = field(default_factory=list)
    #: 0-based position in the bundle's indicators frame of each leading row of ``indicators``
    #: taken from it (rows superseded by a feed are gone, so later rows are not at their file
    #: position); the feeds' rows follow. ``None``: no bundle indicators were given
    bundle_rows: np.ndarray | None = None

    def unavailable(self) -> dict[str, str]:
        """``indicator_id -> reason`` for every indicator of a missing or late source."""
        return {
            i: f"{s.source}: {s.reason}"
            for s in self.sources
            if not s.available
            for i in s.indicator_ids
        }


def assemble(
    feeds_dir: Path | None,
    catalogue: pd.DataFrame,
    quarter: Quarter | str,
    bundle_indicators: pd.DataFrame | None = None,
    trust_codes: Iterable[str] | None = None,
    derived_available: Mapping[str, bool] | None = None,
    adapters: Mapping[str, SourceAdapter] | None = None,
) -> Assembly:
    """Build the quarter's indicators frame from feeds and/or ``indicators.csv``.

    Parameters
    ----------
    feeds_dir
        Directory with publisher files named ``<adapter.feed_name>.csv`` (or ``None``).
    catalogue
        :func:`surveillance.catalogue.load_catalogue` frame (index ``indicator_id``).
    quarter
        The run's quarter.
    bundle_indicators
        The bundle's pre-assembled ``indicators.csv`` frame, if any.
    trust_codes
        Trusts in the bundle; feed rows for other organisations are dropped.
    derived_available
        ``{"spells": bool, "staffing": bool, "intelligence": bool}``: which derived inputs the
        bundle has (default: all).
    adapters
        Override :data:`ADAPTERS` (tests).

    Returns
    -------
    Assembly
        ``indicators`` in ``indicators.csv`` columns: the bundle's rows in file order, then the
        feeds' rows sorted by indicator, trust, period;
        ``sources`` one :class:`SourceStatus` per (source, status) group, sorted.
    """
    q = quarter if isinstance(quarter, Quarter) else Quarter.parse(str(quarter))
    adapters = ADAPTERS if adapters is None else adapters
    codes = set(trust_codes) if trust_codes is not None else None
    derived_available = dict(derived_available or {})
    pre = bundle_indicators if bundle_indicators is not None else _empty_like(None)
    pre_ids = set(pre["indicator_id"].astype(str)) if len(pre) else set()

    statuses: list[SourceStatus] = []
    feed_frames: list[pd.DataFrame] = []
    feed_files: dict[str, Path] = {}
    notes: list[str] = []
    replaced: set[str] = set()

    for source, group in catalogue.groupby("source", sort=True):
        ids = sorted(str(i) for i in group.index)
        derived_from = group["derived_from"].fillna("").astype(str)
        for kind in sorted(set(derived_from) - {""}):
            kind_ids = tuple(sorted(group.index[derived_from == kind].astype(str)))
            if derived_available.get(kind, True):
                statuses.append(
                    SourceStatus(
                        str(source),
                        kind_ids,
                        STATUS_DERIVED,
                        f"computed from {DERIVED_FILES.get(kind, kind)}",
                    )
                )
            else:
                statuses.append(
                    SourceStatus(
                        str(source),
                        kind_ids,
                        STATUS_MISSING,
                        f"{DERIVED_FILES.get(kind, kind)} is not in the bundle",
                    )
                )
        plain = [i for i in ids if derived_from.get(i, "") == ""]
        adapter = adapters.get(str(source))
        path = adapter.find(feeds_dir) if (adapter and feeds_dir is not None) else None
        from_feed: list[str] = []
        if adapter is not None and path is not None:
            from_feed = [i for i in plain if i in adapter.provides]
            digest = feed_digest(path)
            feed_files.update(feed_members(path))
            # the feed is the record for what it provides: indicators.csv rows for the same
            # indicators are dropped even when the feed is late or lacks the quarter
            replaced.update(i for i in from_feed if i in pre_ids)
            feed = adapter.read(path)
            result = adapter.to_indicators(feed, q, codes)
            notes.extend(f"{source}: {n}" for n in result.notes)
            latest = pd.Timestamp(result.latest_period)
            shown_latest = f"{latest:%Y-%m}"
            current = pd.Timestamp(adapter.current_through(latest))
            if current.to_period("M") < q.end.to_period("M"):
                statuses.append(
                    SourceStatus(
                        str(source),
                        tuple(from_feed),
                        STATUS_LATE,
                        f"{path.name} ends {shown_latest}, before the end of {q} "
                        f"({q.end:%Y-%m}); not used rather than reported as current",
                        feed_label(path),
                        digest,
                        shown_latest,
                    )
                )
            else:
                gaps = {i: r for i, r in result.unavailable.items() if i in from_feed}
                usable = [i for i in from_feed if i not in gaps]
                rows = result.indicators[result.indicators["indicator_id"].isin(usable)]
                feed_frames.append(rows)
                if usable:
                    statuses.append(
                        SourceStatus(
                            str(source),
                            tuple(usable),
                            STATUS_OK,
                            "",
                            feed_label(path),
                            digest,
                            shown_latest,
                            len(rows),
                            ", ".join(result.provisional),
                        )
                    )
                for reason in sorted(set(gaps.values())):
                    statuses.append(
                        SourceStatus(
                            str(source),
                            tuple(i for i in from_feed if gaps.get(i) == reason),
                            STATUS_MISSING,
                            reason,
                            feed_label(path),
                            digest,
                            shown_latest,
                        )
                    )
        rest = [i for i in plain if i not in from_feed]
        have = tuple(i for i in rest if i in pre_ids)
        lacking = tuple(i for i in rest if i not in pre_ids)
        if have:
            n = int(pre["indicator_id"].astype(str).isin(have).sum())
            statuses.append(SourceStatus(str(source), have, STATUS_PRE_ASSEMBLED, "", rows=n))
        if lacking:
            where = "no rows in indicators.csv"
            if adapter is None:
                where += " and no adapter for this publisher's format"
            elif path is None:
                where += f" and no feed file {adapter.feed_name}.csv"
            else:
                where += f" and {path.name} does not carry these indicators"
            statuses.append(SourceStatus(str(source), lacking, STATUS_MISSING, where))

    if replaced:
        notes.append(
            "pre-assembled indicators.csv rows superseded by feeds for: "
            + ", ".join(sorted(replaced))
        )
    keep_pre = pre[~pre["indicator_id"].astype(str).isin(replaced)] if len(pre) else pre
    if bundle_indicators is not None:
        feed_frames = [_conform(f, bundle_indicators) for f in feed_frames]
    frames = [keep_pre, *feed_frames]
    frames = [f for f in frames if len(f)]
    indicators = pd.concat(frames, ignore_index=True) if frames else _empty_like(bundle_indicators)
    # indicators.csv rows keep their order (contract violations name their file rows); feed rows
    # follow, sorted by indicator, trust and period (their own file rows are checked by adapters)
    indicators = indicators.reset_index(drop=True)
    statuses.sort(key=lambda s: (s.source, s.status, s.indicator_ids))
    rows = (
        np.flatnonzero(~pre["indicator_id"].astype(str).isin(replaced).to_numpy())
        if len(pre)
        else np.zeros(0, dtype=np.int64)
    )
    return Assembly(
        indicators, statuses, feed_files, notes, rows if bundle_indicators is not None else None
    )


def feed_members(path: Path) -> dict[str, Path]:
    """``feeds/<name>`` -> file for a feed file, or for each file of a feed directory."""
    path = Path(path)
    if path.is_dir():
        return {f"feeds/{path.name}/{f.name}": f for f in sorted(path.iterdir()) if f.is_file()}
    return {f"feeds/{path.name}": path}


def feed_label(path: Path) -> str:
    """How sources.csv names a feed: ``feeds/<file>`` or ``feeds/<directory>/``."""
    path = Path(path)
    return f"feeds/{path.name}/" if path.is_dir() else f"feeds/{path.name}"


def feed_digest(path: Path) -> str:
    """sha256 of a feed file; for a feed directory, of its members' names and sha256 in order."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    import hashlib

    listing = "".join(
        f"{name}  {sha256_file(f)}\n" for name, f in sorted(feed_members(path).items())
    )
    return hashlib.sha256(listing.encode()).hexdigest()


def _empty_like(like: pd.DataFrame | None) -> pd.DataFrame:
    if like is not None:
        return like.iloc[0:0].copy()
    return pd.DataFrame({c: pd.Series(dtype=object) for c in INDICATOR_COLUMNS})


def _conform(rows: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """Give feed rows the same columns and dtypes as the bundle's indicators frame.

    The bundle is read without coercion; where a column there is text, feed values are written
    as the text a CSV would hold (ISO dates, plain integers), so the two concatenate cleanly.
    """
    out = rows.copy()
    columns = list(like.columns) if len(like.columns) else list(INDICATOR_COLUMNS)
    for column in columns:
        if column not in out.columns:
            out[column] = None
    out = out[columns]
    if not len(like.columns):
        return out
    for column in columns:
        target = like[column].dtype
        series = out[column]
        if pd.api.types.is_datetime64_any_dtype(target):
            out[column] = pd.to_datetime(series).astype(target)
        elif pd.api.types.is_numeric_dtype(target):
            out[column] = pd.to_numeric(series).astype(target)
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            out[column] = series.dt.strftime("%Y-%m-%d").astype(target)
        else:
            out[column] = series.map(_text, na_action="ignore").astype(target)
    return out


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d}"
    return str(value)
