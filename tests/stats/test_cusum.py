"""CUSUM paths: the R cusum surgeon-2 oracle, hand-computed short paths, grouped runs, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from surveillance.stats.cusum import (
    grouped_normal_cusum,
    grouped_ra_cusum,
    grouped_ra_cusum_signals,
    normal_cusum,
    poisson_cusum,
    poisson_reference_value,
    ra_cusum,
    ra_weights,
    vlad,
)


@pytest.fixture(scope="module")
def surgeon2(oracle_dir):
    """Surgeon 2's phase II patients with risks from a phase I logistic model fitted here."""
    data = pd.read_csv(oracle_dir / "input_cardiacsurgery_spcadjust.csv", dtype={"surgeon": str})
    data["y"] = ((data["status"] == 1) & (data["time"] <= 30)).astype(int)
    phase1 = data[data["date"] < 730]
    model = sm.GLM(
        phase1["y"], sm.add_constant(phase1["Parsonnet"]), family=sm.families.Binomial()
    ).fit()
    phase2 = data[(data["date"] >= 730) & (data["surgeon"] == "2")]
    # date order; ties keep the file order (a stable sort), as the oracle does
    phase2 = phase2.sort_values("date", kind="stable").reset_index(drop=True)
    phase2["p"] = model.predict(sm.add_constant(phase2["Parsonnet"]))
    oracle = pd.read_csv(oracle_dir / "cusum_racusum_cardiac_surgeon2_phaseII.csv")
    return model.params.to_numpy(), phase2, oracle


def test_phase1_model_matches_reference(surgeon2):
    params, _, _ = surgeon2
    np.testing.assert_allclose(params, [-3.7905, 0.07984], atol=5e-5)


def test_surgeon2_rows_line_up_with_oracle(surgeon2):
    _, phase2, oracle = surgeon2
    assert len(phase2) == len(oracle) == 264
    np.testing.assert_array_equal(phase2["date"], oracle["date"])
    np.testing.assert_array_equal(phase2["Parsonnet"], oracle["parsonnet"])
    np.testing.assert_array_equal(phase2["y"], oracle["y"])
    np.testing.assert_allclose(phase2["p"], oracle["p"], rtol=1e-6)


def test_surgeon2_upper_chart_matches_r_cusum(surgeon2):
    _, phase2, oracle = surgeon2
    path = ra_cusum(phase2["p"], phase2["y"], odds_ratio=2.0, h=4.5, restart="zero")
    np.testing.assert_allclose(path.statistic, oracle["ct_up"], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(path.signal, oracle["signal_up"].astype(bool))
    assert path.signal.sum() == 1


def test_surgeon2_lower_chart_matches_r_cusum(surgeon2):
    _, phase2, oracle = surgeon2
    path = ra_cusum(phase2["p"], phase2["y"], odds_ratio=0.5, h=-4.0, restart="zero")
    np.testing.assert_allclose(path.statistic, oracle["ct_down"], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(path.signal, oracle["signal_down"].astype(bool))
    assert np.all(path.statistic <= 0)


def test_ra_cusum_hand_computed_path_with_half_restart():
    p = np.array([0.1, 0.2, 0.5, 0.5, 0.1])
    y = np.array([1, 1, 1, 0, 1])
    w = np.where(y == 1, np.log(2.0 / (1 + p)), np.log(1.0 / (1 + p)))
    # by hand: X1 = w1, X2 = X1 + w2, X3 = X2 + w3 (>= h = 1.3 -> signal, restart at 0.65), ...
    x1 = w[0]
    x2 = x1 + w[1]
    x3 = x2 + w[2]
    assert x3 >= 1.3 > x2
    x4 = max(0.0, 0.65 + w[3])
    x5 = x4 + w[4]
    path = ra_cusum(p, y, odds_ratio=2.0, h=1.3, restart="half")
    np.testing.assert_allclose(path.statistic, [x1, x2, 0.65, x4, x5], rtol=1e-12)
    np.testing.assert_array_equal(path.signal, [False, False, True, False, x5 >= 1.3])
    np.testing.assert_allclose(ra_weights(p, y, 2.0), w, rtol=1e-12)


def test_normal_cusum_hand_computed():
    z = np.array([1.0, 2.0, -3.0, 4.0, 3.0, 0.0])
    # C: 0.5, 2.0, 0, 3.5, 6.0 > 5.48 -> signal, reset 0; then max(0, -0.5) = 0
    path = normal_cusum(z)
    np.testing.assert_allclose(path.statistic, [0.5, 2.0, 0.0, 3.5, 0.0, 0.0])
    np.testing.assert_array_equal(path.signal, [0, 0, 0, 0, 1, 0])


def test_normal_cusum_signal_is_strictly_above_h():
    at_limit = normal_cusum([6.0], k=0.5, h=5.5)  # C = 5.5 exactly: not a signal (C > h rule)
    assert not at_limit.signal[0] and at_limit.statistic[0] == 5.5
    above = normal_cusum([6.0 + 1e-9], k=0.5, h=5.5)
    assert above.signal[0] and above.statistic[0] == 0.0


def test_poisson_cusum_reference_value_and_path():
    k = poisson_reference_value(2.0, 4.0)
    assert k == pytest.approx(2.0 / np.log(2.0), rel=1e-12)
    counts = np.array([5, 6, 0, 9, 1])
    path = poisson_cusum(counts, 2.0, 4.0, h=8.0)
    expected, s = [], 0.0
    for x in counts:
        s = max(0.0, s + x - k)
        s = 0.0 if s >= 8.0 else s
        expected.append(s)
    np.testing.assert_allclose(path.statistic, expected)
    assert path.signal.tolist() == [False, False, False, True, False]
    lower = poisson_cusum([0, 0, 0, 5], 4.0, 2.0, h=6.0)
    np.testing.assert_allclose(lower.statistic[:2], [k, 2 * k])
    assert lower.signal.tolist() == [False, False, True, False]


def test_vlad_is_cumulative_expected_minus_observed():
    p = np.array([0.1, 0.3, 0.2])
    y = np.array([0, 1, 0])
    np.testing.assert_allclose(vlad(p, y), [0.1, -0.6, -0.4])


def _random_charts(rng, n_charts=40):
    sizes = rng.integers(0, 60, n_charts)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    p = rng.uniform(0.01, 0.5, offsets[-1])
    y = (rng.uniform(size=offsets[-1]) < 1.5 * p).astype(np.int8)
    h = rng.uniform(0.5, 3.0, n_charts)
    return offsets, p, y, h


@pytest.mark.parametrize("restart", ["zero", "half"])
def test_grouped_ra_cusum_equals_per_chart_runs(restart):
    offsets, p, y, h = _random_charts(np.random.default_rng(3))
    grouped = grouped_ra_cusum(offsets, p, y, h, odds_ratio=2.0, restart=restart)
    assert grouped.signal.any()
    for c in range(len(h)):
        a, b = offsets[c], offsets[c + 1]
        one = ra_cusum(p[a:b], y[a:b], 2.0, h[c], restart)
        np.testing.assert_array_equal(grouped.statistic[a:b], one.statistic)
        np.testing.assert_array_equal(grouped.signal[a:b], one.signal)


def test_grouped_normal_cusum_equals_per_chart_runs():
    rng = np.random.default_rng(4)
    sizes = rng.integers(1, 30, 20)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    z = rng.normal(1.0, 1.5, offsets[-1])
    grouped = grouped_normal_cusum(offsets, z, h=3.0)
    for c in range(20):
        a, b = offsets[c], offsets[c + 1]
        one = normal_cusum(z[a:b], h=3.0)
        np.testing.assert_array_equal(grouped.statistic[a:b], one.statistic)


def test_bad_inputs_raise_named_errors():
    with pytest.raises(ValueError, match="p: risks must lie in"):
        ra_cusum([0.1, 1.2], [0, 1])
    with pytest.raises(ValueError, match="y: outcomes must be 0 or 1"):
        ra_cusum([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="length 2"):
        ra_cusum([0.1, 0.2], [0])
    with pytest.raises(ValueError, match="must be negative"):
        ra_cusum([0.1], [0], odds_ratio=0.5, h=4.0)
    with pytest.raises(ValueError, match="odds_ratio"):
        ra_cusum([0.1], [0], odds_ratio=1.0)
    with pytest.raises(ValueError, match="offsets"):
        grouped_ra_cusum([0, 3, 2], [0.1, 0.1], [0, 0], [1.0, 1.0])
    with pytest.raises(ValueError, match="non-finite"):
        normal_cusum([0.0, np.nan])
    with pytest.raises(ValueError, match="restart"):
        ra_cusum([0.1], [0], restart="one")


def test_grouped_validation_names_the_bad_row():
    with pytest.raises(ValueError, match="row 2 has p=nan"):
        grouped_ra_cusum([0, 3], [0.1, 0.2, np.nan], np.array([0, 1, 0], dtype=np.int8), [2.0])
    with pytest.raises(ValueError, match="row 1 has"):
        grouped_ra_cusum([0, 3], [0.1, 0.2, 0.3], np.array([0, 3, 0], dtype=np.int8), [2.0])


@pytest.mark.parametrize("odds_ratio, sign", [(2.0, 1.0), (0.5, -1.0)])
def test_grouped_signals_match_grouped_paths(odds_ratio, sign):
    offsets, p, y, h = _random_charts(np.random.default_rng(8))
    paths = grouped_ra_cusum(offsets, p, y, sign * h, odds_ratio=odds_ratio)
    sig = grouped_ra_cusum_signals(offsets, p, y, sign * h, odds_ratio=odds_ratio)
    np.testing.assert_array_equal(sig.signal, paths.signal)
    counts = np.add.reduceat(paths.signal.astype(int), offsets[:-1]) * (np.diff(offsets) > 0)
    np.testing.assert_array_equal(sig.n_signals, counts)
    for c in range(len(h)):
        if offsets[c + 1] > offsets[c]:
            assert sig.final[c] == paths.statistic[offsets[c + 1] - 1]
        else:
            assert sig.final[c] == 0.0
