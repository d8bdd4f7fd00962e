"""Funnel plots with overdispersion: the public, FunnelPlotR-compatible-in-spirit API.

Three entry points:

``funnel_table(df, numerator, denominator, unit, data_type="SR", sr_method="SHMI", trim="auto",
trim_fraction=0.1, overdispersion="additive", shmi_rounding=True, levels=(0.95, 0.998))``
    One row per unit (aggregated by ``unit``, sorted by it) with columns ``unit, numerator,
    denominator, ratio, Y, s, z, z_adjusted, lower95, upper95, lower998, upper998, outlier``
    (limits on the original scale; other levels are named like ``lower90``/``upper90``), then
    extra columns ``z_trimmed, used, direction`` and the unadjusted limits
    ``lower95_unadjusted, ...``. ``attrs`` holds ``phi``, ``tau2``, ``target``,
    ``target_transformed``, ``method`` (adjustment applied), ``phi_p_value``, ``n_used``, the
    settings, and ``outlier_level``.

``funnel_limits(denominator=None, data_type="SR", ..., table=None)``
    Limits over a grid of denominators, for drawing (from a finished table by default).

``assess_arrays(numerator, denominator, data_type=..., ...)`` or
``assess_arrays(value=..., se=..., data_type="score")``
    Array in, array out, for the indicator assessment: 1-D arrays (one indicator) or 2-D arrays
    (indicators x trusts, NaN = no data; all rows of one type and method) processed in one
    vectorised pass. Returns an :class:`Assessment` with ``Y, s, target, z, z_adjusted, phi,
    tau2, method, used, limits`` (``limits[level] = (lower, upper)`` on the original scale).
    Its per-call overhead is a few hundred microseconds, and a 2-D call costs little more than a
    1-D one, which is what the national run needs (150 indicators x 161 trusts).

Choices (documented here because users ask about them):

* ``trim="auto"`` (default) follows the methods each convention publishes: SHMI truncation for
  SR with the SHMI method, quantile winsorisation otherwise (``"winsorise"``, ``"truncate"`` or
  None can be given explicitly).
* ``shmi_rounding`` rounds the expected counts to 2 dp before the SHMI transform, as FunnelPlotR
  (and NHS Digital) do; ``ratio`` stays O/E with the unrounded E, and the extra column
  ``denominator_used`` holds the rounded E.
* ``outlier`` (0/1) is 1 when |z_adjusted| exceeds the normal quantile of ``outlier_level``
  (default: the widest of ``levels``, 99.8%, as FunnelPlotR's default ``limit = 99``), i.e. when
  the unit lies outside the drawn (overdispersed) limits; ``direction`` is +1 above, -1 below,
  0 inside. Units that cannot be assessed (zero or missing denominator) get NaN z and
  ``outlier = 0``, ``direction = 0``.
* Unlike FunnelPlotR, CQC overdispersed limits are squared back to the ratio scale (FunnelPlotR
  leaves them on the square-root scale and compares the ratio with them).
* Zero events on the SHMI log scale: see :mod:`surveillance.stats.transforms` (0.5 correction by
  default, ``zero_correction=None`` for FunnelPlotR's -inf).

References
----------
Spiegelhalter DJ. Funnel plots for comparing institutional performance. Stat Med 2005;24:1185.
Spiegelhalter DJ. Handling over-dispersion of performance indicators. QSHC 2005;14:347.
Mainey C et al. FunnelPlotR (R package), NHS-R Community.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from surveillance.errors import ContractError, Violation
from surveillance.stats import limits as lim
from surveillance.stats.overdispersion import Adjustment, adjust, shmi_rank_groups
from surveillance.stats.transforms import (
    Transformed,
    back_transform,
    transform_proportion,
    transform_rate,
    transform_ratio,
    transform_score,
)

DataType = Literal["SR", "PR", "RC", "score"]
_TYPE_ALIASES = {
    "SR": "SR",
    "ratio": "SR",
    "PR": "PR",
    "proportion": "PR",
    "RC": "RC",
    "rate": "RC",
    "score": "score",
    "SC": "score",
}
_INPUT = "funnel_table input"


def _data_type(data_type: str) -> str:
    try:
        return _TYPE_ALIASES[data_type]
    except KeyError:
        raise ValueError(
            f"data_type must be one of SR/PR/RC/score (or ratio/proportion/rate), got {data_type!r}"
        ) from None


def _resolve_trim(trim: str | None, data_type: str, sr_method: str) -> str | None:
    if trim == "auto":
        return "truncate" if data_type == "SR" and sr_method == "SHMI" else "winsorise"
    if trim not in ("winsorise", "truncate", None):
        raise ValueError(f"trim must be 'auto', 'winsorise', 'truncate' or None, got {trim!r}")
    return trim


def _check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(x) for x in levels)
    if not out:
        raise ValueError("levels must name at least one limit level")
    for level in out:
        lim.z_for_level(level)
    return out


@dataclass(frozen=True)
class Assessment:
    """Result of :func:`assess_arrays` (arrays 1-D or indicators x units)."""

    transformed: Transformed
    adjustment: Adjustment
    limits: dict[float, tuple[NDArray[np.float64], NDArray[np.float64]]]
    data_type: str
    trim: str | None

    @property
    def Y(self) -> NDArray[np.float64]:  # noqa: N802 - the literature's name
        return self.transformed.Y

    @property
    def s(self) -> NDArray[np.float64]:
        return self.transformed.s

    @property
    def target(self) -> float | NDArray[np.float64]:
        return self.transformed.target

    @property
    def z(self) -> NDArray[np.float64]:
        return self.adjustment.z

    @property
    def z_adjusted(self) -> NDArray[np.float64]:
        return self.adjustment.z_adjusted

    @property
    def phi(self) -> float | NDArray[np.float64]:
        return self.adjustment.phi

    @property
    def tau2(self) -> float | NDArray[np.float64]:
        return self.adjustment.tau2

    @property
    def method(self) -> str | NDArray[np.str_]:
        return self.adjustment.method

    @property
    def used(self) -> NDArray[np.bool_]:
        return self.adjustment.used_mask


def _transform(
    data_type: str,
    numerator: ArrayLike | None,
    denominator: ArrayLike | None,
    value: ArrayLike | None,
    se: ArrayLike | None,
    sr_method: str,
    target: float | None,
    zero_correction: float | None,
) -> Transformed:
    if data_type == "score":
        if value is None or se is None:
            raise ValueError("data_type 'score' needs value= and se=")
        return transform_score(value, se, target)
    if numerator is None or denominator is None:
        raise ValueError(f"data_type {data_type!r} needs numerator and denominator")
    if data_type == "SR":
        if target is not None and target != 1:
            raise ValueError("standardised ratios are compared with 1; target must be None or 1")
        return transform_ratio(numerator, denominator, sr_method, zero_correction)
    if data_type == "PR":
        return transform_proportion(numerator, denominator, target)
    return transform_rate(numerator, denominator, target)


def assess_arrays(
    numerator: ArrayLike | None = None,
    denominator: ArrayLike | None = None,
    *,
    data_type: str = "SR",
    value: ArrayLike | None = None,
    se: ArrayLike | None = None,
    sr_method: Literal["SHMI", "CQC"] = "SHMI",
    trim: str | None = "auto",
    trim_fraction: float = 0.1,
    overdispersion: Literal["additive", "multiplicative"] | None = "additive",
    target: float | None = None,
    levels: Sequence[float] = (0.95, 0.998),
    tau2_method: Literal["DL", "REML"] = "DL",
    zero_correction: float | None = 0.5,
    shmi_rounding: bool = False,
    winsorise_method: Literal["quantile", "rank"] = "quantile",
) -> Assessment:
    """z, overdispersion-adjusted z, phi, tau2 and limits for arrays of one indicator type.

    Parameters
    ----------
    numerator, denominator : array_like, optional
        Counts (SR: observed and expected; PR: r and n; RC: events and exposure). 1-D for one
        indicator or 2-D (indicators x units, NaN = no data).
    data_type : {"SR", "PR", "RC", "score"} (or "ratio", "proportion", "rate")
    value, se : array_like, optional
        For ``score``: the values and their standard errors.
    target : float, optional
        Target on the original scale (PR: proportion, RC: rate, score: value); default pooled /
        national mean. SR always uses 1.
    shmi_rounding : bool
        Round expected to 2 dp for SR with the SHMI method (False here; ``funnel_table`` defaults
        to True as FunnelPlotR).
    winsorise_method : {"quantile", "rank"}
        Quantile (R type 7, default) or rank winsorisation.

    Other parameters are as in :func:`funnel_table` and
    :func:`surveillance.stats.overdispersion.adjust`.
    """
    dt = _data_type(data_type)
    lvls = _check_levels(levels)
    trim_used = _resolve_trim(trim, dt, sr_method)
    if dt == "SR" and sr_method == "SHMI" and shmi_rounding and denominator is not None:
        denominator = np.round(np.asarray(denominator, dtype=np.float64), 2)
    tr = _transform(dt, numerator, denominator, value, se, sr_method, target, zero_correction)
    adj = adjust(
        tr.Y,
        tr.s,
        tr.target,
        trim=trim_used,
        trim_fraction=trim_fraction,
        overdispersion=overdispersion,
        tau2_method=tau2_method,
        winsorise_method=winsorise_method,
    )
    limits: dict[float, tuple[NDArray, NDArray]] = {}
    t = tr.target
    with np.errstate(invalid="ignore"):
        spread = tr.s * adj.scale
        for level in lvls:
            zq = lim.z_for_level(level)
            limits[level] = (
                back_transform(t - zq * spread, tr.scale),
                back_transform(t + zq * spread, tr.scale),
            )
    return Assessment(transformed=tr, adjustment=adj, limits=limits, data_type=dt, trim=trim_used)


def _validate_frame(
    df: pd.DataFrame, numerator: str, denominator: str, unit: str, data_type: str
) -> None:
    violations: list[Violation] = []
    for col in (numerator, denominator, unit):
        if col not in df.columns:
            violations.append(
                Violation(_INPUT, "column_present", f"column {col!r} is missing", column=col)
            )
    if violations:
        raise ContractError(violations)
    missing_unit = np.flatnonzero(df[unit].isna().to_numpy())
    if missing_unit.size:
        violations.append(
            Violation(
                _INPUT,
                "unit_not_null",
                "unit is missing",
                column=unit,
                rows=tuple(int(i) + 1 for i in missing_unit),
            )
        )
    for col in (numerator, denominator):
        values = pd.to_numeric(df[col], errors="coerce")
        bad_type = np.flatnonzero((values.isna() & df[col].notna()).to_numpy())
        if bad_type.size:
            violations.append(
                Violation(
                    _INPUT,
                    "numeric",
                    "value is not a number",
                    column=col,
                    rows=tuple(int(i) + 1 for i in bad_type),
                )
            )
        arr = values.to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero((arr < 0) | np.isinf(arr))
        if bad.size:
            violations.append(
                Violation(
                    _INPUT,
                    "non_negative_finite",
                    "value must be finite and >= 0",
                    column=col,
                    rows=tuple(int(i) + 1 for i in bad),
                )
            )
    if data_type == "PR" and not violations:
        num = pd.to_numeric(df[numerator]).to_numpy(dtype=np.float64)
        den = pd.to_numeric(df[denominator]).to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            over = np.flatnonzero(num > den)
        if over.size:
            violations.append(
                Violation(
                    _INPUT,
                    "numerator_le_denominator",
                    "a proportion's numerator exceeds its denominator",
                    column=numerator,
                    rows=tuple(int(i) + 1 for i in over),
                )
            )
    if violations:
        raise ContractError(violations)


def funnel_table(
    df: pd.DataFrame,
    numerator: str,
    denominator: str,
    unit: str,
    data_type: Literal["SR", "PR", "RC"] = "SR",
    sr_method: Literal["SHMI", "CQC"] = "SHMI",
    trim: str | None = "auto",
    trim_fraction: float = 0.1,
    overdispersion: Literal["additive", "multiplicative"] | None = "additive",
    shmi_rounding: bool = True,
    levels: Sequence[float] = (0.95, 0.998),
    *,
    target: float | None = None,
    tau2_method: Literal["DL", "REML"] = "DL",
    zero_correction: float | None = 0.5,
    outlier_level: float | None = None,
    winsorise_method: Literal["quantile", "rank"] = "quantile",
) -> pd.DataFrame:
    """Funnel-plot table: one row per unit with z, adjusted z, limits and outlier flag.

    Parameters
    ----------
    df : DataFrame
        Input rows; rows of the same unit are summed (numerator and denominator).
    numerator, denominator, unit : str
        Column names. SR: observed / expected; PR: events / cases; RC: events / exposure.
    data_type : {"SR", "PR", "RC"}
        Standardised ratio, proportion or ratio of counts.
    sr_method : {"SHMI", "CQC"}
        Log (SHMI) or square-root (CQC) scale for SR.
    trim : {"auto", "winsorise", "truncate", None}
        Trimming before phi ("auto": truncate for SHMI, winsorise otherwise).
    trim_fraction : float
        Fraction at each tail (default 0.1).
    overdispersion : {"additive", "multiplicative", None}
        Random-effects (default), multiplicative phi (only when significant), or none.
    shmi_rounding : bool
        Round expected to 2 dp for SR/SHMI, as FunnelPlotR.
    levels : sequence of float
        Limit levels (default 95% and 99.8%).
    target : float, optional
        PR/RC target on the original scale (default pooled); a fixed baseline can be given.
    tau2_method : {"DL", "REML"}
    zero_correction : float or None
        SHMI value used for O = 0 (default 0.5; None = -inf as FunnelPlotR).
    outlier_level : float, optional
        Level whose limits define ``outlier`` (default the widest of ``levels``).
    winsorise_method : {"quantile", "rank"}
        Quantile (R type 7, default) or rank winsorisation when ``trim="winsorise"``.

    Returns
    -------
    DataFrame
        See the module docstring for the columns and ``attrs``.
    """
    dt = _data_type(data_type)
    if dt == "score":
        raise ValueError("funnel_table takes counts (SR, PR, RC); use assess_arrays for scores")
    lvls = _check_levels(levels)
    out_level = max(lvls) if outlier_level is None else float(outlier_level)
    lim.z_for_level(out_level)
    _validate_frame(df, numerator, denominator, unit, dt)

    frame = pd.DataFrame(
        {
            "unit": df[unit].to_numpy(),
            "numerator": pd.to_numeric(df[numerator]).to_numpy(dtype=np.float64),
            "denominator": pd.to_numeric(df[denominator]).to_numpy(dtype=np.float64),
        }
    )
    agg = frame.groupby("unit", sort=True).sum(min_count=1).reset_index()
    num = agg["numerator"].to_numpy()
    den = agg["denominator"].to_numpy()
    rounding = dt == "SR" and sr_method == "SHMI" and shmi_rounding
    den_used = np.round(den, 2) if rounding else den

    res = assess_arrays(
        num,
        den_used,
        data_type=dt,
        sr_method=sr_method,
        trim=trim,
        trim_fraction=trim_fraction,
        overdispersion=overdispersion,
        target=target,
        levels=lvls,
        tau2_method=tau2_method,
        zero_correction=zero_correction,
        winsorise_method=winsorise_method,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(den > 0, num / den, np.nan)
    table = pd.DataFrame(
        {
            "unit": agg["unit"].to_numpy(),
            "numerator": num,
            "denominator": den,
            "ratio": ratio,
            "Y": res.Y,
            "s": res.s,
            "z": res.z,
            "z_adjusted": res.z_adjusted,
        }
    )
    for level in lvls:
        label = lim.level_label(level)
        table[f"lower{label}"], table[f"upper{label}"] = res.limits[level]
    zq = lim.z_for_level(out_level)
    za = res.z_adjusted
    with np.errstate(invalid="ignore"):
        direction = np.where(za > zq, 1, np.where(za < -zq, -1, 0)).astype(np.int8)
    table["outlier"] = (direction != 0).astype(np.int8)
    table["z_trimmed"] = res.adjustment.z_trimmed
    table["used"] = res.used
    table["direction"] = direction
    if rounding:
        table["denominator_used"] = den_used
    if res.trim == "truncate":
        rank, sp = shmi_rank_groups(res.z, trim_fraction)
        table["rank"], table["sp"] = rank, sp
    for level in lvls:
        label = lim.level_label(level)
        lo, hi = _unadjusted(dt, den_used, res, level)
        table[f"lower{label}_unadjusted"], table[f"upper{label}_unadjusted"] = lo, hi

    target_t = float(res.target)
    table.attrs.update(
        {
            "phi": float(res.phi),
            "tau2": float(res.tau2),
            "target_transformed": target_t,
            "target": float(back_transform(np.array(target_t), res.transformed.scale)),
            "scale": res.transformed.scale,
            "method": str(res.method),
            "phi_p_value": float(res.adjustment.phi_p_value),
            "n_used": int(res.adjustment.n_used),
            "data_type": dt,
            "sr_method": sr_method if dt == "SR" else None,
            "trim": res.trim,
            "trim_fraction": trim_fraction,
            "overdispersion": overdispersion,
            "tau2_method": tau2_method,
            "winsorise_method": winsorise_method,
            "levels": lvls,
            "outlier_level": out_level,
            "unadjusted_limits": "poisson_chi2" if dt == "SR" else "normal",
        }
    )
    return table


def _unadjusted(
    dt: str, den_used: NDArray, res: Assessment, level: float
) -> tuple[NDArray, NDArray]:
    """Unadjusted limits as FunnelPlotR draws them: chi-square Poisson for SR, normal otherwise."""
    if dt == "SR":
        with np.errstate(invalid="ignore", divide="ignore"):
            return lim.poisson_chi2_limits(np.where(den_used > 0, den_used, np.nan), level)
    return lim.normal_limits(res.target, res.s, level, res.transformed.scale)


def _grid_s(dt: str, sr_method: str, grid: NDArray, target: float) -> tuple[NDArray, float, str]:
    """Standard error on the transformed scale at each denominator, target, scale."""
    if dt == "SR":
        if sr_method == "SHMI":
            return 1 / np.sqrt(grid), np.log(target), "log"
        return 1 / (2 * np.sqrt(grid)), np.sqrt(target), "sqrt"
    if dt == "PR":
        return 1 / (2 * np.sqrt(grid)), float(np.arcsin(np.sqrt(target))), "asin"
    if dt == "score":  # the grid is the precision 1/se^2
        return 1 / np.sqrt(grid), float(target), "identity"
    events = target * grid
    s = np.sqrt(events / (events + 0.5) ** 2 + grid / (grid + 0.5) ** 2)
    return s, float(np.log(target)), "log"


def funnel_limits(
    denominator: ArrayLike | None = None,
    data_type: Literal["SR", "PR", "RC"] = "SR",
    sr_method: Literal["SHMI", "CQC"] = "SHMI",
    target: float | None = None,
    tau2: float = 0.0,
    phi: float | None = None,
    levels: Sequence[float] = (0.95, 0.998),
    method: Literal["normal", "poisson_chi2", "exact", "phe"] = "normal",
    table: pd.DataFrame | None = None,
    n_points: int = 200,
) -> pd.DataFrame:
    """Funnel limits over a grid of denominators, for drawing.

    Parameters
    ----------
    denominator : array_like, optional
        Grid of denominators (expected counts for SR; for ``score`` the precision 1/se^2).
        Default: ``n_points`` geometrically spaced points spanning the table's denominators.
    data_type, sr_method : as in :func:`funnel_table`.
    target : float, optional
        Target on the original scale (SR: 1). Taken from ``table.attrs`` when a table is given.
    tau2, phi : float
        Additive between-unit variance, or multiplicative dispersion (``phi`` given = the
        multiplicative limits). Taken from the table when given (according to its method).
    method : {"normal", "poisson_chi2", "exact", "phe"}
        ``normal`` on the transformed scale (with tau2/phi: the overdispersed limits);
        ``poisson_chi2`` (SR only: FunnelPlotR's unadjusted limits); ``exact`` (interpolated
        Poisson for SR, binomial for PR); ``phe`` (PR only: Wilson funnels).
    table : DataFrame, optional
        Output of :func:`funnel_table`, supplying the settings.

    Returns
    -------
    DataFrame with ``denominator`` and ``lowerXX``/``upperXX`` for each level.
    """
    lvls = _check_levels(levels)
    if table is not None:
        attrs = table.attrs
        data_type = attrs["data_type"]
        sr_method = attrs["sr_method"] or sr_method
        target = attrs["target"]
        if attrs["method"] == "additive":
            tau2, phi = attrs["tau2"], None
        elif attrs["method"] == "multiplicative":
            tau2, phi = 0.0, attrs["phi"]
        else:
            tau2, phi = 0.0, None
        if denominator is None:
            den = table["denominator"].to_numpy(dtype=np.float64)
            den = den[den > 0]
            denominator = np.geomspace(den.min(), den.max(), n_points)
    if denominator is None:
        raise ValueError("give a denominator grid or a funnel_table result")
    dt = _data_type(data_type)
    grid = np.asarray(denominator, dtype=np.float64)
    if np.any(grid <= 0):
        raise ValueError("denominator grid values must be > 0")
    if target is None:
        if dt != "SR":
            raise ValueError(f"data_type {dt} needs a target (or a table)")
        target = 1.0
    out = pd.DataFrame({"denominator": grid})
    for level in lvls:
        label = lim.level_label(level)
        if method == "normal":
            s, t, scale = _grid_s(dt, sr_method, grid, float(target))
            lo, hi = lim.normal_limits(t, s, level, scale, tau2=tau2, phi=phi)
        elif method == "poisson_chi2" and dt == "SR":
            lo, hi = lim.poisson_chi2_limits(grid, level, target)
        elif method == "exact" and dt == "SR":
            lo, hi = lim.exact_poisson_limits(grid, level, target)
        elif method == "exact" and dt == "PR":
            lo, hi = lim.exact_binomial_limits(grid, float(target), level)
        elif method == "phe" and dt == "PR":
            lo, hi = lim.phe_proportion_limits(grid, float(target), level)
        else:
            raise ValueError(f"limit method {method!r} is not defined for data_type {dt}")
        out[f"lower{label}"], out[f"upper{label}"] = lo, hi
    out.attrs["method"] = method
    return out
