"""Control limits for risk-adjusted CUSUM charts.

- ``cusum_limit_exact``: the R package ``cusum``'s exact limit for very small samples, by
  enumerating every outcome path.
- ``calibrate_threshold``: the limit ``h`` giving a target probability of any false alarm within
  a horizon (12 months) of a chart's own in-control case mix, by direct simulation (the
  ``1 - target`` quantile of the simulated running maximum) or by Brook-Evans Markov chain.
- ``ThresholdSurface``: a fast fitted surface ``h(volume, mean risk, spread)`` for national
  runs (tens of thousands of charts), built by Markov-chain calibration on a design grid of
  logit-normal case mixes and interpolated; a chart enters through its volume, mean risk and
  *equivalent* spread (the logit-normal spread with the same death-weighted log(1 + (R-1)p)).
- ``chart_thresholds``: per chart, on the exact time-inhomogeneous chain of the chart's own
  patients in order: bisection below 100 patients; the surface's value refined (secant /
  Illinois, ``_cusum_kernels.refine_limit``) below ``REFINE_BELOW`` (3,000) patients and for
  charts outside the surface's grid; the surface alone above.

Measured accuracy of the product path (``benchmarks/thresholds.py --accuracy``:
``monitor.chart_thresholds`` with default settings, achieved 12-month false-alarm probability
by the exact sequence chain on a 0.002 grid; stratified samples of 404-500 charts; a step-like
chart counts as within when it sits at the attainable value nearest the target from below):
within +-20% of target for 98.5-99.8% of the m5 synthetic bundle's charts (fitted risk model),
97.6-99.6% of the same case mixes at national volume and 95.6-97.8% of harder case mixes
(skewed, bimodal, a few very high-risk patients), at odds ratio 2 / target 0.001 and odds
ratios 1.5 and 3 / target 0.001/3. The weakest band is charts of 2,000+ patients, which keep
the surface (81-90% on the harder mixes, 91-99% on the bundle's). A national quarter (18,772 charts, 15 million
window spells) took 23.8 s CPU (39 s wall at load average 4.8 on 2 cores; the surface is fitted
once and cached).

Only the first alarm matters for the false-alarm probability, so the restart rule (0 or h/2)
does not enter.

References
----------
Steiner et al., Biostatistics 2000;1:441. Bottle & Aylin, Predicting the false alarm rate in
multi-institution mortality monitoring, JORS 2011;62:1711. Brook & Evans, Biometrika 1972;59:539.
Hubig, R package ``cusum`` (``cusum_limit_exact``). Siegmund, Sequential Analysis, 1985
(the ``exp(-h)`` tail). Dowell & Jarratt, BIT 1971;11:168 (Illinois method).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special
from scipy.interpolate import RegularGridInterpolator

from surveillance.stats import _cusum_kernels as _k
from surveillance.stats.arl import _positive_int, false_alarm_probability
from surveillance.stats.cusum import _odds_ratio, _risk_array, check_offsets

# --------------------------------------------------------------------------------------------
# Exact limits for very small samples


def cusum_limit_exact(
    n_patients: int, failure_probability: float, odds_multiplier: float = 2.0, alpha: float = 0.05
) -> float:
    """Exact CUSUM limit for ``n_patients`` patients of equal risk (R ``cusum::cusum_limit_exact``).

    Enumerates all ``2**n`` outcome paths of the Bernoulli CUSUM (weights
    ``log(p1/p0)`` for a failure, ``log((1-p1)/(1-p0))`` for a success, ``odds(p1) = R odds(p0)``),
    takes every value the chart reaches as a candidate limit ``L`` with its false-signal
    probability ``P(max_t X_t >= L)``, and returns the candidate whose probability is nearest to
    ``alpha`` (R's ``which.min(abs(alpha - P))``; the smallest such ``L`` on ties). So the
    result's false-signal probability can sit on either side of ``alpha``.
    """
    n = _positive_int(n_patients, "n_patients")
    if n > 22:
        raise ValueError(f"n_patients: exact enumeration needs n <= 22 (2**n paths), got {n}")
    p0 = float(failure_probability)
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"failure_probability: must lie in (0, 1), got {failure_probability}")
    if p0 > 0.5:  # as R does, with a warning there
        p0 = 1.0 - p0
    r = _odds_ratio(odds_multiplier)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: must lie in (0, 1), got {alpha}")
    o1 = p0 / (1.0 - p0) * r
    p1 = o1 / (1.0 + o1)
    w_fail, w_surv = np.log(p1 / p0), np.log((1.0 - p1) / (1.0 - p0))
    paths = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
    x = np.zeros(paths.shape[0])
    top = np.zeros(paths.shape[0])
    for t in range(n):
        x = np.maximum(0.0, x + np.where(paths[:, t] == 1, w_fail, w_surv))
        top = np.maximum(top, x)
    k = paths.sum(axis=1)
    prob = p0**k * (1.0 - p0) ** (n - k)
    # candidate limits: distinct values reached (merged within rounding error)
    reached = np.unique(np.round(top[top > 0], 10))
    order = np.argsort(top)
    top_sorted = top[order]
    tail = np.cumsum(prob[order][::-1])[::-1]  # P(max >= top_sorted[i])
    idx = np.searchsorted(top_sorted, reached - 1e-9, side="left")
    p_signal = tail[idx]
    best = int(np.argmin(np.abs(alpha - p_signal)))
    return float(top_sorted[idx[best]])


# --------------------------------------------------------------------------------------------
# Per-chart calibration


@dataclass(frozen=True)
class Calibration:
    """A calibrated limit ``h``, the false-alarm probability it achieves and that estimate's
    Monte-Carlo standard error (0 for the Markov chain)."""

    h: float
    achieved: float
    se: float
    method: str
    target: float
    n_per_horizon: int


def calibrate_threshold(
    p_case_mix: ArrayLike,
    n_per_horizon: int,
    target: float = 0.001,
    odds_ratio: float = 2.0,
    method: Literal["simulation", "markov"] = "simulation",
    sequence: bool = False,
    n_sims: int = 200_000,
    seed: int = 0,
    m: int = 600,
) -> Calibration:
    """Limit ``h`` whose probability of any false alarm within ``n_per_horizon`` patients is ``target``.

    The in-control chart's patients have risks drawn from ``p_case_mix`` (or, ``sequence=True``,
    are exactly that sequence). ``method="simulation"``: simulate ``n_sims`` in-control charts,
    take each one's running maximum (first-alarm probability at ``h`` is ``P(max >= h)``) and
    return the ``1 - target`` quantile; the achieved probability's standard error is
    ``sqrt(target (1 - target) / n_sims)``. ``method="markov"``: root of the Brook-Evans
    first-passage probability in ``h`` (discretisation bias about +1% at m = 600).

    With few patients or very low risk the probability is a step function of ``h`` and the
    target may not be attainable exactly; the limit returned is then at a step.
    """
    p = _risk_array(p_case_mix, "p_case_mix")
    n = _positive_int(n_per_horizon, "n_per_horizon")
    if not 0.0 < target < 1.0:
        raise ValueError(f"target: must lie in (0, 1), got {target}")
    log_r = np.log(_odds_ratio(odds_ratio))
    if odds_ratio < 1:
        raise ValueError("odds_ratio: calibration is for the upper chart (odds_ratio > 1)")
    if sequence and p.shape[0] != n:
        raise ValueError(f"p_case_mix: with sequence=True it must hold n_per_horizon={n} risks")
    if method == "simulation":
        n_sims = _positive_int(n_sims, "n_sims")
        top = np.empty(n_sims)
        _k.simulate_ra_running_max(p, not sequence, log_r, n, n_sims, int(seed), top)
        top.sort()
        # smallest h with P(max >= h) <= target: just above the order statistic at 1 - target
        i = int(np.floor((1.0 - target) * n_sims))
        h = float(np.nextafter(top[min(i, n_sims - 1)], np.inf))
        achieved = float(np.mean(top >= h))
        return Calibration(
            h, achieved, float(np.sqrt(target * (1 - target) / n_sims)), "simulation", target, n
        )
    if method == "markov":

        def gap(h: float) -> float:
            fa = false_alarm_probability(p, h, n, odds_ratio, "markov", sequence, m=m)
            return np.log(max(fa.probability, 1e-300)) - np.log(target)

        lo, hi = 0.05, 1.0
        while gap(hi) > 0:
            lo, hi = hi, hi * 2.0
            if hi > 200:
                raise ValueError("calibrate_threshold: no limit below 200 reaches the target")
        h = float(optimize.brentq(gap, lo, hi, xtol=1e-4))
        achieved = false_alarm_probability(p, h, n, odds_ratio, "markov", sequence, m=m).probability
        return Calibration(h, achieved, 0.0, "markov", target, n)
    raise ValueError(f"method: must be 'simulation' or 'markov', got {method!r}")


# --------------------------------------------------------------------------------------------
# Fast fitted surface for national runs


def logit_normal_case_mix(
    mean_risk: float, spread: float, nodes: int = 16
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Risks and probabilities of a logit-normal case mix with the given mean risk and
    standard deviation ``spread`` of logit(p) (Gauss-Hermite nodes)."""
    if not 0.0 < mean_risk < 1.0 or spread < 0:
        raise ValueError(f"mean_risk in (0, 1) and spread >= 0 needed, got {mean_risk}, {spread}")
    if spread == 0:
        return np.array([mean_risk]), np.array([1.0])
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()

    def mean_gap(mu: float) -> float:
        return float(np.sum(w * special.expit(mu + spread * z)) - mean_risk)

    mu = optimize.brentq(mean_gap, -40.0, 40.0, xtol=1e-12)
    return special.expit(mu + spread * z), w


def _death_weighted_log(p: NDArray[np.float64], w: NDArray[np.float64], odds_ratio: float) -> float:
    """``sum p log(1 + (R-1) p) / sum p``: how much a death's CUSUM jump is shrunk, on average
    over deaths (``W = log R - log(1 + (R-1) p)`` for a death)."""
    return float(np.sum(w * p * np.log1p((odds_ratio - 1.0) * p)) / np.sum(w * p))


def equivalent_spread(
    mean_risk: float, death_weighted_log: float, odds_ratio: float = 2.0, nodes: int = 10
) -> float:
    """Spread (sd of logit risk) of the logit-normal case mix with the same mean risk and the same
    death-weighted ``log(1 + (R-1) p)`` as a chart's own case mix.

    Matching this, rather than the chart's own sd of logit risk, makes skewed case mixes
    (a long tail of high-risk patients, whose deaths move the chart less) land on the right
    limit: on skewed test mixes the achieved false-alarm probability moved from 0.66-0.8 of
    target to 0.9-1.1 (``benchmarks/thresholds.py``). Clipped to [0, 3].
    """

    def gap(s: float) -> float:
        pv, pw = logit_normal_case_mix(mean_risk, s, nodes)
        return _death_weighted_log(pv, pw, odds_ratio) - death_weighted_log

    if gap(0.0) >= 0:
        return 0.0
    if gap(3.0) <= 0:
        return 3.0
    return float(optimize.brentq(gap, 0.0, 3.0, xtol=1e-6))


def case_mix_features(p: ArrayLike, odds_ratio: float = 2.0) -> tuple[float, float]:
    """``(mean risk, equivalent spread)``: the case-mix summary the surface is indexed by."""
    pa = np.clip(_risk_array(p), 1e-9, 1 - 1e-9)
    mean = float(pa.mean())
    return mean, equivalent_spread(
        mean, _death_weighted_log(pa, np.ones_like(pa), odds_ratio), odds_ratio
    )


@dataclass
class ThresholdSurface:
    """Fitted ``h(volume, mean risk, spread)`` for a target false-alarm probability.

    ``spread`` is a chart's *equivalent* logit-normal spread (``equivalent_spread``,
    ``chart_features``), not its raw sd of logit risk.

    ``fit`` calibrates, by Brook-Evans Markov chain (grid step ``delta`` of the statistic, exact
    DP up to ``n0`` patients then the geometric tail fixed by the exact ARL), the limit at every
    point of a design grid: volumes (patients per horizon), mean risks and logit-sd spreads of
    logit-normal case mixes. ``predict`` interpolates linearly in (log volume, logit mean risk,
    spread), clipping to the grid. Accuracy against direct simulation of real-shaped case mixes
    is measured in ``benchmarks/thresholds.py``.
    """

    target: float = 0.001
    odds_ratio: float = 2.0
    volumes: NDArray[np.float64] = field(
        default_factory=lambda: np.unique(np.round(np.geomspace(3, 8000, 36)))
    )
    mean_risks: NDArray[np.float64] = field(
        default_factory=lambda: special.expit(
            np.linspace(special.logit(0.002), special.logit(0.6), 12)
        )
    )
    spreads: NDArray[np.float64] = field(default_factory=lambda: np.array([0.0, 0.8, 1.6, 2.4]))
    h_grid: NDArray[np.float64] = field(default_factory=lambda: np.geomspace(0.3, 15.0, 22))
    delta: float = 0.015
    m_min: int = 60
    m_max: int = 1000
    mix_nodes: int = 10
    h_table_: NDArray[np.float64] | None = None
    _interp: RegularGridInterpolator | None = None
    _dwl_table: tuple | None = None

    def fit(self) -> ThresholdSurface:
        """Calibrate ``h`` at every design point (parallel over ``h`` inside numba)."""
        if not 0.0 < self.target < 1.0:
            raise ValueError(f"target: must lie in (0, 1), got {self.target}")
        log_r = np.log(_odds_ratio(self.odds_ratio))
        n_grid = np.asarray(self.volumes, dtype=np.int64)
        log_target = np.log(self.target)
        table = np.empty((n_grid.shape[0], len(self.mean_risks), len(self.spreads)))
        h_grid = np.asarray(self.h_grid, dtype=np.float64)
        for b, r in enumerate(self.mean_risks):
            for c, s in enumerate(self.spreads):
                pv, pw = logit_normal_case_mix(float(r), float(s), self.mix_nodes)
                n0 = _transient_length(pv, pw, log_r, h_grid, int(n_grid.max()))
                log_f = self._log_f_table(pv, pw, log_r, h_grid, n_grid, n0, log_target)
                table[:, b, c] = [
                    _invert(self.h_grid, log_f[:, a], log_target) for a in range(n_grid.shape[0])
                ]
        self.h_table_ = table
        self._interp = RegularGridInterpolator(
            (
                np.log(n_grid.astype(float)),
                special.logit(self.mean_risks),
                np.asarray(self.spreads, dtype=float),
            ),
            table,
            method="linear",
        )
        return self

    def _log_f_table(self, pv, pw, log_r, h_grid, n_grid, n0, log_target):
        """``log P(signal within n)`` on the ``h`` grid, in ascending blocks of ``h``; stops once
        even the largest volume is well below target (larger ``h`` cannot matter for the
        inversion; those rows stay at -inf)."""
        block = max(2, numba.get_num_threads())
        log_f = np.full((h_grid.shape[0], n_grid.shape[0]), -np.inf)
        for a in range(0, h_grid.shape[0], block):
            sl = slice(a, a + block)
            log_f[sl] = _k.ra_false_alarm_table(
                pv, pw, log_r, h_grid[sl], self.delta, self.m_min, self.m_max, n_grid, n0[sl]
            )
            if log_f[min(a + block, h_grid.shape[0]) - 1, -1] < log_target - _PRUNE_MARGIN:
                break
        return log_f

    def chart_features(
        self, offsets: NDArray[np.int64], p: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per chart (rows ``offsets[c]:offsets[c+1]``, none empty): mean risk and equivalent
        spread (``equivalent_spread``), vectorised through a table of the logit-normal family's
        death-weighted log over (mean risk, spread) built once."""
        n = np.diff(offsets)
        pc = np.clip(p, 1e-9, 1 - 1e-9)
        mean = np.add.reduceat(pc, offsets[:-1]) / n
        dwl = np.add.reduceat(pc * np.log1p((self.odds_ratio - 1.0) * pc), offsets[:-1]) / (
            mean * n
        )
        if self._dwl_table is None:
            self._dwl_table = _dwl_table(self.odds_ratio, self.mix_nodes)
        r_axis, s_axis, table = self._dwl_table
        lr = np.clip(special.logit(mean), r_axis[0], r_axis[-1])
        # the family's value at each chart's mean risk, for every spread on the axis
        i = np.clip(np.searchsorted(r_axis, lr) - 1, 0, r_axis.shape[0] - 2)
        t = (lr - r_axis[i]) / (r_axis[i + 1] - r_axis[i])
        at_r = table[i] * (1 - t)[:, None] + table[i + 1] * t[:, None]  # (charts, spreads)
        # invert the (increasing) curve in spread, linearly
        j = np.clip((at_r < dwl[:, None]).sum(axis=1) - 1, 0, s_axis.shape[0] - 2)
        rows = np.arange(n.shape[0])
        lo, hi = at_r[rows, j], at_r[rows, j + 1]
        u = np.clip((dwl - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
        spread = s_axis[j] + u * (s_axis[j + 1] - s_axis[j])
        return mean, spread

    def predict(
        self, volume: ArrayLike, mean_risk: ArrayLike, spread: ArrayLike | float = 0.8
    ) -> NDArray[np.float64]:
        """Limit ``h`` per chart from its volume per horizon, mean risk and logit-risk spread."""
        if self._interp is None:
            raise ValueError("ThresholdSurface: call fit() before predict()")
        v = np.asarray(volume, dtype=np.float64)
        r = np.asarray(mean_risk, dtype=np.float64)
        s = np.broadcast_to(
            np.asarray(spread, dtype=np.float64), np.broadcast_shapes(v.shape, r.shape)
        )
        if np.any(~np.isfinite(v) | (v <= 0)):
            raise ValueError("volume: must be finite and positive")
        if np.any(~np.isfinite(r) | (r <= 0) | (r >= 1)):
            raise ValueError("mean_risk: must lie in (0, 1)")
        n_grid = np.asarray(self.volumes, dtype=float)
        pts = np.stack(
            np.broadcast_arrays(
                np.log(np.clip(v, n_grid[0], n_grid[-1])),
                special.logit(np.clip(r, self.mean_risks[0], self.mean_risks[-1])),
                np.clip(s, self.spreads[0], self.spreads[-1]),
            ),
            axis=-1,
        )
        return self._interp(pts.reshape(-1, 3)).reshape(pts.shape[:-1])


def chart_thresholds(
    offsets: ArrayLike,
    p: ArrayLike,
    surface: ThresholdSurface,
    exact_below: int = 100,
    delta: float = 0.005,
    refine_below: int | None = None,
    refine_delta: float = 0.02,
    refine_tol: float = 0.1,
) -> NDArray[np.float64]:
    """Limits for many charts (rows sorted by chart, delimited by ``offsets``; ``p`` = each
    chart's in-control risks for one horizon), for the surface's target false-alarm probability
    over the chart's own patients in their order.

    - ``n < exact_below`` patients: the exact smallest ``h`` (bisection to 1e-3) whose
      probability by the time-inhomogeneous Brook-Evans chain (grid step ``delta``) is at most
      the target. Such charts have a step-like probability in ``h`` that no smooth surface can
      follow; the target is often not attainable and the limit sits on the step just below it.
    - ``exact_below <= n < refine_below``, and larger charts outside the surface's grid (more
      patients or a lower mean risk than it was fitted for): the fitted ``surface``'s value
      refined on the same exact chain by secant / Illinois steps until the probability is within
      ``exp(+-refine_tol)`` of the target (``_cusum_kernels.refine_limit``; one chain pass when
      the surface is already that close). Grid step ``refine_delta`` (its bias, about +2-5% in
      the probability, errs conservative), or 0.01 for charts expecting fewer than 2 deaths,
      whose step-like probability a coarse grid blurs.
    - other charts: the surface.

    Parameters
    ----------
    offsets, p
        Chart row delimiters (``n_charts + 1``, no empty chart) and the rows' in-control risks.
    surface
        A fitted :class:`ThresholdSurface` (its target and odds ratio are used).
    exact_below, delta
        Volume below which charts are calibrated by bisection, and that chain's grid step.
    refine_below, refine_delta, refine_tol
        Volume below which the surface's value is refined, that chain's grid step, and the
        accepted ``|log(P / target)|``. ``refine_below=exact_below`` gives the surface alone above.

    Returns
    -------
    numpy.ndarray
        ``h`` per chart.
    """
    pa = _risk_array(p)
    o = check_offsets(offsets, pa.shape[0])
    n = np.diff(o)
    if np.any(n == 0):
        raise ValueError(
            f"offsets: chart(s) {np.flatnonzero(n == 0)[:10].tolist()} have no patients"
        )
    if surface.h_table_ is None:
        raise ValueError("surface: call fit() first")
    refine_below = REFINE_BELOW if refine_below is None else int(refine_below)
    if not (delta > 0 and refine_delta > 0 and refine_tol > 0):
        raise ValueError("delta, refine_delta and refine_tol: must be positive")
    mean, spread = surface.chart_features(o, pa)
    h = surface.predict(n, mean, spread)
    log_r = np.log(_odds_ratio(surface.odds_ratio))
    small = np.flatnonzero(n < exact_below).astype(np.int64)
    if small.size:
        out = np.empty(small.shape[0])
        _k.smallest_limits(o, pa, small, log_r, surface.target, delta, 60, _M_MAX, 20.0, 1e-3, out)
        h[small] = out
    # refined: charts under refine_below, and any the surface would extrapolate for (volume
    # or mean risk beyond its grid: it clips them)
    outside = (n > surface.volumes[-1]) | (mean < surface.mean_risks[0])
    refine = (n >= exact_below) & ((n < refine_below) | outside)
    # few expected deaths: the probability is step-like in h and a coarse grid's ramp (a few
    # grid steps wide) misplaces the step, so those charts get the bisection's fine grid
    few = mean * n < _FEW_DEATHS
    for charts, step in ((refine & ~few, refine_delta), (refine & few, _FEW_DELTA)):
        idx = np.flatnonzero(charts).astype(np.int64)
        if idx.size == 0:
            continue
        out = np.empty(idx.shape[0])
        evals = np.empty(idx.shape[0], dtype=np.int64)
        _k.refine_limits(
            o,
            pa,
            idx,
            h[idx].copy(),
            log_r,
            surface.target,
            step,
            60,
            _M_MAX,
            refine_tol,
            1e-3,
            40,
            out,
            evals,
        )
        h[idx] = out
    return h


#: charts with fewer patients than this get the surface's limit refined on their own chain
#: (larger ones keep the surface's value: the time budget of a national quarter, see the module
#: docstring)
REFINE_BELOW = 3000
#: most grid nodes of a per-chart chain (h up to 15 at step 0.005, 60 at step 0.02)
_M_MAX = 3000
#: expected deaths below which a refined chart's chain uses the fine grid step ``delta``
_FEW_DEATHS = 2.0
#: and that fine grid step (a step's ramp is then about 0.01-0.03 wide in h)
_FEW_DELTA = 0.01


def _dwl_table(odds_ratio: float, nodes: int):
    """Death-weighted log of logit-normal case mixes on a (logit mean risk, spread) grid."""
    r_axis = np.linspace(special.logit(1e-4), special.logit(0.9), 60)
    s_axis = np.linspace(0.0, 3.0, 31)
    table = np.empty((r_axis.shape[0], s_axis.shape[0]))
    for a, lr in enumerate(r_axis):
        for b, sd in enumerate(s_axis):
            pv, pw = logit_normal_case_mix(float(special.expit(lr)), float(sd), nodes)
            table[a, b] = _death_weighted_log(pv, pw, odds_ratio)
    return r_axis, s_axis, table


def _transient_length(pv, pw, log_r, h_grid, n_max):
    """Patients after which the first-alarm hazard is settled: ``transient_arls`` times Wald's
    out-of-control ARL ``h / E_1[W]`` (the time a chart needs to climb to ``h``), at least 200.

    Before it the hazard is still rising and a geometric extrapolation overstates the
    false-alarm probability (by up to 4x at 0.5% risk), so the DP runs exactly up to it.
    """
    r = np.exp(log_r)
    p1 = r * pv / (1.0 - pv + r * pv)
    w_fail = log_r - np.log1p((r - 1.0) * pv)
    w_surv = -np.log1p((r - 1.0) * pv)
    drift = float(np.sum(pw * (p1 * w_fail + (1.0 - p1) * w_surv)))
    n0 = np.ceil(_TRANSIENT_ARLS * h_grid / drift)
    return np.clip(n0, 200, n_max).astype(np.int64)


_TRANSIENT_ARLS = 4.0
_PRUNE_MARGIN = np.log(3.0)


def _invert(h_grid: NDArray[np.float64], log_f: NDArray[np.float64], log_target: float) -> float:
    """``h`` where ``log P(signal)`` (non-increasing in ``h``) crosses ``log_target`` (linear)."""
    below = np.flatnonzero(log_f <= log_target)
    if below.size == 0:
        return float(h_grid[-1])
    a = int(below[0])
    if a == 0:
        return float(h_grid[0])
    f0, f1 = log_f[a - 1], log_f[a]
    if f0 == f1:
        return float(h_grid[a])
    return float(h_grid[a - 1] + (log_target - f0) * (h_grid[a] - h_grid[a - 1]) / (f1 - f0))
