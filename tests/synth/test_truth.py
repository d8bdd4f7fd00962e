"""Ground truth is consistent with the data: planted deteriorations, recoding, the true model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surveillance.periods import Quarter
from surveillance.synth.spells import generate_month
from surveillance.synth.world import build_nation

SEED, QUARTER = 2013, "2013Q3"  # as in conftest.py


@pytest.fixture(scope="module")
def national_month():
    """The final month at national scale (~1.3 million spells): every deterioration active."""
    nation = build_nation(SEED, "national", Quarter.parse(QUARTER))
    return nation, generate_month(nation, pd.Period("2013-09", freq="M"))


def test_planted_rows_are_as_specified(truth):
    rows = pd.DataFrame(truth["planted_deteriorations"]["rows"])
    assert 30 <= len(rows) <= 60
    assert rows["odds_ratio"].between(1.5, 3.0).all()
    months = Quarter.parse(QUARTER).lookback_months(12)
    assert rows["start_month"].isin(months).all()
    assert not rows.duplicated(["trust_code", "diagnosis_group"]).any()
    # Across volumes: the planted cells' expected deaths span more than a factor of 10.
    e = rows["expected_deaths_without_deterioration"] + rows["expected_deaths_before_start"]
    assert e.max() > 10 * max(e.min(), 1e-3)


def test_planted_tallies_match_the_spells_file(nation_dir, truth):
    spells = pd.read_parquet(
        nation_dir / QUARTER / "spells.parquet",
        columns=["trust_code", "diagnosis_group", "admission_date", "died_30d"],
    )
    spells["month"] = pd.to_datetime(spells["admission_date"]).dt.strftime("%Y-%m")
    for row in truth["planted_deteriorations"]["rows"]:
        cell = spells[
            (spells["trust_code"] == row["trust_code"])
            & (spells["diagnosis_group"] == row["diagnosis_group"])
        ]
        after = cell[cell["month"] >= row["start_month"]]
        assert len(after) == row["spells_after_start"]
        assert int(after["died_30d"].sum()) == row["deaths_after_start"]
        assert len(cell) - len(after) == row["spells_before_start"]


def test_planted_deteriorations_raise_deaths(national_month):
    """At national scale the planted cells die at about odds_ratio times the model's odds."""
    nation, month = national_month
    n_groups = nation.group_cdf.shape[1]
    det = nation.deteriorations
    keys = det["trust_index"].to_numpy() * n_groups + det["group_index"].to_numpy()
    planted = np.isin(month.cell, keys)
    o_planted = month.died[planted].sum()
    e_planted = month.p_without_planted[planted].sum()
    o_rest = month.died[~planted].sum()
    e_rest = month.p_without_planted[~planted].sum()
    assert o_rest / e_rest == pytest.approx(1.0, abs=0.02)
    assert o_planted / e_planted > 1.5
    # Expected under the planted odds ratios, computed here from p0 and OR.
    or_by_key = dict(zip(keys, det["odds_ratio"], strict=True))
    odds = np.array([or_by_key[k] for k in month.cell[planted]])
    p0 = month.p_without_planted[planted]
    p1 = odds * p0 / (1 - p0 + odds * p0)
    assert o_planted == pytest.approx(p1.sum(), rel=4 / np.sqrt(p1.sum()))


def test_group_mortality_follows_the_calibrated_model(national_month):
    nation, month = national_month
    table = month.table.select(["diagnosis_group", "died_30d"]).to_pandas()
    observed = table.groupby("diagnosis_group")["died_30d"].agg(["mean", "size"])
    base = pd.Series(nation.groups.base_mortality, index=nation.groups.names)
    big = observed[observed["size"] > 3000]
    # September (no winter term) and trust effects move levels a little; the ordering holds.
    assert np.corrcoef(np.log(big["mean"] + 1e-4), np.log(base[big.index]))[0, 1] > 0.95
    assert table["died_30d"].mean() == pytest.approx(0.034, abs=0.008)


def test_recoding_changes_coding_not_deaths(truth):
    nation = build_nation(SEED, "national", Quarter.parse(QUARTER))
    rec = nation.recoding
    assert set(rec["kind"]) == {"palliative", "comorbidity"}
    assert [r["trust_code"] for r in truth["recoding"]["rows"]] == rec["trust_code"].tolist()
    before = generate_month(nation, pd.Period("2012-01", freq="M"))
    after = generate_month(nation, pd.Period("2013-09", freq="M"))
    for row in rec.itertuples():
        assert pd.Period(row.start_month, freq="M") > pd.Period("2012-01", freq="M")
        cols = ["trust_code", "palliative_care", "died_30d", "comorbidity"]
        b = before.table.select(cols).to_pandas()
        a = after.table.select(cols).to_pandas()
        b, a = b[b["trust_code"] == row.trust_code], a[a["trust_code"] == row.trust_code]
        if row.kind == "palliative":
            pb = b.loc[b["died_30d"], "palliative_care"].mean()
            pa = a.loc[a["died_30d"], "palliative_care"].mean()
            assert pa > pb + 0.15 and pa == pytest.approx(0.65, abs=0.1)
        else:
            assert a["comorbidity"].mean() > b["comorbidity"].mean() + 0.8
        # Deaths are generated from the true model, which the coding does not enter.
        assert a["died_30d"].mean() == pytest.approx(b["died_30d"].mean(), abs=0.015)


def test_latent_quality_correlated_and_failing_lower(truth):
    values = truth["latent_quality"]["values"][QUARTER]
    frame = pd.DataFrame(values).T
    failing = frame.index.isin(truth["failing_trusts"])
    corr = frame[~failing].corr().to_numpy()
    off = corr[np.triu_indices(5, 1)]
    assert 0.3 < off.mean() < 0.7  # configured 0.5
    # Configured failing shift: -1.0 (caring) to -1.8 (well-led) sd units.
    assert (frame[failing].mean() < frame[~failing].mean() - 0.5).all()
    assert (frame[failing].mean() - frame[~failing].mean()).mean() < -1.0
    prev = pd.DataFrame(truth["latent_quality"]["values"]["2013Q2"]).T
    drift = (frame - prev.loc[frame.index]).to_numpy()
    assert 0.0 < np.abs(drift).mean() < 0.2  # drifts slightly between quarters


def test_risk_model_recorded(truth):
    model = truth["risk_model"]
    assert model["outcome"] == "died_30d"
    assert len(model["intercepts"]) > 100
    assert model["coefficients"]["emergency"] > 0 and model["coefficients"]["age_per_decade"] > 0


def test_palliative_recoding_shows_in_the_data_quality_indicator(nation_dir, truth):
    ind = pd.read_csv(nation_dir / QUARTER / "indicators.csv", dtype={"band": str})
    g = ind[ind["indicator_id"] == "dq_palliative_coding"].set_index("trust_code")
    share = (g["numerator"] / g["denominator"]).sort_values(ascending=False)
    recoders = [r["trust_code"] for r in truth["recoding"]["rows"] if r["kind"] == "palliative"]
    for code in recoders:
        if code in share.index:
            assert share.index.get_loc(code) < 10, (code, share[code])
