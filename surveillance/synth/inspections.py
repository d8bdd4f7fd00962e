"""Inspection history: ratings from latent quality plus inspector noise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from surveillance.periods import Quarter
from surveillance.synth.world import STREAM_INSPECTIONS, Nation, quarter_ordinal, rng_for

RATINGS = ("Outstanding", "Good", "Requires improvement", "Inadequate")


def rate(composite: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """Map a latent composite (+ noise) to the four-point rating scale."""
    cuts = [thresholds["Outstanding"], thresholds["Good"], thresholds["Requires improvement"]]
    idx = np.select([composite > cuts[0], composite > cuts[1], composite > cuts[2]], [0, 1, 2], 3)
    return np.asarray(RATINGS, dtype=object)[idx]


def inspection_history(nation: Nation, until: Quarter) -> pd.DataFrame:
    """Every inspection from the configured first quarter to ``until``'s end.

    Each quarter has its own random stream, so the history up to any quarter is the same
    whatever the final quarter of the run.
    """
    cfg = nation.config.inspections
    t = nation.trusts
    never = rng_for(nation.seed, STREAM_INSPECTIONS).random(len(t)) < cfg.never_inspected
    rows = []
    q = Quarter.parse(cfg.first_quarter)
    while q <= until:
        rng = rng_for(nation.seed, STREAM_INSPECTIONS, quarter_ordinal(q))
        hit = (rng.random(len(t)) < cfg.per_quarter) & ~never
        day = rng.integers(0, (q.end - q.start).days + 1, len(t))
        noise = rng.normal(0.0, cfg.noise_sd, len(t))
        composite = nation.latent_quality(q).mean(axis=1) + noise
        ratings = rate(composite, cfg.thresholds)
        for i in np.flatnonzero(hit):
            rows.append(
                (t["trust_code"].iat[i], q.start + pd.Timedelta(days=int(day[i])), ratings[i])
            )
        q = q.next()
    frame = pd.DataFrame(rows, columns=["trust_code", "inspection_date", "overall_rating"])
    return frame.sort_values(["trust_code", "inspection_date"], ignore_index=True)


def last_inspection(history: pd.DataFrame, codes: pd.Series) -> pd.DataFrame:
    """``last_inspection_date`` and ``last_rating`` per trust (empty when never inspected)."""
    last = history.groupby("trust_code", sort=True).tail(1).set_index("trust_code")
    out = pd.DataFrame({"trust_code": codes})
    out["last_inspection_date"] = out["trust_code"].map(last["inspection_date"])
    out["last_rating"] = out["trust_code"].map(last["overall_rating"])
    return out
