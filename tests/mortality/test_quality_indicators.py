"""Data-quality signals, indicator rows against the catalogue, alert flags, MLflow logging,
the run_mortality bundle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surveillance.catalogue import load_catalogue
from surveillance.mortality import run_mortality
from surveillance.mortality.indicators import (
    INDICATOR_COLUMNS,
    alert_flags,
    load_indicator_groups,
    mortality_indicators,
)
from surveillance.mortality.quality import quality_by_quarter, quality_changes, quality_context
from surveillance.mortality.ratios import mortality_table


@pytest.fixture(scope="module")
def recoded(spells):
    """T002 starts coding 70% of its deaths as palliative from April 2013."""
    s = spells.copy()
    rng = np.random.default_rng(7)
    hit = (
        (s["trust_code"] == "T002") & (s["discharge_date"] >= "2013-04-01") & s["died_30d"]
    ).to_numpy()
    s.loc[hit, "palliative_care"] = rng.random(hit.sum()) < 0.7
    return s


def test_quality_measures_match_pandas(spells):
    byq = quality_by_quarter(spells, "2013Q3", n_quarters=4)
    s = spells[spells["discharge_date"] >= "2012-10-01"].copy()
    s["quarter"] = s["discharge_date"].dt.to_period("Q").astype(str)
    ref = s.groupby([s["trust_code"].astype(str), "quarter"]).agg(
        spells=("died_30d", "size"),
        pal=("palliative_care", "mean"),
        com=("comorbidity", "mean"),
    )
    got = byq.set_index(["trust_code", "quarter"]).loc[ref.index]
    np.testing.assert_array_equal(got["spells"], ref["spells"])
    np.testing.assert_allclose(got["palliative_rate"], ref["pal"], rtol=1e-12)
    np.testing.assert_allclose(got["mean_comorbidity"], ref["com"], rtol=1e-12)
    assert set(byq["quarter"]) == {"2012Q4", "2013Q1", "2013Q2", "2013Q3"}


def test_palliative_recoding_jump_is_a_sudden_change(recoded, spells):
    ch = quality_changes(quality_by_quarter(recoded, "2013Q3", n_quarters=6))
    jump = ch[(ch["trust_code"] == "T002") & (ch["quarter"] == "2013Q2")].iloc[0]
    assert jump["palliative_death_rate_sudden_change"]
    assert jump["palliative_death_rate_change_z"] > 3.09
    others = ch[ch["trust_code"] != "T002"]
    assert others["palliative_death_rate_sudden_change"].mean() < 0.02
    ctx = quality_context(recoded, "2013Q3").set_index("trust_code")
    assert "palliative_death_rate" in ctx.loc["T002", "dq_sudden_change_12m"]
    clean = quality_context(spells, "2013Q3").set_index("trust_code")
    assert "palliative_death_rate" not in clean.loc["T002", "dq_sudden_change_12m"]


def test_mapping_ids_are_catalogue_spell_indicators():
    cat = load_catalogue()
    mapping = load_indicator_groups()
    for ind in mapping.indicators:
        assert ind in cat.index, ind
        assert cat.loc[ind, "derived_from"] == "spells", ind
    spells_ratios = cat[(cat["derived_from"] == "spells") & (cat["type"] == "ratio")].index
    assert set(spells_ratios) <= set(mapping.indicators)


def test_indicator_rows_agree_with_mortality_table(spells, p):
    al = pd.DataFrame(
        {
            "trust_code": ["T001", "T001", "T005"],
            "diagnosis_group": ["G000", "G001", "G000"],
            "signal_month": ["2013-08", "2013-09", "2013-05"],
        }
    )
    rows = mortality_indicators(spells, p, "2013Q3", alerts=al)
    assert list(rows.columns) == INDICATOR_COLUMNS
    tab = mortality_table(spells, p, "2013Q3")
    all_t = tab[tab["diagnosis_group"] == "ALL"].set_index("trust_code")
    mr = rows[rows["indicator_id"] == "mort_ratio_all"].set_index("trust_code")
    np.testing.assert_allclose(mr["numerator"], all_t["observed"])
    np.testing.assert_allclose(mr["denominator"], all_t["expected"], rtol=1e-12)
    assert (mr["period_start"] == "2012-10-01").all() and (mr["period_end"] == "2013-09-30").all()
    monthly = rows[rows["indicator_id"] == "mort_cusum_all"]
    sums = monthly.groupby("trust_code")[["numerator", "denominator"]].sum()
    np.testing.assert_allclose(sums["denominator"], all_t["expected"], rtol=1e-10)
    assert monthly.groupby("trust_code").size().eq(12).all()
    alerts_rows = rows[rows["indicator_id"] == "mort_alert"].set_index("trust_code")
    assert alerts_rows.loc["T001", "numerator"] == 2  # both in the quarter
    assert alerts_rows.loc["T005", "numerator"] == 0  # May is outside 2013Q3
    # weekend: emergency admissions on Saturday or Sunday only
    wk = rows[rows["indicator_id"] == "mort_ratio_weekend"].set_index("trust_code")
    w = spells[
        (spells["discharge_date"] >= "2012-10-01")
        & (spells["admission_method"] == "emergency")
        & (spells["admission_date"].dt.dayofweek >= 5)
    ]
    np.testing.assert_allclose(
        wk["numerator"], w.groupby("trust_code", observed=True)["died_30d"].sum()
    )
    flags = alert_flags(al, ["T001", "T005", "T009"], "2013Q3")
    assert flags.set_index("trust_code")["flag"].to_dict() == {
        "T001": "elevated_risk",
        "T005": "no_evidence",
        "T009": "no_evidence",
    }


def test_run_mortality_bundle(spells, model, surface):
    res = run_mortality(spells, "2013Q3", model, surface=surface)
    assert len(res.p) == len(spells)
    assert "dq_sudden_change_12m" in res.mortality.columns
    assert set(res.flags["flag"]) <= {"elevated_risk", "no_evidence"}
    # alerts.csv holds the window (the planted chart signals in 2013-04 and 2013-06 too); the
    # flag counts the alerts signalled in the quarter only
    in_quarter = res.alerts["signal_month"].isin(["2013-07", "2013-08", "2013-09"])
    assert (~in_quarter).any()
    alerted = set(res.alerts.loc[in_quarter, "trust_code"])
    assert set(res.flags.loc[res.flags["flag"] == "elevated_risk", "trust_code"]) == alerted
    counts = res.indicators[res.indicators["indicator_id"] == "mort_alert"].set_index("trust_code")
    per_trust = res.alerts[in_quarter].groupby("trust_code").size()
    np.testing.assert_array_equal(
        counts["numerator"].to_numpy(), per_trust.reindex(counts.index, fill_value=0).to_numpy()
    )


@pytest.mark.slow  # MLflow's sqlite migrations take ~15 s
def test_mlflow_logging(model, tmp_path):
    import mlflow

    from surveillance.mortality.tracking import log_risk_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rid = log_risk_model(model, uri, artifact_location=tmp_path / "artifacts")
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(rid)
    g = model.groups_.set_index("diagnosis_group")
    assert run.data.metrics["c_statistic/G000"] == pytest.approx(g.loc["G000", "c_statistic"])
    assert run.data.params["n_spells"] == str(int(g["spells"].sum()))
    files = {a.path for a in mlflow.MlflowClient(tracking_uri=uri).list_artifacts(rid)}
    assert {"coefficients.csv", "groups.csv", "risk_model.json"} <= files
