"""Risk models: coefficient recovery, agreement with statsmodels, calibration in the large,
fallback ladder, persistence, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from surveillance.errors import ConfigError, ContractError
from surveillance.mortality.risk_model import RiskModel
from surveillance.mortality.simulate import BASE_EFFECTS, simulate_spells
from surveillance.mortality.spec import load_risk_spec


@pytest.fixture(scope="module")
def big():
    sim = simulate_spells(
        n_spells=400_000,
        n_trusts=10,
        n_groups=2,
        seed=3,
        trust_sd=0.0,
        base_rates=np.array([0.03, 0.08]),
    )
    return sim, RiskModel().fit(sim.spells, end="2013-09")


def test_recovers_known_coefficients(big):
    sim, model = big
    coef = model.coefficients()
    for g in ("G000", "G001"):
        rows = coef[coef["diagnosis_group"] == g].reset_index(drop=True)
        truth = [sim.intercepts[g]]
        for name in load_risk_spec().levels[0].covariates:  # the SHMI-style full level
            effect = sim.scale[g] * BASE_EFFECTS[name]
            truth += list(effect[1:] - effect[0])
        truth = np.array(truth)
        assert len(rows) == len(truth)
        z = (rows["estimate"].to_numpy() - truth) / rows["std_error"].to_numpy()
        assert np.all(np.abs(z) < 4.5), rows.assign(truth=truth, z=z)[np.abs(z) >= 4.5]
        # the strong effects are pinned down tightly
        em = rows.set_index("term").loc["admission_method[emergency]", "estimate"]
        assert em == pytest.approx(sim.scale[g] * 0.9, abs=0.06)


def test_matches_statsmodels_glm_on_spell_covariates(spells):
    """Independent fit: statsmodels binomial GLM on dummies built here with pandas."""
    spec = load_risk_spec().model_copy(update={"ridge": 0.0})
    model = RiskModel(spec).fit(spells, end="2013Q3")
    g = spells[spells["diagnosis_group"] == "G000"].copy()
    adm = g["admission_date"].dt.year * 12 + g["admission_date"].dt.month - 1
    cov = pd.DataFrame(
        {
            "age": pd.cut(g["age"], [0, 18, 45, 55, 65, 75, 85, 90, 999], right=False).cat.codes,
            "sex": g["sex"].astype(str),
            "adm": g["admission_method"].astype(str),
            "com": pd.cut(g["comorbidity"], [0, 1, 2, 3, 5, 999], right=False).cat.codes,
            "dep": g["deprivation_quintile"].astype("float").fillna(0).astype(int),
            "month": g["admission_date"].dt.month,
            "year": np.clip((2013 * 12 + 8 - adm) // 12, 0, 2),
        }
    )
    cov["died"] = g["died_30d"].astype(float).to_numpy()
    cells = cov.groupby(list(cov.columns[:-1]), observed=True)["died"].agg(["sum", "count"])
    cells = cells.reset_index()
    X = pd.get_dummies(cells[list(cov.columns[:-1])].astype(str), drop_first=False)
    drop = ["age_0", "sex_M", "adm_elective", "com_0", "dep_1", "month_1", "year_0"]
    X = sm.add_constant(X.drop(columns=drop).astype(float))
    endog = np.column_stack([cells["sum"], cells["count"] - cells["sum"]])
    fit = sm.GLM(endog, X, family=sm.families.Binomial()).fit()
    # spell-level predictions from the cell coefficients
    Xs = pd.get_dummies(cov[list(cov.columns[:-1])].astype(str), drop_first=False)
    Xs = sm.add_constant(Xs.drop(columns=drop).astype(float))[X.columns]
    ours = model.predict(g)
    np.testing.assert_allclose(ours, fit.predict(Xs), rtol=1e-5, atol=1e-8)
    est = model.coefficients().query("diagnosis_group == 'G000'").set_index("term")["estimate"]
    assert est["sex[F]"] == pytest.approx(fit.params["sex_F"], abs=1e-5)
    assert est["deprivation[missing]"] == pytest.approx(fit.params["dep_0"], abs=1e-4)


def test_calibration_in_the_large(model, spells, p):
    died = spells["died_30d"].to_numpy()
    assert p.sum() == pytest.approx(died.sum(), rel=1e-9)
    by_group = pd.DataFrame({"g": spells["diagnosis_group"].astype(str), "p": p, "d": died})
    sums = by_group.groupby("g")[["p", "d"]].sum()
    np.testing.assert_allclose(sums["p"], sums["d"], rtol=1e-8)


def test_fallback_ladder_and_unseen_group(spells):
    small = spells.iloc[:40_000].copy()
    small["diagnosis_group"] = small["diagnosis_group"].astype(str)
    # a group with 150 spells and a group with no deaths
    small.loc[small.index[:150], "diagnosis_group"] = "TINY"
    zero = small.index[150:400]
    small.loc[zero, "diagnosis_group"] = "NODEATH"
    small.loc[zero, "died_30d"] = False
    model = RiskModel().fit(small, end="2013Q3")
    levels = model.groups_.set_index("diagnosis_group")["level"]
    assert levels["TINY"] == "crude"  # below 200 spells
    tiny = small[small["diagnosis_group"] == "TINY"]
    p_tiny = model.predict(tiny)
    assert np.allclose(p_tiny, tiny["died_30d"].mean())
    assert np.all(model.predict(small.loc[zero]) == 0.0)
    other = small.iloc[:5].assign(diagnosis_group="NEVER SEEN")
    assert np.allclose(model.predict(other), small["died_30d"].mean())
    full = levels[levels == "full"].index
    assert len(full) >= 1 and set(levels) == {"full", "reduced", "crude"}


def test_outcome_is_configurable(spells):
    m = RiskModel(outcome="died_in_hospital").fit(spells.iloc[:50_000], end="2013Q3")
    assert m.predict(spells.iloc[:50_000]).sum() == pytest.approx(
        spells["died_in_hospital"].iloc[:50_000].sum(), rel=1e-9
    )


def test_save_load_roundtrip_and_determinism(model, spells, p, tmp_path):
    path = model.save(tmp_path / "m.json")
    again = RiskModel.load(path)
    np.testing.assert_array_equal(again.predict(spells), p)
    refit = RiskModel().fit(spells, end="2013Q3")
    pd.testing.assert_frame_equal(refit.coefficients(), model.coefficients())


def test_bad_input_names_column_and_rows(spells):
    bad = spells.iloc[:100].copy()
    bad["sex"] = bad["sex"].astype(str)
    bad.iloc[[4, 7], bad.columns.get_loc("sex")] = "X"
    with pytest.raises(ContractError) as err:
        RiskModel().fit(bad)
    v = err.value.violations[0]
    assert v.column == "sex" and v.rows == (5, 8) and v.rule == "allowed_values"
    bad = spells.iloc[:100].copy()
    bad.iloc[3, bad.columns.get_loc("age")] = -1
    with pytest.raises(ContractError, match="age"):
        RiskModel().fit(bad)


def test_invalid_spec_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    text = (load_risk_spec.__globals__["DEFAULT_SPEC"]).read_text()
    path.write_text(
        text.replace("[age_band, sex, admission_method, comorbidity_band]", "[age_band, shoe_size]")
    )
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_risk_spec(path)
