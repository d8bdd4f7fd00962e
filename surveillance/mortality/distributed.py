"""The spell-level step of the risk models on a Dask cluster: covariate-pattern counts per partition.

Fitting the risk models needs the spells only through their counts: for every diagnosis group
and covariate pattern, the number of spells and of deaths in the fit window
(:meth:`RiskModel._fit_arrays_inner` aggregates them before the IRLS fit, METHODS.md section 5).
Counts add up over any partition of the spells, so each Dask partition (a Parquet row group of
``spells.parquet`` on shared storage) is read, encoded and counted on its own worker, the small
count tables are summed, and :meth:`RiskModel.fit_counts` fits the same model that
:meth:`RiskModel.fit` gives on the whole file in one process (identical coefficients: the counts
are whole numbers, summed exactly). The quarterly run's chunked mortality stage
(:mod:`surveillance.mortality.partials`) fits this way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from surveillance.mortality.encode import (
    EncodedSpells,
    covariate_digits,
    encode_spells,
    pattern_index,
)
from surveillance.mortality.risk_model import RiskModel, resolve_end_month
from surveillance.periods import Quarter

COUNT_COLUMNS = {"diagnosis_group": object, "pattern": np.int64, "n": np.int64, "d": float}


def pattern_counts(
    spells: pd.DataFrame, model: RiskModel, end_month: int, enc: EncodedSpells | None = None
) -> pd.DataFrame:
    """Spells and deaths per (diagnosis group, covariate pattern) in the fit window for reference
    month ``end_month`` (months since 1970-01; ``risk_model.fit_window``), for one partition of
    the spells (``enc``: its
    :func:`encode_spells`, when already made).

    Every group present in the partition gets a row with ``pattern = -1`` and zero counts, so the
    fitted model knows the same groups as one fitted on all the spells at once.
    """
    if len(spells) == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in COUNT_COLUMNS.items()})
    enc = enc if enc is not None else encode_spells(spells, model.outcome, model.spec.period_date)
    keep = model.fit_mask(enc.period_month, end_month)
    sub = spells if keep.all() else spells.loc[keep]
    digits = covariate_digits(sub, model.spec, end_month, enc.admission_day[keep])
    n_pat = int(np.prod(model.sizes_))
    key = enc.group[keep].astype(np.int64) * n_pat + pattern_index(digits, model.sizes_)
    uniq, inverse = np.unique(key, return_inverse=True)
    n = np.bincount(inverse, minlength=len(uniq))
    d = np.bincount(inverse, weights=enc.died[keep], minlength=len(uniq))
    present = pd.DataFrame({"diagnosis_group": enc.groups, "pattern": -1, "n": 0, "d": 0.0}).astype(
        COUNT_COLUMNS
    )
    counted = pd.DataFrame(
        {"diagnosis_group": enc.groups[uniq // n_pat], "pattern": uniq % n_pat, "n": n, "d": d}
    ).astype(COUNT_COLUMNS)
    return pd.concat([present, counted], ignore_index=True)


def combine_counts(
    counts: pd.DataFrame, model: RiskModel
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Summed partition counts as ``(groups, n_all, d_all)`` for :meth:`RiskModel.fit_counts`."""
    total = counts.groupby(["diagnosis_group", "pattern"], sort=True)[["n", "d"]].sum()
    groups = np.array(sorted(total.index.get_level_values(0).unique()), dtype=object)
    total = total[total.index.get_level_values(1) >= 0]
    n_pat = int(np.prod(model.sizes_))
    g = pd.Index(groups).get_indexer(total.index.get_level_values(0))
    key = g.astype(np.int64) * n_pat + total.index.get_level_values(1).to_numpy(np.int64)
    n_all = np.zeros(len(groups) * n_pat, dtype=np.int64)
    d_all = np.zeros(len(groups) * n_pat, dtype=float)
    n_all[key] = total["n"].to_numpy()
    d_all[key] = total["d"].to_numpy()
    return groups, n_all, d_all


def fit_risk_model_dask(
    spells_path: Path | str,
    end: Quarter | str,
    client: Any | None = None,
    model: RiskModel | None = None,
) -> RiskModel:
    """Fit the risk models from ``spells.parquet`` as a Dask data frame (one partition per
    Parquet row group; :class:`surveillance.spell_engine.DaskChunks`) on ``client``'s cluster, or
    with the current Dask scheduler when ``client`` is None. The quarterly run does the same
    inside :func:`surveillance.mortality.partials.run_chunked`."""
    from surveillance.bundle import spell_source
    from surveillance.mortality.partials import fit_from_partials, fit_partial
    from surveillance.spell_engine import DaskChunks

    model = model or RiskModel()
    chunks = DaskChunks(spell_source(Path(spells_path)), client)
    parts = chunks.apply(fit_partial, model, resolve_end_month(end, 0))
    return fit_from_partials(parts, end, model)[0]
