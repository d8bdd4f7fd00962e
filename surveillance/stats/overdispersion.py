"""Overdispersion: trimming, the dispersion ratio phi, the between-unit variance tau2, adjustment.

Implements Spiegelhalter (2005, QSHC) as summarised in METHODS.md section 2:

1. z-scores of the I units (:mod:`surveillance.stats.transforms`);
2. trim 10% each tail: :func:`winsorise` (quantile, R type 7 = numpy ``linear``; or by rank), or
   the SHMI :func:`truncate_shmi` (rank with average ties, ``sp = floor(rank * 10 / (I + 1))``,
   units with sp 0 or 9 dropped);
3. :func:`phi_estimate`: phi = mean of the trimmed z^2 over the units used;
4. :func:`tau2_dersimonian_laird`: tau2 = max(0, (I phi - (I - 1)) / (sum w - sum w^2 / sum w)),
   w = 1/s^2, 0 when I phi < I - 1; :func:`tau2_reml` as an option;
5. :func:`adjust`: additive z_adjusted = (Y - target) / sqrt(s^2 + tau2), or multiplicative
   z / sqrt(phi) applied only when phi is significantly above 1 (:func:`phi_chi2_test`).

Every function works along the last axis, so a 2-D array (indicators x units) is processed in one
call. NaN marks a unit that is not assessable (or not used): it is ignored by every estimate.

References
----------
Spiegelhalter DJ. Handling over-dispersion of performance indicators. QSHC 2005;14:347.
DerSimonian R, Laird N. Meta-analysis in clinical trials. Control Clin Trials 1986;7:177.
Viechtbauer W. Bias and efficiency of meta-analytic variance estimators in the random-effects
model. J Educ Behav Stat 2005;30:261 (REML by Fisher scoring).
NHS Digital. SHMI methodology (truncation). FunnelPlotR, R/od_adjustment.R.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

Trim = Literal["winsorise", "truncate"]
Overdispersion = Literal["additive", "multiplicative"]
Tau2Method = Literal["DL", "REML"]


def _as_2d(values: ArrayLike) -> tuple[NDArray[np.float64], bool]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim == 1:
        return arr[None, :], True
    if arr.ndim == 2:
        return arr, False
    raise ValueError(f"expected a 1-D or 2-D array, got shape {arr.shape}")


def _back(arr: NDArray, was_1d: bool) -> NDArray:
    return arr[0] if was_1d else arr


def _scalar(arr: NDArray, was_1d: bool) -> float | NDArray:
    return float(arr.reshape(-1)[0]) if was_1d else arr


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction < 0.5:
        raise ValueError(f"trim fraction must be in [0, 0.5), got {fraction}")


def _quantiles_sorted(srt: NDArray, n: NDArray, probs: tuple[float, ...]) -> list[NDArray]:
    """R type 7 quantiles of each row of an already sorted 2-D array (NaN last, n valid)."""
    out = []
    rows = np.arange(srt.shape[0])
    for prob in probs:
        index = (np.maximum(n, 1) - 1) * prob
        lo = np.floor(index).astype(np.int64)
        hi = np.ceil(index).astype(np.int64)
        h = index - lo
        x_lo = srt[rows, lo]
        x_hi = srt[rows, hi]
        interpolate = (h > 0) & (x_hi != x_lo)
        with np.errstate(invalid="ignore"):
            q = np.where(interpolate, (1.0 - h) * x_lo + h * x_hi, x_lo)
        out.append(np.where(n > 0, q, np.nan))
    return out


def quantile_type7(z: ArrayLike, prob: float) -> NDArray[np.float64]:
    """Quantile ``prob`` of each row ignoring NaN, R type 7 (numpy ``linear``).

    Unlike ``numpy.nanquantile`` this keeps -inf when it is the lower neighbour (as R does) instead
    of returning NaN from ``-inf + (x + inf) * h``.
    """
    x, was_1d = _as_2d(z)
    srt = np.sort(x, axis=-1)  # NaN sorts last
    n = np.sum(~np.isnan(x), axis=-1)
    (q,) = _quantiles_sorted(srt, n, (prob,))
    return q[0:1] if was_1d else q


@dataclass(frozen=True)
class Winsorised:
    """Winsorised z-scores, the cut points and which units were at or beyond them."""

    z: NDArray[np.float64]
    lower: float | NDArray[np.float64]
    upper: float | NDArray[np.float64]
    winsorised: NDArray[np.bool_]


def winsorise_detail(
    z: ArrayLike, fraction: float = 0.1, method: Literal["quantile", "rank"] = "quantile"
) -> Winsorised:
    """Winsorise z-scores at each tail; see :func:`winsorise`. Also returns cut points and flags.

    ``winsorised`` is True for units at or beyond a cut point (FunnelPlotR's ``winsorised``
    column: a unit exactly on a cut point counts as winsorised though its value is unchanged).
    """
    _check_fraction(fraction)
    x, was_1d = _as_2d(z)
    srt = np.sort(x, axis=-1)  # NaN sorts last
    n = np.sum(~np.isnan(x), axis=-1)
    if method == "quantile":
        lz, uz = _quantiles_sorted(srt, n, (fraction, 1.0 - fraction))
    elif method == "rank":
        k = np.floor(fraction * n).astype(np.int64)
        lo_idx = np.minimum(k, np.maximum(n - 1, 0))
        hi_idx = np.maximum(n - 1 - k, 0)
        lz = np.take_along_axis(srt, lo_idx[:, None], axis=-1)[:, 0]
        uz = np.take_along_axis(srt, hi_idx[:, None], axis=-1)[:, 0]
    else:
        raise ValueError(f"method must be 'quantile' or 'rank', got {method!r}")
    lz_c, uz_c = lz[:, None], uz[:, None]
    with np.errstate(invalid="ignore"):
        zw = np.where(x < lz_c, lz_c, np.where(x > uz_c, uz_c, x))
        flagged = ~np.isnan(x) & ~((x > lz_c) & (x < uz_c))
    return Winsorised(
        z=_back(zw, was_1d),
        lower=_scalar(lz, was_1d),
        upper=_scalar(uz, was_1d),
        winsorised=_back(flagged, was_1d),
    )


def winsorise(
    z: ArrayLike, fraction: float = 0.1, method: Literal["quantile", "rank"] = "quantile"
) -> NDArray[np.float64]:
    """Winsorise z-scores: values beyond the tail cut points are set to the cut points.

    Parameters
    ----------
    z : array_like
        z-scores (NaN = not assessable, kept NaN).
    fraction : float
        Fraction trimmed at *each* tail (default 0.1).
    method : {"quantile", "rank"}
        ``quantile``: cut points are the ``fraction`` and ``1 - fraction`` quantiles, R type 7
        (FunnelPlotR, Spiegelhalter 2005). ``rank``: the k = floor(fraction * I) lowest and highest
        values are set to the (k+1)-th lowest / highest value.

    References
    ----------
    Spiegelhalter 2005 (QSHC), "Winsorising".
    """
    return winsorise_detail(z, fraction, method).z


def shmi_rank_groups(
    z: ArrayLike, fraction: float = 0.1
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Rank (average ties) and SHMI group ``sp = floor(rank * k / (I + 1))``, k = 1 / fraction.

    NaN units get NaN rank and group and do not count in I.
    """
    _check_fraction(fraction)
    if fraction == 0:
        raise ValueError("SHMI truncation needs a trim fraction > 0")
    x, was_1d = _as_2d(z)
    valid = ~np.isnan(x)
    # +inf never occurs for an assessable unit, so it parks NaN at the top without moving ranks.
    rank = stats.rankdata(np.where(valid, x, np.inf), method="average", axis=-1)
    n = valid.sum(axis=-1, keepdims=True)
    k = 1.0 / fraction
    sp = np.floor(rank * k / (n + 1))
    rank = np.where(valid, rank, np.nan)
    sp = np.where(valid, sp, np.nan)
    return _back(rank, was_1d), _back(sp, was_1d)


def truncate_shmi(z: ArrayLike, fraction: float = 0.1) -> NDArray[np.float64]:
    """SHMI truncation: drop (set to NaN) units whose group sp is 0 or k - 1 (0 or 9 by default).

    References
    ----------
    NHS Digital, SHMI methodology (overdispersion: 10% truncation of the z-score distribution).
    """
    x, was_1d = _as_2d(z)
    _, sp = shmi_rank_groups(x, fraction)
    k = 1.0 / fraction
    keep = (sp > 0) & (sp < k - 1)
    return _back(np.where(keep, x, np.nan), was_1d)


def phi_estimate(z_trimmed: ArrayLike) -> float | NDArray[np.float64]:
    """Dispersion ratio phi = (1/I) sum z^2 over the units used (non-NaN trimmed z-scores).

    Returns NaN for a row with no unit used.

    References
    ----------
    Spiegelhalter 2005 (QSHC), eq. for phi-hat.
    """
    x, was_1d = _as_2d(z_trimmed)
    used = ~np.isnan(x)
    n = used.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.where(used, x * x, 0.0).sum(axis=-1) / n
    return _scalar(phi, was_1d)


def tau2_dersimonian_laird(
    phi: float | ArrayLike, s_used: ArrayLike
) -> float | NDArray[np.float64]:
    """Between-unit variance tau2 by the DerSimonian-Laird moment estimator on phi.

    tau2 = 0 if I phi < I - 1, else max(0, (I phi - (I - 1)) / (sum w - sum w^2 / sum w)),
    w = 1 / s^2 over the I units used (non-NaN entries of ``s_used``).

    References
    ----------
    Spiegelhalter 2005 (QSHC), eq. for tau2-hat; DerSimonian & Laird 1986.
    """
    s, was_1d = _as_2d(s_used)
    ph = np.asarray(phi, dtype=np.float64).reshape(-1)
    used = np.isfinite(s) & (s > 0)
    n = used.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(used, 1.0 / (s * s), 0.0)
        sw = w.sum(axis=-1)
        sw2 = (w * w).sum(axis=-1)
        denom = sw - sw2 / sw
        raw = (n * ph - (n - 1)) / denom
    # a single unit (n < 2) has no between-unit variance to estimate (denominator 0)
    tau2 = np.where((n * ph < n - 1) | (n < 2) | ~(denom > 0), 0.0, np.maximum(0.0, raw))
    tau2 = np.where(np.isnan(ph), np.nan, tau2)
    tau2 = np.where(np.isnan(tau2) & ~np.isnan(ph), 0.0, tau2)
    return _scalar(tau2, was_1d)


def tau2_reml(
    Y: ArrayLike, s: ArrayLike, max_iter: int = 200, tol: float = 1e-10
) -> float | NDArray[np.float64]:
    """Between-unit variance tau2 by restricted maximum likelihood (Newton / Fisher scoring).

    Random-effects model Y_i ~ N(mu, s_i^2 + tau2) with mu estimated; units with NaN Y or s are
    ignored. Starts from the DerSimonian-Laird value about the weighted mean, truncated at 0.
    Each step divides the score by the observed information where the restricted likelihood is
    concave (Newton: quadratic convergence near the maximum) and by the expected (Fisher)
    information elsewhere; Fisher scoring alone can oscillate for hundreds of steps when the
    sampling variances differ by orders of magnitude. Steps are truncated at 0, so tau2 is never
    negative and a row whose estimate is 0 stays 0.

    Convergence is relative: a row has converged when a step changes tau2 by at most
    ``tol * max(tau2, 1e-2 * mean(s^2))``. The floor, 1% of the mean sampling variance, makes the
    rule absolute (and free of the data's scale) for a tau2 near 0, whose relative digits carry
    no information. Near the maximum the steps are Newton steps, so once one is below ``tol``
    relative the estimate is exact to rounding (~1e-15 relative); ``tol`` stays well above the
    rounding noise of a step (~1e-13 relative). Iterations stop at ``max_iter`` in any case, with
    a RuntimeWarning naming the rows that had not converged.

    References
    ----------
    Viechtbauer 2005, J Educ Behav Stat 30:261, eqs. 11-12 (score and Fisher information);
    Harville, JASA 1977;72:320 (REML derivatives: d P / d tau2 = -P P).
    """
    if not tol > 0:
        raise ValueError(f"tol: must be positive, got {tol}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter: must be a positive integer, got {max_iter}")
    y, was_1d = _as_2d(Y)
    sd, _ = _as_2d(s)
    if y.shape != sd.shape:
        raise ValueError(f"Y and s differ in shape: {y.shape} vs {sd.shape}")
    used = np.isfinite(y) & np.isfinite(sd) & (sd > 0)
    v = np.where(used, sd * sd, 1.0)
    yy = np.where(used, y, 0.0)
    n = used.sum(axis=-1)
    fit = n >= 2  # fewer than two units: no between-unit variance (tau2 = 0)
    # DL start about the fixed-effect mean.
    w0 = np.where(used, 1.0 / v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu0 = (w0 * yy).sum(-1) / w0.sum(-1)
        q = (w0 * (yy - mu0[:, None]) ** 2).sum(-1)
        c = w0.sum(-1) - (w0 * w0).sum(-1) / w0.sum(-1)
        tau2 = np.maximum(0.0, np.nan_to_num((q - (n - 1)) / c))
        floor = 1e-2 * np.where(used, v, 0.0).sum(-1) / np.maximum(n, 1)
        for _ in range(int(max_iter)):
            w = np.where(used, 1.0 / (v + tau2[:, None]), 0.0)
            sw = w.sum(-1)
            mu = (w * yy).sum(-1) / sw
            r = np.where(used, yy - mu[:, None], 0.0)  # P y = w r
            w2 = w * w
            sw2 = w2.sum(-1)
            sw3 = (w2 * w).sum(-1)
            tr_p = sw - sw2 / sw
            tr_pp = sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
            w2r = w2 * r
            score = (w2r * r).sum(-1) - tr_p  # y'PPy - tr P, twice dl/dtau2
            # twice the observed information, 2 y'PPPy - tr PP (Fisher's expects tr PP)
            observed = 2.0 * ((w2r * w * r).sum(-1) - w2r.sum(-1) ** 2 / sw) - tr_pp
            info = np.where(observed > 0, observed, tr_pp)
            new = np.maximum(0.0, tau2 + score / info)
            new = np.where(np.isfinite(new) & fit, new, 0.0)
            step = np.abs(new - tau2)
            tau2 = new
            converged = step <= tol * np.maximum(tau2, floor)
            if np.all(converged):
                break
    if not np.all(converged):
        rows = np.flatnonzero(~converged)
        warnings.warn(
            f"tau2_reml: no convergence in max_iter={max_iter} steps for row(s) "
            f"{rows[:10].tolist()}{' ...' if rows.size > 10 else ''} (last relative step "
            f"{float(np.max(step[rows] / np.maximum(tau2[rows], floor[rows]))):.1e} > tol={tol:g})",
            RuntimeWarning,
            stacklevel=2,
        )
    tau2 = np.where(fit, tau2, 0.0)
    return _scalar(tau2, was_1d)


def phi_chi2_test(phi: float | ArrayLike, n: int | ArrayLike) -> float | NDArray[np.float64]:
    """Upper-tail p-value of I phi against chi-square on I - 1 degrees of freedom.

    Small p means phi is significantly above 1 (overdispersion). ``n`` is the number of units
    used to estimate phi.

    References
    ----------
    Spiegelhalter 2005 (QSHC): "I phi-hat ~ chi2(I - 1) under the null of no overdispersion".
    """
    ph = np.asarray(phi, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        p = np.where(nn >= 2, special.chdtrc(np.maximum(nn - 1, 1), nn * ph), np.nan)
    return float(p) if p.ndim == 0 else p


def z_adjusted_additive(
    Y: ArrayLike, s: ArrayLike, target: float | ArrayLike, tau2: float | ArrayLike
) -> NDArray[np.float64]:
    """Additive random-effects z-score (Y - target) / sqrt(s^2 + tau2).

    ``tau2`` is a scalar or one value per row (broadcast over the last axis).

    References
    ----------
    Spiegelhalter 2005 (QSHC), eq. for z_D.
    """
    y = np.asarray(Y, dtype=np.float64)
    sd = np.asarray(s, dtype=np.float64)
    t2 = np.asarray(tau2, dtype=np.float64)
    if np.any(t2 < 0):
        raise ValueError("tau2 must be >= 0")
    if t2.ndim == 1 and y.ndim == 2:
        t2 = t2[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (y - np.asarray(target, dtype=np.float64)) / np.sqrt(sd * sd + t2)


@dataclass(frozen=True)
class Adjustment:
    """Result of :func:`adjust`.

    ``z``: unadjusted z-scores; ``z_trimmed``: winsorised/truncated z used for phi (NaN = unused);
    ``z_adjusted``; ``phi``; ``tau2`` (0 unless additive); ``method``: the adjustment actually
    applied (``additive``, ``multiplicative`` or ``none``; a multiplicative request falls back to
    ``none`` when phi is not significantly above 1); ``used_mask``: units used for phi/tau2;
    ``scale``: multiplier of s on the transformed scale, sqrt(s^2 + tau2)/s or sqrt(phi), so that
    limits are target +- z_alpha * s * scale; ``phi_p_value``: :func:`phi_chi2_test`.
    For 2-D input the scalars are arrays with one entry per row.
    """

    z: NDArray[np.float64]
    z_trimmed: NDArray[np.float64]
    z_adjusted: NDArray[np.float64]
    phi: float | NDArray[np.float64]
    tau2: float | NDArray[np.float64]
    method: str | NDArray[np.str_]
    used_mask: NDArray[np.bool_]
    scale: NDArray[np.float64]
    phi_p_value: float | NDArray[np.float64]
    n_used: int | NDArray[np.int64]


def adjust(
    Y: ArrayLike,
    s: ArrayLike,
    target: float | ArrayLike,
    trim: Trim | None = "winsorise",
    trim_fraction: float = 0.1,
    overdispersion: Overdispersion | None = "additive",
    tau2_method: Tau2Method = "DL",
    multiplicative_alpha: float = 0.05,
    winsorise_method: Literal["quantile", "rank"] = "quantile",
) -> Adjustment:
    """Overdispersion adjustment of z-scores (Spiegelhalter 2005, QSHC).

    Parameters
    ----------
    Y, s : array_like
        Transformed values and their standard errors (1-D, or 2-D indicators x units; NaN = not
        assessable).
    target : float or array_like
        Target on the transformed scale (one per row when 2-D).
    trim : {"winsorise", "truncate", None}
        How the z-scores are trimmed before phi is estimated.
    trim_fraction : float
        Fraction at each tail (default 0.1).
    overdispersion : {"additive", "multiplicative", None}
        ``additive``: random effects, z_adjusted = (Y - target)/sqrt(s^2 + tau2).
        ``multiplicative``: z/sqrt(phi), only if phi is significantly > 1 at
        ``multiplicative_alpha`` by :func:`phi_chi2_test`. None: z_adjusted = z.
    tau2_method : {"DL", "REML"}
        DerSimonian-Laird on phi (default) or REML on the trimmed values
        (Y_trimmed = target + z_trimmed * s).
    """
    y, was_1d = _as_2d(Y)
    sd, _ = _as_2d(s)
    if y.shape != sd.shape:
        raise ValueError(f"Y and s differ in shape: {y.shape} vs {sd.shape}")
    t = np.asarray(target, dtype=np.float64).reshape(-1, 1)
    if t.shape[0] not in (1, y.shape[0]):
        raise ValueError(f"target has {t.shape[0]} entries for {y.shape[0]} rows")
    valid = ~np.isnan(y) & np.isfinite(sd) & (sd > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(valid, (y - t) / np.where(valid, sd, 1.0), np.nan)
    if trim == "winsorise":
        zt = winsorise(z, trim_fraction, winsorise_method)
    elif trim == "truncate":
        zt = truncate_shmi(z, trim_fraction)
    elif trim is None:
        zt = z
    else:
        raise ValueError(f"trim must be 'winsorise', 'truncate' or None, got {trim!r}")
    used = ~np.isnan(zt)
    n_used = used.sum(axis=-1)
    phi = np.asarray(phi_estimate(zt), dtype=np.float64).reshape(-1)
    p_phi = np.asarray(phi_chi2_test(phi, n_used), dtype=np.float64).reshape(-1)
    n_rows = y.shape[0]
    tau2 = np.zeros(n_rows)
    scale = np.ones_like(y)
    method = np.full(n_rows, "none", dtype=object)
    if overdispersion == "additive":
        if tau2_method == "DL":
            tau2 = np.asarray(
                tau2_dersimonian_laird(phi, np.where(used, sd, np.nan)), dtype=np.float64
            ).reshape(-1)
        elif tau2_method == "REML":
            y_trim = np.where(used, t + zt * sd, np.nan)
            tau2 = np.asarray(tau2_reml(y_trim, np.where(used, sd, np.nan))).reshape(-1)
        else:
            raise ValueError(f"tau2_method must be 'DL' or 'REML', got {tau2_method!r}")
        tau2 = np.where(np.isnan(tau2), 0.0, tau2)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.sqrt(sd * sd + tau2[:, None]) / sd
        method[:] = "additive"
    elif overdispersion == "multiplicative":
        significant = (p_phi < multiplicative_alpha) & (phi > 1)
        factor = np.where(significant, np.sqrt(phi), 1.0)
        scale = np.broadcast_to(factor[:, None], y.shape).copy()
        method = np.where(significant, "multiplicative", "none").astype(object)
    elif overdispersion is not None:
        raise ValueError(
            f"overdispersion must be 'additive', 'multiplicative' or None, got {overdispersion!r}"
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        z_adj = np.where(valid, z / scale, np.nan)
    scale = np.where(valid, scale, np.nan)
    return Adjustment(
        z=_back(z, was_1d),
        z_trimmed=_back(zt, was_1d),
        z_adjusted=_back(z_adj, was_1d),
        phi=_scalar(phi, was_1d),
        tau2=_scalar(tau2, was_1d),
        method=str(method[0]) if was_1d else method.astype(str),
        used_mask=_back(used, was_1d),
        scale=_back(scale, was_1d),
        phi_p_value=_scalar(p_phi, was_1d),
        n_used=int(n_used[0]) if was_1d else n_used,
    )
