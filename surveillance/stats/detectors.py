"""Alert detectors for risk-adjusted mortality charts, each calibrated per chart to a budget.

Every detector watches the same charts as ``grouped_ra_cusum`` (rows sorted by chart then
time, chart ``c`` = rows ``offsets[c]:offsets[c+1]``, in-control risks ``p``, outcomes ``y``)
and is calibrated so that the probability of *any* false alarm over the chart's own in-control
patients of the window is at most ``target``:

- ``cusum``: the RA-CUSUM of Steiner et al. (2000) at one design odds ratio (R_A = 2), limit
  from the chart's own case mix (``surveillance.stats.thresholds.chart_thresholds``).
- ``multi_cusum``: RA-CUSUMs at several design odds ratios (1.5, 2, 3) side by side; the chart
  signals when any of them crosses its limit. The budget is split by Bonferroni, ``target / K``
  each: the union's false-alarm probability is at most the sum whatever the (strong, positive)
  correlation of the components, so it needs no joint simulation and every component reuses the
  fitted ``ThresholdSurface`` of its own odds ratio and target. The price is the slack: the
  union spends less than ``target`` (measured in ``benchmarks/detectors.py``).
- ``glr``: the risk-adjusted Bernoulli generalised likelihood ratio over change points in the
  window with the odds ratio (>= 1) estimated by maximum likelihood, ``G_t = max_{tau < t}
  max_{R >= 1} log LR`` (Siegmund & Venkatraman 1995; Lai 1995; for risk-adjusted binary
  outcomes, Gombay, Hussein & Steiner 2011). The maximum over ``R`` is over a fine geometric
  grid (default 16 odds ratios from 1.1 to 6), where ``G_t`` is exactly the largest of the
  grid's CUSUMs. Its limit ``g`` is the ``1 - target`` quantile of the chart's own simulated
  in-control running maximum (``glr_thresholds``; only deaths are simulated).
- ``cusum_oe``: the R_A = 2 CUSUM at ``target (1 - share)`` together with the window's one-sided
  O/E test (observed against expected deaths of the whole window, tested once at the chart's
  last patient) at ``target * share``, its critical count from the exact Poisson-binomial
  distribution of a sum of independent Bernoulli deaths (``oe_critical_counts``). Bonferroni
  again: the union is within ``target``; the exact tail of a discrete count is conservative.

Measured (``benchmarks/detectors.py``, 20,000 in-control charts per configuration, charts of
30-100 expected deaths a year pooled, true baseline): false alarms per chart-year 0.092%
(cusum), 0.061% (multi_cusum: the Bonferroni slack), 0.098% (glr), 0.077% (cusum_oe), s.e.
about 0.009%; detection within the window of OR 1.5 / 2 / 3 steps starting in month 1, 4 or 7:
cusum 0.20 / 0.70 / 0.98, multi_cusum 0.20 / 0.67 / 0.97, glr 0.12 / 0.59 / 0.96, cusum_oe
0.24 / 0.70 / 0.97. The sup over the odds ratio costs the GLR a higher limit than it gains at a
0.1% budget over one year; the O/E test adds power for changes that last the whole window.

References
----------
Steiner, Cook, Farewell, Treasure, Biostatistics 2000;1:441.
Siegmund & Venkatraman, Using the generalized likelihood ratio statistic for sequential
detection of a change-point, Ann Stat 1995;23:255.
Lai, Sequential changepoint detection in quality control and dynamical systems, JRSS B
1995;57:613.
Gombay, Hussein & Steiner, Monitoring binary outcomes using risk-adjusted charts: a
comparative study, Stat Med 2011;30:2815.
Hong, On computing the distribution function for the Poisson binomial distribution, Comput
Stat Data Anal 2013;59:41.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from surveillance.stats import _detector_kernels as _k
from surveillance.stats.cusum import _restart_fraction, _risks_and_outcomes, check_offsets

#: selectable detectors (``detector`` in ``models/risk/monitoring.yaml``)
DETECTORS = ("cusum", "multi_cusum", "glr", "cusum_oe")


@dataclass(frozen=True)
class DetectorRun:
    """A detector over many charts.

    Per row: ``statistic`` after any restart (``cusum`` and ``glr``: the chart value;
    ``multi_cusum`` and ``cusum_oe``: the largest component's value over its limit, 1 = at the
    limit), ``signal``, and at signal rows the reported component's value before the restart
    (``value``; the observed deaths for the O/E test), its limit (``threshold``; the critical
    count for the O/E test) and its index into ``components`` (``component``, -1 elsewhere).
    ``odds_ratio_hat`` (GLR only): the maximum-likelihood odds ratio of the maximising segment.
    """

    statistic: NDArray[np.float64]
    signal: NDArray[np.bool_]
    value: NDArray[np.float64]
    threshold: NDArray[np.float64]
    component: NDArray[np.int8]
    components: tuple[str, ...]
    odds_ratio_hat: NDArray[np.float64] | None = None


@dataclass(frozen=True)
class DetectorLimits:
    """Calibrated limits of one detector for many charts.

    ``h`` is (n_charts, K): the limits of the K CUSUM components (design ``odds_ratios``), or
    for ``glr`` the one GLR limit (``odds_ratios`` is then the GLR's grid). ``oe_critical``
    (``cusum_oe`` only): per chart, the smallest count of deaths with ``P(O >= c) <= oe_alpha``.
    """

    detector: str
    components: tuple[str, ...]
    h: NDArray[np.float64]
    odds_ratios: NDArray[np.float64]
    target: float
    oe_critical: NDArray[np.int64] | None = None
    oe_alpha: float = 0.0


# --------------------------------------------------------------------------------------------
# Input checks


def _check(offsets: ArrayLike, p: ArrayLike, y: ArrayLike | None = None):
    if y is None:
        pa, _ = _risks_and_outcomes(p, np.zeros(np.shape(p), dtype=np.int8))
        ya = None
    else:
        pa, ya = _risks_and_outcomes(p, y)
    o = check_offsets(offsets, pa.shape[0])
    empty = np.flatnonzero(np.diff(o) == 0)
    if empty.size:
        raise ValueError(f"offsets: chart(s) {empty[:10].tolist()} have no patients")
    return o, pa, ya


def _odds_ratios(odds_ratios: ArrayLike, name: str = "odds_ratios") -> NDArray[np.float64]:
    r = np.ascontiguousarray(np.atleast_1d(np.asarray(odds_ratios, dtype=np.float64)))
    if r.ndim != 1 or r.shape[0] == 0 or not np.all(np.isfinite(r)) or np.any(r <= 1.0):
        raise ValueError(f"{name}: must be one or more finite odds ratios above 1, got {r}")
    return r


def _target(target: float) -> float:
    t = float(target)
    if not 0.0 < t < 1.0:
        raise ValueError(f"target: must lie in (0, 1), got {target}")
    return t


def _limits(h: ArrayLike, n_charts: int, n_k: int) -> NDArray[np.float64]:
    a = np.asarray(h, dtype=np.float64)
    if a.ndim == 1 and n_k == 1:
        a = a[:, None]
    a = np.ascontiguousarray(np.broadcast_to(a, (n_charts, n_k)))
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError("h: every chart's limits must be finite and positive")
    return a


def glr_odds_ratio_grid(low: float = 1.1, high: float = 6.0, points: int = 16) -> NDArray:
    """Geometric grid of odds ratios over which the GLR maximises (``low`` > 1)."""
    if not (1.0 < low < high) or points < 2:
        raise ValueError(
            f"GLR grid: need 1 < low < high and points >= 2, got {low}, {high}, {points}"
        )
    return np.geomspace(low, high, int(points))


def component_names(detector: str, odds_ratios: Sequence[float]) -> tuple[str, ...]:
    """Names of a detector's components as the alerts table reports them."""
    if detector == "cusum":
        return ("cusum",)
    if detector == "multi_cusum":
        return tuple(f"cusum_or{float(r):g}" for r in odds_ratios)
    if detector == "glr":
        return ("glr",)
    if detector == "cusum_oe":
        return ("cusum", "oe_test")
    raise ValueError(f"detector: must be one of {', '.join(DETECTORS)}, got {detector!r}")


# --------------------------------------------------------------------------------------------
# Statistics and signals


def multi_ra_cusum(
    offsets: ArrayLike,
    p: ArrayLike,
    y: ArrayLike,
    h: ArrayLike,
    odds_ratios: ArrayLike = (1.5, 2.0, 3.0),
    restart: str = "half",
) -> DetectorRun:
    """RA-CUSUMs at several design odds ratios side by side (limits ``h``: n_charts x K).

    The chart signals when any component reaches its limit; the one furthest past its limit
    (largest ``X_k / h_k``) is reported, and every component restarts at ``h_k / 2`` (or 0).
    With one odds ratio this is ``grouped_ra_cusum`` (statistic divided by ``h``).
    """
    o, pa, ya = _check(offsets, p, y)
    r = _odds_ratios(odds_ratios)
    ha = _limits(h, o.shape[0] - 1, r.shape[0])
    n = pa.shape[0]
    out = _empty_run(n)
    _k.grouped_multi_cusum(o, pa, ya, np.log(r), ha, _restart_fraction(restart), *out)
    return DetectorRun(*out, components=component_names("multi_cusum", r))


def ra_glr(
    offsets: ArrayLike,
    p: ArrayLike,
    y: ArrayLike,
    g: ArrayLike,
    odds_ratios: ArrayLike | None = None,
    restart: str = "half",
) -> DetectorRun:
    """Risk-adjusted Bernoulli GLR over change points, odds ratio on ``odds_ratios`` (default
    ``glr_odds_ratio_grid()``), limit ``g`` per chart; restart each CUSUM of the grid at
    ``min(X_k, g/2)`` (or 0) after a signal."""
    o, pa, ya = _check(offsets, p, y)
    r = _odds_ratios(glr_odds_ratio_grid() if odds_ratios is None else odds_ratios)
    ga = _limits(g, o.shape[0] - 1, 1)[:, 0].copy()
    n = pa.shape[0]
    statistic, signal, value = np.empty(n), np.empty(n, dtype=np.bool_), np.empty(n)
    k_hat = np.empty(n, dtype=np.int64)
    _k.grouped_glr(
        o, pa, ya, np.log(r), ga, _restart_fraction(restart), statistic, signal, value, k_hat
    )
    cid = np.repeat(np.arange(o.shape[0] - 1), np.diff(o))
    threshold = np.where(signal, ga[cid], 0.0)
    component = np.where(signal, 0, -1).astype(np.int8)
    return DetectorRun(statistic, signal, value, threshold, component, ("glr",), r[k_hat])


@dataclass(frozen=True)
class OETest:
    """One-sided O/E test of each chart's window at level ``alpha``: observed and expected
    deaths, the critical count (smallest ``c`` with ``P(O >= c) <= alpha``) and the exact tail
    ``P(O >= c)`` there; the chart signals when ``observed >= critical``."""

    observed: NDArray[np.int64]
    expected: NDArray[np.float64]
    critical: NDArray[np.int64]
    tail: NDArray[np.float64]
    alpha: float

    @property
    def signal(self) -> NDArray[np.bool_]:
        return self.observed >= self.critical


def oe_critical_counts(
    offsets: ArrayLike, p: ArrayLike, alpha: float
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Per chart, the smallest count ``c`` with ``P(O >= c) <= alpha`` where ``O`` is the sum of
    independent Bernoulli(p_t) deaths of the chart's patients (exact Poisson-binomial
    recursion; Hong 2013), and ``P(O >= c)``. A chart that cannot reach ``alpha`` even with every
    patient dead gets ``c = n + 1`` (never signals)."""
    o, pa, _ = _check(offsets, p)
    a = _target(alpha)
    n = np.diff(o)
    expected = np.add.reduceat(pa, o[:-1])
    # track counts up to ~10 sd above the mean; charts whose tail is still above alpha there
    # are redone with every count tracked
    k_max = np.minimum(n + 1, np.ceil(expected + 10.0 * np.sqrt(expected) + 20.0)).astype(np.int64)
    critical = np.empty(n.shape[0], dtype=np.int64)
    tail = np.empty(n.shape[0])
    _k.oe_critical_counts(o, pa, a, k_max, critical, tail)
    redo = np.flatnonzero(critical < 0)
    if redo.size:
        sub_o = np.r_[0, np.cumsum(n[redo])].astype(np.int64)
        sub_p = np.concatenate([pa[o[c] : o[c + 1]] for c in redo])
        c2, t2 = np.empty(redo.size, dtype=np.int64), np.empty(redo.size)
        _k.oe_critical_counts(sub_o, sub_p, a, (n[redo] + 1).astype(np.int64), c2, t2)
        critical[redo], tail[redo] = c2, t2
    return critical, tail


def oe_test(offsets: ArrayLike, p: ArrayLike, y: ArrayLike, alpha: float) -> OETest:
    """The window's one-sided exact O/E test per chart at level ``alpha``."""
    o, pa, ya = _check(offsets, p, y)
    critical, tail = oe_critical_counts(o, pa, alpha)
    observed = np.add.reduceat(ya.astype(np.int64), o[:-1])
    return OETest(observed, np.add.reduceat(pa, o[:-1]), critical, tail, float(alpha))


# --------------------------------------------------------------------------------------------
# Calibration


def glr_running_max(
    offsets: ArrayLike,
    p: ArrayLike,
    odds_ratios: ArrayLike | None = None,
    n_sims: int = 20_000,
    seed: int = 0,
    charts: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """In-control ``max_t G_t`` of each chart (or of ``charts``), ``n_sims`` simulations each:
    (n_charts, n_sims). ``P(false alarm at limit g) = P(max >= g)``."""
    o, pa, _ = _check(offsets, p)
    r = _odds_ratios(glr_odds_ratio_grid() if odds_ratios is None else odds_ratios)
    if int(n_sims) < 1:
        raise ValueError(f"n_sims: must be positive, got {n_sims}")
    idx = np.arange(o.shape[0] - 1) if charts is None else np.asarray(charts, dtype=np.int64)
    out = np.empty((idx.shape[0], int(n_sims)))
    _k.simulate_glr_running_max(
        o, pa, np.ascontiguousarray(idx), np.log(r), int(n_sims), int(seed), out
    )
    return out


def glr_thresholds(
    offsets: ArrayLike,
    p: ArrayLike,
    target: float = 0.001,
    odds_ratios: ArrayLike | None = None,
    n_sims: int = 20_000,
    seed: int = 0,
    block: int = 256,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """GLR limit ``g`` per chart for probability ``target`` of any false alarm over the chart's
    own in-control patients, and the achieved probability in the simulation.

    ``g`` is just above the ``1 - target`` order statistic of ``n_sims`` simulated in-control
    running maxima (as ``calibrate_threshold``); the achieved probability's Monte-Carlo standard
    error is ``sqrt(target (1 - target) / n_sims)``. Charts are simulated in blocks of
    ``block`` (memory: block x n_sims doubles).
    """
    o, pa, _ = _check(offsets, p)
    t = _target(target)
    n_charts = o.shape[0] - 1
    g = np.empty(n_charts)
    achieved = np.empty(n_charts)
    i = min(int(np.floor((1.0 - t) * n_sims)), int(n_sims) - 1)
    for a in range(0, n_charts, block):
        charts = np.arange(a, min(a + block, n_charts))
        top = glr_running_max(o, pa, odds_ratios, n_sims, seed, charts)
        top.sort(axis=1)
        g[charts] = np.nextafter(top[:, i], np.inf)
        achieved[charts] = (top >= g[charts, None]).mean(axis=1)
    return g, achieved


def detector_limits(
    offsets: ArrayLike,
    p: ArrayLike,
    detector: str,
    cusum_limits: Callable[[float, float], NDArray[np.float64]],
    target: float = 0.001,
    odds_ratio: float = 2.0,
    odds_ratios: Sequence[float] = (1.5, 2.0, 3.0),
    glr_odds_ratios: ArrayLike | None = None,
    oe_share: float = 0.5,
    n_sims: int = 20_000,
    seed: int = 0,
) -> DetectorLimits:
    """Calibrate ``detector`` for every chart at probability ``target`` of any false alarm.

    ``cusum_limits(odds_ratio, target)`` returns the per-chart RA-CUSUM limits for one design
    odds ratio and target (the monitor passes its surface / exact-chain ``chart_thresholds``);
    the CUSUM components are calibrated through it, ``multi_cusum`` at ``target / K`` each and
    ``cusum_oe``'s chart at ``target (1 - oe_share)`` (Bonferroni). The GLR is calibrated by
    simulation (``glr_thresholds``), the O/E test exactly (``oe_critical_counts``).
    """
    o, pa, _ = _check(offsets, p)
    t = _target(target)
    names = component_names(detector, odds_ratios)
    if detector == "cusum":
        r = _odds_ratios([odds_ratio], "odds_ratio")
        return DetectorLimits(detector, names, cusum_limits(float(r[0]), t)[:, None], r, t)
    if detector == "multi_cusum":
        r = _odds_ratios(odds_ratios)
        h = np.column_stack([cusum_limits(float(x), t / r.shape[0]) for x in r])
        return DetectorLimits(detector, names, h, r, t)
    if detector == "glr":
        r = _odds_ratios(glr_odds_ratio_grid() if glr_odds_ratios is None else glr_odds_ratios)
        g, _ = glr_thresholds(o, pa, t, r, n_sims, seed)
        return DetectorLimits(detector, names, g[:, None], r, t)
    if detector == "cusum_oe":
        if not 0.0 < oe_share < 1.0:
            raise ValueError(f"oe_share: must lie in (0, 1), got {oe_share}")
        r = _odds_ratios([odds_ratio], "odds_ratio")
        h = cusum_limits(float(r[0]), t * (1.0 - oe_share))[:, None]
        critical, _ = oe_critical_counts(o, pa, t * oe_share)
        return DetectorLimits(detector, names, h, r, t, critical, t * oe_share)
    raise ValueError(f"detector: must be one of {', '.join(DETECTORS)}, got {detector!r}")


def run_detector(
    offsets: ArrayLike, p: ArrayLike, y: ArrayLike, limits: DetectorLimits, restart: str = "half"
) -> DetectorRun:
    """Run a calibrated detector over the charts (see the module docstring for each one)."""
    o, pa, ya = _check(offsets, p, y)
    if limits.h.shape[0] != o.shape[0] - 1:
        raise ValueError(f"limits: for {limits.h.shape[0]} charts, offsets give {o.shape[0] - 1}")
    if limits.detector == "glr":
        return ra_glr(o, pa, ya, limits.h[:, 0], limits.odds_ratios, restart)
    run = multi_ra_cusum(o, pa, ya, limits.h, limits.odds_ratios, restart)
    if limits.detector in ("cusum", "cusum_oe"):
        # a single chart: report its statistic on the CUSUM scale
        h_row = np.repeat(limits.h[:, 0], np.diff(o))
        run = DetectorRun(
            run.statistic * h_row,
            run.signal,
            run.value,
            run.threshold,
            run.component,
            limits.components,
        )
    if limits.detector != "cusum_oe":
        return run
    observed = np.add.reduceat(ya.astype(np.int64), o[:-1])
    hit = np.flatnonzero(observed >= limits.oe_critical)
    last = o[1:][hit] - 1
    # the test looks once, at each chart's last patient of the window; where the CUSUM
    # signals on that same patient, the CUSUM is what is reported
    take = ~run.signal[last]
    rows, charts = last[take], hit[take]
    signal, value, threshold, component = (
        run.signal.copy(),
        run.value.copy(),
        run.threshold.copy(),
        run.component.copy(),
    )
    signal[rows] = True
    value[rows] = observed[charts]
    threshold[rows] = limits.oe_critical[charts]
    component[rows] = 1
    return DetectorRun(run.statistic, signal, value, threshold, component, limits.components)


def first_signals(offsets: ArrayLike, signal: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Per chart the row index (within the chart) of its first signal, -1 if none."""
    o = np.asarray(offsets, dtype=np.int64)
    rows = np.flatnonzero(signal)
    out = np.full(o.shape[0] - 1, -1, dtype=np.int64)
    if rows.size:
        cid = np.searchsorted(o, rows, side="right") - 1
        uc, first = np.unique(cid, return_index=True)
        out[uc] = rows[first] - o[uc]
    return out


def _empty_run(n: int):
    return (
        np.empty(n),
        np.empty(n, dtype=np.bool_),
        np.empty(n),
        np.empty(n),
        np.empty(n, dtype=np.int8),
    )
