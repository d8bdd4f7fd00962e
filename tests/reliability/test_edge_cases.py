"""Degenerate but valid inputs (issue 7, part 1): the run completes and says why.

Decisions: a trust with no spells is allowed (its spell-derived mortality indicators are
``not_applicable`` with a reason); a diagnosis group with no deaths falls back to zero expected
deaths (no crash, no ratio); identical trusts give identical z, phi = 0 and tau2 = 0 where the
target equals the common value; a single trust runs. Each case runs every stage up to banding
(:func:`surveillance.pipeline.compute_quarter`) on a copy of the 12-trust test quarter.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from rel_common import run_options, subset_bundle

from surveillance import pipeline


@pytest.fixture(params=["memory", "chunked"])
def compute(request):
    """Every stage up to banding, in memory and chunked (spells.parquet rewritten in 2,000-row
    row groups, streamed): ``compute(data, tmp_path) -> (results, catalogue)``."""
    mode = request.param

    def run(data: Path, tmp_path: Path):
        spells = data / "spells.parquet"
        if mode == "chunked" and spells.is_file():
            pq.write_table(pq.read_table(spells), spells, row_group_size=2_000)
        options = run_options(data, tmp_path / "out", spells=mode)
        _, results, catalogue = pipeline.compute_quarter(options)
        return results, catalogue

    return run


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(bundle, target)
    return target


def _codes(data: Path) -> list[str]:
    return sorted(pd.read_csv(data / "trusts.csv", dtype=str)["trust_code"])


def _numbers(frame: pd.DataFrame, columns) -> np.ndarray:
    return np.column_stack([pd.to_numeric(frame[c], errors="coerce") for c in columns])


def test_trust_without_spells_gets_not_applicable_with_reason(hostile_bundle, tmp_path, compute):
    data = _copy(hostile_bundle, tmp_path)
    code = _codes(data)[7]
    table = pq.read_table(data / "spells.parquet")
    keep = (table.column("trust_code").to_pandas() != code).to_numpy()
    assert (~keep).sum() > 100
    pq.write_table(table.filter(keep), data / "spells.parquet")
    results, catalogue = compute(data, tmp_path)

    from_spells = catalogue.index[catalogue["derived_from"] == "spells"]
    mine = results.flags[
        (results.flags["trust_code"] == code) & results.flags["indicator_id"].isin(from_spells)
    ]
    assert len(mine) >= 20
    assert set(mine["flag"]) == {"not_applicable"}
    assert (mine["reason"].str.len() > 0).all()
    assert mine["reason"].str.contains("no data").all()
    assert code not in set(results.mortality.table["trust_code"])
    others = results.flags[
        (results.flags["trust_code"] != code) & results.flags["indicator_id"].isin(from_spells)
    ]
    assert (others["flag"] != "not_applicable").any()  # the others are still assessed
    assert code in set(results.bands["trust_code"])


def test_diagnosis_group_without_deaths_falls_back(hostile_bundle, tmp_path, compute):
    data = _copy(hostile_bundle, tmp_path)
    spells = pd.read_parquet(data / "spells.parquet")
    group = spells["diagnosis_group"].value_counts().index[0]  # the largest group
    mask = spells["diagnosis_group"] == group
    assert spells.loc[mask, "died_30d"].sum() >= 1
    spells.loc[mask, ["died_in_hospital", "died_30d"]] = False
    spells.to_parquet(data / "spells.parquet", index=False)
    results, _ = compute(data, tmp_path)

    table = results.mortality.table
    rows = table[table["diagnosis_group"] == group]
    assert len(rows) >= 10
    assert (rows["observed"] == 0).all()
    assert np.allclose(rows["expected"].astype(float), 0.0)
    assert rows["ratio"].isna().all()  # 0/0 is no ratio, not a crash or an infinity
    everything = _numbers(table, ["observed", "expected"])
    assert np.isfinite(everything).all()
    assert len(results.bands) == len(_codes(data))


def _identical_indicators(data: Path) -> list[str]:
    ind = pd.read_csv(data / "indicators.csv", dtype=str, keep_default_na=False)
    codes = _codes(data)
    base = ind[ind["trust_code"] == codes[0]]
    same = pd.concat([base.assign(trust_code=c) for c in codes], ignore_index=True)
    same.to_csv(data / "indicators.csv", index=False, lineterminator="\n")
    return sorted(set(base["indicator_id"]))


def test_identical_trusts_give_identical_z_and_no_overdispersion(hostile_bundle, tmp_path, compute):
    data = _copy(hostile_bundle, tmp_path)
    ids = _identical_indicators(data)
    results, catalogue = compute(data, tmp_path)
    flags = results.flags[results.flags["indicator_id"].isin(ids)]
    monthly = catalogue.index[catalogue["type"] == "cusum_z"]  # phi per month, not per quarter
    flags = flags[~flags["indicator_id"].isin(monthly)]
    assessed = flags[np.isfinite(pd.to_numeric(flags["z"], errors="coerce"))]
    assert assessed["indicator_id"].nunique() >= 40
    for indicator_id, rows in assessed.groupby("indicator_id"):
        z = rows["z"].astype(float).to_numpy()
        assert np.ptp(z) < 1e-9, indicator_id  # identical input, identical z
        phi = rows["phi"].astype(float).to_numpy()
        tau2 = rows["tau2"].astype(float).to_numpy()
        n = len(rows)
        # phi = mean of squared (winsorised) z; with n equal z that is z**2, and 0 when the
        # target is the common value (Spiegelhalter 2005); DerSimonian-Laird tau2 is 0
        # whenever n * phi <= n - 1
        assert np.allclose(phi, z[0] ** 2, rtol=1e-6, atol=1e-12), indicator_id
        if n * phi[0] <= n - 1:
            assert np.allclose(tau2, 0.0, atol=1e-12), indicator_id
    zeros = assessed.groupby("indicator_id")["z"].apply(lambda s: np.abs(s.astype(float)).max())
    assert (zeros < 1e-9).sum() >= 10
    assert set(flags.loc[flags.index.isin(assessed.index), "flag"]) <= {
        "no_evidence",
        "risk",
        "elevated_risk",
    }


def test_identical_trusts_write_no_infinities(hostile_bundle, tmp_path, compute):
    data = _copy(hostile_bundle, tmp_path)
    _identical_indicators(data)
    results, _ = compute(data, tmp_path)
    values = _numbers(results.flags, ["z", "z_adjusted", "phi", "tau2", "p_value"])
    assert not np.isinf(values).any()


def test_single_trust_runs(hostile_bundle, tmp_path, compute):
    data = tmp_path / "data"
    code = _codes(hostile_bundle)[0]
    subset_bundle(hostile_bundle, data, {code})
    results, _ = compute(data, tmp_path)
    assert results.bands["trust_code"].tolist() == [code]
    band = results.bands["band"].astype(str).iloc[0]
    assert band in {"1", "2", "3", "4", "5", "6", "recently_inspected", "not_banded"}
    assert len(results.flags) >= 100
    assert set(results.flags["trust_code"]) == {code}
