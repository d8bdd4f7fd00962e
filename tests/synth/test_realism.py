"""Realism of the synthetic nation: sizes, national rates, overdispersion, case mix, mortality.

phi is recomputed here from METHODS.md sections 1-2 (transformed z, 10% winsorised each tail,
phi = mean z_w^2), independently of the generator and of surveillance.stats.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from surveillance.catalogue import load_catalogue
from surveillance.synth.config import HERE

QUARTER = "2013Q3"  # as in conftest.py


@pytest.fixture(scope="module")
def indicators(nation_dir):
    return pd.read_csv(nation_dir / QUARTER / "indicators.csv", dtype={"band": str})


@pytest.fixture(scope="module")
def spells(nation_dir):
    return pd.read_parquet(nation_dir / QUARTER / "spells.parquet")


def z_scores(g: pd.DataFrame, kind: str) -> np.ndarray:
    """METHODS.md section 1 z against the national target."""
    if kind == "proportion":
        r, n = g["numerator"], g["denominator"]
        y, s = np.arcsin(np.sqrt(r / n)), 1 / (2 * np.sqrt(n))
        target = np.arcsin(np.sqrt(r.sum() / n.sum()))
    elif kind == "ratio":  # CQC sqrt method
        o, e = g["numerator"], g["denominator"]
        y, s, target = np.sqrt(o / e), 1 / (2 * np.sqrt(e)), 1.0
    elif kind == "score":
        y, s, target = g["value"], g["standard_error"], g["value"].mean()
    else:
        raise AssertionError(kind)
    return ((y - target) / s).to_numpy(float)


def phi_winsorised(z: np.ndarray) -> float:
    lo, hi = np.quantile(z, [0.1, 0.9])  # numpy linear = R type 7
    return float(np.mean(np.clip(z, lo, hi) ** 2))


def _kind(catalogue, ident):
    row = catalogue.loc[ident]
    return row["series_type"] if row["type"] == "cusum_z" else row["type"]


def test_trust_sizes(truth):
    sizes = np.array([t["annual_spells_national_scale"] for t in truth["trusts"]])
    assert np.median(sizes) == pytest.approx(60_000, rel=0.05)
    assert sizes.min() >= 10_000 and sizes.max() <= 400_000
    assert sizes.sum() == pytest.approx(15_500_000, rel=0.01)
    assert (sizes > 150_000).sum() >= 10 and (sizes < 25_000).sum() >= 10  # a long right tail
    spec = np.array([t["trust_type"] == "acute_specialist" for t in truth["trusts"]])
    assert np.median(sizes[spec]) < np.median(sizes[~spec])


def test_spell_volume_matches_scale(truth):
    per_year = truth["spells_per_year_england"]
    for q, c in truth["counts"].items():
        assert c["spells"] == pytest.approx(3 * per_year, rel=0.1), q


def test_national_levels_of_known_indicators(indicators):
    def national(ident):
        g = indicators[indicators["indicator_id"] == ident]
        return g["numerator"].sum() / g["denominator"].sum(), g

    readm, _ = national("readm_proportion_30d")
    assert 0.11 < readm < 0.14  # ~12.5% 30-day emergency readmissions
    ae, _ = national("wait_ae_4h")
    assert 0.03 < ae < 0.08  # ~95% seen within 4 hours in 2013
    never = indicators[indicators["indicator_id"] == "never_events"]["numerator"].sum()
    assert 200 < never < 420  # about 300 a year in England (rolling 12 months)


def test_proportions_near_profile_national_rates(indicators):
    catalogue = load_catalogue()
    profiles = yaml.safe_load((HERE / "indicator_profiles.yaml").read_text())
    checked = 0
    for ident, g in indicators.groupby("indicator_id"):
        if _kind(catalogue, ident) != "proportion":
            continue
        if catalogue.loc[ident, "type"] == "cusum_z":
            g = g[g["period_start"] == g["period_start"].max()]
        rate = g["numerator"].sum() / g["denominator"].sum()
        target = profiles[ident]["national"]
        assert abs(rate - target) < max(0.2 * target, 0.01), (ident, rate, target)
        checked += 1
    assert checked >= 40


def test_overdispersion_phi_well_above_one(indicators):
    catalogue = load_catalogue()
    phis = {}
    for ident, g in indicators.groupby("indicator_id"):
        kind = _kind(catalogue, ident)
        if kind not in ("proportion", "ratio", "score"):
            continue
        if catalogue.loc[ident, "type"] == "cusum_z":
            g = g[g["period_start"] == g["period_start"].max()]
        if kind == "ratio" and g["denominator"].median() < 10:
            continue  # too few expected events for the normal approximation
        phis[ident] = phi_winsorised(z_scores(g, kind))
    values = np.array(list(phis.values()))
    assert len(values) >= 90
    assert np.mean(values > 1.2) >= 0.9, sorted(phis.items(), key=lambda kv: kv[1])[:10]
    assert 2.0 < np.median(values) < 50.0


def test_failing_trusts_have_worse_indicators(indicators, truth):
    catalogue = load_catalogue()
    failing = set(truth["failing_trusts"])
    worse = []
    for ident, g in indicators.groupby("indicator_id"):
        kind = _kind(catalogue, ident)
        if kind not in ("proportion", "ratio", "score"):
            continue
        if catalogue.loc[ident, "type"] == "cusum_z":
            g = g[g["period_start"] == g["period_start"].max()]
        sign = 1 if catalogue.loc[ident, "polarity"] == "higher_is_worse" else -1
        z = sign * z_scores(g, kind)
        is_failing = g["trust_code"].isin(failing).to_numpy()
        worse.append(z[is_failing].mean() > z[~is_failing].mean())
    assert np.mean(worse) >= 0.9


def test_failing_trusts_worse_staffing_intelligence_and_ratings(nation_dir, truth):
    failing = set(truth["failing_trusts"])
    st = pd.read_csv(nation_dir / QUARTER / "staffing.csv")
    rn = st[st["staff_group"] == "registered_nurse"]
    fill = rn["actual_hours"] / rn["planned_hours"]
    low = (fill < 0.9).groupby(rn["trust_code"].isin(failing)).mean()
    assert low[True] > 2 * low[False]
    intel = pd.read_csv(nation_dir / QUARTER / "intelligence.csv")
    per = (
        intel.groupby("trust_code")
        .size()
        .reindex([t["trust_code"] for t in truth["trusts"]], fill_value=0)
    )
    assert per[per.index.isin(failing)].mean() > 1.5 * per[~per.index.isin(failing)].mean()
    assert set(intel["source"]) == {
        "whistleblowing",
        "complaint",
        "qsg_concern",
        "coroner_report",
        "healthwatch",
    }
    ins = pd.read_csv(nation_dir / QUARTER / "inspections.csv")
    bad = ins["overall_rating"].isin(["Requires improvement", "Inadequate"])
    by = bad.groupby(ins["trust_code"].isin(failing)).mean()
    assert by[True] > by[False] + 0.3


def test_spell_rules_and_case_mix(spells, nation_dir):
    from surveillance.periods import Quarter

    q = Quarter.parse(QUARTER)
    assert spells["spell_id"].is_unique
    adm = pd.to_datetime(spells["admission_date"])
    dis = pd.to_datetime(spells["discharge_date"])
    assert adm.min() >= q.lookback_start(36) and dis.max() <= q.end and (dis >= adm).all()
    assert (spells["died_30d"] | ~spells["died_in_hospital"]).all()
    assert spells["diagnosis_group"].nunique() > 100
    assert 0.005 < spells["deprivation_quintile"].isna().mean() < 0.05
    assert set(spells["sex"]) == {"M", "F"}
    assert 0.3 < (spells["admission_method"] == "elective").mean() < 0.5
    assert 0.025 < spells["died_30d"].mean() < 0.045  # ~3-4% of spells (SHMI-like)
    assert 0.6 < spells["died_in_hospital"].sum() / spells["died_30d"].sum() < 0.85
    deaths = spells[spells["died_30d"]]
    assert 0.15 < deaths["palliative_care"].mean() < 0.45  # coded on ~a quarter of deaths
    assert deaths["age"].mean() > spells["age"].mean() + 15
    assert deaths["comorbidity"].mean() > spells["comorbidity"].mean()
