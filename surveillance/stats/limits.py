"""Funnel control limits, each method named (METHODS.md section 3).

Families (never mixed silently: every function names its method):

* ``normal``: :func:`normal_limits`, target +- z_alpha * s * scale on a transformed scale, then
  back-transformed (square for sqrt, sin^2 for asin, exp for log). With ``tau2`` (additive) or
  ``phi`` (multiplicative) these are the overdispersed limits.
* ``exact``: :func:`exact_poisson_limits`, :func:`exact_binomial_limits`: exact limits with the
  interpolation of Spiegelhalter (2005, Stat Med, appendix A.1.1).
* ``poisson_chi2``: :func:`poisson_chi2_limits`, Garwood-style chi-square limits for a ratio,
  what FunnelPlotR draws as its unadjusted limits.
* ``phe``: the PHE / Fingertips conventions, as in PHEindicatormethods: Wilson score funnels for
  proportions (:func:`phe_proportion_limits`), exact Poisson funnels by bisection for ratios
  (:func:`phe_ratio_limits`) and exact Poisson (O < 10) / Byar (O >= 10) significance for ratios
  (:func:`phe_ratio_significance`).
* Overdispersed counts: :func:`negbin_limits` and :func:`betabinomial_limits` (exact
  interpolated quantiles of the negative-binomial / beta-binomial).

``level`` is the two-sided coverage (0.95, 0.998, or any value in (0, 1)).

References
----------
Spiegelhalter DJ. Funnel plots for comparing institutional performance. Stat Med 2005;24:1185.
Garwood F. Fiducial limits for the Poisson distribution. Biometrika 1936;28:437.
Breslow NE, Day NE. Statistical methods in cancer research II, IARC 1987 (Byar's method).
Wilson EB. Probable inference... JASA 1927;22:209.
PHE Fingertips technical guidance; PHEindicatormethods (R), R/Funnels.R and R/utils.R.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

from surveillance.stats.transforms import Scale, back_transform


@lru_cache(maxsize=64)
def z_for_level(level: float) -> float:
    """Two-sided normal quantile: 1.959964 for 0.95, 3.090232 for 0.998."""
    _check_level(level)
    return float(special.ndtri(0.5 + level / 2.0))


def level_label(level: float) -> str:
    """Column suffix for a level: 0.95 -> "95", 0.998 -> "998", 0.9 -> "90"."""
    _check_level(level)
    text = f"{level * 100:.6f}".rstrip("0").rstrip(".")
    return text.replace(".", "")


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"limit level must be in (0, 1), got {level}")


def _arr(x: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(x, dtype=np.float64)


def normal_limits(
    target: float | ArrayLike,
    s: ArrayLike,
    level: float = 0.95,
    scale: Scale = "identity",
    tau2: float | ArrayLike = 0.0,
    phi: float | ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Normal-approximation limits on a transformed scale, back-transformed.

    limits = g^-1(target +- z_alpha * sqrt(s^2 + tau2)) (additive overdispersion), or
    g^-1(target +- z_alpha * s * sqrt(phi)) when ``phi`` is given (multiplicative).
    ``target`` is on the transformed scale.

    References
    ----------
    Spiegelhalter 2005 (Stat Med) section 3; Spiegelhalter 2005 (QSHC).
    """
    z = z_for_level(level)
    sd = _arr(s)
    t = _arr(target)
    if phi is None:
        width = z * np.sqrt(sd * sd + _arr(tau2))
    else:
        width = z * sd * np.sqrt(_arr(phi))
    return back_transform(t - width, scale), back_transform(t + width, scale)


def _interpolated(dist, p: float, support_max: NDArray | None = None) -> NDArray[np.float64]:
    """r_p - a with r_p = min r: F(r) >= p and a = (F(r_p) - p)/(F(r_p) - F(r_p - 1))."""
    r = np.asarray(dist.ppf(p), dtype=np.float64)
    f_r = dist.cdf(r)
    f_prev = dist.cdf(r - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (f_r - p) / (f_r - f_prev)
    a = np.where(np.isfinite(a), a, 0.0)
    return r - a


def exact_poisson_limits(
    expected: ArrayLike, level: float = 0.95, target: float = 1.0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact interpolated Poisson limits for a ratio O/E (Spiegelhalter 2005, appendix A.1.1).

    For p in {a/2, 1 - a/2}: r_p = smallest r with F(r) >= p under Poisson(target * E),
    a = (F(r_p) - p) / (F(r_p) - F(r_p - 1)), limit = (r_p - a) / E.
    """
    _check_level(level)
    e = _arr(expected)
    alpha = 1.0 - level
    dist = stats.poisson(target * e)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = _interpolated(dist, alpha / 2) / e
        upper = _interpolated(dist, 1 - alpha / 2) / e
    return np.maximum(lower, 0.0), upper


def exact_binomial_limits(
    n: ArrayLike, p0: float, level: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact interpolated binomial limits for a proportion r/n around ``p0``.

    Same interpolation as :func:`exact_poisson_limits` with Binomial(n, p0); limit = (r_p - a)/n,
    clipped to [0, 1].

    References
    ----------
    Spiegelhalter 2005 (Stat Med), appendix A.1.1.
    """
    _check_level(level)
    if not 0.0 <= p0 <= 1.0:
        raise ValueError(f"p0 must lie in [0, 1], got {p0}")
    nn = _arr(n)
    alpha = 1.0 - level
    dist = stats.binom(np.round(nn).astype(np.int64), p0)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = _interpolated(dist, alpha / 2) / nn
        upper = _interpolated(dist, 1 - alpha / 2) / nn
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


def poisson_chi2_limits(
    expected: ArrayLike, level: float = 0.95, target: float = 1.0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Chi-square (Garwood) limits for a ratio: FunnelPlotR's unadjusted limits.

    lower = target * chi2.ppf(a/2, 2E) / (2E), upper = target * chi2.ppf(1 - a/2, 2(E + 1)) / (2E).
    """
    _check_level(level)
    e = _arr(expected)
    alpha = 1.0 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = target * stats.chi2.ppf(alpha / 2, 2 * e) / (2 * e)
        upper = target * stats.chi2.ppf(1 - alpha / 2, 2 * (e + 1)) / (2 * e)
    return lower, upper


def negbin_limits(
    expected: ArrayLike, alpha_nb: float, level: float = 0.95, target: float = 1.0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact interpolated negative-binomial limits for a ratio O/E with overdispersed counts.

    O ~ NB(mean mu = target * E, variance mu + alpha_nb * mu^2); interpolation as in
    :func:`exact_poisson_limits`. ``alpha_nb = 0`` gives the Poisson limits.
    """
    _check_level(level)
    if alpha_nb < 0:
        raise ValueError(f"negative-binomial dispersion must be >= 0, got {alpha_nb}")
    e = _arr(expected)
    if alpha_nb == 0:
        return exact_poisson_limits(e, level, target)
    mu = target * e
    size = 1.0 / alpha_nb
    dist = stats.nbinom(size, size / (size + mu))
    a = 1.0 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = _interpolated(dist, a / 2) / e
        upper = _interpolated(dist, 1 - a / 2) / e
    return np.maximum(lower, 0.0), upper


def betabinomial_limits(
    n: ArrayLike, p0: float, rho: float, level: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact interpolated beta-binomial limits for a proportion with intra-unit correlation rho.

    r ~ BetaBinomial(n, a, b) with mean n p0 and variance n p0 (1 - p0) (1 + (n - 1) rho);
    a = p0 (1 - rho) / rho, b = (1 - p0)(1 - rho) / rho. ``rho = 0`` gives the binomial limits.
    """
    _check_level(level)
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"rho must be in [0, 1), got {rho}")
    if rho == 0:
        return exact_binomial_limits(n, p0, level)
    nn = _arr(n)
    a_par = p0 * (1 - rho) / rho
    b_par = (1 - p0) * (1 - rho) / rho
    dist = stats.betabinom(np.round(nn).astype(np.int64), a_par, b_par)
    a = 1.0 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = _interpolated(dist, a / 2) / nn
        upper = _interpolated(dist, 1 - a / 2) / nn
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# PHE / Fingertips conventions (PHEindicatormethods)
# --------------------------------------------------------------------------------------------


def phe_proportion_limits(
    population: ArrayLike, average_proportion: float, level: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """PHE funnel limits for a proportion (Wilson score funnel, ``sigma_adjustment``).

    Returns proportions (multiplier 1), lower clipped at 0 and upper at 1 as Fingertips does.

    References
    ----------
    PHEindicatormethods, R/Funnels.R ``sigma_adjustment``; Wilson 1927.
    """
    _check_level(level)
    n = _arr(population)
    p = average_proportion
    z2 = z_for_level(level) ** 2
    first = p * (n / z2 + 1)
    adj = np.sqrt(
        (-8 * p * (n / z2 + 1)) ** 2
        - 64 * (1 / z2 + 1 / n) * p * (n * (p * (n / z2 + 2) - 1) + z2 * (p - 1))
    )
    last = 1 / z2 + 1 / n
    lower = (first - adj / 8) / last / n
    upper = (first + adj / 8) / last / n
    return np.maximum(lower, 0.0), np.minimum(upper, 1.0)


def wilson_interval(
    x: ArrayLike, n: ArrayLike, level: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Wilson score confidence interval for x/n (PHE ``wilson_lower`` / ``wilson_upper``)."""
    _check_level(level)
    xx, nn = _arr(x), _arr(n)
    z = z_for_level(level)
    root = z * np.sqrt(z * z + 4 * xx * (1 - xx / nn))
    return (2 * xx + z * z - root) / 2 / (nn + z * z), (2 * xx + z * z + root) / 2 / (nn + z * z)


def byar_interval(observed: ArrayLike, level: float = 0.95) -> tuple[NDArray, NDArray]:
    """Byar's approximate interval for a Poisson count (Breslow & Day 1987).

    lower = O (1 - 1/(9 O) - z/(3 sqrt O))^3 (0 for O = 0), upper = (O+1)(1 - 1/(9(O+1)) +
    z/(3 sqrt(O+1)))^3.
    """
    _check_level(level)
    o = _arr(observed)
    z = z_for_level(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = np.where(o > 0, o * (1 - 1 / (9 * o) - z / (3 * np.sqrt(o))) ** 3, 0.0)
    o1 = o + 1
    upper = o1 * (1 - 1 / (9 * o1) + z / (3 * np.sqrt(o1))) ** 3
    return lower, upper


def exact_poisson_interval(observed: ArrayLike, level: float = 0.95) -> tuple[NDArray, NDArray]:
    """Exact (Garwood) interval for a Poisson count: chi2 quantiles / 2; lower 0 for O = 0."""
    _check_level(level)
    o = _arr(observed)
    a = 1.0 - level
    with np.errstate(invalid="ignore"):
        lower = np.where(o > 0, stats.chi2.ppf(a / 2, 2 * o) / 2, 0.0)
    upper = stats.chi2.ppf(1 - a / 2, 2 * o + 2) / 2
    return lower, upper


def phe_ratio_interval(observed: ArrayLike, level: float = 0.95) -> tuple[NDArray, NDArray]:
    """PHE count interval: exact Poisson for O < 10, Byar for O >= 10 (``funnel_ratio_significance``)."""
    o = _arr(observed)
    ex_lo, ex_hi = exact_poisson_interval(o, level)
    by_lo, by_hi = byar_interval(o, level)
    small = o < 10
    return np.where(small, ex_lo, by_lo), np.where(small, ex_hi, by_hi)


PHE_SIGNIFICANCE_LABELS = (
    "High (0.001)",
    "High (0.025)",
    "Low (0.001)",
    "Low (0.025)",
    "Not significant",
)


def phe_ratio_significance(observed: ArrayLike, expected: ArrayLike) -> NDArray[np.str_]:
    """PHE significance label of a ratio O/E against 1 (PHEindicatormethods).

    "High (0.001)" if the 99.8% lower limit of O/E exceeds 1, else "High (0.025)" if the 95% one
    does, "Low (0.001)" / "Low (0.025)" likewise with the upper limits, else "Not significant".
    Count limits from :func:`phe_ratio_interval`.
    """
    o, e = _arr(observed), _arr(expected)
    if np.any(o < 0):
        raise ValueError("observed events must be >= 0")
    if np.any(e <= 0):
        raise ValueError("expected must be > 0")
    lo998, hi998 = phe_ratio_interval(o, 0.998)
    lo95, hi95 = phe_ratio_interval(o, 0.95)
    return np.select(
        [lo998 / e > 1, lo95 / e > 1, hi998 / e < 1, hi95 / e < 1],
        list(PHE_SIGNIFICANCE_LABELS[:4]),
        default=PHE_SIGNIFICANCE_LABELS[4],
    )


def _phe_poisson_funnel(observed: NDArray, p: float, side: str) -> NDArray[np.float64]:
    """PHE ``poisson_funnel``: bisection on v in (0, 1) with E = (1 + O) v / (1 - v).

    Reproduces the R/Excel routine step by step (dv halves from 0.5 while > 1e-7), vectorised
    over O, so the published values are matched to the last digit rather than to the exact root.
    side "low": P(X >= O | E) = p; side "high": P(X <= O | E) = p.
    """
    o = observed.astype(np.float64)
    v = np.full(o.shape, 0.5)
    dv = 0.5
    while dv > 1e-7:
        dv /= 2
        e = (1 + o) * v / (1 - v)
        if side == "low":
            prob = special.pdtrc(o - 1, e)  # P(X >= O) = P(X > O - 1)
            v = np.where(prob > p, v - dv, v + dv)
        else:
            prob = special.pdtr(o, e)  # P(X <= O)
            v = np.where(prob < p, v - dv, v + dv)
    return (1 + o) * v / (1 - v)


def phe_ratio_limits(observed_events: ArrayLike, ratio_type: str = "isr") -> dict[str, NDArray]:
    """PHE funnel limits for a ratio over a grid of observed events (``phe_funnels``, ratio).

    Returns a dict of arrays: ``Observed_events`` and, for ``2s`` (p = 0.025) and ``3s``
    (p = 0.001), ``lower_Xs_exp_events``, ``lower_Xs_limit``, ``upper_Xs_exp_events``,
    ``upper_Xs_limit``, where the limit is O / E scaled by 100 for ``isr`` or minus 1 for
    ``count``.
    """
    o = _arr(observed_events)
    if np.any(o < 1) or np.any(o != np.round(o)):
        raise ValueError("observed events for PHE ratio funnels must be whole numbers >= 1")
    out: dict[str, NDArray] = {"Observed_events": o}
    for tag, p in (("2s", 0.025), ("3s", 0.001)):
        lo_e = _phe_poisson_funnel(o, p, "high")
        hi_e = _phe_poisson_funnel(o, p, "low")
        out[f"lower_{tag}_exp_events"] = lo_e
        out[f"lower_{tag}_limit"] = o / lo_e
        out[f"upper_{tag}_exp_events"] = hi_e
        out[f"upper_{tag}_limit"] = o / hi_e
    for key in [k for k in out if k.endswith("limit")]:
        if ratio_type == "isr":
            out[key] = out[key] * 100
        elif ratio_type == "count":
            out[key] = out[key] - 1
        else:
            raise ValueError(f"ratio_type must be 'isr' or 'count', got {ratio_type!r}")
    return out
