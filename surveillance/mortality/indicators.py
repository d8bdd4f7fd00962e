"""The catalogue's spell-derived mortality indicators as ``indicators.csv`` rows, and the
mortality-alert flag.

Ratio indicators (``mort_ratio_*``): numerator = observed deaths, denominator = expected deaths
(sum of the risk model's p), value = O/E, over the 12 months to the quarter end, for the spells
that ``models/risk/indicator_groups.yaml`` assigns to each indicator. ``mort_alert`` (type
``rule``): numerator = number of RA-CUSUM alerts signalled in the quarter (any diagnosis group);
one alert or more makes the trust's flag ``elevated_risk`` (:func:`alert_flags`). ``alerts.csv``
lists every signal of the 12-month window (:mod:`surveillance.mortality.monitor`); these count
only its rows whose ``signal_month`` is in the quarter, as they did when ``alerts.csv`` held the
quarter alone, so publishing the window does not change the flags or the bands.
``mort_cusum_all`` (type ``cusum_z``): one row per month of the 12, all-diagnosis O and E.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from surveillance.contracts import INDICATOR_COLUMNS
from surveillance.errors import ConfigError
from surveillance.mortality.encode import (
    EncodedSpells,
    codes_for,
    encode_spells,
    month_label,
    month_number,
)
from surveillance.mortality.ratios import as_quarter, check_risks, window_mask
from surveillance.mortality.spec import RISK_DIR
from surveillance.periods import Quarter
from surveillance.stats.exact import combine_parts, exact_part_bincount

DEFAULT_GROUPS = RISK_DIR / "indicator_groups.yaml"


class IndicatorGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    groups: list[str] | Literal["all", "low_risk", "top_deaths"]
    admission_method: Literal["elective", "emergency"] | None = None
    weekend: bool = False
    proxy: bool = False
    low_risk_threshold: float = Field(0.005, gt=0, lt=1)
    deaths_share: float = Field(0.8, gt=0, le=1)


class IndicatorGroups(BaseModel):
    model_config = ConfigDict(extra="forbid")
    indicators: dict[str, IndicatorGroup]


def load_indicator_groups(path: Path | str | None = None) -> IndicatorGroups:
    path = Path(path) if path is not None else DEFAULT_GROUPS
    try:
        return IndicatorGroups.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: invalid indicator group mapping:\n{exc}") from exc


#: admission method levels of the indicator grid (code 0: neither, e.g. missing)
METHODS = ("elective", "emergency")


def indicator_grids(
    spells: pd.DataFrame, enc: EncodedSpells, p: np.ndarray, end_month: int, months: int
) -> dict:
    """Spells ``n``, deaths ``o`` and expected deaths ``e`` in the ``months`` to ``end_month``.

    By diagnosis group, trust, admission method (0 other, 1 elective, 2 emergency) and weekend
    admission (Saturday or Sunday), shape (groups, trusts, 3, 2), from which every indicator's
    spells are a selection; and ``month_n``, ``month_o``, ``month_e`` by month x trust (all
    diagnoses). Expected deaths are kept as the four exact part sums of
    :mod:`surveillance.stats.exact` (leading axis of 4), so every grid adds up exactly over any
    split of the spells into row chunks.
    """
    T, G = len(enc.trusts), len(enc.groups)
    idx = np.flatnonzero(window_mask(enc, end_month, months))
    method = codes_for(spells["admission_method"], list(METHODS))[idx] + 1
    weekend = ((enc.admission_day[idx] + 3) % 7 >= 5).astype(np.int64)  # 1970-01-01: Thursday
    trust = enc.trust[idx].astype(np.int64)
    key = ((enc.group[idx].astype(np.int64) * T + trust) * 3 + method) * 2 + weekend
    died, p_w = enc.died[idx].astype(float), p[idx]
    mkey = (enc.period_month[idx] - (end_month - months + 1)).astype(np.int64) * T + trust
    size, msize = G * T * 6, months * T
    return {
        "n": np.bincount(key, minlength=size).astype(float).reshape(G, T, 3, 2),
        "o": np.bincount(key, weights=died, minlength=size).reshape(G, T, 3, 2),
        "e": exact_part_bincount(key, p_w, size).reshape(4, G, T, 3, 2),
        "month_n": np.bincount(mkey, minlength=msize).astype(float).reshape(months, T),
        "month_o": np.bincount(mkey, weights=died, minlength=msize).reshape(months, T),
        "month_e": exact_part_bincount(mkey, p_w, msize).reshape(4, months, T),
    }


def group_selection(grids: dict, groups: np.ndarray, spec: IndicatorGroup) -> np.ndarray:
    """Boolean per diagnosis group: the groups an indicator counts (national figures decide
    ``low_risk`` and ``top_deaths``)."""
    G = len(groups)
    n_g, deaths_g, e_g = (grids[k].sum(axis=(1, 2, 3)) for k in ("n", "o", "e"))
    if spec.groups == "all":
        return np.ones(G, bool)
    if spec.groups == "low_risk":
        with np.errstate(invalid="ignore", divide="ignore"):
            return e_g / n_g < spec.low_risk_threshold
    if spec.groups == "top_deaths":
        order = np.argsort(-deaths_g, kind="stable")
        share = np.cumsum(deaths_g[order]) / max(deaths_g.sum(), 1.0)
        k = int(np.searchsorted(share, spec.deaths_share) + 1)
        use = np.zeros(G, bool)
        use[order[:k]] = True
        return use
    return np.isin(groups, spec.groups)


def indicator_sums(grids: dict, groups: np.ndarray, spec: IndicatorGroup) -> np.ndarray:
    """Spells, deaths and expected deaths per trust for one indicator, shape (3, trusts)."""
    method = np.ones(3, bool)
    if spec.admission_method is not None:
        method[:] = False
        method[1 + METHODS.index(spec.admission_method)] = True
    weekend = np.array([not spec.weekend, True])
    sel = (
        group_selection(grids, groups, spec)[:, None, None, None]
        & method[None, None, :, None]
        & weekend[None, None, None, :]
    )
    return np.stack([np.where(sel, grids[k], 0.0).sum(axis=(0, 2, 3)) for k in ("n", "o", "e")])


def mortality_indicators(
    spells: pd.DataFrame,
    p: np.ndarray,
    quarter: Quarter | str,
    alerts: pd.DataFrame | None = None,
    outcome: str = "died_30d",
    period_date: str = "discharge_date",
    months: int = 12,
    mapping: IndicatorGroups | None = None,
    enc: EncodedSpells | None = None,
) -> pd.DataFrame:
    """``indicators.csv``-shaped rows for the spell-derived mortality indicators.

    Rows only for trusts with at least one spell in an indicator's spells (no row = no data).
    With ``alerts`` (the run's ``monitor`` output: the window) also ``mort_alert`` rows for every
    trust with spells in the window, counting the alerts signalled in the quarter (numerator 0
    when none).
    """
    q = as_quarter(quarter)
    enc = enc if enc is not None else encode_spells(spells, outcome, period_date)
    p = check_risks(p, len(enc.died))
    grids = indicator_grids(spells, enc, p, month_number(q.end), months)
    return indicator_rows(grids, enc.trusts, enc.groups, q, alerts, mapping)


def indicator_rows(
    grids: dict,
    trusts: np.ndarray,
    groups: np.ndarray,
    quarter: Quarter | str,
    alerts: pd.DataFrame | None = None,
    mapping: IndicatorGroups | None = None,
) -> pd.DataFrame:
    """The :func:`mortality_indicators` rows from :func:`indicator_grids` (summed over chunks)."""
    q = as_quarter(quarter)
    mapping = mapping or load_indicator_groups()
    trusts, groups = np.asarray(trusts), np.asarray(groups)
    grids = dict(grids)
    grids["e"], grids["month_e"] = combine_parts(grids["e"]), combine_parts(grids["month_e"])
    months = grids["month_n"].shape[0]
    end = month_number(q.end)
    start, stop = q.lookback_start(months).date().isoformat(), q.end.date().isoformat()
    frames = []
    for ind, spec in mapping.indicators.items():
        n, o, e = indicator_sums(grids, groups, spec)
        has = n > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(e > 0, o / e, np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "trust_code": trusts[has],
                    "indicator_id": ind,
                    "period_start": start,
                    "period_end": stop,
                    "numerator": o[has],
                    "denominator": e[has],
                    "value": value[has],
                }
            )
        )
    # monthly all-diagnosis series for the cusum_z indicator
    n, o, e = grids["month_n"], grids["month_o"], grids["month_e"]
    mi, ti = np.nonzero(n > 0)
    labels = [month_label(end - months + 1 + k) for k in range(months)]
    m_start = np.array([pd.Period(lb, "M").start_time.date().isoformat() for lb in labels])
    m_end = np.array([pd.Period(lb, "M").end_time.date().isoformat() for lb in labels])
    with np.errstate(invalid="ignore", divide="ignore"):
        frames.append(
            pd.DataFrame(
                {
                    "trust_code": trusts[ti],
                    "indicator_id": "mort_cusum_all",
                    "period_start": m_start[mi],
                    "period_end": m_end[mi],
                    "numerator": o[mi, ti],
                    "denominator": e[mi, ti],
                    "value": np.where(e[mi, ti] > 0, o[mi, ti] / e[mi, ti], np.nan),
                }
            )
        )
    if alerts is not None:
        in_window = grids["n"].sum(axis=(0, 2, 3)) > 0
        counts = alert_counts(alerts, q).reindex(trusts[in_window], fill_value=0)
        frames.append(
            pd.DataFrame(
                {
                    "trust_code": counts.index.to_numpy(),
                    "indicator_id": "mort_alert",
                    "period_start": q.start.date().isoformat(),
                    "period_end": stop,
                    "numerator": counts.to_numpy().astype(float),
                    "denominator": np.nan,
                    "value": np.nan,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["standard_error"] = np.nan
    out["band"] = ""
    out = out[INDICATOR_COLUMNS]
    return out.sort_values(["trust_code", "indicator_id", "period_start"]).reset_index(drop=True)


def alert_counts(alerts: pd.DataFrame, quarter: Quarter | str) -> pd.Series:
    """Number of alerts per trust signalled in the quarter's months (rows of the window's
    ``alerts.csv`` from earlier months are not counted)."""
    q = as_quarter(quarter)
    in_q = alerts[alerts["signal_month"].isin(q.months())]
    return in_q.groupby("trust_code").size().rename("alerts")


def alert_flags(
    alerts: pd.DataFrame,
    trusts: list[str] | np.ndarray,
    quarter: Quarter | str,
    min_alerts: int = 1,
) -> pd.DataFrame:
    """Flags-shaped rows for ``mort_alert``: ``elevated_risk`` when the trust had at least
    ``min_alerts`` alerts signalled in the quarter (:func:`alert_counts`), else ``no_evidence``."""
    counts = alert_counts(alerts, quarter).reindex(sorted(map(str, trusts)), fill_value=0)
    return pd.DataFrame(
        {
            "trust_code": counts.index.to_numpy(),
            "indicator_id": "mort_alert",
            "type": "rule",
            "observed": counts.to_numpy().astype(float),
            "flag": np.where(counts.to_numpy() >= min_alerts, "elevated_risk", "no_evidence"),
            "method": "ra_cusum",
        }
    )
