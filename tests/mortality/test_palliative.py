"""The alert charts' palliative adjustment at the trust's phase I coding rate
(surveillance.mortality.palliative)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surveillance.mortality.encode import encode_spells
from surveillance.mortality.palliative import PRIOR_CODED, palliative_counts, palliative_rates
from surveillance.mortality.partials import fit_alert_model
from surveillance.mortality.risk_model import RiskModel
from surveillance.mortality.simulate import simulate_spells
from surveillance.mortality.spec import ALERT_SPEC


def test_rates_are_group_rate_times_the_trust_coding_ratio():
    counts = pd.DataFrame(
        {
            "trust_code": ["A", "A", "B", "B", "A"],
            "diagnosis_group": ["g1", "g2", "g1", "g2", "g1"],
            "n": [100, 300, 200, 100, 100],  # A/g1 arrives in two chunks
            "k": [10, 6, 2, 4, 10],
        }
    )
    r = palliative_rates(counts)
    # pi_g: g1 22 / 400, g2 10 / 400
    assert r.group_rate == pytest.approx([22 / 400, 10 / 400])
    # r_t = (K_t + a) / (sum_g N_tg pi_g + a): A codes 26 of 200 * 0.055 + 300 * 0.025 expected
    exp_a = 200 * 22 / 400 + 300 * 10 / 400
    exp_b = 200 * 22 / 400 + 100 * 10 / 400
    assert r.trust_ratio == pytest.approx(
        [(26 + PRIOR_CODED) / (exp_a + PRIOR_CODED), (6 + PRIOR_CODED) / (exp_b + PRIOR_CODED)]
    )
    assert r.national_rate == pytest.approx(32 / 800)
    # the same counts in any order or split give the same rates
    again = palliative_rates(counts.sample(frac=1.0, random_state=3))
    assert np.array_equal(again.trust_ratio, r.trust_ratio)


@pytest.fixture(scope="module")
def coded_deaths():
    """A nation whose trusts code deaths palliative at very different rates (the simulator codes
    far more deaths than survivors), with a trust that recodes in the monitored year."""
    sim = simulate_spells(n_spells=300_000, n_trusts=30, n_groups=6, seed=4)
    return sim.spells


def test_chart_risk_ignores_palliative_codes_given_in_the_window(coded_deaths):
    spells = coded_deaths
    model = fit_alert_model(spells, "2013Q3", RiskModel(ALERT_SPEC))
    enc, pattern = model.encode(spells)
    first_window = pd.Timestamp("2012-10-01")
    recoded = spells.copy()
    in_window = recoded["discharge_date"] >= first_window
    # a trust codes every death of the monitored year palliative: its own-code risks jump, the
    # chart's (phase I rate) do not move at all
    trust = sorted(spells["trust_code"].unique())[0]
    target = in_window & (recoded["trust_code"] == trust) & recoded["died_30d"]
    recoded.loc[target, "palliative_care"] = True
    enc2, pattern2 = model.encode(recoded)
    own_before = model.predict_encoded(enc, pattern)
    own_after = model.predict_encoded(enc2, pattern2)
    rows = target.to_numpy()
    assert (own_after[rows] >= own_before[rows]).all() and own_after[rows].sum() > 1.5 * own_before[
        rows
    ].sum()
    assert np.array_equal(
        model.chart_prediction(enc, pattern), model.chart_prediction(enc2, pattern2)
    )


def test_phase_one_counts_match_an_independent_count(coded_deaths):
    spells = coded_deaths
    model = fit_alert_model(spells, "2013Q3", RiskModel(ALERT_SPEC))
    enc = encode_spells(spells, "died_30d", "discharge_date")
    phase1 = (spells["discharge_date"] >= "2010-10-01") & (spells["discharge_date"] < "2012-10-01")
    sub = pd.DataFrame(
        {
            "trust": spells.loc[phase1, "trust_code"].astype(str),
            "group": spells.loc[phase1, "diagnosis_group"].astype(str),
            "coded": spells.loc[phase1, "palliative_care"].astype(bool),
        }
    )
    k_g = sub.groupby("group")["coded"].mean()
    assert model.palliative_rates_.group_rate == pytest.approx(k_g.sort_index().to_numpy())
    by_trust = sub.assign(pi=sub["group"].map(k_g)).groupby("trust")
    ratio = (by_trust["coded"].sum() + PRIOR_CODED) / (by_trust["pi"].sum() + PRIOR_CODED)
    assert model.palliative_rates_.trust_ratio == pytest.approx(ratio.sort_index().to_numpy())
    counts = palliative_counts(enc, phase1.to_numpy())
    assert int(counts["n"].sum()) == int(phase1.sum())
