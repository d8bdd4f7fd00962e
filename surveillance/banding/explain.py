"""Why a trust is in its band, how it moved since last quarter, which flags persist.

Movement convention: bands are priorities, band 1 = inspect first. ``up`` means the trust moved
to a *higher priority* (a lower band number, e.g. 3 -> 2: more concern); ``down`` means a lower
priority (e.g. 2 -> 4: less concern); ``same`` means the band label is unchanged; ``new`` means
there is nothing comparable last quarter (the trust was absent, or it moved between a numeric band
and ``recently_inspected`` / ``not_banded``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from surveillance.banding.config import DEFAULT_POINTS, Points
from surveillance.banding.scoring import flag_points

CONTRIBUTION_COLUMNS = ["trust_code", "indicator_id", "domain", "points", "z_adjusted", "rank"]
FLAGGED = ("risk", "elevated_risk")


def contributions(
    flags: pd.DataFrame,
    top_n: int | None = 5,
    points: Points = DEFAULT_POINTS,
    excluded: Iterable[str] = (),
) -> pd.DataFrame:
    """The indicators contributing most to each trust's score.

    Only indicators that score points (flagged ``risk`` / ``elevated_risk``) contribute; ranked
    within trust by points (descending), then adjusted z (descending, NaN last), then
    indicator_id. ``rank`` starts at 1; ``top_n=None`` keeps all.
    """
    use = flags[flags["flag"].isin(FLAGGED) & ~flags["indicator_id"].isin(set(excluded))].copy()
    use["points"] = flag_points(use["flag"], points).astype(int)
    if "z_adjusted" not in use:
        use["z_adjusted"] = np.nan
    use["_z"] = pd.to_numeric(use["z_adjusted"], errors="coerce").fillna(-np.inf)
    use = use.sort_values(
        ["trust_code", "points", "_z", "indicator_id"],
        ascending=[True, False, False, True],
        kind="mergesort",
    )
    use["rank"] = use.groupby("trust_code").cumcount() + 1
    if top_n is not None:
        use = use[use["rank"] <= top_n]
    return use[CONTRIBUTION_COLUMNS].reset_index(drop=True)


def _movement(current: str, previous: str | None) -> str:
    if previous is None or previous == "" or pd.isna(previous):
        return "new"
    if current == previous:
        return "same"
    if current.isdigit() and previous.isdigit():
        return "up" if int(current) < int(previous) else "down"
    return "new"


def add_movement(bands: pd.DataFrame, previous_bands: pd.DataFrame | None) -> pd.DataFrame:
    """Fill ``previous_band`` and ``movement`` from last quarter's bands.csv (see module doc)."""
    out = bands.copy()
    if previous_bands is None:
        out["previous_band"] = ""
        out["movement"] = "new"
        return out
    prev = (
        previous_bands.assign(
            trust_code=previous_bands["trust_code"].astype(str),
            band=previous_bands["band"].astype(str),
        )
        .drop_duplicates("trust_code")
        .set_index("trust_code")["band"]
    )
    previous = out["trust_code"].map(prev)
    out["previous_band"] = previous.fillna("").astype(str)
    out["movement"] = [
        _movement(str(c), None if pd.isna(p) else str(p))
        for c, p in zip(out["band"], previous, strict=True)
    ]
    return out


def mark_persistence(flags: pd.DataFrame, previous_flags: pd.DataFrame | None) -> pd.DataFrame:
    """Add ``persistent``: flagged (risk or elevated risk) this quarter and last quarter."""
    out = flags.copy()
    if previous_flags is None:
        out["persistent"] = False
        return out
    prev = previous_flags[previous_flags["flag"].isin(FLAGGED)]
    keys = set(zip(prev["trust_code"].astype(str), prev["indicator_id"].astype(str), strict=True))
    now = out["flag"].isin(FLAGGED).to_numpy()
    was = np.array(
        [
            (t, i) in keys
            for t, i in zip(
                out["trust_code"].astype(str), out["indicator_id"].astype(str), strict=True
            )
        ],
        dtype=bool,
    )
    out["persistent"] = now & was
    return out
