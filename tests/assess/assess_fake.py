"""A small fake indicators.csv generated from the catalogue (for tests that need every type)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from surveillance.periods import Quarter


def fake_indicators(
    catalogue: pd.DataFrame, n_trusts: int = 40, quarter: str = "2013Q3", seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trusts, indicators) with one plausible row per trust x indicator (12 monthly rows for
    cusum_z); no derived indicators. Trust effects make a few trusts clearly worse."""
    rng = np.random.default_rng(seed)
    q = Quarter.parse(quarter)
    codes = [f"R{k:02d}" for k in range(n_trusts)]
    bad = rng.normal(size=n_trusts)
    trusts = pd.DataFrame(
        {
            "trust_code": codes,
            "trust_name": [f"Trust {c}" for c in codes],
            "region": ["North", "South"] * (n_trusts // 2) + ["North"] * (n_trusts % 2),
            "trust_type": ["acute_specialist" if k < 3 else "acute" for k in range(n_trusts)],
            "special_measures": False,
            "last_inspection_date": "",
            "last_rating": "",
        }
    )
    rows = []
    period = (q.start.strftime("%Y-%m-%d"), q.end.strftime("%Y-%m-%d"))
    for ind, c in catalogue[catalogue["derived_from"] == ""].iterrows():
        kind = c["type"] if c["type"] != "cusum_z" else c["series_type"]
        worse = 1.0 if c["polarity"] == "higher_is_worse" else -1.0
        months = q.lookback_months(12) if c["type"] == "cusum_z" else [None]
        for t, code in enumerate(codes):
            eff = worse * (0.6 * bad[t] + 0.5 * rng.normal())
            for m in months:
                r = {"trust_code": code, "indicator_id": ind}
                if m is None:
                    r["period_start"], r["period_end"] = period
                else:
                    start = pd.Timestamp(m + "-01")
                    r["period_start"] = start.strftime("%Y-%m-%d")
                    r["period_end"] = (start + pd.offsets.MonthEnd(0)).strftime("%Y-%m-%d")
                n = float(rng.integers(200, 2000))
                if kind == "proportion":
                    p = 1 / (1 + np.exp(-(-1.0 + 0.15 * eff)))
                    r["numerator"], r["denominator"] = float(rng.binomial(int(n), p)), n
                elif kind in ("ratio", "rate"):
                    e = n / 20
                    r["numerator"] = float(rng.poisson(e * np.exp(0.15 * eff)))
                    r["denominator"] = e if kind == "ratio" else n * 10
                elif kind == "count":
                    r["numerator"] = float(rng.poisson(2 * np.exp(0.4 * eff)))
                    r["denominator"] = n * 20
                elif kind == "score":
                    r["value"], r["standard_error"] = 70 + 2 * eff + rng.normal(), 1.0
                elif kind == "external_band":
                    labels = list(c["band_map"])
                    r["band"] = labels[int(rng.integers(len(labels)))]
                elif kind == "rule":
                    r["numerator"] = float(rng.poisson(0.2))
                rows.append(r)
    ind = pd.DataFrame(rows)
    for col in ("numerator", "denominator", "value", "standard_error", "band"):
        if col not in ind:
            ind[col] = np.nan
    cols = [
        "trust_code",
        "indicator_id",
        "period_start",
        "period_end",
        "numerator",
        "denominator",
        "value",
        "standard_error",
        "band",
    ]
    return trusts, ind[cols]
