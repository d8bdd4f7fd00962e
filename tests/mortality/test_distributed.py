"""Risk models fitted from partition counts (Dask data frames) equal the one-process fit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from surveillance.mortality.distributed import combine_counts, fit_risk_model_dask, pattern_counts
from surveillance.mortality.encode import month_number
from surveillance.mortality.risk_model import RiskModel
from surveillance.periods import Quarter


def _same(a: RiskModel, b: RiskModel) -> bool:
    return json.dumps(a.to_dict(), sort_keys=True, default=str) == json.dumps(
        b.to_dict(), sort_keys=True, default=str
    )


def test_counts_summed_over_trust_partitions_give_the_same_model(spells, model):
    end = month_number(Quarter.parse("2013Q3").end)
    parts = [
        pattern_counts(part, model, end) for _, part in spells.groupby("trust_code", observed=True)
    ]
    counts = pd.concat(parts, ignore_index=True)
    groups, n_all, d_all = combine_counts(counts, model)
    assert n_all.sum() == len(spells)  # every simulated spell lies in the fit window
    assert d_all.sum() == spells["died_30d"].sum()
    refit = RiskModel().fit_counts(groups, n_all, d_all, "2013Q3")
    assert _same(refit, model)


def test_fit_counts_checks_its_input(model):
    n_pat = int(np.prod(model.sizes_))
    with pytest.raises(ValueError, match="length"):
        RiskModel().fit_counts(np.array(["G1"]), np.ones(n_pat - 1), np.zeros(n_pat - 1), "2013Q3")
    with pytest.raises(ValueError, match="end of the fit window"):
        RiskModel().fit_counts(np.array(["G1"]), np.ones(n_pat), np.zeros(n_pat), None)


def test_dask_dataframe_fit_equals_single_process_fit(spells, model, tmp_path):
    pytest.importorskip("dask.dataframe")
    path = tmp_path / "spells.parquet"
    spells.to_parquet(path, row_group_size=50_000, index=False)
    import dask

    with dask.config.set(scheduler="synchronous"):  # the partition logic; no cluster in tests
        fitted = fit_risk_model_dask(path, "2013Q3")
    assert _same(fitted, model)


def test_encoding_reused_once_after_fit_equals_a_fresh_encoding(spells):
    import pickle

    fitted = RiskModel().fit(spells, end="2013Q3")
    assert "_fit_encoding" not in pickle.loads(pickle.dumps(fitted)).__dict__
    enc1, pat1 = fitted.encode(spells)  # handed over from fit
    enc2, pat2 = fitted.encode(spells)  # encoded afresh
    assert enc1 is not enc2
    np.testing.assert_array_equal(pat1, pat2)
    for name in ("trust", "group", "period_day", "admission_day", "died", "palliative"):
        np.testing.assert_array_equal(getattr(enc1, name), getattr(enc2, name))
    other = spells.iloc[: len(spells) // 2]
    refit = RiskModel().fit(spells, end="2013Q3")
    _, pat3 = refit.encode(other)  # another frame: never the cached encoding
    assert len(pat3) == len(other)
