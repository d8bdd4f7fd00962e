"""The learned banding model: features by hand, calibration, band sizes, training table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surveillance.banding.learned import LearnedBandingModel, evaluate, training_table
from surveillance.errors import SurveillanceError

DOMAINS = ["safe", "effective", "caring", "responsive", "well_led"]


def test_domain_features_by_hand():
    flags = pd.DataFrame(
        {
            "trust_code": ["A"] * 5 + ["B"] * 2,
            "indicator_id": ["i1", "i2", "i3", "i4", "i5", "i1", "i2"],
            "domain": ["safe", "safe", "safe", "caring", "caring", "safe", "safe"],
            "type": ["score", "ratio", "rule", "count", "cusum_z", "score", "ratio"],
            "z_adjusted": [1.0, 9.0, np.nan, 2.5, -1.0, -0.5, np.nan],
            "flag": [
                "no_evidence",
                "elevated_risk",
                "elevated_risk",
                "risk",
                "elevated_risk",
                "no_evidence",
                "not_applicable",
            ],
        }
    )
    trusts = pd.DataFrame(
        {
            "trust_code": ["A", "B"],
            "trust_name": ["a", "b"],
            "region": "X",
            "last_rating": ["Inadequate", ""],
        }
    )
    X = LearnedBandingModel().features(flags, trusts).loc["A"]
    # safe: z-scored rows 1.0 and 9.0 clipped to 6 -> mean 3.5, max 6, 1 of 2 over 2.0;
    # flagged 2 of 3 applicable rows (the rule counts in share_flagged, not in the z aggregates)
    assert X["safe_mean_z"] == pytest.approx(3.5)
    assert X["safe_max_z"] == pytest.approx(6.0)
    assert X["safe_share_over"] == pytest.approx(0.5)
    assert X["safe_share_flagged"] == pytest.approx(2 / 3)
    assert X["caring_mean_z"] == pytest.approx(0.75)
    assert X["caring_share_flagged"] == pytest.approx(1.0)
    assert X["effective_mean_z"] == 0.0  # no indicator in the domain: neutral
    assert X["alerts"] == 1 and X["rule_flags"] == 1
    assert X["prev_rating"] == 3.0 and X["prev_rating_missing"] == 0.0
    B = LearnedBandingModel().features(flags, trusts).loc["B"]
    assert B["safe_mean_z"] == pytest.approx(-0.5)
    assert B["prev_rating_missing"] == 1.0


def _world(seed, n=161, k=60):
    rng = np.random.default_rng(seed)
    codes = [f"R{t:03d}" for t in range(n)]
    quality = rng.normal(size=n)
    rows = []
    for t, c in enumerate(codes):
        z = 0.8 * quality[t] + rng.normal(size=k)
        flag = np.where(z > 3, "elevated_risk", np.where(z > 1.96, "risk", "no_evidence"))
        rows += [
            {
                "trust_code": c,
                "indicator_id": f"I{i:02d}",
                "domain": DOMAINS[i % 5],
                "type": "score",
                "z_adjusted": z[i],
                "z_sd": 0.7,
                "flag": flag[i],
            }
            for i in range(k)
        ]
    y = (quality + rng.normal(scale=0.5, size=n) > 0.3).astype(int)
    trusts = pd.DataFrame({"trust_code": codes, "trust_name": codes, "region": "X"})
    return pd.DataFrame(rows), trusts, y, quality


def test_calibrated_and_discriminating_on_held_out_world():
    model = LearnedBandingModel()
    f1, t1, y1, _ = _world(1)
    f2, t2, y2, _ = _world(2)
    model.fit(model.features(f1, t1), y1)
    risk = model.predict_proba(model.features(f2, t2))
    res = evaluate(risk, y2)
    assert res["auc"] > 0.85
    # calibrated: better Brier than the prevalence alone, and the mean prediction is close
    assert res["brier"] < y2.mean() * (1 - y2.mean()) * 0.7
    assert abs(risk.mean() - y2.mean()) < 0.08
    assert sum(r["n"] for r in res["reliability"]) == len(y2)


def test_bands_by_risk_with_given_sizes_and_overrides():
    f, t, y, quality = _world(3)
    t = t.assign(special_measures=[i < 2 for i in range(len(t))])
    model = LearnedBandingModel()
    model.fit(model.features(f, t), y)
    sizes = [24, 20, 30, 25, 24, 38]
    bands = model.predict_bands(f, t, "2013Q3", band_sizes=sizes)
    counts = [int((bands["band"] == str(k)).sum()) for k in range(1, 7)]
    assert counts == sizes  # the two special-measures trusts take band-1 places
    assert set(bands.loc[bands["trust_code"].isin(["R000", "R001"]), "band"]) == {"1"}
    ranked = bands[~bands["trust_code"].isin(["R000", "R001"])]
    top = ranked.sort_values("risk", ascending=False).head(22)
    assert (top["band"] == "1").all()
    # worse latent quality -> higher band priority on average
    b = ranked["band"].astype(int).to_numpy()
    q = pd.Series(quality, index=t["trust_code"]).loc[ranked["trust_code"]].to_numpy()
    assert np.corrcoef(b, q)[0, 1] < -0.5
    with_probs = model.predict_bands(f, t, "2013Q3", band_sizes=sizes, n_draws=100, seed=1)
    p = with_probs[[f"p_band_{k}" for k in range(1, 7)]]
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_training_table_uses_rating_before_target():
    f, t, _, _ = _world(4, n=6, k=10)
    ins = pd.DataFrame(
        {
            "trust_code": ["R000", "R000", "R001", "R002", "R002"],
            "inspection_date": [
                "2011-01-01",
                "2013-02-01",
                "2012-05-05",
                "2010-01-01",
                "2014-01-01",
            ],
            "overall_rating": ["Inadequate", "Good", "Requires improvement", "Good", "Inadequate"],
        }
    )
    model = LearnedBandingModel()
    X, y, targets = training_table(model, f, t, ins, before="2013-09-30")
    assert X.index.tolist() == ["R000", "R001", "R002"]
    assert y.tolist() == [0, 1, 0]  # R002's 2014 inspection is after the cut-off
    assert X.loc["R000", "prev_rating"] == 3.0  # Inadequate in 2011, target Good in 2013
    assert X.loc["R001", "prev_rating_missing"] == 1.0
    X2, y2, _ = training_table(model, f, t, ins, after="2012-01-01")
    assert X2.index.tolist() == ["R000", "R001", "R002"] and y2.tolist() == [0, 1, 1]


def test_unfitted_and_bad_inputs():
    f, t, y, _ = _world(5, n=10, k=5)
    model = LearnedBandingModel()
    with pytest.raises(SurveillanceError, match="not fitted"):
        model.predict_proba(model.features(f, t))
    with pytest.raises(ValueError, match="both classes"):
        model.fit(model.features(f, t), np.zeros(10))
    bad = t.assign(last_rating=["Excellent"] + [""] * 9)
    with pytest.raises(SurveillanceError, match="last_rating"):
        model.features(f, bad)


def test_band_probabilities_without_sampling_error_reproduce_point_bands():
    f, t, y, _ = _world(6, n=80, k=20)
    model = LearnedBandingModel()
    model.fit(model.features(f, t), y)
    bands = model.predict_bands(f.assign(z_sd=0.0), t, "2013Q3", n_draws=20, seed=0)
    p = bands[[f"p_band_{k}" for k in range(1, 7)]].to_numpy()
    assert (p.max(axis=1) == 1.0).all()
    assert ((p.argmax(axis=1) + 1) == bands["band"].astype(int).to_numpy()).all()


def test_time_split_validation_fits_early_and_scores_late_inspections():
    from surveillance.banding.learned import time_split_validation

    f, t, _, quality = _world(7, n=120, k=30)
    rng = np.random.default_rng(7)
    rows = []
    for code, q in zip(t["trust_code"], quality, strict=True):
        for date in ("2010-06-01", "2012-06-01"):
            noisy = q + rng.normal(scale=0.5)
            rating = (
                "Inadequate" if noisy > 1.2 else "Requires improvement" if noisy > 0.2 else "Good"
            )
            rows.append((code, date, rating))
    ins = pd.DataFrame(rows, columns=["trust_code", "inspection_date", "overall_rating"])
    res = time_split_validation(None, [(f, t, ins, [])], "2011-12-31")
    late = ins[ins["inspection_date"] > "2011-12-31"]
    assert res["n"] == len(late)
    assert res["prevalence"] == pytest.approx(late["overall_rating"].ne("Good").mean())
    assert res["auc"] > 0.8 and res["brier"] < 0.2
