"""The alert charts' in-control baseline: the risk of a typical trust, estimated robustly.

A risk model calibrated so that expected equals observed nationally (the SHMI convention) sets
every trust's expected deaths at the national average, and that average includes the worse
minority of trusts and any deteriorations in the data: it over-predicts for a typical trust, and
a CUSUM started from an inflated baseline needs many more excess deaths to signal. The alert
charts instead use the fitted model shifted, per diagnosis group, to a typical trust:

    logit p*_i = logit p_i + delta_g(i)

with ``delta_g`` from a two-way robust fit of the trust x diagnosis group cells of the fit window,
theta_tg = u_t + delta_g: observed deaths O_tg against the model's expected deaths
E_tg(theta) = sum_i expit(logit p_i + theta). Both effects are Huber M-estimates (Huber 1964;
for GLMs, Cantoni & Ronchetti 2001): each solves sum psi_c(r) sqrt(V) = 0 over its cells, with
Pearson residual r = (O - E) / sqrt(phi V), V = dE/dtheta (binomial variance) and phi a robust
dispersion (median absolute residual of cells expecting 5+ deaths). Trust effects and group shifts
are updated in turn, and after each round the trust effects are centred on their median over trusts
expecting at least ``min_trust_expected`` deaths (``location: weighted_median``: weighted by
expected deaths, the trust of the typical death): the typical trust has u = 0. A minority of worse
trusts moves the median little (and the shift not at all through their own cells, which carry
their own u_t); a deteriorating trust x group cell is down-weighted by psi in both steps.

E_tg(theta) is taken from three exact sums per cell (S1 = sum p, S2 = sum p(1-p),
S3 = sum p(1-p)(1-2p): its value and first two derivatives at 0) as
E(theta) = S1 exp(a theta + b theta^2 / 2), a = S2/S1, b = S3/S1 - a^2, which is exact for rare
outcomes (E = S1 e^theta) and to third order in theta otherwise; |theta| is at most a few tenths
for the cells that are not down-weighted.

Without the Fisher-consistency correction of Cantoni & Ronchetti the M-estimate is biased where
psi clips an asymmetric (Poisson-like) residual of a tiny cell; with c = 2 and the dispersion
scale that bias is below 0.5% of expected deaths on simulation (``tests/mortality``).

References: Huber, Ann Math Stat 1964;35:73. Cantoni & Ronchetti, JASA 2001;96:1022.
Spiegelhalter, Stat Med 2005;24:1185 (robust estimation of overdispersion for funnel plots).
Steiner et al., Biostatistics 2000;1:441 (phase I estimation of the in-control risk).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from surveillance.mortality.spec import BaselineSpec

#: cells expecting at least this many deaths enter the dispersion estimate
DISPERSION_MIN_EXPECTED = 5.0
#: bisection bracket for one effect (log-odds)
BRACKET = 3.0
BISECTIONS = 60


@dataclass
class CellSums:
    """Per trust x diagnosis group of the fit window (arrays of shape (trusts, groups))."""

    deaths: np.ndarray
    s1: np.ndarray  # sum p
    s2: np.ndarray  # sum p (1 - p)
    s3: np.ndarray  # sum p (1 - p) (1 - 2 p)

    @classmethod
    def from_risks(
        cls, trust: np.ndarray, group: np.ndarray, died: np.ndarray, p: np.ndarray, shape
    ) -> CellSums:
        """Plain sums of one set of spells (tests and small data; the run sums exactly)."""
        key = trust.astype(np.int64) * shape[1] + group
        size = shape[0] * shape[1]

        def total(w):
            return np.bincount(key, weights=w, minlength=size).reshape(shape)

        q = p * (1 - p)
        return cls(total(died.astype(float)), total(p), total(q), total(q * (1 - 2 * p)))


@dataclass
class TypicalTrustBaseline:
    """Shift (log-odds) per diagnosis group from the fitted model to a typical trust."""

    groups: np.ndarray  # diagnosis-group names the shifts are for
    shift: np.ndarray  # per group
    trusts: np.ndarray
    trust_effect: np.ndarray  # per trust, relative to the typical trust (u_t)
    method: str = "typical_trust"
    dispersion: float = 1.0
    iterations: int = 0
    converged: bool = True

    @classmethod
    def national(cls, groups: np.ndarray, trusts: np.ndarray) -> TypicalTrustBaseline:
        """No shift: the model as fitted (expected = observed nationally)."""
        return cls(
            np.asarray(groups, dtype=str),
            np.zeros(len(groups)),
            np.asarray(trusts, dtype=str),
            np.zeros(len(trusts)),
            method="national",
        )

    def shift_for(self, groups: np.ndarray) -> np.ndarray:
        """The shift of each diagnosis group named in ``groups`` (0 for a group not fitted)."""
        import pandas as pd

        idx = pd.Index(self.groups).get_indexer(np.asarray(groups).astype(str))
        return np.where(idx >= 0, self.shift[np.maximum(idx, 0)], 0.0)

    def adjust(self, p: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """Risks with their odds multiplied by ``exp(shift)`` (0 and 1 stay as they are)."""
        odds_factor = np.exp(shift)
        return p * odds_factor / (1.0 - p + p * odds_factor)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "groups": [str(g) for g in self.groups],
            "shift": [float(v) for v in self.shift],
            "trusts": [str(t) for t in self.trusts],
            "trust_effect": [float(v) for v in self.trust_effect],
            "dispersion": float(self.dispersion),
            "iterations": int(self.iterations),
            "converged": bool(self.converged),
        }

    @classmethod
    def from_dict(cls, body: dict) -> TypicalTrustBaseline:
        return cls(
            np.array(body["groups"], dtype=str),
            np.array(body["shift"], dtype=float),
            np.array(body["trusts"], dtype=str),
            np.array(body["trust_effect"], dtype=float),
            body["method"],
            float(body["dispersion"]),
            int(body["iterations"]),
            bool(body["converged"]),
        )


def _expected(cells: CellSums, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E(theta) and V(theta) = dE/dtheta per cell (exponential-quadratic form, module doc)."""
    s1 = cells.s1
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(s1 > 0, cells.s2 / s1, 0.0)
        b = np.where(s1 > 0, cells.s3 / s1, 0.0) - a * a
    theta = np.clip(theta, -BRACKET, BRACKET)
    e = s1 * np.exp(a * theta + 0.5 * b * theta * theta)
    slope = np.maximum(a + b * theta, 0.05 * a)
    return e, e * slope


def _huber(r: np.ndarray, c: float) -> np.ndarray:
    return np.clip(r, -c, c)


def _score(cells: CellSums, theta: np.ndarray, phi: float, c: float, axis: int) -> np.ndarray:
    """sum psi_c(r) sqrt(V) over ``axis`` (0: per group, 1: per trust); decreasing in theta."""
    e, v = _expected(cells, theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(v > 0, (cells.deaths - e) / np.sqrt(phi * v), 0.0)
    return (_huber(r, c) * np.sqrt(v)).sum(axis=axis)


def _solve(cells, fixed, phi, c, axis) -> np.ndarray:
    """The effect along the other axis solving its score = 0, by bisection (vectorised).

    ``fixed`` is the other effect broadcast to the cells' shape; an effect with no information
    (no expected deaths) stays 0."""
    n = cells.s1.shape[1 - axis]
    lo, hi = np.full(n, -BRACKET), np.full(n, BRACKET)
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        theta = fixed + (mid[None, :] if axis == 0 else mid[:, None])
        positive = _score(cells, theta, phi, c, axis) > 0  # root lies above mid
        lo = np.where(positive, mid, lo)
        hi = np.where(positive, hi, mid)
    out = 0.5 * (lo + hi)
    informed = cells.s1.sum(axis=axis) > 0
    return np.where(informed, out, 0.0)


def _dispersion(cells: CellSums, theta: np.ndarray) -> float:
    e, v = _expected(cells, theta)
    big = e >= DISPERSION_MIN_EXPECTED
    if not big.any():
        return 1.0
    r = (cells.deaths[big] - e[big]) / np.sqrt(v[big])
    return float(max(1.0, (1.4826 * np.median(np.abs(r))) ** 2))


def _location(u: np.ndarray, w: np.ndarray, how: str) -> float:
    """The typical trust's effect: the median of ``u`` (weighted by ``w`` when asked: the
    smallest value with at least half the weight at or below it, averaged with the next one
    on an exact tie, as the unweighted median is)."""
    if u.size == 0:
        return 0.0
    if how == "median":
        return float(np.median(u))
    order = np.argsort(u, kind="stable")
    cum = np.cumsum(w[order])
    half = 0.5 * cum[-1]
    k = int(np.searchsorted(cum, half))
    if np.isclose(cum[k], half) and k + 1 < u.size:
        return float(0.5 * (u[order][k] + u[order][k + 1]))
    return float(u[order][k])


def typical_trust_baseline(
    cells: CellSums,
    trusts: np.ndarray,
    groups: np.ndarray,
    spec: BaselineSpec | None = None,
) -> TypicalTrustBaseline:
    """Group shifts to a typical trust from the fit window's cells (module docstring)."""
    spec = spec or BaselineSpec(method="typical_trust")
    if spec.method == "national":
        return TypicalTrustBaseline.national(groups, trusts)
    T, G = cells.s1.shape
    if (T, G) != (len(trusts), len(groups)):
        raise ValueError(f"cell sums are {T} x {G}, codes {len(trusts)} x {len(groups)}")
    u, delta, phi = np.zeros(T), np.zeros(G), 1.0
    weight = cells.s1.sum(axis=1)
    typical = weight >= spec.min_trust_expected
    if not typical.any():
        typical = weight > 0
    converged, iterations = False, 0
    for iterations in range(1, spec.max_iter + 1):  # noqa: B007 - reported below
        before = np.r_[u, delta]
        u = _solve(cells, np.broadcast_to(delta[None, :], (T, G)), phi, spec.huber_c, axis=1)
        centre = _location(u[typical], weight[typical], spec.location)
        u = u - centre
        delta = _solve(cells, np.broadcast_to(u[:, None], (T, G)), phi, spec.huber_c, axis=0)
        phi = _dispersion(cells, u[:, None] + delta[None, :])
        if np.max(np.abs(np.r_[u, delta] - before)) < spec.tol:
            converged = True
            break
    # groups without deaths in the window keep the model as fitted
    delta = np.where(cells.deaths.sum(axis=0) > 0, delta, 0.0)
    return TypicalTrustBaseline(
        np.asarray(groups, dtype=str),
        delta,
        np.asarray(trusts, dtype=str),
        u,
        method="typical_trust",
        dispersion=phi,
        iterations=iterations,
        converged=converged,
    )
