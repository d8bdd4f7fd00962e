"""The mortality stage as map and reduce over chunks of the spells (Dask partitions, row groups).

Everything the quarterly run needs from the spells reduces to two kinds of data:

* **sums** per trust x diagnosis group (x month, quarter, admission method, weekend): spells,
  deaths, expected deaths, palliative coding, comorbidity; and the covariate-pattern counts the
  risk models are fitted on (METHODS.md section 5). Counts are whole numbers and the expected
  deaths are summed exactly (:mod:`surveillance.stats.exact`), so these sums are the same
  whatever the split of the spells into chunks and whatever order the chunks are added in;
* the **RA-CUSUM window**: per spell of the 12 monitored months, its trust, diagnosis group,
  period day and month, outcome and risk (about 21 bytes a spell), concatenated in file order so
  that every chart sees its patients in the same order as a single-process run.

Two passes over the chunks: :func:`fit_partial` (pattern counts and the trust and group codes
present) then, with the fitted model, :func:`spell_partial` (the sums and the window). The reduce,
:func:`finish`, runs the charts, the SHMI-method ratios, the indicators and the coding-quality
tests once, on the driver. :func:`run_chunked` wires the two passes to any ``apply`` (a list
comprehension in-process, Dask delayed tasks on a cluster: :mod:`surveillance.spell_engine`), and
gives byte-identical tables whichever is used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from surveillance.errors import ContractError, SurveillanceError
from surveillance.mortality.baseline import CellSums, TypicalTrustBaseline, typical_trust_baseline
from surveillance.mortality.distributed import combine_counts, pattern_counts
from surveillance.mortality.encode import (
    SPELL_COLUMNS,
    EncodedSpells,
    encode_spells,
    month_number,
)
from surveillance.mortality.indicators import (
    IndicatorGroups,
    alert_flags,
    indicator_grids,
    indicator_rows,
)
from surveillance.mortality.monitor import (
    ChartRun,
    CusumSettings,
    charts_from_arrays,
    load_cusum_settings,
    monitor_charts,
)
from surveillance.mortality.palliative import palliative_counts
from surveillance.mortality.quality import (
    quality_changes,
    quality_context,
    quality_frame,
    quarter_end_month,
    quarter_grids,
)
from surveillance.mortality.ratios import as_quarter, cell_grids, table_from_grids, window_mask
from surveillance.mortality.risk_model import RiskModel
from surveillance.periods import Quarter
from surveillance.stats.exact import combine_parts, exact_part_bincount
from surveillance.stats.thresholds import ThresholdSurface

#: quarters of coding-quality measures kept (quality_by_quarter's default)
QUALITY_QUARTERS = 8
#: the per-spell arrays of the RA-CUSUM window, in file order
WINDOW_FIELDS = ("trust", "group", "day", "month", "died", "p")
#: the spell columns the stage reads: all but the id (the largest column, not needed here)
SPELL_FIELDS = [c for c in SPELL_COLUMNS if c != "spell_id"]

#: ``apply(func, *args, columns=None)``: ``[func(chunk, start_row, *args) for every chunk]`` in
#: file order (a chunk may hold only ``columns``)
Apply = Callable[..., list]
#: ``apply_reduce(func, combine, *args)``: ``combine`` of the chunks' results in file order
#: (``combine`` is associative: neighbouring results may be combined first)
ApplyReduce = Callable[..., Any]


def offset_rows(error: ContractError, start: int) -> ContractError:
    """``error`` with its 1-based chunk rows shifted to rows of the whole file."""
    return ContractError([v.shifted(start) for v in error.violations])


# ------------------------------------------------------------------ pass 1: the fit


@dataclass
class FitPartial:
    """One chunk's covariate-pattern counts (risk model, alert model) and the codes present."""

    counts: pd.DataFrame
    trusts: np.ndarray
    groups: np.ndarray
    alert_counts: pd.DataFrame | None = None
    # phase I palliative coding per trust x group (an alert model whose charts use the rate)
    palliative: pd.DataFrame | None = None


def fit_partial(
    chunk: pd.DataFrame,
    start: int,
    model: RiskModel,
    end_month: int,
    alert_model: RiskModel | None = None,
) -> FitPartial:
    """Pattern counts of the fit window (:func:`pattern_counts`) of ``model`` and, when given, of
    the alert charts' ``alert_model``, and the trust and diagnosis-group codes of the chunk (every
    month, as a single-process encoding sees them)."""
    try:
        enc = encode_spells(chunk, model.outcome, model.spec.period_date)
        counts = pattern_counts(chunk, model, end_month, enc)
        alert = None if alert_model is None else pattern_counts(chunk, alert_model, end_month, enc)
        pall = _palliative_counts(enc, alert_model, end_month)
    except ContractError as exc:
        raise offset_rows(exc, start) from None
    return FitPartial(counts, enc.trusts.astype(str), enc.groups.astype(str), alert, pall)


def _palliative_counts(
    enc: EncodedSpells, alert_model: RiskModel | None, end_month: int
) -> pd.DataFrame | None:
    """The chunk's phase I palliative counts when ``alert_model``'s charts use the trust rate."""
    if alert_model is None or not alert_model.palliative_at_trust_rate:
        return None
    return palliative_counts(enc, alert_model.fit_mask(enc.period_month, end_month))


@dataclass(frozen=True)
class Levels:
    """The trust and diagnosis-group codes of the whole file, sorted: the grids' axes."""

    trusts: np.ndarray
    groups: np.ndarray

    def same(self, other: Levels | None) -> bool:
        return other is self or (
            other is not None
            and np.array_equal(self.trusts, other.trusts)
            and np.array_equal(self.groups, other.groups)
        )


def fit_from_partials(
    parts: Sequence[FitPartial],
    end: Quarter | str,
    model: RiskModel | None = None,
    alert_model: RiskModel | None = None,
) -> tuple[RiskModel, Levels]:
    """The risk models fitted on the summed counts (the model :meth:`RiskModel.fit` gives on all
    the spells at once) and the codes of every chunk; ``alert_model`` (when given, and counted by
    :func:`fit_partial`) is fitted in place on its own counts."""
    model = model or RiskModel()
    if not parts:  # as RiskModel.fit says of an empty file
        raise SurveillanceError("spells: no rows to fit the risk models on")
    counts = pd.concat([p.counts for p in parts], ignore_index=True)
    groups, n_all, d_all = combine_counts(counts, model)
    model.fit_counts(groups, n_all, d_all, end)
    if alert_model is not None:
        alert = pd.concat([p.alert_counts for p in parts], ignore_index=True)
        alert_model.fit_counts(*combine_counts(alert, alert_model), end)
        if alert_model.palliative_at_trust_rate:
            alert_model.set_palliative_counts(
                pd.concat([p.palliative for p in parts], ignore_index=True)
            )
    trusts = np.array(sorted(set().union(*(p.trusts.tolist() for p in parts))), dtype=object)
    all_groups = np.array(sorted(set().union(*(p.groups.tolist() for p in parts))), dtype=object)
    return model, Levels(trusts, all_groups)


def fit_alert_model(
    spells: pd.DataFrame, quarter: Quarter | str, alert_model: RiskModel
) -> RiskModel:
    """``alert_model`` fitted on spells in memory (through its pattern counts, as chunked)."""
    end = month_number(as_quarter(quarter).end)
    enc = encode_spells(spells, alert_model.outcome, alert_model.spec.period_date)
    counts = pattern_counts(spells, alert_model, end, enc)
    if len(counts) == 0:
        raise SurveillanceError("spells: no rows to fit the risk models on")
    alert_model.fit_counts(*combine_counts(counts, alert_model), as_quarter(quarter))
    if alert_model.palliative_at_trust_rate:
        alert_model.set_palliative_counts(_palliative_counts(enc, alert_model, end))
    return alert_model


# ------------------------------------------------------------------ pass 2: sums and window


@dataclass
class SpellPartial:
    """Sums that add over chunks, and the chunk's spells of the RA-CUSUM window."""

    cells: dict  # ratios.cell_grids
    quarters: np.ndarray  # quality.quarter_grids
    indicators: dict  # indicators.indicator_grids
    window: dict = field(default_factory=dict)  # WINDOW_FIELDS -> array, file order
    levels: Levels | None = None  # the codes the grids are indexed by
    p: np.ndarray | None = None  # risk per spell (only when asked for)
    # the alert model's phase I cells (trust x group): deaths and the exact parts of S1, S2, S3
    baseline_cells: dict | None = None


def encode_global(
    chunk: pd.DataFrame, model: RiskModel, levels: Levels | None
) -> tuple[EncodedSpells, np.ndarray]:
    """The chunk encoded with codes into the whole file's ``levels`` (``None``: the chunk is the
    whole file, its own codes are the levels), and each spell's risk."""
    enc, pattern = model.encode(chunk)
    p = model.predict_encoded(enc, pattern)
    del pattern
    if levels is None:
        return enc, p
    t_map = pd.Index(levels.trusts).get_indexer(enc.trusts).astype(np.int32)
    g_map = pd.Index(levels.groups).get_indexer(enc.groups).astype(np.int32)
    if (t_map < 0).any() or (g_map < 0).any():
        raise ValueError("chunk has trust or diagnosis-group codes the fit pass did not see")
    enc.trust, enc.trusts = t_map[enc.trust], levels.trusts
    enc.group, enc.groups = g_map[enc.group], levels.groups
    return enc, p


def spell_partial(
    chunk: pd.DataFrame,
    start: int,
    model: RiskModel,
    levels: Levels | None,
    quarter: str,
    settings: CusumSettings,
    keep_p: bool = False,
    alert_model: RiskModel | None = None,
) -> SpellPartial:
    """One chunk's sums and RA-CUSUM window spells for the run ``quarter`` (``levels`` as in
    :func:`encode_global`). With ``alert_model`` the window carries its risks (the charts' model)
    and the partial its fit-window cell sums (for :func:`surveillance.mortality.baseline`)."""
    q = as_quarter(quarter)
    end = month_number(q.end)
    try:
        enc, p = encode_global(chunk, model, levels)
        if alert_model is None:
            chart_p, cells = p, None
        else:
            pattern = alert_model.patterns(chunk, enc.admission_day)
            chart_p = alert_model.chart_prediction(enc, pattern)
            del pattern
            cells = baseline_sums(enc, chart_p, alert_model, end)
    except ContractError as exc:
        raise offset_rows(exc, start) from None
    idx = np.flatnonzero(window_mask(enc, end, settings.months))
    return SpellPartial(
        cells=cell_grids(enc, p, end, model.spec.monitor_months),
        quarters=quarter_grids(enc, quarter_end_month(q, enc), QUALITY_QUARTERS),
        indicators=indicator_grids(chunk, enc, p, end, 12),
        window={
            "trust": enc.trust[idx],
            "group": enc.group[idx],
            "day": enc.period_day[idx],
            "month": enc.period_month[idx],
            "died": enc.died[idx],
            "p": chart_p[idx],
        },
        levels=Levels(enc.trusts, enc.groups),
        p=p if keep_p else None,
        baseline_cells=cells,
    )


def baseline_sums(enc: EncodedSpells, p: np.ndarray, model: RiskModel, end: int) -> dict:
    """Deaths and the exact parts of S1 = sum p, S2 = sum p(1-p), S3 = sum p(1-p)(1-2p) per
    trust x group over ``model``'s fit window (:class:`surveillance.mortality.baseline.CellSums`),
    summed exactly so that any split of the spells gives the same baseline."""
    keep = np.flatnonzero(model.fit_mask(enc.period_month, end))
    size = len(enc.trusts) * len(enc.groups)
    key = enc.trust[keep].astype(np.int64) * len(enc.groups) + enc.group[keep]
    pk = p[keep]
    q = pk * (1.0 - pk)
    return {
        "deaths": np.bincount(key, weights=enc.died[keep], minlength=size),
        "s1": exact_part_bincount(key, pk, size),
        "s2": exact_part_bincount(key, q, size),
        "s3": exact_part_bincount(key, q * (1.0 - 2.0 * pk), size),
    }


def baseline_from_sums(sums: dict, levels: Levels, model: RiskModel) -> TypicalTrustBaseline:
    """The alert charts' baseline (``model.spec.baseline``) from the combined cell sums."""
    shape = (len(levels.trusts), len(levels.groups))
    cells = CellSums(
        sums["deaths"].reshape(shape),
        *(combine_parts(sums[k]).reshape(shape) for k in ("s1", "s2", "s3")),
    )
    return typical_trust_baseline(cells, levels.trusts, levels.groups, model.spec.baseline)


def combine(parts: Sequence[SpellPartial]) -> SpellPartial:
    """Sums added and window spells concatenated, in chunk (file) order."""
    if not parts:
        raise ValueError("no chunks to combine")
    levels = parts[0].levels
    if any(not levels.same(p.levels) for p in parts):
        raise ValueError("chunks encoded with different levels cannot be combined")

    def add(dicts: list[dict]) -> dict:
        return {k: np.sum([d[k] for d in dicts], axis=0) for k in dicts[0]}

    with_cells = [p.baseline_cells for p in parts if p.baseline_cells is not None]
    if with_cells and len(with_cells) != len(parts):
        raise ValueError("chunks with and without alert-model cell sums cannot be combined")
    return SpellPartial(
        cells=add([p.cells for p in parts]),
        quarters=np.sum([p.quarters for p in parts], axis=0),
        indicators=add([p.indicators for p in parts]),
        window={k: np.concatenate([p.window[k] for p in parts]) for k in WINDOW_FIELDS},
        levels=levels,
        p=np.concatenate([p.p for p in parts]) if all(p.p is not None for p in parts) else None,
        baseline_cells=add(with_cells) if with_cells else None,
    )


# ------------------------------------------------------------------ reduce


@dataclass
class ChunkedMortality:
    """What :func:`finish` gives: the tables of :class:`surveillance.mortality.MortalityResult`
    plus the charts' run (for the alerted charts' paths)."""

    mortality: pd.DataFrame
    alerts: pd.DataFrame
    indicators: pd.DataFrame
    flags: pd.DataFrame
    quality: pd.DataFrame
    chart_run: ChartRun | None
    model: RiskModel
    p: np.ndarray | None = None
    alert_model: RiskModel | None = None  # the charts' model (None: ``model`` itself)


def finish(
    total: SpellPartial,
    quarter: Quarter | str,
    model: RiskModel,
    settings: CusumSettings,
    surface: ThresholdSurface | None = None,
    mapping: IndicatorGroups | None = None,
    alert_model: RiskModel | None = None,
) -> ChunkedMortality:
    """Charts, ratios, indicators and coding-quality tests from the combined chunks.

    With ``alert_model`` the charts run on its risks moved to its baseline
    (:func:`baseline_from_sums`, stored as ``alert_model.baseline_``); else on ``model``'s."""
    q = as_quarter(quarter)
    levels = total.levels
    w = total.window
    chart_p = w["p"]
    if alert_model is not None:
        if total.baseline_cells is None:
            raise ValueError("an alert model needs the chunks' cell sums (spell_partial)")
        baseline = baseline_from_sums(total.baseline_cells, levels, alert_model)
        alert_model.baseline_ = baseline
        chart_p = baseline.adjust(chart_p, baseline.shift[w["group"]])
    charts = charts_from_arrays(
        w["trust"],
        w["group"],
        w["day"],
        w["month"],
        w["died"],
        chart_p,
        levels.trusts,
        levels.groups,
    )
    alerts, chart_run = monitor_charts(charts, settings, surface, q.months())
    alerts["risk_model"] = chart_model_label(alert_model or model)
    end = quarter_end_month(q, None)
    by_quarter = quality_frame(total.quarters, levels.trusts, end)
    context = quality_context(
        None, q, by_quarter=quality_frame(total.quarters[:, :5], levels.trusts, end)
    )
    table = table_from_grids(total.cells, levels.trusts, levels.groups, context)
    indicators = indicator_rows(total.indicators, levels.trusts, levels.groups, q, alerts, mapping)
    quality = by_quarter.merge(
        quality_changes(by_quarter), on=["trust_code", "quarter"], how="left"
    )
    flags = alert_flags(alerts, levels.trusts, q)
    return ChunkedMortality(
        table, alerts, indicators, flags, quality, chart_run, model, total.p, alert_model
    )


def chart_model_label(model: RiskModel) -> str:
    """``alerts.csv``'s ``risk_model``: the charts' model and baseline, e.g.
    ``hsmr_style_alert_v1 (typical_trust baseline)``."""
    baseline = getattr(model, "baseline_", None)
    return f"{model.spec.name} ({'national' if baseline is None else baseline.method} baseline)"


def alert_model_for(settings: CusumSettings) -> RiskModel | None:
    """A fresh alert-chart model from ``settings.risk_model`` (a file in ``models/risk/``), or
    None when the charts use the SHMI-style model itself."""
    from surveillance.mortality.spec import DEFAULT_SPEC, RISK_DIR

    path = RISK_DIR / settings.risk_model
    if path.resolve() == DEFAULT_SPEC.resolve():
        return None
    return RiskModel(path)


def run_in_memory(
    spells: pd.DataFrame,
    quarter: Quarter | str,
    model: RiskModel | None = None,
    settings: CusumSettings | None = None,
    surface: ThresholdSurface | None = None,
    keep_p: bool = False,
    alert_model: RiskModel | None = None,
) -> ChunkedMortality:
    """The mortality stage on spells in memory: the whole frame is the one chunk, and the fit's
    encoding is reused by it (no second encoding); fits the models when not given (the alert
    model from ``settings.risk_model`` unless ``alert_model`` is given, fitted or not)."""
    q = as_quarter(quarter)
    model = model or RiskModel().fit(spells, end=q)
    settings = settings or load_cusum_settings()
    alert_model = alert_model or alert_model_for(settings)
    if alert_model is not None and not hasattr(alert_model, "_table"):
        fit_alert_model(spells, q, alert_model)
    part = spell_partial(
        spells, 0, model, None, str(q), settings, keep_p=keep_p, alert_model=alert_model
    )
    return finish(part, q, model, settings, surface, alert_model=alert_model)


def run_chunked(
    apply: Apply,
    apply_reduce: ApplyReduce,
    quarter: Quarter | str,
    model: RiskModel | None = None,
    settings: CusumSettings | None = None,
    surface: ThresholdSurface | None = None,
    mapping: IndicatorGroups | None = None,
) -> ChunkedMortality:
    """The mortality stage over chunks: fit pass, sums pass (reduced as it goes, so the chunks'
    results are never all held at once), then :func:`finish`."""
    q = as_quarter(quarter)
    settings = settings or load_cusum_settings()
    alert_model = alert_model_for(settings)
    fits = apply(
        fit_partial, model or RiskModel(), month_number(q.end), alert_model, columns=SPELL_FIELDS
    )
    model, levels = fit_from_partials(fits, q, model, alert_model)
    total = apply_reduce(
        spell_partial,
        combine,
        model,
        levels,
        str(q),
        settings,
        False,
        alert_model,
        columns=SPELL_FIELDS,
    )
    return finish(total, q, model, settings, surface, mapping, alert_model)
