"""The CUSUM family: normal CUSUM of z, risk-adjusted Bernoulli CUSUM, Poisson CUSUM, VLAD.

Typed wrappers over the numba kernels in ``_cusum_kernels.py``: each checks its inputs once and
raises a ``ValueError`` naming the argument and the rule it broke.

References
----------
Page, Continuous inspection schemes, Biometrika 1954;41:100.
Steiner, Cook, Farewell, Treasure, Monitoring surgical performance using risk-adjusted
cumulative sum charts, Biostatistics 2000;1:441.
Lucas, Counted data CUSUM's, Technometrics 1985;27:129.
Lovegrove et al., Monitoring the results of cardiac surgery by variable life-adjusted display,
Lancet 1997;350:1128.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from surveillance.stats import _cusum_kernels as _k

Restart = Literal["zero", "half"]


@dataclass(frozen=True)
class CusumPath:
    """A CUSUM chart's path.

    ``statistic[t]`` is the chart after patient/period ``t`` (after any restart, as the R
    package ``cusum`` stores it); ``signal[t]`` is True where the chart crossed its limit.
    """

    statistic: NDArray[np.float64]
    signal: NDArray[np.bool_]


# --------------------------------------------------------------------------------------------
# Input checks (once, at the boundary)


def _float_array(x: ArrayLike, name: str) -> NDArray[np.float64]:
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name}: must be one-dimensional, got shape {a.shape}")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise ValueError(f"{name}: non-finite value at position(s) {bad[:10].tolist()}")
    return a


def _risk_array(p: ArrayLike, name: str = "p") -> NDArray[np.float64]:
    a = _float_array(p, name)
    bad = np.flatnonzero((a < 0.0) | (a > 1.0))
    if bad.size:
        raise ValueError(f"{name}: risks must lie in [0, 1]; position(s) {bad[:10].tolist()}")
    return a


def _outcome_array(y: ArrayLike, n: int, name: str = "y") -> NDArray[np.int8]:
    a = np.asarray(y)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{name}: must be one-dimensional of length {n}, got shape {a.shape}")
    if a.dtype == np.bool_:
        return np.ascontiguousarray(a.view(np.int8))
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name}: outcomes must be 0/1 or boolean, got dtype {a.dtype}")
    bad = np.flatnonzero((a != 0) & (a != 1))
    if bad.size:
        raise ValueError(f"{name}: outcomes must be 0 or 1; position(s) {bad[:10].tolist()}")
    return np.ascontiguousarray(a, dtype=np.int8)


def _risks_and_outcomes(p: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """Validate risks and 0/1 outcomes in one parallel pass (national-scale arrays)."""
    pa = np.ascontiguousarray(p, dtype=np.float64)
    ya = np.asarray(y)
    if pa.ndim != 1 or ya.ndim != 1 or ya.shape[0] != pa.shape[0]:
        raise ValueError(
            f"p, y: must be one-dimensional of equal length, got {pa.shape} and {ya.shape}"
        )
    if ya.dtype == np.bool_:
        ya = ya.view(np.int8)
    elif ya.dtype != np.int8:
        if not np.issubdtype(ya.dtype, np.number):
            raise ValueError(f"y: outcomes must be 0/1 or boolean, got dtype {ya.dtype}")
        ya = _outcome_array(ya, pa.shape[0])
    ya = np.ascontiguousarray(ya)
    bad = _k.first_bad_risk_outcome(pa, ya)
    if bad >= 0:
        raise ValueError(
            f"p, y: row {bad} has p={float(pa[bad])} (must lie in [0, 1]) and y={int(ya[bad])} (must be 0 or 1)"
        )
    return pa, ya


def _odds_ratio(odds_ratio: float) -> float:
    r = float(odds_ratio)
    if not np.isfinite(r) or r <= 0.0 or r == 1.0:
        raise ValueError(f"odds_ratio: must be positive and not 1, got {odds_ratio}")
    return r


def _restart_fraction(restart: Restart) -> float:
    if restart == "zero":
        return 0.0
    if restart == "half":
        return 0.5
    raise ValueError(f"restart: must be 'zero' or 'half', got {restart!r}")


def _check_limit_sign(h: NDArray[np.float64], lower: bool) -> None:
    if lower and np.any(h >= 0):
        raise ValueError(
            "h: the lower chart (odds_ratio < 1) signals at X_t <= h, so h must be negative "
            "(R package cusum convention)"
        )
    if not lower and np.any(h <= 0):
        raise ValueError("h: the upper chart (odds_ratio > 1) needs a positive limit")


def check_offsets(offsets: ArrayLike, n_rows: int) -> NDArray[np.int64]:
    """Validate chart delimiters: ``offsets[0] == 0``, non-decreasing, ``offsets[-1] == n_rows``."""
    o = np.ascontiguousarray(offsets, dtype=np.int64)
    if o.ndim != 1 or o.shape[0] < 1:
        raise ValueError("offsets: must be one-dimensional with n_charts + 1 entries")
    if o[0] != 0 or o[-1] != n_rows:
        raise ValueError(f"offsets: must start at 0 and end at the number of rows ({n_rows})")
    bad = np.flatnonzero(np.diff(o) < 0)
    if bad.size:
        raise ValueError(
            f"offsets: must be non-decreasing; decreases after chart(s) {bad[:10].tolist()}"
        )
    return o


# --------------------------------------------------------------------------------------------
# Charts


def normal_cusum(z: ArrayLike, k: float = 0.5, h: float = 5.48, reset: float = 0.0) -> CusumPath:
    """Upper CUSUM of standardised values: ``C_t = max(0, C_{t-1} + z_t - k)``, signal ``C_t > h``.

    After a signal the chart restarts at ``reset``. Defaults are the monthly ``cusum_z`` rule
    (METHODS.md section 4).

    References
    ----------
    Page, Biometrika 1954;41:100.
    """
    za = _float_array(z, "z")
    if not (np.isfinite(k) and np.isfinite(h) and h > 0):
        raise ValueError(f"k, h: must be finite with h > 0, got k={k}, h={h}")
    if not (0.0 <= reset < h):
        raise ValueError(f"reset: must lie in [0, h), got {reset}")
    stat = np.empty_like(za)
    signal = np.empty(za.shape[0], dtype=np.int8)
    _k.normal_cusum_path(za, float(k), float(h), float(reset), stat, signal)
    return CusumPath(stat, signal.view(np.bool_))


def ra_weights(p: ArrayLike, y: ArrayLike, odds_ratio: float = 2.0) -> NDArray[np.float64]:
    """Steiner (2000) weights ``W_t = y_t log R - log(1 - p_t + R p_t)``."""
    pa = _risk_array(p)
    ya = _outcome_array(y, pa.shape[0])
    r = _odds_ratio(odds_ratio)
    return ya * np.log(r) - np.log1p((r - 1.0) * pa)


def ra_cusum(
    p: ArrayLike,
    y: ArrayLike,
    odds_ratio: float = 2.0,
    h: float = 4.5,
    restart: Restart = "half",
) -> CusumPath:
    """Risk-adjusted Bernoulli CUSUM (Steiner et al. 2000), upper or lower chart.

    Upper chart (``odds_ratio > 1``, ``h > 0``): ``X_t = max(0, X_{t-1} + W_t)``, signal at
    ``X_t >= h``. Lower chart (``odds_ratio < 1``, ``h < 0``, as in R's ``cusum::racusum``):
    ``X_t = min(0, X_{t-1} - W_t)``, signal at ``X_t <= h``. After a signal the chart restarts at
    0 (``restart="zero"``) or ``h/2`` (``"half"``).

    Parameters
    ----------
    p : in-control risk of the adverse outcome per patient, in time order.
    y : outcomes (1 = adverse event), same length.
    odds_ratio : odds ratio ``R_A`` under the alternative (2 = doubling of the odds).
    h : control limit (negative for the lower chart).
    restart : where the chart restarts after a signal.

    References
    ----------
    Steiner, Cook, Farewell, Treasure, Biostatistics 2000;1:441.
    """
    pa = _risk_array(p)
    ya = _outcome_array(y, pa.shape[0])
    r = _odds_ratio(odds_ratio)
    lower = r < 1.0
    hh = float(h)
    if not np.isfinite(hh):
        raise ValueError(f"h: must be finite, got {h}")
    _check_limit_sign(np.array([hh]), lower)
    stat = np.empty_like(pa)
    signal = np.empty(pa.shape[0], dtype=np.int8)
    _k.ra_cusum_path(pa, ya, np.log(r), hh, _restart_fraction(restart) * hh, lower, stat, signal)
    return CusumPath(stat, signal.view(np.bool_))


def grouped_ra_cusum(
    offsets: ArrayLike,
    p: ArrayLike,
    y: ArrayLike,
    h: ArrayLike,
    odds_ratio: float = 2.0,
    restart: Restart = "half",
) -> CusumPath:
    """Many RA-CUSUM charts in one pass (one numba kernel, parallel over charts).

    Rows are sorted by chart then time; chart ``c`` is rows ``offsets[c]:offsets[c+1]``
    (``offsets`` has n_charts + 1 entries, starting at 0); ``h`` is one limit per chart (a scalar
    is broadcast). Each chart equals ``ra_cusum`` on its own rows.
    """
    pa, ya = _risks_and_outcomes(p, y)
    o = check_offsets(offsets, pa.shape[0])
    n_charts = o.shape[0] - 1
    ha = np.ascontiguousarray(np.broadcast_to(np.asarray(h, dtype=np.float64), (n_charts,)))
    if not np.all(np.isfinite(ha)):
        raise ValueError("h: every chart's limit must be finite")
    r = _odds_ratio(odds_ratio)
    lower = r < 1.0
    _check_limit_sign(ha, lower)
    stat = np.empty_like(pa)
    signal = np.empty(pa.shape[0], dtype=np.int8)
    _k.grouped_ra_cusum_path(
        o, pa, ya, np.log(r), ha, _restart_fraction(restart), lower, stat, signal
    )
    return CusumPath(stat, signal.view(np.bool_))


@dataclass(frozen=True)
class GroupedSignals:
    """Signals of many charts without their paths: ``signal`` per row, and per chart the final
    statistic (after any restart) and the number of signals."""

    signal: NDArray[np.bool_]
    final: NDArray[np.float64]
    n_signals: NDArray[np.int64]


def grouped_ra_cusum_signals(
    offsets: ArrayLike,
    p: ArrayLike,
    y: ArrayLike,
    h: ArrayLike,
    odds_ratio: float = 2.0,
    restart: Restart = "half",
) -> GroupedSignals:
    """``grouped_ra_cusum`` for national runs that need signals, not paths.

    Same charts, same signals; skips writing the statistic for every row (an eighth of the
    memory traffic of the full path). Draw one chart's path with ``ra_cusum`` when needed.
    """
    pa, ya = _risks_and_outcomes(p, y)
    o = check_offsets(offsets, pa.shape[0])
    n_charts = o.shape[0] - 1
    ha = np.ascontiguousarray(np.broadcast_to(np.asarray(h, dtype=np.float64), (n_charts,)))
    if not np.all(np.isfinite(ha)):
        raise ValueError("h: every chart's limit must be finite")
    r = _odds_ratio(odds_ratio)
    lower = r < 1.0
    _check_limit_sign(ha, lower)
    signal = np.empty(pa.shape[0], dtype=np.bool_)
    final = np.empty(n_charts)
    n_signals = np.empty(n_charts, dtype=np.int64)
    _k.grouped_ra_cusum_signals(
        o, pa, ya, np.log(r), ha, _restart_fraction(restart), lower, signal, final, n_signals
    )
    return GroupedSignals(signal, final, n_signals)


def grouped_normal_cusum(
    offsets: ArrayLike, z: ArrayLike, h: ArrayLike = 5.48, k: float = 0.5, restart: Restart = "zero"
) -> CusumPath:
    """Many normal CUSUM charts in one pass (rows sorted by chart then time, per-chart ``h``)."""
    za = _float_array(z, "z")
    o = check_offsets(offsets, za.shape[0])
    n_charts = o.shape[0] - 1
    ha = np.ascontiguousarray(np.broadcast_to(np.asarray(h, dtype=np.float64), (n_charts,)))
    if not np.all(np.isfinite(ha)) or np.any(ha <= 0):
        raise ValueError("h: every chart's limit must be finite and positive")
    stat = np.empty_like(za)
    signal = np.empty(za.shape[0], dtype=np.int8)
    _k.grouped_normal_cusum_path(o, za, float(k), ha, _restart_fraction(restart), stat, signal)
    return CusumPath(stat, signal.view(np.bool_))


def poisson_reference_value(mu0: ArrayLike, mu1: ArrayLike) -> NDArray[np.float64]:
    """Reference value ``k = (mu1 - mu0) / log(mu1 / mu0)`` of the Poisson CUSUM (Lucas 1985)."""
    m0 = np.asarray(mu0, dtype=np.float64)
    m1 = np.asarray(mu1, dtype=np.float64)
    if np.any(m0 <= 0) or np.any(m1 <= 0) or np.any(m0 == m1):
        raise ValueError("mu0, mu1: must be positive and different")
    return (m1 - m0) / np.log(m1 / m0)


def poisson_cusum(counts: ArrayLike, mu0: ArrayLike, mu1: ArrayLike, h: float) -> CusumPath:
    """Poisson CUSUM of counts against in-control mean ``mu0`` and out-of-control mean ``mu1``.

    ``S_t = max(0, S_{t-1} + x_t - k_t)`` when ``mu1 > mu0`` (``max(0, S_{t-1} + k_t - x_t)``
    when ``mu1 < mu0``), ``k_t = (mu1 - mu0)/log(mu1/mu0)``; signal at ``S_t >= h``, then 0.
    ``mu0`` and ``mu1`` may be scalars or one value per period.

    References
    ----------
    Lucas, Technometrics 1985;27:129.
    """
    x = _float_array(counts, "counts")
    if np.any(x < 0):
        raise ValueError("counts: must be non-negative")
    k = np.ascontiguousarray(np.broadcast_to(poisson_reference_value(mu0, mu1), x.shape))
    lower = bool(np.all(np.asarray(mu1) < np.asarray(mu0)))
    if not lower and np.any(np.asarray(mu1) < np.asarray(mu0)):
        raise ValueError("mu1: must be above mu0 everywhere (upper chart) or below it everywhere")
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"h: must be finite and positive, got {h}")
    stat = np.empty_like(x)
    signal = np.empty(x.shape[0], dtype=np.int8)
    _k.poisson_cusum_path(x, k, float(h), lower, stat, signal)
    return CusumPath(stat, signal.view(np.bool_))


def vlad(p: ArrayLike, y: ArrayLike) -> NDArray[np.float64]:
    """Variable life-adjusted display: ``V_t = sum_{s <= t} (p_s - y_s)`` (lives saved).

    References
    ----------
    Lovegrove et al., Lancet 1997;350:1128.
    """
    pa = _risk_array(p)
    ya = _outcome_array(y, pa.shape[0])
    out = np.empty_like(pa)
    _k.vlad_path(pa, ya, out)
    return out
