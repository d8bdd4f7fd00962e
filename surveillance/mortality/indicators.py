"""The catalogue's spell-derived mortality indicators as ``indicators.csv`` rows, and the
mortality-alert flag.

Ratio indicators (``mort_ratio_*``): numerator = observed deaths, denominator = expected deaths
(sum of the risk model's p), value = O/E, over the 12 months to the quarter end, for the spells
that ``models/risk/indicator_groups.yaml`` assigns to each indicator. ``mort_alert`` (type
``rule``): numerator = number of RA-CUSUM alerts signalled in the quarter (any diagnosis group);
one alert or more makes the trust's flag ``elevated_risk`` (:func:`alert_flags`).
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


def indicator_masks(
    spells: pd.DataFrame,
    enc: EncodedSpells,
    p: np.ndarray,
    window: np.ndarray,
    mapping: IndicatorGroups,
) -> dict[str, np.ndarray]:
    """Boolean spell mask per indicator id (window applied)."""
    idx = np.flatnonzero(window)
    out = {}
    for ind, sub in window_masks(spells, enc, p, idx, mapping).items():
        mask = np.zeros(len(window), dtype=bool)
        mask[idx[sub]] = True
        out[ind] = mask
    return out


def window_masks(
    spells: pd.DataFrame,
    enc: EncodedSpells,
    p: np.ndarray,
    idx: np.ndarray,
    mapping: IndicatorGroups,
) -> dict[str, np.ndarray]:
    """Per indicator id a boolean mask over the window's spells ``idx`` (positions in ``enc``).

    Works on the window only (a third of a 36-month national file) and touches each spell column
    once, not once per indicator.
    """
    G = len(enc.groups)
    group = enc.group[idx]
    n_g = np.bincount(group, minlength=G).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(group, weights=p[idx], minlength=G) / n_g
    deaths_g = np.bincount(group, weights=enc.died[idx], minlength=G)
    method = None
    weekend = None
    out = {}
    for ind, spec in mapping.indicators.items():
        if spec.groups == "all":
            use = np.ones(G, bool)
        elif spec.groups == "low_risk":
            use = mean_p < spec.low_risk_threshold
        elif spec.groups == "top_deaths":
            order = np.argsort(-deaths_g, kind="stable")
            share = np.cumsum(deaths_g[order]) / max(deaths_g.sum(), 1.0)
            k = int(np.searchsorted(share, spec.deaths_share) + 1)
            use = np.zeros(G, bool)
            use[order[:k]] = True
        else:
            use = np.isin(enc.groups, spec.groups)
        mask = use[group]
        if spec.admission_method is not None:
            if method is None:
                method = codes_for(spells["admission_method"], ["elective", "emergency"])[idx]
            mask &= method == (1 if spec.admission_method == "emergency" else 0)
        if spec.weekend:
            if weekend is None:
                weekend = (
                    enc.admission_day[idx] + 3
                ) % 7 >= 5  # Monday = 0 (1970-01-01 a Thursday)
            mask &= weekend
        out[ind] = mask
    return out


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
    With ``alerts`` (the quarter's ``monitor`` output) also ``mort_alert`` rows for every trust
    with spells in the window (numerator 0 when none).
    """
    q = as_quarter(quarter)
    mapping = mapping or load_indicator_groups()
    enc = enc if enc is not None else encode_spells(spells, outcome, period_date)
    p = check_risks(p, len(enc.died))
    end = month_number(q.end)
    window = window_mask(enc, end, months)
    start, stop = q.lookback_start(months).date().isoformat(), q.end.date().isoformat()
    T = len(enc.trusts)
    frames = []
    idx = np.flatnonzero(window)
    trust_w, died_w, p_w = enc.trust[idx], enc.died[idx], p[idx]
    for ind, mask in window_masks(spells, enc, p, idx, mapping).items():
        trust_m = trust_w[mask]
        n = np.bincount(trust_m, minlength=T)
        o = np.bincount(trust_m, weights=died_w[mask], minlength=T)
        e = np.bincount(trust_m, weights=p_w[mask], minlength=T)
        has = n > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(e > 0, o / e, np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "trust_code": enc.trusts[has],
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
    rel = (enc.period_month[idx] - (end - months + 1)).astype(np.int64)
    key = rel * T + trust_w
    n = np.bincount(key, minlength=months * T).reshape(months, T)
    o = np.bincount(key, weights=died_w, minlength=months * T).reshape(months, T)
    e = np.bincount(key, weights=p_w, minlength=months * T).reshape(months, T)
    mi, ti = np.nonzero(n > 0)
    labels = [month_label(end - months + 1 + k) for k in range(months)]
    m_start = np.array([pd.Period(lb, "M").start_time.date().isoformat() for lb in labels])
    m_end = np.array([pd.Period(lb, "M").end_time.date().isoformat() for lb in labels])
    with np.errstate(invalid="ignore", divide="ignore"):
        frames.append(
            pd.DataFrame(
                {
                    "trust_code": enc.trusts[ti],
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
        in_window = np.bincount(enc.trust[window], minlength=T) > 0
        counts = alert_counts(alerts, q).reindex(enc.trusts[in_window], fill_value=0)
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
    """Number of alerts per trust signalled in the quarter's months."""
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
    ``min_alerts`` alerts in the quarter, else ``no_evidence``."""
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
