"""Band probabilities (analytic single-indicator cases), explanation, movement, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from surveillance.banding.config import CQC2013Config
from surveillance.banding.cqc2013 import CQC2013Model
from surveillance.banding.explain import add_movement, contributions, mark_persistence
from surveillance.banding.uncertainty import band_probabilities

CUTS = (0.9, 0.7, 0.4, 0.2, 0.1)  # one indicator: P = 1 -> band 1, 0.5 -> band 3, 0 -> band 6


def _single(code, z, z_sd, kind="score", flag="risk", **extra):
    return {
        "trust_code": code,
        "indicator_id": "I0",
        "domain": "safe",
        "type": kind,
        "z_adjusted": z,
        "z_sd": z_sd,
        "flag": flag,
        **extra,
    }


def test_single_indicator_probabilities_match_normal_tails():
    flags = pd.DataFrame(
        [
            _single("A", 2.5, 1.0),
            _single("B", -1.0, 0.5, flag="no_evidence"),
            _single("C", 3.5, 0.4, flag="elevated_risk"),
        ]
    )
    p = band_probabilities(flags, ["A", "B", "C"], CUTS, n_draws=40000, seed=1)
    # A: z* ~ N(2.5, 1): band 1 if z* > 3, band 3 if 1.96 < z* <= 3, else band 6
    want_a = [
        stats.norm.sf(0.5),
        0,
        stats.norm.cdf(0.5) - stats.norm.cdf(-0.54),
        0,
        0,
        stats.norm.cdf(-0.54),
    ]
    np.testing.assert_allclose(p.loc["A"].to_numpy(), want_a, atol=0.01)
    # B: z* ~ N(-1, 0.25): P(z* > 1.96) = sf(5.92) ~ 0
    assert p.loc["B", "p_band_6"] > 0.999
    # C: N(3.5, 0.16): P(z* > 3) = sf(-1.25)
    np.testing.assert_allclose(p.loc["C", "p_band_1"], stats.norm.sf(-1.25), atol=0.01)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    again = band_probabilities(flags, ["A", "B", "C"], CUTS, n_draws=40000, seed=1)
    pd.testing.assert_frame_equal(p, again)


def test_posterior_predictive_shrinks_towards_target():
    # z_sd^2 = 0.36 -> B = 0.64, centre 0.64 * 4 = 2.56, sd = 0.6 * sqrt(1.64)
    flags = pd.DataFrame([_single("A", 4.0, 0.6, flag="elevated_risk")])
    p = band_probabilities(flags, ["A"], CUTS, n_draws=40000, seed=2, method="posterior_predictive")
    sd = 0.6 * np.sqrt(1.64)
    np.testing.assert_allclose(p.loc["A", "p_band_1"], stats.norm.sf((3.0 - 2.56) / sd), atol=0.01)


def test_counts_use_p_value_deviates_and_rules_are_fixed():
    flags = pd.DataFrame(
        [
            _single(
                "A",
                np.nan,
                np.nan,
                kind="count",
                flag="risk",
                p_value=0.01,
                p_risk=0.025,
                p_elevated=0.001,
            ),
            _single("B", np.nan, np.nan, kind="rule", flag="elevated_risk"),
            _single("C", np.nan, np.nan, kind="external_band", flag="no_evidence"),
        ]
    )
    p = band_probabilities(flags, ["A", "B", "C"], CUTS, n_draws=40000, seed=3)
    c = stats.norm.isf(0.01)
    want_band1 = stats.norm.sf(stats.norm.isf(0.001) - c)
    want_band6 = stats.norm.cdf(stats.norm.isf(0.025) - c)
    np.testing.assert_allclose(p.loc["A", "p_band_1"], want_band1, atol=0.01)
    np.testing.assert_allclose(p.loc["A", "p_band_6"], want_band6, atol=0.01)
    assert p.loc["B", "p_band_1"] == 1.0
    assert p.loc["C", "p_band_6"] == 1.0


def test_override_trusts_get_their_override_deterministically():
    flags = pd.DataFrame([_single(c, 2.5, 1.0) for c in ("A", "B", "C")])
    trusts = pd.DataFrame(
        {
            "trust_code": ["A", "B", "C"],
            "trust_name": ["a", "b", "c"],
            "region": "X",
            "special_measures": [True, False, False],
            "last_inspection_date": ["", "2013-09-01", ""],
        }
    )
    cfg = CQC2013Config.model_validate({"cut_points": CUTS, "overrides": {"min_applicable": 1}})
    bands = CQC2013Model(cfg).predict_bands(flags, trusts, "2013Q3").set_index("trust_code")
    assert bands.loc["A", "band"] == "1"
    assert bands.loc["A", [f"p_band_{k}" for k in range(1, 7)]].tolist() == [1, 0, 0, 0, 0, 0]
    assert bands.loc["B", "band"] == "recently_inspected"
    assert bands.loc["B", [f"p_band_{k}" for k in range(1, 7)]].isna().all()
    np.testing.assert_allclose(bands.loc["C", [f"p_band_{k}" for k in range(1, 7)]].sum(), 1.0)


def test_contributions_rank_by_points_then_magnitude():
    flags = pd.DataFrame(
        {
            "trust_code": ["A"] * 4 + ["B"],
            "indicator_id": ["i1", "i2", "i3", "i4", "i1"],
            "domain": ["safe", "caring", "safe", "effective", "safe"],
            "z_adjusted": [2.2, 5.0, 3.4, 0.3, 2.0],
            "flag": ["risk", "elevated_risk", "elevated_risk", "no_evidence", "risk"],
        }
    )
    got = contributions(flags, top_n=2)
    assert got.columns.tolist() == [
        "trust_code",
        "indicator_id",
        "domain",
        "points",
        "z_adjusted",
        "rank",
    ]
    a = got[got["trust_code"] == "A"]
    assert a["indicator_id"].tolist() == ["i2", "i3"] and a["points"].tolist() == [2, 2]
    assert a["rank"].tolist() == [1, 2]
    assert got[got["trust_code"] == "B"]["indicator_id"].tolist() == ["i1"]


def test_movement_up_means_higher_priority():
    now = pd.DataFrame(
        {"trust_code": list("ABCDEF"), "band": ["2", "4", "3", "1", "3", "recently_inspected"]}
    )
    prev = pd.DataFrame(
        {"trust_code": list("ABCEF"), "band": ["3", "2", "3", "not_banded", "recently_inspected"]}
    )
    got = add_movement(now, prev).set_index("trust_code")
    assert got["movement"].to_dict() == {
        "A": "up",
        "B": "down",
        "C": "same",
        "D": "new",
        "E": "new",
        "F": "same",
    }
    assert got.loc["A", "previous_band"] == "3" and got.loc["D", "previous_band"] == ""
    assert (add_movement(now, None)["movement"] == "new").all()


def test_persistence_marks_consecutive_flags():
    now = pd.DataFrame(
        {
            "trust_code": ["A", "A", "B"],
            "indicator_id": ["i1", "i2", "i1"],
            "flag": ["risk", "elevated_risk", "risk"],
        }
    )
    prev = pd.DataFrame(
        {
            "trust_code": ["A", "A", "B"],
            "indicator_id": ["i1", "i2", "i1"],
            "flag": ["elevated_risk", "no_evidence", "not_applicable"],
        }
    )
    got = mark_persistence(now, prev)
    assert got["persistent"].tolist() == [True, False, False]
