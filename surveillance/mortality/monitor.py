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

An alert row is one chart x calendar month with at least one signal; its ``cusum`` is the chart
value at the month's first signal (before the restart), ``observed``/``expected`` are the chart's
deaths and expected deaths from the window start up to and including that spell. ``status`` is
``persisting`` when the same chart already signalled in an earlier month of the same 12-month
window (so an alert carried over from the previous quarter's months is persisting), else ``new``.

References
----------
Steiner, Cook, Farewell, Treasure, Biostatistics 2000;1:441. Bottle & Aylin, Health Serv Res
2008;43:10; JORS 2011;62:1711.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from surveillance.contracts import ALERTS_COLUMNS
from surveillance.mortality._kernels import stable_counting_sort
from surveillance.mortality.encode import EncodedSpells, encode_spells, month_label, month_number
from surveillance.mortality.ratios import as_quarter, check_risks, window_mask
from surveillance.periods import Quarter
from surveillance.stats.cusum import grouped_ra_cusum, ra_weights
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


def load_cusum_settings(path: Path | str | None = None) -> CusumSettings:
    """Monitoring settings from YAML (default ``models/risk/monitoring.yaml``), validated."""
    from typing import Literal

    import yaml
    from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


def signal_table(
    charts: Charts, h: np.ndarray, signal: np.ndarray, value: np.ndarray, settings: CusumSettings
) -> pd.DataFrame:
    """One row per chart x month with a signal (all months of the window), ALERT_COLUMNS + extras."""
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
    persisting = np.r_[False, c[1:] == c[:-1]][: len(c)]
    out = pd.DataFrame(
        {
            "trust_code": charts.trusts[charts.trust[c]],
            "diagnosis_group": charts.groups[charts.group[c]],
            "signal_month": [month_label(int(m)) for m in charts.month[r]],
            "cusum": value[r],
            "threshold": h[c],
            "observed": observed,
            "expected": expected,
            "false_alarm_rate": settings.target,
            "status": np.where(persisting, "persisting", "new"),
            "signals_in_month": n_in_month.astype(np.int64),
            "chart_volume": charts.volume[c].astype(np.int64),
        }
    )
    return out


def monitor(
    spells: pd.DataFrame,
    p: np.ndarray,
    quarter: Quarter | str,
    settings: CusumSettings | None = None,
    surface: ThresholdSurface | None = None,
    report: str = "quarter",
    outcome: str = "died_30d",
    period_date: str = "discharge_date",
    enc: EncodedSpells | None = None,
) -> pd.DataFrame:
    """The ``alerts.csv`` frame for a quarter: charts over the 12 months to the quarter end.

    ``report="quarter"`` keeps alerts whose ``signal_month`` is in the quarter (the run's alerts);
    ``"window"`` keeps every month of the window. Sorted by trust, group, month.
    """
    q = as_quarter(quarter)
    months = q.months() if report == "quarter" else None
    return _monitor(
        spells, p, month_number(q.end), settings, surface, months, outcome, period_date, enc
    )


def monitor_month(
    spells: pd.DataFrame,
    model,
    month: str,
    settings: CusumSettings | None = None,
    surface: ThresholdSurface | None = None,
) -> pd.DataFrame:
    """Alerts signalled in ``month`` (``YYYY-MM``), reusing a fitted :class:`RiskModel`.

    The charts run over the 12 months ending with ``month``; ``spells`` needs only those months
    (more is ignored). Risks come from ``model.predict`` (no refit).
    """
    settings = settings or load_cusum_settings()
    end = month_number(month)
    enc, pattern = model.encode(spells)
    keep = window_mask(enc, end, settings.months)
    if keep.all():
        p = model.predict_encoded(enc, pattern)
    else:
        p = np.zeros(len(keep))
        p[keep] = model.predict_encoded(_subset(enc, keep), pattern[keep])
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


def _monitor(spells, p, end, settings, surface, months, outcome, period_date, enc):
    settings = settings or load_cusum_settings()
    enc = enc if enc is not None else encode_spells(spells, outcome, period_date)
    p = check_risks(p, len(enc.died))
    charts = build_charts(enc, p, end, settings.months)
    return monitor_charts(charts, settings, surface, months)[0]


def monitor_charts(
    charts: Charts,
    settings: CusumSettings,
    surface: ThresholdSurface | None = None,
    months: list[str] | None = None,
) -> tuple[pd.DataFrame, ChartRun | None]:
    """The alerts table of prebuilt ``charts`` (only ``months`` when given, sorted by trust,
    group, month) and the charts' run (thresholds and statistic) for :func:`alert_paths`."""
    if len(charts.volume) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ALERT_COLUMNS}), None
    h = chart_thresholds(charts, settings, surface)
    statistic, signal, value = run_charts(charts, h, settings)
    table = signal_table(charts, h, signal, value, settings)
    if months is not None:
        table = table[table["signal_month"].isin(months)]
    table = table.sort_values(["trust_code", "diagnosis_group", "signal_month"])
    return table.reset_index(drop=True), ChartRun(charts, h, statistic, signal, value)


@dataclass
class ChartRun:
    """Charts after :func:`run_charts` with their thresholds."""

    charts: Charts
    h: np.ndarray  # per chart
    statistic: np.ndarray  # per row, after restarts
    signal: np.ndarray  # per row
    value: np.ndarray  # per row: the value before the restart at signal rows, 0 elsewhere
