"""Upper-tail tests for counts of rare events (never events and the like), METHODS.md section 4.

Each trust's count x is compared with mu = national rate x activity, the national rate being
sum(events) / sum(activity) over trusts with activity > 0 (or a given baseline ``rate``). The
p-value is P(X >= x | mu):

* ``poisson``: X ~ Poisson(mu);
* ``negbin``: X ~ NB with mean mu and variance mu + alpha mu^2 (NB2), alpha estimated across
  trusts by the Pearson method of moments (default: the alpha at which
  sum (x - mu)^2 / (mu (1 + alpha mu)) = I - 1, Cameron & Trivedi 2013, section 3.2) or by
  maximum likelihood with mu held fixed (``dispersion="ml"``);
* ``auto``: negbin when the Pearson dispersion phi = X^2 / (I - 1) is significantly above 1
  (I phi against chi-square on I - 1 df, p < ``alpha_test``), Poisson otherwise.

A trust with activity <= 0 or missing is not assessable: expected and p-value are NaN.

References
----------
Spiegelhalter DJ et al. Statistical methods for healthcare regulation: rating, screening and
surveillance. JRSS A 2012;175:1. Cameron AC, Trivedi PK. Regression analysis of count data,
2nd ed., 2013.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special, stats


@dataclass(frozen=True)
class CountTest:
    """Result of :func:`count_test`.

    ``expected`` (mu per trust), ``p_value`` = P(X >= x | mu), ``method`` actually used
    (``poisson`` or ``negbin``), ``phi`` the Pearson dispersion across trusts, ``phi_p_value``
    its chi-square test, ``alpha`` the NB2 dispersion (0 for Poisson), ``rate`` the rate used.
    """

    expected: NDArray[np.float64]
    p_value: NDArray[np.float64]
    method: str
    phi: float
    phi_p_value: float
    alpha: float
    rate: float


def pearson_dispersion(events: ArrayLike, expected: ArrayLike) -> tuple[float, int]:
    """phi = sum (x - mu)^2 / mu / (I - 1) over trusts with mu > 0; returns (phi, I)."""
    x = np.asarray(events, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(mu) & (mu > 0)
    n = int(ok.sum())
    if n < 2:
        return float("nan"), n
    chi2 = float(np.sum((x[ok] - mu[ok]) ** 2 / mu[ok]))
    return chi2 / (n - 1), n


def negbin_alpha_moments(events: ArrayLike, expected: ArrayLike) -> float:
    """NB2 dispersion alpha solving sum (x - mu)^2 / (mu (1 + alpha mu)) = I - 1 (0 if none)."""
    x = np.asarray(events, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(mu) & (mu > 0)
    x, mu = x[ok], mu[ok]
    n = x.size
    if n < 2:
        return 0.0
    r2 = (x - mu) ** 2

    def excess(alpha: float) -> float:
        return float(np.sum(r2 / (mu * (1 + alpha * mu)))) - (n - 1)

    if excess(0.0) <= 0:
        return 0.0
    hi = 1.0
    while excess(hi) > 0:
        hi *= 10.0
        if hi > 1e12:
            return hi
    return float(optimize.brentq(excess, 0.0, hi, xtol=1e-14, rtol=1e-12))


def negbin_alpha_ml(events: ArrayLike, expected: ArrayLike) -> float:
    """NB2 dispersion alpha by maximum likelihood with the means mu held fixed (0 if at bound)."""
    x = np.asarray(events, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(mu) & (mu > 0)
    x, mu = x[ok], mu[ok]
    if x.size < 2:
        return 0.0

    def negloglik(log_alpha: float) -> float:
        alpha = np.exp(log_alpha)
        size = 1.0 / alpha
        ll = (
            special.gammaln(x + size)
            - special.gammaln(size)
            - special.gammaln(x + 1)
            + size * np.log(size / (size + mu))
            + x * np.log(mu / (size + mu))
        )
        return -float(np.sum(ll))

    poisson_ll = float(np.sum(stats.poisson.logpmf(x, mu)))
    res = optimize.minimize_scalar(negloglik, bounds=(-20.0, 10.0), method="bounded")
    if not res.success or -res.fun <= poisson_ll + 1e-9:
        return 0.0
    return float(np.exp(res.x))


def count_test(
    events: ArrayLike,
    activity: ArrayLike,
    method: Literal["auto", "poisson", "negbin"] = "auto",
    rate: float | None = None,
    dispersion: Literal["moments", "ml"] = "moments",
    alpha_test: float = 0.05,
) -> CountTest:
    """Upper-tail p-values P(X >= x | mu) for event counts against activity-scaled expectations.

    Parameters
    ----------
    events : array_like
        Event counts per trust (whole numbers >= 0).
    activity : array_like
        Activity per trust (spells, bed days...); mu = rate x activity.
    method : {"auto", "poisson", "negbin"}
    rate : float, optional
        Baseline rate (default: pooled national rate over assessable trusts).
    dispersion : {"moments", "ml"}
        Estimator of the NB2 dispersion alpha.
    alpha_test : float
        Significance level of the overdispersion test used by ``auto``.
    """
    x = np.asarray(events, dtype=np.float64)
    a = np.asarray(activity, dtype=np.float64)
    if x.shape != a.shape:
        raise ValueError(f"events and activity differ in shape: {x.shape} vs {a.shape}")
    if np.any(x[np.isfinite(x)] < 0) or np.any(x[np.isfinite(x)] != np.round(x[np.isfinite(x)])):
        raise ValueError("events must be whole numbers >= 0")
    if method not in ("auto", "poisson", "negbin"):
        raise ValueError(f"method must be 'auto', 'poisson' or 'negbin', got {method!r}")
    ok = np.isfinite(x) & np.isfinite(a) & (a > 0)
    if rate is None:
        total = a[ok].sum()
        rate = float(x[ok].sum() / total) if total > 0 else float("nan")
    mu = np.where(ok, rate * np.where(ok, a, 0.0), np.nan)
    phi, n = pearson_dispersion(x[ok], mu[ok])
    with np.errstate(invalid="ignore"):
        phi_p = float(stats.chi2.sf(n * phi, n - 1)) if n >= 2 else float("nan")
    use_nb = method == "negbin" or (method == "auto" and phi > 1 and phi_p < alpha_test)
    alpha = 0.0
    if use_nb:
        estimator = negbin_alpha_moments if dispersion == "moments" else negbin_alpha_ml
        if dispersion not in ("moments", "ml"):
            raise ValueError(f"dispersion must be 'moments' or 'ml', got {dispersion!r}")
        alpha = estimator(x[ok], mu[ok])
    p = np.full(x.shape, np.nan)
    if alpha > 0:
        size = 1.0 / alpha
        p[ok] = stats.nbinom.sf(x[ok] - 1, size, size / (size + mu[ok]))
    else:
        p[ok] = stats.poisson.sf(x[ok] - 1, mu[ok])
    return CountTest(
        expected=mu,
        p_value=p,
        method="negbin" if use_nb else "poisson",
        phi=float(phi),
        phi_p_value=phi_p,
        alpha=float(alpha),
        rate=float(rate),
    )
