"""The CQC-2013 replica on a fixed hand-made table, overrides, band counts, configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from surveillance.banding.config import CQC2013Config, load_banding_config, load_cqc2013_config
from surveillance.banding.cqc2013 import CQC2013Model
from surveillance.banding.scoring import (
    BANDS_COLUMNS,
    band_from_proportion,
    bands_by_rank,
    calibrate_cut_points,
    rescale_sizes,
)
from surveillance.errors import ConfigError, SurveillanceError

CUTS = (0.30, 0.20, 0.12, 0.06, 0.02)


def _config(**overrides) -> CQC2013Config:
    base = {
        "cut_points": CUTS,
        "overrides": {
            "special_measures_band": 1,
            "recent_inspection_months": 6,
            "min_applicable": 4,
        },
    }
    base.update(overrides)
    return CQC2013Config.model_validate(base)


# trust -> list of flags over indicators I0..I9 (hand-made)
TABLE = {
    "A": ["elevated_risk"] * 4 + ["no_evidence"] * 6,  # S=8, M=20, P=0.40 -> band 1
    "B": ["elevated_risk", "risk", "risk"] + ["no_evidence"] * 7,  # S=4, P=0.20 -> band 2 (tie)
    "C": ["risk", "risk", "risk"] + ["no_evidence"] * 7,  # S=3, P=0.15 -> band 3
    "D": ["risk"] + ["no_evidence"] * 7 + ["not_applicable"] * 2,  # S=1, M=16, P=0.0625 -> 4
    "E": ["risk"] + ["no_evidence"] * 9,  # S=1, M=20, P=0.05 -> band 5
    "F": ["no_evidence"] * 10,  # P=0 -> band 6
    "G": ["no_evidence"] * 10,  # special measures -> band 1
    "H": ["elevated_risk"] * 5 + ["no_evidence"] * 5,  # recently inspected
    "J": ["elevated_risk"] * 3 + ["not_applicable"] * 7,  # 3 applicable < 4 -> not_banded
}
DOMAINS = ["safe", "effective", "caring", "responsive", "well_led"]


def hand_flags(table=TABLE) -> pd.DataFrame:
    rows = []
    for code, flags in table.items():
        for k, f in enumerate(flags):
            z = {"no_evidence": 0.0, "risk": 2.5, "elevated_risk": 4.0, "not_applicable": np.nan}[f]
            rows.append(
                {
                    "trust_code": code,
                    "indicator_id": f"I{k}",
                    "domain": DOMAINS[k % 5],
                    "type": "proportion",
                    "z_adjusted": z,
                    "z_sd": 0.5,
                    "flag": f,
                }
            )
    return pd.DataFrame(rows)


def hand_trusts() -> pd.DataFrame:
    codes = list(TABLE)
    return pd.DataFrame(
        {
            "trust_code": codes,
            "trust_name": [f"Trust {c}" for c in codes],
            "region": "London",
            "special_measures": [c == "G" for c in codes],
            "last_inspection_date": ["2013-08-15" if c == "H" else "2012-01-10" for c in codes],
            "last_rating": "",
        }
    )


def test_replica_hand_computed_bands():
    bands = CQC2013Model(_config(), uncertainty=False).predict_bands(
        hand_flags(), hand_trusts(), "2013Q3"
    )
    assert list(bands.columns) == BANDS_COLUMNS
    b = bands.set_index("trust_code")
    assert b["band"].to_dict() == {
        "A": "1",
        "B": "2",
        "C": "3",
        "D": "4",
        "E": "5",
        "F": "6",
        "G": "1",
        "H": "recently_inspected",
        "J": "not_banded",
    }
    assert b.loc["A", "score"] == 8 and b.loc["A", "max_score"] == 20
    assert b.loc["D", "applicable"] == 8 and b.loc["D", "max_score"] == 16
    np.testing.assert_allclose(b.loc["D", "proportion_score"], 1 / 16)
    assert b.loc["B", "risks"] == 2 and b.loc["B", "elevated_risks"] == 1
    assert (b["band_reason"].str.len() > 0).all()
    assert "special measures" in b.loc["G", "band_reason"]
    assert "2013-08-15" in b.loc["H", "band_reason"]
    assert "3 applicable" in b.loc["J", "band_reason"]
    assert b["trust_name"].tolist() == [f"Trust {c}" for c in b.index]


def test_override_windows_and_exclusions():
    trusts = hand_trusts()
    # a 1-month window no longer covers 15 August for a quarter ending 30 September
    model = CQC2013Model(
        _config(
            overrides={
                "special_measures_band": 1,
                "recent_inspection_months": 1,
                "min_applicable": 4,
            }
        ),
        uncertainty=False,
    )
    b = model.predict_bands(hand_flags(), trusts, "2013Q3").set_index("trust_code")
    assert b.loc["H", "band"] == "1"  # P = 10/20
    # an inspection after the quarter end does not count as recent
    later = trusts.assign(last_inspection_date=["2013-10-15"] * len(trusts))
    b2 = (
        CQC2013Model(_config(), uncertainty=False)
        .predict_bands(hand_flags(), later, "2013Q3")
        .set_index("trust_code")
    )
    assert b2.loc["H", "band"] == "1"
    # excluding indicators (below national coverage) removes them from S and M
    b3 = (
        CQC2013Model(_config(), uncertainty=False)
        .predict_bands(hand_flags(), trusts, "2013Q3", excluded=["I0"])
        .set_index("trust_code")
    )
    assert b3.loc["A", "applicable"] == 9 and b3.loc["A", "score"] == 6
    assert b3.loc["J", "applicable"] == 2


def test_band_counts_add_up_on_a_nation():
    rng = np.random.default_rng(3)
    codes = [f"R{k:03d}" for k in range(161)]
    rows = []
    for c in codes:
        z = rng.normal(size=120) + rng.normal() * 0.6
        flags = np.where(z > 3, "elevated_risk", np.where(z > 1.96, "risk", "no_evidence"))
        rows += [
            {
                "trust_code": c,
                "indicator_id": f"I{k}",
                "domain": DOMAINS[k % 5],
                "type": "score",
                "z_adjusted": z[k],
                "z_sd": 0.8,
                "flag": flags[k],
            }
            for k in range(120)
        ]
    flags = pd.DataFrame(rows)
    trusts = pd.DataFrame({"trust_code": codes, "trust_name": codes, "region": "X"})
    bands = CQC2013Model().predict_bands(flags, trusts, "2013Q3")
    assert len(bands) == 161
    assert bands["band"].value_counts().sum() == 161
    assert set(bands["band"]) <= {"1", "2", "3", "4", "5", "6"}
    probs = bands[[f"p_band_{k}" for k in range(1, 7)]]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # the expected band under resampling tracks the point band
    point = bands["band"].astype(int).to_numpy()
    mean_band = probs.to_numpy() @ np.arange(1, 7)
    by_band = pd.Series(mean_band).groupby(point).mean()
    assert by_band.is_monotonic_increasing, by_band
    assert stats.spearmanr(point, mean_band).statistic > 0.6


def test_band_from_proportion_ties_and_nan():
    p = np.array([0.30, 0.2999, 0.2, 0.0, np.nan, 1.0])
    assert band_from_proportion(p, CUTS).tolist() == [1, 2, 2, 6, 0, 1]


def test_calibrated_cut_points_reproduce_band_sizes():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 0.3, size=161)
    sizes = (24, 20, 30, 25, 24, 38)
    cuts = calibrate_cut_points(scores, sizes)
    bands = band_from_proportion(scores, cuts)
    assert np.bincount(bands, minlength=7)[1:].tolist() == list(sizes)


def test_bands_by_rank_and_rescaling():
    assert rescale_sizes((24, 20, 30, 25, 24, 38), 161).tolist() == [24, 20, 30, 25, 24, 38]
    r = rescale_sizes((24, 20, 30, 25, 24, 38), 80)
    assert r.sum() == 80
    risk = pd.Series([0.9, 0.1, 0.5, 0.7, 0.3, 0.2], index=list("abcdef"))
    got = bands_by_rank(risk, (1, 1, 1, 1, 1, 1))
    assert got.to_dict() == {"a": 1, "d": 2, "c": 3, "e": 4, "f": 5, "b": 6}


def test_config_files_validate_and_bad_config_is_named(tmp_path: Path):
    sel = load_banding_config()
    assert sel.champion in ("cqc2013", "learned")
    assert len(sel.cqc2013.cut_points) == 5
    assert sum(sel.cqc2013.band_sizes_reference) == 161
    bad = tmp_path / "cqc2013.yaml"
    bad.write_text("model: cqc2013\ncut_points: [0.1, 0.2, 0.05, 0.04, 0.01]\n")
    with pytest.raises(ConfigError, match="cut_points.*descending"):
        load_cqc2013_config(bad)
    bad.write_text("model: cqc2013\ncut_points: [0.1, 0.08, 0.05, 0.04, 0.01]\nfoo: 1\n")
    with pytest.raises(ConfigError, match="foo"):
        load_cqc2013_config(bad)
    # a trust with no applicable indicator must be not_banded, never band "0"
    bad.write_text(
        "model: cqc2013\ncut_points: [0.1, 0.08, 0.05, 0.04, 0.01]\n"
        "overrides:\n  min_applicable: 0\n"
    )
    with pytest.raises(ConfigError, match="min_applicable"):
        load_cqc2013_config(bad)


def test_bad_flags_rejected():
    flags = hand_flags()
    flags.loc[3, "flag"] = "amber"
    with pytest.raises(SurveillanceError, match="column 'flag'"):
        CQC2013Model(_config(), uncertainty=False).predict_bands(flags, hand_trusts(), "2013Q3")
