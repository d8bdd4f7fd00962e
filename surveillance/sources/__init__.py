"""Source adapters: one per publisher file format, keyed by the catalogue's ``source``.

``assemble(feeds_dir, catalogue, quarter, ...)`` builds the quarter's indicators from feeds and the
bundle's ``indicators.csv``, and says for every source whether it was used, pre-assembled, derived,
missing or late (:class:`SourceStatus`).
"""

from surveillance.sources.ae import AeAttendancesAdapter
from surveillance.sources.assemble import ADAPTERS, Assembly, assemble
from surveillance.sources.base import FeedResult, SourceAdapter, SourceStatus

__all__ = [
    "ADAPTERS",
    "AeAttendancesAdapter",
    "Assembly",
    "FeedResult",
    "SourceAdapter",
    "SourceStatus",
    "assemble",
]
