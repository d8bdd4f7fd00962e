"""Ward-level staffing: planned and actual hours by staff group and shift, monthly."""

from __future__ import annotations

import numpy as np
import pandas as pd

from surveillance.periods import Quarter
from surveillance.synth.config import DOMAINS
from surveillance.synth.io import format_fixed
from surveillance.synth.world import STREAM_STAFFING, Nation, month_ordinal, rng_for

STAFFING_COLUMNS = [
    "trust_code",
    "ward_code",
    "month",
    "staff_group",
    "shift",
    "planned_hours",
    "actual_hours",
]
# (staff_group, shift): planned hours relative to registered-nurse days; fill-rate offset.
ROTA = (
    ("registered_nurse", "day", 1.00, 0.000),
    ("registered_nurse", "night", 0.72, -0.015),
    ("care_staff", "day", 0.62, 0.030),
    ("care_staff", "night", 0.45, 0.040),
)


def wards(nation: Nation) -> pd.DataFrame:
    """The nation's wards: trust, ward code, planned-hours size and a persistent fill effect."""
    cfg = nation.config.staffing
    t = nation.trusts
    share = cfg.ward_share_by_scale.get(nation.scale, 1.0)
    n_wards = np.clip(
        np.rint(t["annual_spells"].to_numpy() / cfg.spells_per_ward * share),
        max(1, round(cfg.min_wards * share)),
        cfg.max_wards,
    ).astype(int)
    rng = rng_for(nation.seed, STREAM_STAFFING)
    trust = np.repeat(np.arange(len(t)), n_wards)
    seq = np.concatenate([np.arange(1, k + 1) for k in n_wards])
    codes = t["trust_code"].to_numpy()[trust]
    return pd.DataFrame(
        {
            "trust_index": trust,
            "trust_code": codes,
            "ward_code": [f"{c}-W{j:03d}" for c, j in zip(codes, seq, strict=True)],
            "size": rng.lognormal(0.0, 0.25, trust.size),
            "fill_effect": rng.normal(0.0, cfg.ward_sd, trust.size),
        }
    )


def generate_staffing(nation: Nation, quarter: Quarter, ward_table: pd.DataFrame) -> pd.DataFrame:
    """Staffing rows for the 12 months to ``quarter``'s end (each month its own stream)."""
    cfg = nation.config.staffing
    trust = ward_table["trust_index"].to_numpy()
    n = trust.size
    frames = []
    for month in quarter.lookback_months(12):
        period = pd.Period(month, freq="M")
        rng = rng_for(nation.seed, STREAM_STAFFING, month_ordinal(period))
        q = Quarter(period.year, (period.month - 1) // 3 + 1)
        safe = nation.latent_quality(q)[:, DOMAINS.index("safe")]
        trust_fill = cfg.fill_mean + cfg.fill_quality_slope * safe
        days = period.days_in_month / 30.4
        for group, shift, rel, offset in ROTA:
            planned = cfg.rn_day_hours * rel * days * ward_table["size"].to_numpy()
            planned = planned * rng.uniform(0.97, 1.03, n)
            fill = (
                trust_fill[trust]
                + offset
                + ward_table["fill_effect"].to_numpy()
                + rng.normal(0.0, cfg.month_sd, n)
            )
            actual = planned * np.clip(fill, 0.5, 1.4)
            frames.append(
                pd.DataFrame(
                    {
                        "trust_code": ward_table["trust_code"].to_numpy(),
                        "ward_code": ward_table["ward_code"].to_numpy(),
                        "month": month,
                        "staff_group": group,
                        "shift": shift,
                        "planned_hours": format_fixed(pd.Series(planned), 1),
                        "actual_hours": format_fixed(pd.Series(actual), 1),
                    }
                )
            )
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(
        ["trust_code", "ward_code", "month", "staff_group", "shift"], ignore_index=True
    )[STAFFING_COLUMNS]
