"""Monthly risk-adjusted CUSUM alerts for every trust x diagnosis group (``alerts.csv``).

Each chart is one trust x diagnosis group over the monitored window (the 12 months ending at the
quarter's or month's end; spells in order of their period date, discharge by default, ties in
input order). The upper Bernoulli RA-CUSUM of Steiner et al. (2000) tests odds ratio R_A = 2:
W_t = y_t log R_A - log(1 - p_t + R_A p_t), X_t = max(0, X_{t-1} + W_t), signal at X_t >= h,
restart at h/2 (default) after a signal. Charts start at 0 at the window start (no warm-up), so
the threshold calibration (probability of any false alarm in 12 months of that chart's own
in-control case mix = 0.1% by default) is exactly the chart's situation.

Thresholds: ``threshold_method="surface"`` (default) uses
:func:`surveillance.stats.thresholds.chart_thresholds`: a fitted ``ThresholdSurface`` (by the
chart's 12-month volume, mean risk and equivalent logit-normal spread of its own risks; fitted
once, ~30 s, and cached on disk by :func:`threshold_surface`), its value refined on the exact
Markov chain of the chart's own patient sequence for charts under ``REFINE_BELOW`` (3,000)
patients, and bisection on that chain under 100 patients. Charts the surface alone sets (``REFINE_BELOW`` patients or more) expecting fewer than ``discrete_expected`` (0.5)
deaths also get a Poisson count floor (:func:`count_floor`).
``"simulation"`` calibrates every chart by direct simulation of its own case mix (small runs).
Settings live in ``models/risk/monitoring.yaml`` (:func:`load_cusum_settings`).

``alerts.csv`` publishes the monitored window (DESIGN.md section 6): one row per chart x calendar
month of the 12 months with at least one signal, so a chart that signalled in May and restarted
below h is still in the Q4 run. A row's ``cusum`` is the chart value at the month's first signal
(before the restart), ``observed``/``expected`` are the chart's deaths and expected deaths from the
window start up to and including that spell. ``first_signal_month`` is the month of the chart's
first signal in the window; ``status`` is a property of the chart, the same on all its rows:
``new`` when that first signal falls in the run's current period (the quarter's three months; for
:func:`monitor_month`, the month), ``persisting`` when the chart first signalled earlier in the
window. So a chart with signals in months 5 and 11 of a quarter's window has two rows, both
``persisting`` (first signal in month 5), and a chart first signalling in month 10 is ``new`` on
its month-10 row and on any later one. The mortality-alert indicator still counts only the rows
signalled in the quarter (:func:`surveillance.mortality.indicators.alert_counts`).

``detector`` selects the alert detector (:mod:`surveillance.stats.detectors`): ``cusum`` (the
chart above, default), ``multi_cusum``, ``glr`` or ``cusum_oe``, dispatched by
:func:`monitor_charts` through :func:`detect`; the table's ``detector`` column names the
component that signalled and ``cusum``/``threshold`` are that component's value and limit.

References
----------
Steiner, Cook, Farewell, Treasure, Biostatistics 2000;1:441. Bottle & Aylin, Health Serv Res
2008;43:10; JORS 2011;62:1711.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from surveillance.contracts import ALERTS_COLUMNS
from surveillance.mortality._kernels import stable_counting_sort
from surveillance.mortality.encode import EncodedSpells, encode_spells, month_label, month_number
from surveillance.mortality.ratios import as_quarter, check_risks, window_mask
from surveillance.periods import Quarter
from surveillance.stats.cusum import grouped_ra_cusum, ra_weights
from surveillance.stats.detectors import (
    DETECTORS,
    DetectorLimits,
    DetectorRun,
    glr_odds_ratio_grid,
    run_detector,
)
from surveillance.stats.detectors import detector_limits as stats_detector_limits
from surveillance.stats.thresholds import REFINE_BELOW, ThresholdSurface, calibrate_threshold
from surveillance.stats.thresholds import chart_thresholds as stats_chart_thresholds

#: alerts.csv contract columns (DESIGN.md section 6), kept in surveillance.contracts
ALERT_COLUMNS = ALERTS_COLUMNS


@dataclass(frozen=True)
class CusumSettings:
    """RA-CUSUM settings (METHODS.md section 5 defaults)."""

    odds_ratio: float = 2.0
    target: float = 0.001  # probability of any false alarm in the horizon
    restart: str = "half"
    months: int = 12  # monitored window = calibration horizon
    threshold_method: str = "surface"  # or "simulation"
    n_sims: int = 50_000  # per chart, threshold_method="simulation"
    seed: int = 0
    discrete_expected: float = 0.5  # below this many expected deaths: count floor on h
    # the charts' risk model, a spec in models/risk/ (default.yaml: the SHMI-style model itself)
    risk_model: str = "alert.yaml"
    # alert detector (surveillance.stats.detectors.DETECTORS) and its settings
    detector: str = "cusum"
    odds_ratios: tuple[float, ...] = (1.5, 2.0, 3.0)  # multi_cusum: design odds ratios
    glr_odds_ratio_range: tuple[float, float] = (1.1, 6.0)  # glr: grid of the estimated OR
    glr_grid_points: int = 16
    glr_n_sims: int = 20_000  # glr: in-control simulations per chart for its limit
    oe_share: float = 0.5  # cusum_oe: share of the budget spent on the window's O/E test
    # an alert whose chart expected fewer deaths than this (window start to the signal) carries
    # a caution (alerts.csv ``caution``; :func:`alert_caution`)
    alert_min_expected: float = 1.0


def load_cusum_settings(path: Path | str | None = None) -> CusumSettings:
    """Monitoring settings from YAML (default ``models/risk/monitoring.yaml``), validated."""
    from typing import Literal

    import yaml
    from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

    from surveillance.errors import ConfigError
    from surveillance.mortality.spec import RISK_DIR

    class _Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        odds_ratio: float = Field(2.0, gt=1.0)
        target: float = Field(0.001, gt=0.0, lt=1.0)
        restart: Literal["half", "zero"] = "half"
        months: int = Field(12, ge=1, le=36)
        threshold_method: Literal["surface", "simulation"] = "surface"
        n_sims: int = Field(50_000, ge=1000)
        seed: int = 0
        discrete_expected: float = Field(0.5, ge=0.0)
        risk_model: str = Field("alert.yaml", pattern=r"^[A-Za-z0-9_.-]+\.yaml$")
        detector: str = "cusum"
        odds_ratios: tuple[float, ...] = Field((1.5, 2.0, 3.0), min_length=1)
        glr_odds_ratio_range: tuple[float, float] = (1.1, 6.0)
        glr_grid_points: int = Field(16, ge=2, le=200)
        glr_n_sims: int = Field(20_000, ge=1000)
        oe_share: float = Field(0.5, gt=0.0, lt=1.0)
        alert_min_expected: float = Field(1.0, ge=0.0)

        @field_validator("detector")
        @classmethod
        def _known(cls, v: str) -> str:
            if v not in DETECTORS:
                raise ValueError(f"unknown detector {v!r}; choose one of {', '.join(DETECTORS)}")
            return v

        @field_validator("odds_ratios")
        @classmethod
        def _above_one(cls, v: tuple[float, ...]) -> tuple[float, ...]:
            if any(r <= 1.0 for r in v):
                raise ValueError("every design odds ratio must be above 1")
            return v

        @field_validator("glr_odds_ratio_range")
        @classmethod
        def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
            if not 1.0 < v[0] < v[1]:
                raise ValueError("must be [low, high] with 1 < low < high")
            return v

    path = Path(path) if path is not None else RISK_DIR / "monitoring.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
        return CusumSettings(**_Settings.model_validate(raw).model_dump())
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: invalid monitoring settings:\n{exc}") from exc


@dataclass
class Charts:
    """All charts of one window, rows sorted by chart then time."""

    order: np.ndarray  # row -> spell index
    offsets: np.ndarray  # n_charts + 1
    trust: np.ndarray  # per chart, code into trusts
    group: np.ndarray  # per chart, code into groups
    p: np.ndarray
    y: np.ndarray
    month: np.ndarray  # period month (months since 1970) per row
    trusts: np.ndarray
    groups: np.ndarray

    @property
    def volume(self) -> np.ndarray:
        return np.diff(self.offsets)


def build_charts(enc: EncodedSpells, p: np.ndarray, end_month: int, months: int) -> Charts:
    """Select the window and sort its spells by chart then period day (stable: input order)."""
    idx = np.flatnonzero(window_mask(enc, end_month, months))
    return charts_from_arrays(
        enc.trust[idx],
        enc.group[idx],
        enc.period_day[idx],
        enc.period_month[idx],
        enc.died[idx],
        p[idx],
        enc.trusts,
        enc.groups,
        idx,
    )


def charts_from_arrays(
    trust: np.ndarray,
    group: np.ndarray,
    day: np.ndarray,
    month: np.ndarray,
    died: np.ndarray,
    p: np.ndarray,
    trusts: np.ndarray,
    groups: np.ndarray,
    index: np.ndarray | None = None,
) -> Charts:
    """Charts of the window's spells given as arrays in input order (codes into ``trusts`` and
    ``groups``), sorted by chart then period day, ties in input order. ``index`` maps the arrays'
    rows to spell numbers for :attr:`Charts.order` (default: the row numbers)."""
    T, G = len(trusts), len(groups)
    chart = group.astype(np.int64) * T + trust
    first_day = int(day.min()) if len(day) else 0
    span = int(day.max()) - first_day + 1 if len(day) else 1
    # LSD radix: stable by day, then stable by chart (ties keep input order)
    perm = stable_counting_sort(day - first_day, span)
    perm = stable_counting_sort(chart, G * T, perm)
    counts = np.bincount(chart, minlength=G * T)
    present = np.flatnonzero(counts)
    offsets = np.r_[0, np.cumsum(counts[present])].astype(np.int64)
    return Charts(
        order=perm if index is None else index[perm],
        offsets=offsets,
        trust=(present % T).astype(np.int32),
        group=(present // T).astype(np.int32),
        p=p[perm],
        y=died[perm].astype(np.int8),
        month=month[perm],
        trusts=trusts,
        groups=groups,
    )


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "surveillance"


def threshold_surface(
    target: float = 0.001,
    odds_ratio: float = 2.0,
    cache_dir: Path | str | None = None,
    **grid,
) -> ThresholdSurface:
    """A fitted :class:`ThresholdSurface`, cached on disk by its settings (fitting takes ~30 s)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    import surveillance.stats._cusum_kernels as kernels_module
    import surveillance.stats.thresholds as thresholds_module

    # the key includes the calibration code itself, so a changed method never reuses a stale file
    code = b"".join(Path(m.__file__).read_bytes() for m in (thresholds_module, kernels_module))
    tag = repr(
        (
            target,
            odds_ratio,
            sorted((k, np.asarray(v).tolist()) for k, v in grid.items()),
            hashlib.sha256(code).hexdigest(),
        )
    )
    path = cache / f"threshold_surface_{hashlib.sha256(tag.encode()).hexdigest()[:16]}.pkl"
    if path.exists():
        with path.open("rb") as fh:
            return pickle.load(fh)  # noqa: S301 - our own cache file
    surface = ThresholdSurface(target=target, odds_ratio=odds_ratio, **grid).fit()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(surface, fh)
    tmp.replace(path)
    return surface


def count_floor(expected: np.ndarray, settings: CusumSettings) -> np.ndarray:
    """Smallest h that needs ``k`` deaths, with P(Poisson(expected) >= k) <= target.

    Each death adds at most log(R_A) and survivors only lower the chart, so with
    h > (k - 1) log R_A a false alarm needs at least k deaths: the probability is at most the
    Poisson tail. For charts expecting under ``discrete_expected`` deaths the false-alarm
    probability is a step function of h that a smooth surface cannot follow; this bound is close
    to exact there (survivor drift is negligible) and is applied as a floor.
    """
    from scipy.stats import poisson

    log_r = np.log(settings.odds_ratio)
    k = np.ones(len(expected))
    for _ in range(200):
        bad = poisson.sf(k - 1, expected) > settings.target
        if not bad.any():
            break
        k[bad] += 1
    return (k - 1) * log_r + 1e-9


def chart_thresholds(
    charts: Charts, settings: CusumSettings, surface: ThresholdSurface | None = None
) -> np.ndarray:
    """Limit h per chart for ``settings.target`` false-alarm probability in the window."""
    n = charts.volume.astype(float)
    mean = np.add.reduceat(charts.p, charts.offsets[:-1]) / n if len(n) else n
    if settings.threshold_method == "surface":
        surface = surface or threshold_surface(settings.target, settings.odds_ratio)
        if surface.target != settings.target or surface.odds_ratio != settings.odds_ratio:
            raise ValueError(
                f"threshold surface is for target {surface.target}, odds ratio "
                f"{surface.odds_ratio}; settings ask {settings.target}, {settings.odds_ratio}"
            )
        # the surface for charts of 100+ patients (indexed by volume, mean risk and the
        # equivalent logit-normal spread of the chart's own risks), the exact sequence chain of
        # the chart's own patients below that (surveillance.stats.thresholds.chart_thresholds)
        h = stats_chart_thresholds(charts.offsets, charts.p, surface)
        # the floor only where the surface alone set h: below REFINE_BELOW patients h is already
        # the chain's (step-aware), which the looser Poisson bound would only push a step higher
        small = (n * mean < settings.discrete_expected) & (n >= REFINE_BELOW)
        if small.any():
            h[small] = np.maximum(h[small], count_floor(n[small] * mean[small], settings))
        return h
    if settings.threshold_method == "simulation":
        h = np.empty(len(n))
        for c in range(len(n)):
            lo, hi = charts.offsets[c], charts.offsets[c + 1]
            h[c] = calibrate_threshold(
                np.clip(charts.p[lo:hi], 0.0, 1.0),
                int(hi - lo),
                target=settings.target,
                odds_ratio=settings.odds_ratio,
                n_sims=settings.n_sims,
                seed=settings.seed + c,
            ).h
        return h
    raise ValueError(
        f"threshold_method must be 'surface' or 'simulation', got {settings.threshold_method!r}"
    )


def run_charts(
    charts: Charts, h: np.ndarray, settings: CusumSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chart statistic (after restarts), signal flags and, at signal rows, the value before the
    restart (0 elsewhere)."""
    path = grouped_ra_cusum(
        charts.offsets,
        charts.p,
        charts.y,
        h,
        odds_ratio=settings.odds_ratio,
        restart=settings.restart,
    )
    # the chart value at a signal, before the restart: previous value + that patient's weight
    rows = np.flatnonzero(path.signal)
    value = np.zeros_like(path.statistic)
    if rows.size:
        prev = np.where(rows > 0, path.statistic[np.maximum(rows - 1, 0)], 0.0)
        starts = np.isin(rows, charts.offsets[:-1])
        prev[starts] = 0.0
        w = ra_weights(charts.p[rows], charts.y[rows], settings.odds_ratio)
        value[rows] = np.maximum(prev + w, 0.0)
    return path.statistic, path.signal, value


def detector_limits(
    charts: Charts, settings: CusumSettings, surface: ThresholdSurface | None = None
) -> DetectorLimits:
    """Limits of ``settings.detector`` per chart (``surveillance.stats.detectors``).

    Each CUSUM component is calibrated as the single chart is (:func:`chart_thresholds`: the
    surface for its own odds ratio and share of the target, cached on disk, or simulation; the
    count floor for tiny charts); ``surface`` is used where its odds ratio and target match.
    """

    def cusum_limits(odds_ratio: float, target: float) -> np.ndarray:
        s = replace(settings, odds_ratio=odds_ratio, target=target, detector="cusum")
        own = (
            surface
            if surface is not None and (surface.odds_ratio, surface.target) == (odds_ratio, target)
            else None
        )
        if own is None and s.threshold_method == "surface":
            own = threshold_surface(target, odds_ratio)
        return chart_thresholds(charts, s, own)

    return stats_detector_limits(
        charts.offsets,
        charts.p,
        settings.detector,
        cusum_limits,
        target=settings.target,
        odds_ratio=settings.odds_ratio,
        odds_ratios=settings.odds_ratios,
        glr_odds_ratios=glr_odds_ratio_grid(
            *settings.glr_odds_ratio_range, settings.glr_grid_points
        ),
        oe_share=settings.oe_share,
        n_sims=settings.glr_n_sims,
        seed=settings.seed,
    )


def detect(
    charts: Charts, settings: CusumSettings, surface: ThresholdSurface | None = None
) -> tuple[np.ndarray, DetectorRun]:
    """Calibrate and run a non-default detector: a per-chart limit on the scale of the run's
    statistic (for the path plots: ``h`` of ``cusum``/``cusum_oe``'s chart, the GLR's ``g``,
    1 for ``multi_cusum`` whose statistic is the largest component's share of its limit) and
    the :class:`DetectorRun` (each signal's component and its own limit)."""
    limits = detector_limits(charts, settings, surface)
    run = run_detector(charts.offsets, charts.p, charts.y, limits, settings.restart)
    h = np.ones(len(charts.volume)) if settings.detector == "multi_cusum" else limits.h[:, 0]
    return h, run


def signal_table(
    charts: Charts,
    h: np.ndarray,
    signal: np.ndarray,
    value: np.ndarray,
    settings: CusumSettings,
    current: Sequence[str],
    run: DetectorRun | None = None,
) -> pd.DataFrame:
    """One row per chart x month with a signal (every month of the window).

    Parameters
    ----------
    charts, h, signal, value : the charts, their thresholds and :func:`run_charts`' output.
    settings : the run's settings (``false_alarm_rate`` is its target).
    current : the run's current period as ``YYYY-MM`` months (the quarter's three, or the one
        month of a monthly run): a chart whose first signal falls in it is ``new``, one that
        first signalled earlier in the window ``persisting`` (module docstring).

    Returns
    -------
    DataFrame
        ALERT_COLUMNS, then ``signals_in_month`` and ``chart_volume``; rows by chart then month.
    """
    rows = np.flatnonzero(signal)
    cid = np.searchsorted(charts.offsets, rows, side="right") - 1  # chart of each signal row
    key = cid.astype(np.int64) * 100_000 + charts.month[rows]
    first, n_in_month = np.unique(key, return_index=True, return_counts=True)[1:]
    r = rows[first]
    c = cid[first]
    # deaths and expected deaths from the chart's start to the signal (signals are few)
    start = charts.offsets[c]
    observed = np.array(
        [int(charts.y[a : b + 1].sum()) for a, b in zip(start, r, strict=True)], dtype=np.int64
    )
    expected = np.array([float(charts.p[a : b + 1].sum()) for a, b in zip(start, r, strict=True)])
    # rows are by chart then month: a chart's first row holds its first signal
    chart_start = np.r_[True, c[1:] != c[:-1]][: len(c)]
    first_row = np.flatnonzero(chart_start)[np.cumsum(chart_start) - 1]
    signal_month = np.array([month_label(int(m)) for m in charts.month[r]], dtype=object)
    first_month = signal_month[first_row]
    is_new = np.isin(first_month, np.asarray(list(current), dtype=object))
    out = pd.DataFrame(
        {
            "trust_code": charts.trusts[charts.trust[c]],
            "diagnosis_group": charts.groups[charts.group[c]],
            "signal_month": signal_month,
            "first_signal_month": first_month,
            "cusum": value[r],
            "threshold": h[c],
            "observed": observed,
            "expected": expected,
            "false_alarm_rate": settings.target,
            "status": np.where(is_new, "new", "persisting"),
            "signals_in_month": n_in_month.astype(np.int64),
            "chart_volume": charts.volume[c].astype(np.int64),
            "detector": settings.detector,
        }
    )
    out.insert(
        out.columns.get_loc("status") + 1,
        "caution",
        alert_caution(observed, expected, settings.alert_min_expected),
    )
    if run is not None:  # a multi-part detector: the component that signalled, its own limit
        out["threshold"] = run.threshold[r]
        out["detector"] = np.asarray(run.components)[run.component[r]]
    return out


def alert_caution(observed: np.ndarray, expected: np.ndarray, min_expected: float) -> np.ndarray:
    """The caution of each alert (empty text when none): the minimum-expected rule.

    A CUSUM chart of very few, low-risk patients can cross its threshold on one or two deaths:
    an alert on 2 deaths against 0.009 expected in a chart of 4 patients meets the false-alarm
    calibration but says little about care, and cannot be set beside a 45 against 27.2 alert as
    an equal. An alert whose chart expected fewer than ``min_expected`` deaths from the window
    start to the signal (alerts.csv ``expected``) is kept (``alerts.csv`` is the record of every
    signal) and carries a caution; the reports show it beside the alert and the analyst
    notebooks pass over such alerts when they pick one to study.

    The national system: the Imperial College (Dr Foster Unit) mortality alerts sent to the
    CQC since 2007 run risk-adjusted log-likelihood CUSUMs per trust and diagnosis group with
    thresholds for a 0.1% false-alarm rate in 12 months and screen every alert before it is
    sent (Bottle & Aylin 2008; Cecil et al. 2018: 654 of 860 alerts, 76%, were sent). We
    assume, as this service's issue 16 states, that the screening includes a minimum expected
    count; we did not find the number in those publications, so ``min_expected`` (default 1
    expected death, ``alert_min_expected`` in ``models/risk/monitoring.yaml``) is our own
    choice, not the national system's published value. 0 switches the rule off.

    Parameters
    ----------
    observed, expected : arrays
        Deaths and expected deaths from the window start to each alert's signal.
    min_expected : float
        Fewest expected deaths for an alert without caution.

    Returns
    -------
    object array of str, one per alert.

    References
    ----------
    Bottle A, Aylin P. Intelligent information: a national system for monitoring clinical
    performance. Health Serv Res 2008;43:10-31.
    Cecil E, Wilkinson S, Bottle A, et al. National hospital mortality surveillance system: a
    descriptive analysis. BMJ Qual Saf 2018;27:974-981.
    """
    # observed is not written into the text: the caution is shown in the reports, where a
    # count of 1-4 deaths must not appear
    e = np.asarray(expected, float)
    small = np.isfinite(e) & (e < min_expected)
    out = np.full(len(e), "", dtype=object)
    for i in np.flatnonzero(small):
        out[i] = (
            f"few expected deaths: {e[i]:.2g} expected against the minimum {min_expected:g} "
            "for an alert; a signal on very few patients, treat with care"
        )
    return out


def monitor(
    spells: pd.DataFrame,
    p: np.ndarray,
    quarter: Quarter | str,
    settings: CusumSettings | None = None,
    surface: ThresholdSurface | None = None,
    report: str = "window",
    outcome: str = "died_30d",
    period_date: str = "discharge_date",
    enc: EncodedSpells | None = None,
) -> pd.DataFrame:
    """The ``alerts.csv`` frame for a quarter: charts over the 12 months to the quarter end.

    ``report="window"`` (default, ``alerts.csv``) keeps every month of the window with a signal;
    ``"quarter"`` only the rows whose ``signal_month`` is in the quarter (what the mortality-alert
    indicator counts; statuses are the window's either way). ``status`` is ``new`` when the chart's
    first signal falls in the quarter. Sorted by trust, group, month.
    """
    if report not in ("window", "quarter"):
        raise ValueError(f"report must be 'window' or 'quarter', got {report!r}")
    q = as_quarter(quarter)
    table = _monitor(
        spells, p, month_number(q.end), settings, surface, q.months(), outcome, period_date, enc
    )
    if report == "quarter":
        table = table[table["signal_month"].isin(q.months())].reset_index(drop=True)
    return table


def monitor_month(
    spells: pd.DataFrame,
    model,
    month: str,
    settings: CusumSettings | None = None,
    surface: ThresholdSurface | None = None,
) -> pd.DataFrame:
    """The monthly run's ``alerts.csv`` for ``month`` (``YYYY-MM``), reusing a fitted
    :class:`RiskModel`.

    The charts run over the 12 months ending with ``month`` and every month of that window with a
    signal is listed, as in the quarterly run, except that "this quarter" becomes "this month":
    ``status`` is ``new`` when the chart's first signal falls in ``month``, ``persisting`` when it
    fell earlier in the window. ``spells`` needs only those months (more is ignored). Risks come
    from ``model.chart_risks`` (no refit): the quarter's alert model with its typical-trust
    baseline when that is the model given (``alert_model.json``). The year trend is held at the
    quarter's year for the months after it.
    """
    settings = settings or load_cusum_settings()
    end = month_number(month)
    enc, pattern = model.encode(spells)
    keep = window_mask(enc, end, settings.months)
    if keep.all():
        p = model.chart_risks(enc, pattern)
    else:
        p = np.zeros(len(keep))
        p[keep] = model.chart_risks(_subset(enc, keep), pattern[keep])
    return _monitor(
        spells,
        p,
        end,
        settings,
        surface,
        [month_label(end)],
        model.outcome,
        model.spec.period_date,
        enc,
    )


def _subset(enc: EncodedSpells, keep: np.ndarray) -> EncodedSpells:
    return EncodedSpells(
        trust=enc.trust[keep],
        trusts=enc.trusts,
        group=enc.group[keep],
        groups=enc.groups,
        period_day=enc.period_day[keep],
        period_month=enc.period_month[keep],
        admission_day=enc.admission_day[keep],
        died=enc.died[keep],
        palliative=enc.palliative[keep],
        comorbidity=enc.comorbidity[keep],
    )


def _monitor(spells, p, end, settings, surface, current, outcome, period_date, enc):
    settings = settings or load_cusum_settings()
    enc = enc if enc is not None else encode_spells(spells, outcome, period_date)
    p = check_risks(p, len(enc.died))
    charts = build_charts(enc, p, end, settings.months)
    return monitor_charts(charts, settings, surface, current)[0]


def monitor_charts(
    charts: Charts,
    settings: CusumSettings,
    surface: ThresholdSurface | None,
    current: Sequence[str],
) -> tuple[pd.DataFrame, ChartRun | None]:
    """The alerts table of prebuilt ``charts`` and the charts' run (thresholds and statistic)
    for :func:`surveillance.reports.paths.paths_from_run`.

    Every chart x month of the window with a signal, sorted by trust, group, month; ``current``
    is the run's current period (the quarter's months, or the month), which decides ``status``
    (:func:`signal_table`).
    """
    if len(charts.volume) == 0:
        empty = {c: pd.Series(dtype=object) for c in [*ALERT_COLUMNS, "caution"]}
        return pd.DataFrame(empty), None
    run = None
    if settings.detector == "cusum":
        h = chart_thresholds(charts, settings, surface)
        statistic, signal, value = run_charts(charts, h, settings)
    else:
        h, run = detect(charts, settings, surface)
        statistic, signal, value = run.statistic, run.signal, run.value
    table = signal_table(charts, h, signal, value, settings, current, run)
    table = table.sort_values(["trust_code", "diagnosis_group", "signal_month"], kind="stable")
    return table.reset_index(drop=True), ChartRun(charts, h, statistic, signal, value)


@dataclass
class ChartRun:
    """Charts after :func:`run_charts` with their thresholds."""

    charts: Charts
    h: np.ndarray  # per chart
    statistic: np.ndarray  # per row, after restarts
    signal: np.ndarray  # per row
    value: np.ndarray  # per row: the value before the restart at signal rows, 0 elsewhere
