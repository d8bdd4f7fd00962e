"""Observed/expected mortality ratios with SHMI-method overdispersed limits (``mortality.csv``).

For each trust (``diagnosis_group == "ALL"``) and each trust x diagnosis group: observed deaths O,
expected deaths E = sum of the risk model's p over the spells that finished in the 12 months to
the quarter end, ratio O/E, and the SHMI method's overdispersed limits: z = sqrt(E) log(O/E),
SHMI truncation of 10% each tail, phi, DerSimonian-Laird tau2 (additive random effects), limits
exp(+- z_alpha sqrt(1/E + tau2)) (Spiegelhalter 2005; NHS Digital SHMI specification). The
overdispersion is estimated across trusts separately for ``ALL`` and for each diagnosis group.

Banding uses the 99.8% overdispersed limits: ``higher than expected`` when z_adjusted > 3.090232
(the ratio lies above upper998), ``lower than expected`` below -3.090232, otherwise
``as expected``. Zero deaths: the transform uses O = 0.5 (``zero_correction``) so z stays finite
while ``ratio`` is reported as 0. A cell with E = 0 carries no information: z is NaN and the
banding is ``as expected``.

Persistence (Keogh review selection): ``persistent`` is True when the cell is an outlier in the
same direction in the monitored 12 months and in the 12 months before them (same model, same
method).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from surveillance.errors import SurveillanceError
from surveillance.mortality.encode import EncodedSpells, encode_spells, month_number
from surveillance.periods import Quarter
from surveillance.stats.exact import combine_parts, exact_part_bincount
from surveillance.stats.funnel import assess_arrays
from surveillance.stats.limits import z_for_level

BANDS = ("higher than expected", "as expected", "lower than expected")
ALL = "ALL"


def as_quarter(quarter: Quarter | str) -> Quarter:
    return quarter if isinstance(quarter, Quarter) else Quarter.parse(str(quarter))


def check_risks(p: np.ndarray, n: int) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.shape != (n,):
        raise SurveillanceError(f"p: expected one risk per spell ({n}), got shape {p.shape}")
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        raise SurveillanceError(
            f"p: risks must be finite and in [0, 1]; rows {(np.flatnonzero(bad)[:10] + 1).tolist()}"
        )
    return p


def window_mask(enc: EncodedSpells, end_month: int, months: int) -> np.ndarray:
    return (enc.period_month <= end_month) & (enc.period_month > end_month - months)


def assess_cells(o: np.ndarray, e: np.ndarray, n: np.ndarray, levels=(0.95, 0.998)) -> dict:
    """SHMI-method assessment of each row (diagnosis group) across trusts (columns)."""
    has = (n > 0) & (e > 0)
    obs = np.where(has, o, np.nan)
    exp_ = np.where(has, e, np.nan)
    with np.errstate(over="ignore"):  # exp of the limits of cells with E near 0 -> inf
        a = _assess(obs, exp_, levels)
    return {
        "z": a.z,
        "z_adjusted": a.z_adjusted,
        "phi": np.broadcast_to(np.asarray(a.phi, float).reshape(-1, 1), o.shape),
        "tau2": np.broadcast_to(np.asarray(a.tau2, float).reshape(-1, 1), o.shape),
        "limits": a.limits,
    }


def _assess(obs: np.ndarray, exp_: np.ndarray, levels):
    return assess_arrays(
        obs,
        exp_,
        data_type="SR",
        sr_method="SHMI",
        trim="truncate",
        overdispersion="additive",
        levels=levels,
        zero_correction=0.5,
        shmi_rounding=False,
    )


def banding(z_adjusted: np.ndarray, level: float = 0.998) -> np.ndarray:
    zq = z_for_level(level)
    out = np.full(z_adjusted.shape, BANDS[1], dtype=object)
    with np.errstate(invalid="ignore"):
        out[z_adjusted > zq] = BANDS[0]
        out[z_adjusted < -zq] = BANDS[2]
    return out


def mortality_table(
    spells: pd.DataFrame,
    p: np.ndarray,
    quarter: Quarter | str,
    outcome: str = "died_30d",
    period_date: str = "discharge_date",
    months: int = 12,
    context: pd.DataFrame | None = None,
    enc: EncodedSpells | None = None,
) -> pd.DataFrame:
    """The ``mortality.csv`` frame: DESIGN.md section 6 columns, then extras.

    Parameters
    ----------
    spells : spells (DESIGN.md section 4); only those whose ``period_date`` falls in the window
        count (the 12 months to the quarter end; the 12 months before for persistence).
    p : risk of ``outcome`` per spell from :class:`RiskModel.predict` (input order).
    context : optional trust-level data-quality frame from
        :func:`surveillance.mortality.quality.quality_context`, joined on ``trust_code``.

    Extras after the contract columns: ``spells, z, z_adjusted, phi, tau2, previous_observed,
    previous_expected, previous_ratio, previous_banding, persistent, palliative_rate,
    palliative_death_rate, mean_comorbidity`` (+ context columns).
    """
    q = as_quarter(quarter)
    enc = enc if enc is not None else encode_spells(spells, outcome, period_date)
    p = check_risks(p, len(enc.died))
    grids = cell_grids(enc, p, month_number(q.end), months)
    return table_from_grids(grids, enc.trusts, enc.groups, context)


def cell_grids(enc: EncodedSpells, p: np.ndarray, end_month: int, months: int) -> dict:
    """Per diagnosis group x trust sums (each a (groups, trusts) grid) behind ``mortality.csv``.

    Over the ``months`` to ``end_month``: spells ``n``, deaths ``o``, expected deaths (``e``, as
    the four exact part sums of :mod:`surveillance.stats.exact`, shape (4, groups, trusts)),
    palliative-coded spells ``pal`` and deaths ``pal_d``, and the sum of comorbidity indices
    ``com``; over the ``months`` before them ``prev_n``, ``prev_o``, ``prev_e`` (persistence).
    Every grid adds up exactly over any split of the spells into row chunks
    (:mod:`surveillance.mortality.partials`), so the table does not depend on the split.
    """
    T, G = len(enc.trusts), len(enc.groups)

    def grid(key: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(key, weights=weights, minlength=G * T).reshape(G, T).astype(float)

    def parts(key: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return exact_part_bincount(key, weights, G * T).reshape(4, G, T)

    cur = window_mask(enc, end_month, months)
    prev = window_mask(enc, end_month - months, months)
    key = enc.group[cur].astype(np.int64) * T + enc.trust[cur]
    died = enc.died[cur]
    pal = enc.palliative[cur].astype(float)
    pkey = enc.group[prev].astype(np.int64) * T + enc.trust[prev]
    return {
        "n": grid(key),
        "o": grid(key, died.astype(float)),
        "e": parts(key, p[cur]),
        "pal": grid(key, pal),
        "pal_d": grid(key[died], pal[died]),
        "com": grid(key, enc.comorbidity[cur]),
        "prev_n": grid(pkey),
        "prev_o": grid(pkey, enc.died[prev].astype(float)),
        "prev_e": parts(pkey, p[prev]),
    }


def table_from_grids(
    grids: dict,
    trusts: np.ndarray,
    groups: np.ndarray,
    context: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The ``mortality.csv`` frame from :func:`cell_grids` (summed over chunks if need be)."""
    g = dict(grids)
    g["e"], g["prev_e"] = combine_parts(g["e"]), combine_parts(g["prev_e"])

    def with_all(m: np.ndarray) -> np.ndarray:
        return np.vstack([m, m.sum(0)])

    o, e, n = with_all(g["o"]), with_all(g["e"]), with_all(g["n"])
    po, pe, pn = with_all(g["prev_o"]), with_all(g["prev_e"]), with_all(g["prev_n"])
    a = assess_cells(o, e, n)
    pa = assess_cells(po, pe, pn)
    band = banding(a["z_adjusted"])
    pband = banding(pa["z_adjusted"])
    with np.errstate(invalid="ignore", divide="ignore"):
        pall = with_all(g["pal"]) / n
        pall_d = with_all(g["pal_d"]) / o
        comorb = with_all(g["com"]) / n

    gi, ti = np.nonzero(n > 0)
    groups = np.append(np.asarray(groups), ALL)
    trusts = np.asarray(trusts)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(e > 0, o / e, np.nan)
        pratio = np.where(pe > 0, po / pe, np.nan)
    lo95, up95 = a["limits"][0.95]
    lo998, up998 = a["limits"][0.998]
    cell = (gi, ti)
    out = pd.DataFrame(
        {
            "trust_code": trusts[ti],
            "diagnosis_group": groups[gi],
            "observed": o[cell].astype(np.int64),
            "expected": e[cell],
            "ratio": ratio[cell],
            "lower95": lo95[cell],
            "upper95": up95[cell],
            "lower998": lo998[cell],
            "upper998": up998[cell],
            "banding": band[cell],
            "spells": n[cell].astype(np.int64),
            "z": a["z"][cell],
            "z_adjusted": a["z_adjusted"][cell],
            "phi": a["phi"][cell],
            "tau2": a["tau2"][cell],
            "previous_observed": po[cell].astype(np.int64),
            "previous_expected": pe[cell],
            "previous_ratio": pratio[cell],
            "previous_banding": np.where(pn[cell] > 0, pband[cell], ""),
        }
    )
    out["persistent"] = (out["banding"] != BANDS[1]) & (out["banding"] == out["previous_banding"])
    out["palliative_rate"] = pall[cell]
    out["palliative_death_rate"] = pall_d[cell]
    out["mean_comorbidity"] = comorb[cell]
    if context is not None:
        out = out.merge(context, on="trust_code", how="left", validate="many_to_one")
    order = np.lexsort(
        (
            out["diagnosis_group"].to_numpy(),
            out["diagnosis_group"].to_numpy() != ALL,
            out["trust_code"].to_numpy(),
        )
    )
    return out.iloc[order].reset_index(drop=True)
