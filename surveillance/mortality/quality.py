"""Coding data-quality signals that move mortality ratios: palliative care coding and comorbidity
coding depth, by trust and quarter, and sudden changes between consecutive quarters.

A trust that starts coding more palliative care (not adjusted for by SHMI, but adjusted for by
HSMR-style models and read by reviewers) or more comorbidity (adjusted for: a deeper Charlson
index raises expected deaths) can lower its ratio without any change in care: the 2013 inquiries
found both. These signals are shown beside the ratios, never used to change them.

Measures per trust x quarter (spells assigned to the quarter of their period date):
``palliative_rate`` (spells coded palliative / spells), ``palliative_death_rate`` (deaths coded
palliative / deaths, SHMI's contextual indicator), ``mean_comorbidity`` (mean Charlson-style index).

Sudden change between consecutive quarters: Y = measure(q) - measure(q - 1) with standard error
under no change (pooled binomial variance for rates, Welch for the mean), compared across trusts
with the national change as target and the additive overdispersion of Spiegelhalter (2005)
(winsorised 10%, DerSimonian-Laird tau2), i.e. a funnel plot of the changes; a change beyond the
99.8% limit (|z_adjusted| > 3.09) is a ``sudden change``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from surveillance.mortality.encode import EncodedSpells, encode_spells, month_number
from surveillance.mortality.ratios import as_quarter
from surveillance.periods import Quarter
from surveillance.stats.limits import z_for_level
from surveillance.stats.overdispersion import adjust

MEASURES = ("palliative_rate", "palliative_death_rate", "mean_comorbidity")


def _quarter_label(month: np.ndarray) -> np.ndarray:
    year = 1970 + month // 12
    q = month % 12 // 3 + 1
    return np.char.add(np.char.add(year.astype(str), "Q"), q.astype(str))


def quality_by_quarter(
    spells: pd.DataFrame | None = None,
    quarter: Quarter | str | None = None,
    n_quarters: int = 8,
    outcome: str = "died_30d",
    period_date: str = "discharge_date",
    enc: EncodedSpells | None = None,
) -> pd.DataFrame:
    """Trust x quarter coding measures for the ``n_quarters`` quarters ending at ``quarter``.

    Columns: trust_code, quarter, spells, deaths, palliative_spells, palliative_deaths,
    palliative_rate, palliative_death_rate, mean_comorbidity, var_comorbidity.
    """
    enc = enc if enc is not None else encode_spells(spells, outcome, period_date)
    q = as_quarter(quarter) if quarter is not None else None
    end = quarter_end_month(q, enc)
    return quality_frame(quarter_grids(enc, end, n_quarters), enc.trusts, end)


#: the sums behind the coding measures, each a (quarters, trusts) grid (see quarter_grids)
QUARTER_GRID_NAMES = ("n", "d", "ps", "pd", "c1", "c2")


def quarter_end_month(q: Quarter | None, enc: EncodedSpells) -> int:
    """Last month (months since 1970-01) of the quarter ``q`` (default: the latest spells')."""
    end = month_number(q.end) if q is not None else int(enc.period_month.max())
    return end - (end % 3) + 2


def quarter_grids(enc: EncodedSpells, end: int, n_quarters: int) -> np.ndarray:
    """Spells, deaths, palliative spells and deaths, sum and sum of squares of comorbidity per
    quarter x trust (quarter 0 ends with month ``end``), shape (6, n_quarters, trusts).

    Sums add up over any split of the spells into row chunks.
    """
    mask = (enc.period_month <= end) & (enc.period_month > end - 3 * n_quarters)
    qi = (end - enc.period_month[mask]) // 3  # 0 = latest quarter
    T = len(enc.trusts)
    key = qi.astype(np.int64) * T + enc.trust[mask]
    size = n_quarters * T

    def s(w=None):
        return np.bincount(key, weights=w, minlength=size).astype(float).reshape(n_quarters, T)

    died = enc.died[mask].astype(float)
    pal = enc.palliative[mask].astype(float)
    com = enc.comorbidity[mask]
    return np.stack([s(), s(died), s(pal), s(pal * died), s(com), s(com * com)])


def quality_frame(grids: np.ndarray, trusts: np.ndarray, end: int) -> pd.DataFrame:
    """The :func:`quality_by_quarter` frame from :func:`quarter_grids` (summed over chunks)."""
    n_quarters, T = grids.shape[1], len(trusts)
    n, d, ps, pd_, c1, c2 = (g.reshape(-1) for g in grids)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = c1 / n
        var = np.maximum(c2 / n - mean * mean, 0.0) * n / np.maximum(n - 1, 1)
        frame = pd.DataFrame(
            {
                "trust_code": np.tile(np.asarray(trusts), n_quarters),
                "quarter_index": np.repeat(np.arange(n_quarters), T),
                "spells": n.astype(np.int64),
                "deaths": d.astype(np.int64),
                "palliative_spells": ps.astype(np.int64),
                "palliative_deaths": pd_.astype(np.int64),
                "palliative_rate": ps / n,
                "palliative_death_rate": pd_ / d,
                "mean_comorbidity": mean,
                "var_comorbidity": var,
            }
        )
    last_months = end - 3 * frame["quarter_index"].to_numpy()
    frame.insert(1, "quarter", _quarter_label(last_months))
    frame = frame[frame["spells"] > 0].drop(columns="quarter_index")
    return frame.sort_values(["trust_code", "quarter"]).reset_index(drop=True)


def _change(y1, n1, y2, n2, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Change Y and its standard error under no change."""
    if kind == "rate":
        with np.errstate(invalid="ignore", divide="ignore"):
            r1, r2 = y1 / n1, y2 / n2
            pooled = (y1 + y2) / (n1 + n2)
            se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        return r2 - r1, se
    raise ValueError(kind)


def quality_changes(by_quarter: pd.DataFrame, level: float = 0.998) -> pd.DataFrame:
    """Quarter-on-quarter changes of each measure, overdispersion-adjusted across trusts.

    One row per trust x quarter (from the second quarter present): for each measure ``m``,
    ``m_change``, ``m_change_z`` (z_adjusted of the change) and ``m_sudden_change`` (bool).
    """
    zq = z_for_level(level)
    df = by_quarter.sort_values(["trust_code", "quarter"])
    prev = df.groupby("trust_code", sort=False).shift(1)
    has_prev = prev["spells"].notna().to_numpy()
    cur, prv = df[has_prev].reset_index(drop=True), prev[has_prev].reset_index(drop=True)
    out = cur[["trust_code", "quarter"]].copy()
    specs = {
        "palliative_rate": ("palliative_spells", "spells"),
        "palliative_death_rate": ("palliative_deaths", "deaths"),
    }
    for m in MEASURES:
        if m in specs:
            num, den = specs[m]
            y, se = _change(
                prv[num].to_numpy(float),
                prv[den].to_numpy(float),
                cur[num].to_numpy(float),
                cur[den].to_numpy(float),
                "rate",
            )
        else:
            y = (cur["mean_comorbidity"] - prv["mean_comorbidity"]).to_numpy(float)
            se = np.sqrt(
                cur["var_comorbidity"].to_numpy(float) / cur["spells"].to_numpy(float)
                + prv["var_comorbidity"].to_numpy(float) / prv["spells"].to_numpy(float)
            )
        ok = np.isfinite(y) & np.isfinite(se) & (se > 0)
        z_adj = np.full(len(y), np.nan)
        for qtr in np.unique(out["quarter"]):
            sel = ok & (out["quarter"].to_numpy() == qtr)
            if sel.sum() < 3:
                continue
            target = float(np.average(y[sel], weights=1 / se[sel] ** 2))
            a = adjust(y[sel], se[sel], target, trim="winsorise", overdispersion="additive")
            z_adj[sel] = a.z_adjusted
        out[f"{m}_change"] = y
        out[f"{m}_change_z"] = z_adj
        with np.errstate(invalid="ignore"):
            out[f"{m}_sudden_change"] = np.abs(z_adj) > zq
    return out.reset_index(drop=True)


def quality_context(
    spells: pd.DataFrame | None,
    quarter: Quarter | str,
    outcome: str = "died_30d",
    period_date: str = "discharge_date",
    enc: EncodedSpells | None = None,
    by_quarter: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per trust, for the mortality table: the quarter's measures, their change from the previous
    quarter (z) and whether any sudden change occurred in the four quarters of the monitored year
    (``coding_change_12m``: names of the measures that jumped). ``by_quarter``: the five quarters'
    :func:`quality_by_quarter` frame when already computed (``spells`` and ``enc`` are not read)."""
    q = as_quarter(quarter)
    byq = (
        by_quarter
        if by_quarter is not None
        else quality_by_quarter(
            spells, q, n_quarters=5, outcome=outcome, period_date=period_date, enc=enc
        )
    )
    ch = quality_changes(byq)
    latest = byq[byq["quarter"] == str(q)].set_index("trust_code")
    out = pd.DataFrame(index=pd.Index(sorted(byq["trust_code"].unique()), name="trust_code"))
    for m in MEASURES:
        out[f"dq_{m}_quarter"] = latest[m]
    chq = ch[ch["quarter"] == str(q)].set_index("trust_code")
    for m in ("palliative_death_rate", "mean_comorbidity"):
        out[f"dq_{m}_change_z"] = chq[f"{m}_change_z"]
    flags = ch.groupby("trust_code").agg(**{m: (f"{m}_sudden_change", "any") for m in MEASURES})
    names = flags.apply(lambda r: ";".join(m for m in MEASURES if r[m]), axis=1)
    out["dq_sudden_change_12m"] = names.reindex(out.index).fillna("")
    return out.reset_index()
