"""mortality.csv: contract columns, values against an independent SHMI computation, banding,
persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from surveillance.contracts import MORTALITY_COLUMNS
from surveillance.mortality.ratios import mortality_table
from surveillance.mortality.risk_model import RiskModel
from surveillance.mortality.simulate import simulate_spells


def shmi_reference(o: np.ndarray, e: np.ndarray, z_level: float) -> tuple[np.ndarray, ...]:
    """SHMI method written out from the NHS Digital specification (independent of stats/)."""
    z = np.sqrt(e) * np.log(np.where(o > 0, o, 0.5) / e)
    n = len(z)
    sp = np.floor(rankdata(z, method="average") * 10 / (n + 1))
    keep = (sp > 0) & (sp < 9)
    k = keep.sum()
    phi = np.mean(z[keep] ** 2)
    w = e[keep]
    tau2 = max(0.0, (k * phi - (k - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    if k * phi < k - 1:
        tau2 = 0.0
    spread = np.sqrt(1 / e + tau2)
    return np.exp(-z_level * spread), np.exp(z_level * spread), tau2, z / np.sqrt(1 + e * tau2)


def test_contract_columns_and_order(spells, p):
    tab = mortality_table(spells, p, "2013Q3")
    assert list(tab.columns[: len(MORTALITY_COLUMNS)]) == MORTALITY_COLUMNS
    assert set(tab["banding"]) <= {"higher than expected", "as expected", "lower than expected"}
    first = tab.groupby("trust_code", sort=False)["diagnosis_group"].first()
    assert (first == "ALL").all()
    assert tab["trust_code"].is_monotonic_increasing
    # one row per trust x group with spells in the window, plus ALL
    window = spells[spells["discharge_date"] >= "2012-10-01"]
    cells = window.groupby(["trust_code", "diagnosis_group"], observed=True).size()
    assert len(tab) == len(cells) + window["trust_code"].nunique()


def test_trust_level_values_match_independent_shmi(spells, p):
    tab = mortality_table(spells, p, "2013Q3")
    all_rows = tab[tab["diagnosis_group"] == "ALL"].set_index("trust_code")
    w = spells["discharge_date"].between("2012-10-01", "2013-09-30")
    frame = pd.DataFrame({"t": spells["trust_code"].astype(str), "d": spells["died_30d"], "p": p})
    oe = frame[w.to_numpy()].groupby("t")[["d", "p"]].sum()
    np.testing.assert_array_equal(all_rows["observed"], oe["d"].astype(int))
    np.testing.assert_allclose(all_rows["expected"], oe["p"], rtol=1e-10)
    lo, up, tau2, z_adj = shmi_reference(oe["d"].to_numpy(float), oe["p"].to_numpy(), 3.090232)
    np.testing.assert_allclose(all_rows["lower998"], lo, rtol=1e-6)
    np.testing.assert_allclose(all_rows["upper998"], up, rtol=1e-6)
    np.testing.assert_allclose(all_rows["tau2"], tau2, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(all_rows["z_adjusted"], z_adj, rtol=1e-6)
    lo95, up95, _, _ = shmi_reference(oe["d"].to_numpy(float), oe["p"].to_numpy(), 1.959964)
    np.testing.assert_allclose(all_rows["upper95"], up95, rtol=1e-6)
    # banding == ratio against the 99.8% limits
    ratio = all_rows["ratio"]
    expect = np.where(
        ratio > up,
        "higher than expected",
        np.where(ratio < lo, "lower than expected", "as expected"),
    )
    np.testing.assert_array_equal(all_rows["banding"], expect)


def test_persistent_outlier_in_both_years():
    sim = simulate_spells(n_spells=150_000, n_trusts=12, n_groups=4, seed=5, trust_sd=0.02)
    s = sim.spells
    # trust T000 has a doubled odds of death for its whole history: deaths resampled
    rng = np.random.default_rng(1)
    model = RiskModel().fit(s, end="2013Q3")
    p0 = model.predict(s)
    t0 = (s["trust_code"] == "T000").to_numpy()
    odds = p0 / (1 - p0) * 2.5
    s = s.copy()
    s.loc[t0, "died_30d"] = rng.random(t0.sum()) < (odds / (1 + odds))[t0]
    model = RiskModel().fit(s, end="2013Q3")
    tab = mortality_table(s, model.predict(s), "2013Q3")
    row = tab[(tab["trust_code"] == "T000") & (tab["diagnosis_group"] == "ALL")].iloc[0]
    assert row["banding"] == "higher than expected"
    assert row["previous_banding"] == "higher than expected"
    assert bool(row["persistent"])
    others = tab[(tab["trust_code"] != "T000") & (tab["diagnosis_group"] == "ALL")]
    assert not (others["persistent"] & (others["banding"] == "higher than expected")).any()


def test_zero_deaths_cell_is_finite(spells, p):
    s = spells.copy()
    cell = ((s["trust_code"] == "T001") & (s["diagnosis_group"] == "G002")).to_numpy()
    s.loc[cell, "died_30d"] = False
    tab = mortality_table(s, p, "2013Q3")
    row = tab[(tab["trust_code"] == "T001") & (tab["diagnosis_group"] == "G002")].iloc[0]
    assert row["observed"] == 0 and row["ratio"] == 0.0
    assert np.isfinite(row["z"]) and np.isfinite(row["z_adjusted"])


def test_bad_risks_are_rejected(spells, p):
    with pytest.raises(Exception, match="p:"):
        mortality_table(spells, p[:-1], "2013Q3")
    bad = p.copy()
    bad[3] = 1.5
    with pytest.raises(Exception, match="rows \\[4\\]"):
        mortality_table(spells, bad, "2013Q3")


def test_rerun_gives_identical_tables(spells, p):
    a = mortality_table(spells, p, "2013Q3")
    b = mortality_table(
        spells.sample(frac=1.0, random_state=3),
        p[spells.index.get_indexer(spells.sample(frac=1.0, random_state=3).index)],
        "2013Q3",
    )
    pd.testing.assert_frame_equal(a, mortality_table(spells, p, "2013Q3"))
    # the table does not depend on the input row order (sums only)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)
