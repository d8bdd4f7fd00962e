"""Logistic regression on aggregated covariate patterns by iteratively reweighted least squares.

Each row of the design is one covariate pattern with ``deaths`` out of ``spells``; the binomial
log-likelihood of the patterns equals the Bernoulli log-likelihood of the spells, so the estimates
equal a spell-level fit at a fraction of the cost (McCullagh & Nelder, Generalized Linear Models,
2nd ed., section 4.4). A small ridge penalty on the non-intercept coefficients keeps the fit
finite under separation (a level with no deaths); the intercept is unpenalised, so at convergence
sum(spells * p) == sum(deaths) exactly (calibration in the large).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit


@dataclass(frozen=True)
class LogisticFit:
    coef: np.ndarray
    std_error: np.ndarray
    iterations: int
    converged: bool
    deviance: float


def _loglik(eta: np.ndarray, deaths: np.ndarray, spells: np.ndarray) -> float:
    # sum d*eta - n*log(1+exp(eta)), stable
    return float(deaths @ eta - spells @ np.logaddexp(0.0, eta))


def fit_logistic_patterns(
    X: np.ndarray,
    deaths: np.ndarray,
    spells: np.ndarray,
    ridge: float = 0.0,
    max_iter: int = 50,
    tol: float = 1e-10,
) -> LogisticFit:
    """Penalised Newton-Raphson (IRLS) for ``deaths ~ Binomial(spells, expit(X @ coef))``.

    Column 0 of ``X`` must be the intercept (unpenalised). Returns coefficients, standard errors
    from the inverse observed information (penalty included), iterations and convergence.
    """
    X = np.asarray(X, dtype=float)
    d = np.asarray(deaths, dtype=float)
    n = np.asarray(spells, dtype=float)
    k = X.shape[1]
    penalty = np.full(k, float(ridge))
    penalty[0] = 0.0
    coef = np.zeros(k)
    rate = d.sum() / n.sum()
    coef[0] = np.log(rate / (1.0 - rate))
    eta = X @ coef
    obj = _loglik(eta, d, n) - 0.5 * penalty @ coef**2
    converged = False
    it = 0
    info = np.eye(k)
    for it in range(1, max_iter + 1):  # noqa: B007
        p = expit(eta)
        w = n * p * (1.0 - p)
        grad = X.T @ (d - n * p) - penalty * coef
        info = (X.T * w) @ X + np.diag(penalty)
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(info, grad, rcond=None)[0]
        t = 1.0
        while True:
            new = coef + t * step
            eta_new = X @ new
            obj_new = _loglik(eta_new, d, n) - 0.5 * penalty @ new**2
            if obj_new >= obj - 1e-12 * abs(obj) or t < 1e-6:
                break
            t *= 0.5
        coef, eta = new, eta_new
        change = abs(obj_new - obj)
        obj = obj_new
        if np.max(np.abs(t * step)) < 1e-8 or change < tol * (abs(obj) + 1.0):
            converged = True
            break
    p = expit(eta)
    w = n * p * (1.0 - p)
    info = (X.T * w) @ X + np.diag(penalty)
    try:
        cov = np.linalg.inv(info)
        se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    except np.linalg.LinAlgError:
        se = np.full(k, np.nan)
    # polish the intercept so calibration in the large holds to rounding (one 1-d Newton step
    # after convergence changes nothing measurable but removes the last 1e-9 of drift)
    for _ in range(3):
        p = expit(eta)
        g = d.sum() - n @ p
        h = n @ (p * (1 - p))
        if h <= 0:
            break
        coef[0] += g / h
        eta = eta + g / h
    deviance = -2.0 * _loglik(eta, d, n)
    return LogisticFit(coef, se, it, converged, deviance)


def c_statistic(p: np.ndarray, deaths: np.ndarray, spells: np.ndarray) -> float:
    """Area under the ROC curve from pattern-level counts (ties count one half)."""
    survivors = spells - deaths
    D, S = deaths.sum(), survivors.sum()
    if D <= 0 or S <= 0:
        return float("nan")
    uniq, inv = np.unique(p, return_inverse=True)
    d = np.bincount(inv, weights=deaths, minlength=len(uniq))
    s = np.bincount(inv, weights=survivors, minlength=len(uniq))
    below = np.cumsum(s) - s
    return float((d @ (below + 0.5 * s)) / (D * S))


def calibration_slope(p: np.ndarray, deaths: np.ndarray, spells: np.ndarray) -> float:
    """Slope of the logistic recalibration ``logit P(death) = a + b logit(p)`` (Cox 1958)."""
    ok = (p > 0) & (p < 1)
    if deaths[ok].sum() <= 0 or (spells - deaths)[ok].sum() <= 0:
        return float("nan")
    lp = np.log(p[ok] / (1 - p[ok]))
    if np.ptp(lp) < 1e-12:
        return float("nan")
    X = np.column_stack([np.ones(ok.sum()), lp])
    return float(fit_logistic_patterns(X, deaths[ok], spells[ok], max_iter=25).coef[1])
