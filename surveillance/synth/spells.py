"""Patient-level spells, generated one calendar month at a time and written in chunks.

Each month comes from its own random stream, so a month is identical in every bundle whose
36-month window contains it, and a national file (45 million spells) never sits in memory.
Deaths follow the TRUE logistic model (``risk_model.yaml``) plus a trust effect tied to latent
effective-domain quality, plus the planted deteriorations. Coding (palliative care, comorbidity
depth) varies by trust and, for the planted recoding trusts, jumps part-way without any change
in the deaths themselves. In the harder world (``nation.harder``) the true model also carries
a truly palliative patient attribute, age hinges, the true deprivation quintile, a cosine winter
and its own trend, and the final bundle's true risks go to the oracle sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import expit

from surveillance.periods import Quarter
from surveillance.synth.world import (
    STREAM_HARDER,
    STREAM_SPELLS,
    Nation,
    draw_by_row_cdf,
    draw_case_mix,
    harder_linear_predictor,
    linear_predictor,
    month_ordinal,
    palliative_probability,
    rng_for,
)

SPELL_SCHEMA = pa.schema(
    [
        ("spell_id", pa.string()),
        ("trust_code", pa.string()),
        ("admission_date", pa.date32()),
        ("discharge_date", pa.date32()),
        ("diagnosis_group", pa.string()),
        ("age", pa.int16()),
        ("sex", pa.string()),
        ("admission_method", pa.string()),
        ("comorbidity", pa.int16()),
        ("deprivation_quintile", pa.int8()),
        ("palliative_care", pa.bool_()),
        ("died_in_hospital", pa.bool_()),
        ("died_30d", pa.bool_()),
    ]
)
#: The harder world's oracle sidecar: every spell of the final bundle with its TRUE risks.
ORACLE_SCHEMA = pa.schema(
    [("spell_id", pa.string()), ("p_in_control", pa.float64()), ("p_true", pa.float64())]
)
SPELLS_PER_MONTH_ID = 10_000_000  # spell_id = YYYYMM * 10**7 + sequence within the month
PARQUET_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    # Codes are text in the contract; Parquet dictionary-encodes them on disk (compact), except
    # the unique spell_id.
    "use_dictionary": ["trust_code", "diagnosis_group", "sex", "admission_method"],
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}
_REFERENCE_MONTH = month_ordinal("2012-01")
_EPOCH_DAY = np.datetime64("1970-01-01", "D")


@dataclass
class MonthOfSpells:
    """One month's spells as an Arrow table, plus per-row truth used for the ground truth."""

    period: pd.Period
    table: pa.Table
    discharge_day: np.ndarray  # days since 1970-01-01
    cell: np.ndarray  # trust_index * n_groups + group_index
    died: np.ndarray
    p_without_planted: np.ndarray
    p_true: np.ndarray | None = None  # with the planted odds ratios (harder world)
    palliative_true: np.ndarray | None = None  # truly palliative (harder world)


def _month_mean_counts(nation: Nation, period: pd.Period) -> np.ndarray:
    s = nation.config.sizes
    annual = nation.trusts["annual_spells"].to_numpy(float) * nation.scale_factor
    ordinal = month_ordinal(period)
    seasonal = 1.0 + s.seasonal_amplitude * np.cos(2 * np.pi * (period.month - 1) / 12)
    growth = (1.0 + s.annual_growth) ** ((ordinal - _REFERENCE_MONTH) / 12.0)
    return annual / 12.0 * (period.days_in_month / (365.25 / 12)) * seasonal * growth


def generate_month(nation: Nation, period: pd.Period) -> MonthOfSpells:
    """All trusts' spells admitted in calendar month ``period``, sorted by trust then date."""
    period = pd.Period(period, freq="M")
    ordinal = month_ordinal(period)
    rng = rng_for(nation.seed, STREAM_SPELLS, ordinal)
    t = nation.trusts
    n_trusts, n_groups = nation.group_cdf.shape
    counts = rng.poisson(_month_mean_counts(nation, period))
    n = int(counts.sum())
    if n >= SPELLS_PER_MONTH_ID:
        raise ValueError(f"{n} spells in {period}: more than spell_id allows per month")
    trust = np.repeat(np.arange(n_trusts, dtype=np.int16), counts)
    day = (
        np.sort(
            rng.integers(0, period.days_in_month, n).astype(np.int32)
            + np.repeat(np.arange(n_trusts, dtype=np.int32) * 64, counts)
        )
        - trust.astype(np.int32) * 64
    )  # sorted within trust, trusts stay in order

    g = draw_by_row_cdf(rng, nation.group_cdf, trust).astype(np.int16)
    mix = draw_case_mix(
        rng,
        g,
        nation.groups,
        trust,
        nation.deprivation_cdf,
        t["deprivation_missing"].to_numpy(),
        nation.paediatric,
    )
    quarter = Quarter(period.year, (period.month - 1) // 3 + 1)
    coef = nation.coef
    harder = nation.harder
    if harder is None:
        palliative_true = None
        lp = linear_predictor(mix, g, nation.intercepts, coef)
        lp += coef.winter * (period.month in (12, 1, 2))
        lp += coef.year * (ordinal - _REFERENCE_MONTH) / 12.0
    else:
        # Own stream: the default stream's draws (so the patients) are the same in both worlds.
        u = rng_for(nation.seed, STREAM_HARDER, ordinal).random(n)
        palliative_true = u < palliative_probability(mix, coef, harder)
        lp = harder_linear_predictor(mix, g, nation.intercepts, coef, harder, palliative_true)
        lp += harder.winter_amplitude * np.cos(2 * np.pi * (period.month - 1) / 12)
        lp += harder.year * (ordinal - _REFERENCE_MONTH) / 12.0
    lp += nation.trust_effect(quarter)[trust]
    p0 = expit(lp)

    cell = trust.astype(np.int64) * n_groups + g
    log_or = np.zeros(n_trusts * n_groups)
    det = nation.deteriorations
    active = det["start_month"].map(lambda m: pd.Period(m, freq="M") <= period).to_numpy(bool)
    if active.any():
        keys = (
            det["trust_index"].to_numpy()[active] * n_groups + det["group_index"].to_numpy()[active]
        )
        log_or[keys] = np.log(det["odds_ratio"].to_numpy()[active])
    p = expit(lp + log_or[cell])
    died = rng.random(n) < p
    m = nation.config.mortality
    in_hospital = died & (rng.random(n) < m.in_hospital_share)

    # Coding: palliative care (mostly among deaths) and comorbidity depth vary by trust.
    pall_rate = t["palliative_rate"].to_numpy().copy()
    depth = t["coding_depth"].to_numpy().copy()
    for row in nation.recoding.itertuples():
        if pd.Period(row.start_month, freq="M") <= period:
            if row.kind == "palliative":
                pall_rate[row.trust_index] = m.recoding.palliative_rate_after
            else:
                depth[row.trust_index] += m.recoding.comorbidity_extra
    pr = pall_rate[trust]
    habit = np.where(died, pr, pr * m.palliative_survivor_ratio)
    if palliative_true is not None:  # truly palliative patients are coded with the trust's
        # sensitivity whatever the outcome; the habit (and its recoding jumps) codes the others
        habit = np.where(palliative_true, t["palliative_sensitivity"].to_numpy()[trust], habit)
    palliative = rng.random(n) < habit
    coded = np.minimum(mix.comorbidity + rng.poisson(depth[trust]), 30).astype(np.int16)

    # Length of stay: gamma around the group's mean, shorter for electives, many day cases.
    mean_los = nation.groups.mean_los[g] * np.where(mix.emergency, 1.0, 0.6)
    los = np.floor(rng.gamma(1.3, mean_los / 1.3)).astype(np.int32)
    los = np.where(~mix.emergency & (rng.random(n) < 0.5), 0, np.minimum(los, 180))

    first_day = int(
        (period.start_time.to_datetime64().astype("datetime64[D]") - _EPOCH_DAY).astype(int)
    )
    admission = first_day + day
    discharge = admission + los
    spell_id = (period.year * 100 + period.month) * SPELLS_PER_MONTH_ID + np.arange(1, n + 1)

    codes = pa.array(t["trust_code"].tolist(), pa.string())
    names = pa.array(nation.groups.names.tolist(), pa.string())
    dep = pa.array(mix.deprivation, pa.int8(), mask=mix.deprivation == 0)
    table = pa.Table.from_arrays(
        [
            pa.array(spell_id.astype(np.int64)).cast(pa.string()),
            _decode(trust, codes),
            pa.array(admission.astype(np.int32), pa.date32()),
            pa.array(discharge.astype(np.int32), pa.date32()),
            _decode(g, names),
            pa.array(mix.age, pa.int16()),
            _decode(np.where(mix.male, 0, 1), pa.array(["M", "F"])),
            _decode(mix.emergency.astype(np.int8), pa.array(["elective", "emergency"])),
            pa.array(coded, pa.int16()),
            dep,
            pa.array(palliative),
            pa.array(in_hospital),
            pa.array(died),
        ],
        schema=SPELL_SCHEMA,
    )
    return MonthOfSpells(
        period, table, discharge, cell, died, p0, None if harder is None else p, palliative_true
    )


def _decode(index: np.ndarray, labels: pa.Array) -> pa.Array:
    """Plain string column from integer codes (Arrow ``take``; no Python-level strings)."""
    return labels.take(pa.array(index.astype(np.int32)))


@dataclass
class SpellWindow:
    """One bundle's spells file: 36 months of admissions ending at the quarter's end."""

    quarter: Quarter
    path: Path
    months: int = 36
    rows: int = 0
    deaths: int = 0
    writer: pq.ParquetWriter | None = field(default=None, repr=False)

    @property
    def first(self) -> pd.Period:
        return pd.Period(self.quarter.lookback_start(self.months), freq="M")

    @property
    def last(self) -> pd.Period:
        return pd.Period(self.quarter.end, freq="M")

    @property
    def end_day(self) -> int:
        return int(
            (self.quarter.end.to_datetime64().astype("datetime64[D]") - _EPOCH_DAY).astype(int)
        )


MONITORED_MONTHS = 12  # the alert charts' monitored window: 12 months to the quarter's end


@dataclass
class PlantedTally:
    """Spells, deaths and expected deaths (no deterioration) per planted cell since its start,
    before it, and over the final quarter's 12 monitored months (all three for the last window).
    """

    spells: np.ndarray
    deaths: np.ndarray
    expected_without: np.ndarray
    spells_before: np.ndarray
    deaths_before: np.ndarray
    expected_before: np.ndarray
    spells_monitored: np.ndarray
    deaths_monitored: np.ndarray
    expected_monitored: np.ndarray


def write_spells(
    nation: Nation, windows: list[SpellWindow], oracle_path: Path | None = None
) -> PlantedTally:
    """Generate every month any window needs and write each window's ``spells.parquet``.

    A spell belongs to a bundle when admitted in its 36 months and discharged by its quarter's
    end (unfinished spells are not in an extract). Returns, for the last window, the planted
    cells' tallies after and before their start months and in the monitored window. With
    ``oracle_path`` (harder world) every spell of the last window is also written there with its
    true in-control and true risk, in the spells file's row order (:data:`ORACLE_SCHEMA`).
    """
    first = min(w.first for w in windows)
    last = max(w.last for w in windows)
    final = max(windows, key=lambda w: w.quarter)
    monitored_from = pd.Period(final.quarter.lookback_start(MONITORED_MONTHS), freq="M")
    det = nation.deteriorations
    n_groups = nation.group_cdf.shape[1]
    det_cells = det["trust_index"].to_numpy() * n_groups + det["group_index"].to_numpy()
    det_start = np.array([pd.Period(s, freq="M") for s in det["start_month"]])
    k = len(det)
    tally = PlantedTally(*(np.zeros(k) for _ in range(9)))
    oracle = None
    try:
        for w in windows:
            w.path.parent.mkdir(parents=True, exist_ok=True)
            w.writer = pq.ParquetWriter(w.path, SPELL_SCHEMA, **PARQUET_OPTIONS)
            w.rows = w.deaths = 0
        if oracle_path is not None:
            oracle_path.parent.mkdir(parents=True, exist_ok=True)
            oracle = pq.ParquetWriter(oracle_path, ORACLE_SCHEMA, **_ORACLE_OPTIONS)
        for period in pd.period_range(first, last, freq="M"):
            month = generate_month(nation, period)
            for w in windows:
                if not (w.first <= period <= w.last):
                    continue
                keep = month.discharge_day <= w.end_day
                table = month.table if keep.all() else month.table.filter(pa.array(keep))
                w.writer.write_table(table)
                w.rows += table.num_rows
                w.deaths += int(month.died[keep].sum())
                if w is final and k:
                    _tally(tally, month, keep, det_cells, det_start, period >= monitored_from)
                if w is final and oracle is not None:
                    oracle.write_table(_oracle_table(month, keep, table))
    finally:
        for w in windows:
            if w.writer is not None:
                w.writer.close()
                w.writer = None
        if oracle is not None:
            oracle.close()
    return tally


_ORACLE_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": False,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}


def _oracle_table(month: MonthOfSpells, keep: np.ndarray, spells: pa.Table) -> pa.Table:
    if month.p_true is None:
        raise ValueError("the oracle sidecar needs the harder world's true risks (p_true)")
    return pa.Table.from_arrays(
        [
            spells.column("spell_id"),
            pa.array(month.p_without_planted[keep], pa.float64()),
            pa.array(month.p_true[keep], pa.float64()),
        ],
        schema=ORACLE_SCHEMA,
    )


def _tally(
    tally: PlantedTally,
    month: MonthOfSpells,
    keep: np.ndarray,
    det_cells: np.ndarray,
    det_start: np.ndarray,
    monitored: bool = False,
) -> None:
    order = np.argsort(det_cells)
    sorted_cells = det_cells[order]
    pos = np.searchsorted(sorted_cells, month.cell)
    pos = np.minimum(pos, sorted_cells.size - 1)
    hit = keep & (sorted_cells[pos] == month.cell)
    which = order[pos[hit]]
    after = np.array([month.period >= det_start[i] for i in which], dtype=bool)
    k = det_cells.size
    died = month.died[hit].astype(float)
    p0 = month.p_without_planted[hit]
    for mask, spells, deaths, expected in (
        (after, tally.spells, tally.deaths, tally.expected_without),
        (~after, tally.spells_before, tally.deaths_before, tally.expected_before),
    ):
        spells += np.bincount(which[mask], minlength=k)
        deaths += np.bincount(which[mask], weights=died[mask], minlength=k)
        expected += np.bincount(which[mask], weights=p0[mask], minlength=k)
    if monitored:
        tally.spells_monitored += np.bincount(which, minlength=k)
        tally.deaths_monitored += np.bincount(which, weights=died, minlength=k)
        tally.expected_monitored += np.bincount(which, weights=p0, minlength=k)
