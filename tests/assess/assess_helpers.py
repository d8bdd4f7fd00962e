"""Helpers for the assessment tests: a small catalogue built with the real loader's defaults."""

from __future__ import annotations

import copy

import pandas as pd

from surveillance.catalogue.loader import (
    DEFAULT_PATH,
    catalogue_frame,
    parse_catalogue,
    read_catalogue_document,
)

TEXT = {
    "means": "A flag means this indicator is worse than expected here.",
    "does_not_mean": "It does not prove that care was unsafe at this trust.",
}


def make_catalogue(entries: list[dict]) -> pd.DataFrame:
    """A catalogue frame from entries, with the packaged catalogue's defaults_by_type."""
    doc = read_catalogue_document(DEFAULT_PATH)
    doc = {
        "version": 1,
        "defaults": copy.deepcopy(doc["defaults"]),
        "defaults_by_type": copy.deepcopy(doc["defaults_by_type"]),
        "indicators": [
            {
                "name": e["indicator_id"].replace("_", " "),
                "tier": 1,
                "source": "test",
                "cadence": "quarterly",
                "domain": "safe",
                "polarity": "higher_is_worse",
                **TEXT,
                **e,
            }
            for e in entries
        ],
    }
    return catalogue_frame(parse_catalogue(doc, origin="test"))


def indicator_rows(indicator_id: str, **columns) -> pd.DataFrame:
    """indicators.csv rows for one indicator; columns are equal-length lists incl. trust_code."""
    n = len(columns["trust_code"])
    frame = pd.DataFrame(
        {
            "trust_code": columns["trust_code"],
            "indicator_id": [indicator_id] * n,
            "period_start": columns.get("period_start", ["2013-07-01"] * n),
            "period_end": columns.get("period_end", ["2013-09-30"] * n),
        }
    )
    for col in ("numerator", "denominator", "value", "standard_error", "band"):
        frame[col] = columns.get(col, [None] * n)
    return frame
