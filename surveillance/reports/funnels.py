"""Funnel-plot data for one indicator from a run's ``flags.csv`` rows.

The limits come from :func:`surveillance.stats.funnel.funnel_limits` (scores:
:func:`surveillance.stats.limits.normal_limits`) with the ``tau2`` (additive)
or ``phi`` (multiplicative) the assessment itself recorded in ``flags.csv``, so a point outside the
plotted 95% / 99.8% limits is exactly a point whose ``z_adjusted`` is beyond 1.96 / 3.09: the
picture agrees with the flags.

What is plotted per type (``observed``/``expected`` as the assessment wrote them):

* ``ratio``: O/E against E; SHMI method on the log scale, CQC method on the square-root scale.
* ``proportion``: r/n against n when ``flags.csv`` carries the extra ``denominator`` column
  (observed = r), the axis in percent (``FunnelData.percent``); otherwise O/E against E on the
  log (Poisson) scale, labelled as such.
* ``rate`` and ``count``: O/E against E on the log scale.
* ``score``: value against precision 1/se^2, se recovered from ``(value - target) / z``.
* ``external_band``, ``rule``, ``cusum_z``: no funnel (they are not assessed on one).

References
----------
Spiegelhalter DJ. Funnel plots for comparing institutional performance. Stat Med 2005;24:1185.
Spiegelhalter DJ. Handling over-dispersion of performance indicators. QSHC 2005;14:347.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from surveillance.reports.figures import FunnelLimits
from surveillance.stats.funnel import funnel_limits
from surveillance.stats.limits import level_label, normal_limits

FUNNEL_TYPES = ("ratio", "proportion", "rate", "count", "score")
LEVELS = (0.95, 0.998)
_GRID = 48


@dataclass(frozen=True)
class FunnelData:
    """Everything :func:`surveillance.reports.figures.funnel_svg` needs for one indicator."""

    indicator_id: str
    trust_codes: list[str]
    x: np.ndarray
    y: np.ndarray
    flags: list[str]
    target: float
    limits: list[FunnelLimits]
    xlabel: str
    ylabel: str
    note: str
    #: y is a proportion: its axis is shown in percent (86%, not 0.86)
    percent: bool = False


def _grid(xmax: float) -> np.ndarray:
    # Denser near zero where the funnel bends.
    return xmax * 1.04 * np.linspace(0.02, 1.0, _GRID) ** 2


def _limits(
    target: float,
    s_of_x,
    xgrid: np.ndarray,
    scale: str,
    tau2: float,
    phi: float | None,
    multiplicative: bool,
) -> list[FunnelLimits]:
    out = []
    for level in LEVELS:
        if multiplicative and phi is not None and np.isfinite(phi):
            lo, hi = normal_limits(target, s_of_x(xgrid), level, scale, phi=phi)
        else:
            lo, hi = normal_limits(
                target, s_of_x(xgrid), level, scale, tau2=tau2 if np.isfinite(tau2) else 0.0
            )
        out.append(FunnelLimits(level=level, x=xgrid, lower=np.asarray(lo), upper=np.asarray(hi)))
    return out


def _stats_limits(
    data_type: str,
    sr_method: str,
    target: float,
    xgrid: np.ndarray,
    tau2: float,
    phi: float,
    multiplicative: bool,
) -> list[FunnelLimits]:
    """Overdispersed limits from :func:`surveillance.stats.funnel.funnel_limits`."""
    use_phi = phi if multiplicative and np.isfinite(phi) else None
    table = funnel_limits(
        xgrid,
        data_type=data_type,
        sr_method=sr_method,
        target=target,
        tau2=0.0 if use_phi is not None or not np.isfinite(tau2) else tau2,
        phi=use_phi,
        levels=LEVELS,
    )
    return [
        FunnelLimits(
            level=lv,
            x=xgrid,
            lower=table[f"lower{level_label(lv)}"].to_numpy(),
            upper=table[f"upper{level_label(lv)}"].to_numpy(),
        )
        for lv in LEVELS
    ]


def _first_finite(series: pd.Series) -> float:
    vals = pd.to_numeric(series, errors="coerce").dropna()
    return float(vals.iloc[0]) if len(vals) else float("nan")


def funnel_plot_data(
    rows: pd.DataFrame,
    indicator_type: str,
    sr_method: str | None = None,
    overdispersion: str | None = "additive",
) -> FunnelData | None:
    """Points and limits for one indicator's funnel, or ``None`` when the type has no funnel.

    Parameters
    ----------
    rows : DataFrame
        The indicator's ``flags.csv`` rows (any order); ``not_applicable`` rows and rows without
        finite observed/expected are left out.
    indicator_type : str
        The catalogue ``type``.
    sr_method : {"SHMI", "CQC"}, optional
        Ratio transform; defaults to the ``method`` recorded in the flags, else SHMI.
    overdispersion : {"additive", "multiplicative", None}
        How the assessment adjusted; the limits use the matching ``tau2`` or ``phi``.
    """
    if indicator_type not in FUNNEL_TYPES or rows.empty:
        return None
    rows = rows.sort_values("trust_code")
    rows = rows[rows["flag"] != "not_applicable"]
    if rows.empty:
        return None
    obs = pd.to_numeric(rows["observed"], errors="coerce").to_numpy(float)
    exp = pd.to_numeric(rows["expected"], errors="coerce").to_numpy(float)
    keep = np.isfinite(obs) & np.isfinite(exp) & (exp > 0)
    tau2 = _first_finite(rows["tau2"])
    phi = _first_finite(rows["phi"])
    # What the assessment actually applied (flags.csv ``method``, e.g. "log(SHMI)+additive")
    # wins over the catalogue's setting.
    applied = " ".join(rows["method"].dropna().astype(str).unique()).lower()
    if "multiplicative" in applied:
        overdispersion = "multiplicative"
    elif "additive" in applied:
        overdispersion = "additive"
    multiplicative = overdispersion == "multiplicative"
    note = ""
    percent = False
    if indicator_type == "score":
        z = pd.to_numeric(rows["z"], errors="coerce").to_numpy(float)
        target = float(np.nanmedian(exp[keep])) if keep.any() else float("nan")
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.abs((obs - target) / z)
        keep &= np.isfinite(se) & (se > 0)
        x = np.where(keep, 1.0 / se**2, np.nan)
        y = obs
        xgrid = _grid(float(np.nanmax(x[keep]))) if keep.any() else _grid(1.0)
        limits = _limits(
            target, lambda g: 1.0 / np.sqrt(g), xgrid, "identity", tau2, phi, multiplicative
        )
        xlabel, ylabel = "precision (1 / standard error squared)", "score"
        note = "Scores against their precision; limits around the national mean."
    elif (
        indicator_type == "proportion"
        and "denominator" in rows.columns
        and (pd.to_numeric(rows["denominator"], errors="coerce").notna().any())
    ):
        # The assessment writes observed = numerator r and an extra ``denominator`` n.
        r = obs
        n = pd.to_numeric(rows["denominator"], errors="coerce").to_numpy(float)
        keep = np.isfinite(r) & np.isfinite(n) & (n > 0)
        # expected = n * p0 with the assessment's pooled p0 (so the target is exactly its own).
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = exp / n
        ratios = ratios[keep & np.isfinite(ratios)]
        if ratios.size:
            p0 = float(np.median(ratios))
        else:
            p0 = float(r[keep].sum() / n[keep].sum()) if keep.any() else float("nan")
        x, y = np.where(keep, n, np.nan), np.where(keep, r / np.where(n > 0, n, np.nan), np.nan)
        xgrid = _grid(float(np.nanmax(x[keep]))) if keep.any() else _grid(1.0)
        limits = _stats_limits("PR", "SHMI", p0, xgrid, tau2, phi, multiplicative)
        target = p0
        xlabel, ylabel = "denominator", "proportion (%)"
        percent = True
    else:
        method = (_method_of(rows) or sr_method or "SHMI").upper()
        x = np.where(keep, exp, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(keep, obs / exp, np.nan)
        xgrid = _grid(float(np.nanmax(x[keep]))) if keep.any() else _grid(1.0)
        sr = "CQC" if indicator_type == "ratio" and method == "CQC" else "SHMI"
        limits = _stats_limits("SR", sr, 1.0, xgrid, tau2, phi, multiplicative)
        target = 1.0
        xlabel, ylabel = "expected", "observed / expected"
        if indicator_type != "ratio":
            note = (
                "Shown as observed / expected against expected on the log scale; the flag itself "
                f"comes from the {indicator_type} method recorded in flags.csv."
            )
    return FunnelData(
        indicator_id=str(rows["indicator_id"].iloc[0]),
        trust_codes=[str(c) for c in rows["trust_code"]],
        x=np.where(keep, x, np.nan),
        y=np.where(keep, y, np.nan),
        flags=[str(f) for f in rows["flag"]],
        target=target,
        limits=limits,
        xlabel=xlabel,
        ylabel=ylabel,
        note=note,
        percent=percent,
    )


def _method_of(rows: pd.DataFrame) -> str | None:
    """The ratio transform the assessment recorded in ``method`` (SHMI or CQC), if any."""
    for m in rows["method"].dropna().astype(str):
        upper = m.upper()
        if "SHMI" in upper:
            return "SHMI"
        if "CQC" in upper:
            return "CQC"
    return None
