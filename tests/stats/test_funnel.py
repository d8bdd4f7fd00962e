"""funnel_table / funnel_limits / assess_arrays against FunnelPlotR and independent computations.

FunnelPlotR known bug (CQC method): its overdispersed limits for standardised ratios are computed
on the square-root scale (1 +- z sqrt(s^2 + tau2)) and never squared back to the ratio scale, and
its `outlier` column compares the *ratio* with those sqrt-scale limits. We square the limits, so
for CQC we assert ours == max(0, oracle OD limit)^2, and we derive the expected outlier flags
independently: the oracle's transformed Y (sqrt(O/E)) against the oracle's transformed-scale
99.8% limits. Its SHMI limits are on the ratio scale and its SHMI flags are right: ours must equal
them. From the data, FunnelPlotR's `outlier` uses the 99.8% overdispersed limits (its default
`limit = 99`), see test_funnelplotr_outlier_rule_is_od_998.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from surveillance.errors import ContractError
from surveillance.stats.funnel import assess_arrays, funnel_limits, funnel_table

RTOL = 1e-6
TOY_PHI = {"CQC": 2.327178, "SHMI": 2.948033}
TOY_TAU2 = {"CQC": 0.00343978, "SHMI": 0.0194775}


def _od(ref: pd.DataFrame, method: str, col: str) -> np.ndarray:
    """The oracle's OD limit on the ratio scale (squared for CQC: see module docstring)."""
    x = ref[col].to_numpy()
    return np.maximum(x, 0.0) ** 2 if method == "CQC" else x


def _expected_flags(ref: pd.DataFrame, method: str) -> np.ndarray:
    """Outlier at 99.8% OD from the oracle's transformed Y and transformed-scale limits."""
    lo, hi = ref["OD99LCL"].to_numpy(), ref["OD99UCL"].to_numpy()
    if method == "SHMI":
        lo, hi = np.log(lo), np.log(hi)
    y = ref["Y"].to_numpy()
    return ((y < lo) | (y > hi)).astype(int)


def _check_against_oracle(table: pd.DataFrame, ref: pd.DataFrame, method: str) -> None:
    assert table["unit"].tolist() == ref["group"].tolist()
    finite = np.isfinite(ref["Y"].to_numpy())
    np.testing.assert_allclose(table["Y"][finite], ref["Y"][finite], rtol=RTOL)
    np.testing.assert_allclose(table["s"], ref["s"], rtol=RTOL)
    np.testing.assert_allclose(table["z"][finite], ref["Uzscore"][finite], rtol=RTOL)
    used = ref["Wuzscore"].notna().to_numpy()
    np.testing.assert_array_equal(table["used"].to_numpy(), used)
    np.testing.assert_allclose(table["z_trimmed"][used], ref["Wuzscore"][used], rtol=RTOL)
    if method == "SHMI":
        np.testing.assert_array_equal(table["rank"], ref["rk"])
        np.testing.assert_array_equal(table["sp"], ref["sp"])
    for ours, theirs in (
        ("lower95", "OD95LCL"),
        ("upper95", "OD95UCL"),
        ("lower998", "OD99LCL"),
        ("upper998", "OD99UCL"),
    ):
        np.testing.assert_allclose(table[ours], _od(ref, method, theirs), rtol=RTOL, err_msg=ours)
    for ours, theirs in (
        ("lower95_unadjusted", "LCL95"),
        ("upper95_unadjusted", "UCL95"),
        ("lower998_unadjusted", "LCL99"),
        ("upper998_unadjusted", "UCL99"),
    ):
        np.testing.assert_allclose(table[ours], ref[theirs], rtol=RTOL, err_msg=ours)
    np.testing.assert_array_equal(table["outlier"], _expected_flags(ref, method))
    if method == "SHMI":
        np.testing.assert_array_equal(table["outlier"], ref["outlier"])
    # z_adjusted by an independent computation from the oracle's own numbers
    tau2 = table.attrs["tau2"]
    z_adj = (ref["Y"] - ref["target_transformed"]) / np.sqrt(ref["s"] ** 2 + tau2)
    np.testing.assert_allclose(table["z_adjusted"][finite], z_adj[finite], rtol=RTOL)


@pytest.mark.parametrize("method", ["CQC", "SHMI"])
def test_toy6_matches_funnelplotr(oracle_dir, method):
    inp = pd.read_csv(oracle_dir / "input_toy6.csv")
    ref = pd.read_csv(oracle_dir / f"funnelplotr_toy6_{method.lower()}_units.csv")
    table = funnel_table(inp, "num", "denom", "group", data_type="SR", sr_method=method)
    assert table.attrs["phi"] == pytest.approx(TOY_PHI[method], abs=5e-7)
    assert table.attrs["tau2"] == pytest.approx(TOY_TAU2[method], abs=5e-8)
    assert table.attrs["trim"] == ("winsorise" if method == "CQC" else "truncate")
    _check_against_oracle(table, ref, method)
    np.testing.assert_allclose(table["ratio"], ref["rr"], rtol=RTOL)


def test_toy6_cqc_flag_differs_from_funnelplotr_only_by_its_bug(oracle_dir):
    """Unit b: ratio 1.339 lies above FunnelPlotR's unsquared 99.8% limit 1.233 but below the
    squared one (1.520): FunnelPlotR flags it, we do not."""
    inp = pd.read_csv(oracle_dir / "input_toy6.csv")
    ref = pd.read_csv(oracle_dir / "funnelplotr_toy6_cqc_units.csv")
    table = funnel_table(inp, "num", "denom", "group", sr_method="CQC")
    assert ref.loc[1, "outlier"] == 1 and table.loc[1, "outlier"] == 0
    assert table.loc[1, "upper998"] == pytest.approx(ref.loc[1, "OD99UCL"] ** 2, rel=RTOL)
    assert table.loc[1, "ratio"] < table.loc[1, "upper998"]


@pytest.mark.parametrize("method", ["CQC", "SHMI"])
def test_300_units_match_funnelplotr(oracle_dir, method):
    inp = pd.read_csv(oracle_dir / "input_ratio_obs_expected.csv")
    ref = pd.read_csv(oracle_dir / f"funnelplotr_sr_{method.lower()}_units.csv")
    table = funnel_table(inp, "obs", "expected", "unit", sr_method=method, zero_correction=None)
    if method == "SHMI":  # FunnelPlotR's SHMI rounds expected to 2 dp
        np.testing.assert_allclose(table["denominator_used"], ref["denominator"], rtol=1e-12)
        np.testing.assert_allclose(table["denominator"], inp["expected"], rtol=1e-12)
    else:
        np.testing.assert_allclose(table["denominator"], ref["denominator"], rtol=1e-12)
    np.testing.assert_allclose(table["ratio"], ref["rr"], rtol=RTOL)
    _check_against_oracle(table, ref, method)
    # phi from the oracle's trimmed z
    used = ref["Wuzscore"].notna()
    assert table.attrs["phi"] == pytest.approx(float(np.mean(ref["Wuzscore"][used] ** 2)), rel=RTOL)


def test_funnelplotr_outlier_rule_is_od_998(oracle_dir):
    """Which limits does FunnelPlotR's `outlier` use? The ratio against the 99.8% OD limits
    (as printed, i.e. unsquared for CQC); the 95% ones would flag other units."""
    for method in ("SHMI", "CQC"):
        ref = pd.read_csv(oracle_dir / f"funnelplotr_sr_{method.lower()}_units.csv")
        rr = ref["rr"]
        rule998 = ((rr < ref["OD99LCL"]) | (rr > ref["OD99UCL"])).astype(int)
        rule95 = ((rr < ref["OD95LCL"]) | (rr > ref["OD95UCL"])).astype(int)
        np.testing.assert_array_equal(ref["outlier"], rule998)
        assert (ref["outlier"] != rule95).any()


def test_shmi_zero_events_default_is_finite_and_flagged(oracle_dir):
    inp = pd.read_csv(oracle_dir / "input_ratio_obs_expected.csv")
    raw = funnel_table(inp, "obs", "expected", "unit", zero_correction=None)
    table = funnel_table(inp, "obs", "expected", "unit")
    u8 = table.index[table["unit"] == "U008"][0]
    assert raw.loc[u8, "z"] == -np.inf
    assert np.isfinite(table.loc[u8, "z"]) and table.loc[u8, "z"] < -50
    assert table.loc[u8, "outlier"] == 1 and table.loc[u8, "direction"] == -1
    assert raw.loc[u8, "outlier"] == 1
    # the unit is truncated either way, so phi and tau2 do not move
    assert table.attrs["phi"] == raw.attrs["phi"] and table.attrs["tau2"] == raw.attrs["tau2"]
    assert not table[["z", "z_adjusted", "outlier"]].isna().any().any()


def test_other_levels_are_named_and_computed():
    df = pd.DataFrame(
        {"u": list("abcdef"), "o": [10, 20, 30, 5, 50, 9], "e": [12, 15, 31, 9, 40, 10.5]}
    )
    table = funnel_table(df, "o", "e", "u", sr_method="CQC", levels=(0.9, 0.999))
    assert {"lower90", "upper90", "lower999", "upper999"} <= set(table.columns)
    assert "lower95" not in table.columns
    z90 = 1.6448536269514722
    spread = np.sqrt(table["s"] ** 2 + table.attrs["tau2"])
    np.testing.assert_allclose(table["upper90"], (1 + z90 * spread) ** 2, rtol=1e-9)
    assert table.attrs["outlier_level"] == 0.999


def _manual_pr(r, n, trim_fraction=0.1):
    """FunnelPlotR's PR method written out longhand, unit by unit."""
    p0 = sum(r) / sum(n)
    t = math.asin(math.sqrt(p0))
    ys = [math.asin(math.sqrt(a / b)) for a, b in zip(r, n, strict=True)]
    ss = [1 / (2 * math.sqrt(b)) for b in n]
    zs = [(y - t) / s for y, s in zip(ys, ss, strict=True)]
    srt = sorted(zs)

    def q(p):
        h = (len(srt) - 1) * p
        lo = math.floor(h)
        return srt[lo] + (h - lo) * (srt[min(lo + 1, len(srt) - 1)] - srt[lo])

    lz, uz = q(trim_fraction), q(1 - trim_fraction)
    zw = [min(max(z, lz), uz) for z in zs]
    i = len(zs)
    phi = sum(z * z for z in zw) / i
    w = [1 / s**2 for s in ss]
    tau2 = (
        0.0 if i * phi < i - 1 else (i * phi - (i - 1)) / (sum(w) - sum(x * x for x in w) / sum(w))
    )
    zadj = [(y - t) / math.sqrt(s * s + tau2) for y, s in zip(ys, ss, strict=True)]
    upper = [math.sin(t + 3.090232306167813 * math.sqrt(s * s + tau2)) ** 2 for s in ss]
    return phi, tau2, zadj, upper


def test_proportion_funnel_matches_longhand():
    rng = np.random.default_rng(21)
    n = rng.integers(50, 2000, 60)
    p = np.clip(rng.normal(0.2, 0.04, 60), 0.01, 0.9)
    r = rng.binomial(n, p)
    df = pd.DataFrame({"unit": [f"T{i:03d}" for i in range(60)], "r": r, "n": n})
    table = funnel_table(df, "r", "n", "unit", data_type="PR")
    phi, tau2, zadj, upper = _manual_pr(list(r.astype(float)), list(n.astype(float)))
    assert table.attrs["phi"] == pytest.approx(phi, rel=1e-10)
    assert table.attrs["tau2"] == pytest.approx(tau2, rel=1e-10)
    np.testing.assert_allclose(table["z_adjusted"], zadj, rtol=1e-10)
    np.testing.assert_allclose(table["upper998"], upper, rtol=1e-10)
    np.testing.assert_allclose(table["ratio"], r / n, rtol=1e-12)


def test_rate_funnel_limits_are_exp_of_log_scale():
    df = pd.DataFrame(
        {
            "unit": list("abcdefgh"),
            "o": [3, 10, 0, 25, 7, 12, 40, 5],
            "d": [1e3, 2e3, 1.5e3, 4e3, 2e3, 3e3, 5e3, 1e3],
        }
    )
    table = funnel_table(df, "o", "d", "unit", data_type="RC")
    t = math.log(df["o"].sum() / df["d"].sum())
    s = np.sqrt(df["o"] / (df["o"] + 0.5) ** 2 + df["d"] / (df["d"] + 0.5) ** 2)
    spread = np.sqrt(s**2 + table.attrs["tau2"])
    np.testing.assert_allclose(table["lower95"], np.exp(t - 1.959963984540054 * spread), rtol=1e-10)
    assert table.attrs["target"] == pytest.approx(df["o"].sum() / df["d"].sum())
    assert not table["z"].isna().any()  # zero events are fine on the +0.5 log scale


def test_rows_of_a_unit_are_summed_and_sorted():
    df = pd.DataFrame({"u": ["b", "a", "b", "c"], "o": [5, 10, 7, 9], "e": [6.0, 9.0, 5.0, 9.5]})
    table = funnel_table(df, "o", "e", "u", sr_method="CQC")
    assert table["unit"].tolist() == ["a", "b", "c"]
    assert table.loc[1, "numerator"] == 12 and table.loc[1, "denominator"] == 11


def test_zero_denominator_unit_is_not_flagged_and_not_used():
    base = pd.DataFrame(
        {"u": list("abcdefg"), "o": [10, 30, 12, 40, 5, 9, 11], "e": [12.0, 20, 11, 30, 9, 8, 10]}
    )
    extra = pd.concat([base, pd.DataFrame({"u": ["h"], "o": [0], "e": [0.0]})], ignore_index=True)
    t1 = funnel_table(base, "o", "e", "u", sr_method="CQC")
    t2 = funnel_table(extra, "o", "e", "u", sr_method="CQC")
    assert t2.attrs["phi"] == pytest.approx(t1.attrs["phi"], rel=1e-12)
    row = t2.iloc[-1]
    assert row["outlier"] == 0 and row["direction"] == 0 and np.isnan(row["z"])


def test_multiplicative_table():
    inp = pd.DataFrame(
        {"u": [f"U{i}" for i in range(50)], "o": np.r_[np.arange(50, 100)], "e": np.full(50, 75.0)}
    )
    table = funnel_table(inp, "o", "e", "u", sr_method="CQC", overdispersion="multiplicative")
    assert table.attrs["method"] == "multiplicative"
    np.testing.assert_allclose(
        table["z_adjusted"], table["z"] / math.sqrt(table.attrs["phi"]), rtol=1e-12
    )
    lim = funnel_limits(table["denominator"].iloc[:1], table=table)
    assert lim["upper998"].iloc[0] == pytest.approx(table["upper998"].iloc[0], rel=1e-12)


def test_bad_input_names_column_and_rows():
    df = pd.DataFrame({"u": ["a", "b", "c"], "o": [1, -2, 3], "e": [1.0, 2.0, "x"]})
    with pytest.raises(ContractError) as err:
        funnel_table(df, "o", "e", "u")
    text = str(err.value)
    assert "column 'o'" in text and "row(s) 2" in text and "non_negative_finite" in text
    assert "column 'e'" in text and "row(s) 3" in text and "numeric" in text
    with pytest.raises(ContractError, match="missing"):
        funnel_table(df, "obs", "e", "u")


@pytest.mark.parametrize(("data_type", "method"), [("SR", "SHMI"), ("SR", "CQC"), ("PR", "SHMI")])
def test_funnel_limits_through_the_units_equal_the_table(oracle_dir, data_type, method):
    if data_type == "SR":
        df = pd.read_csv(oracle_dir / "input_ratio_obs_expected.csv")
        table = funnel_table(df, "obs", "expected", "unit", sr_method=method, shmi_rounding=False)
    else:
        rng = np.random.default_rng(4)
        n = rng.integers(100, 3000, 80)
        df = pd.DataFrame({"unit": range(80), "obs": rng.binomial(n, 0.3), "expected": n})
        table = funnel_table(df, "obs", "expected", "unit", data_type="PR")
    grid = funnel_limits(table["denominator"], table=table)
    for col in ("lower95", "upper95", "lower998", "upper998"):
        np.testing.assert_allclose(grid[col], table[col], rtol=1e-10)
    drawn = funnel_limits(table=table, n_points=50)
    assert len(drawn) == 50 and drawn["denominator"].is_monotonic_increasing
    if data_type == "SR":
        chi = funnel_limits(table["denominator"], method="poisson_chi2")
        np.testing.assert_allclose(chi["lower95"], table["lower95_unadjusted"], rtol=1e-12)


def test_assess_arrays_batches_match_single_calls():
    rng = np.random.default_rng(9)
    e = rng.uniform(5, 300, size=(4, 161))
    o = rng.poisson(e * rng.lognormal(0, 0.15, size=e.shape)).astype(float)
    o[1, :20] = np.nan
    e[1, :20] = np.nan
    batch = assess_arrays(o, e, data_type="SR", sr_method="CQC")
    for i in range(4):
        one = assess_arrays(o[i], e[i], data_type="SR", sr_method="CQC")
        np.testing.assert_allclose(batch.z_adjusted[i], one.z_adjusted, rtol=1e-12)
        assert batch.tau2[i] == pytest.approx(one.tau2, rel=1e-12)
        np.testing.assert_allclose(batch.limits[0.998][1][i], one.limits[0.998][1], rtol=1e-12)


def test_assess_arrays_scores():
    v = np.array([70.0, 72, 75, 78, 80, 60, 90, 74, 76, 75])
    se = np.full(10, 1.0)
    res = assess_arrays(value=v, se=se, data_type="score")
    assert res.target == pytest.approx(v.mean())
    np.testing.assert_allclose(res.z, v - v.mean())
    assert res.tau2 > 0 and np.all(np.abs(res.z_adjusted) < np.abs(res.z) + 1e-12)


def test_reruns_are_identical(oracle_dir):
    df = pd.read_csv(oracle_dir / "input_ratio_obs_expected.csv")
    a = funnel_table(df, "obs", "expected", "unit")
    b = funnel_table(df.sample(frac=1.0, random_state=3), "obs", "expected", "unit")
    pd.testing.assert_frame_equal(a, b)


def test_proportion_numerator_above_denominator_names_rows():
    df = pd.DataFrame({"u": list("abc"), "r": [3, 5, 9], "n": [2, 10, 4]})
    with pytest.raises(ContractError) as err:
        funnel_table(df, "r", "n", "u", data_type="PR")
    assert "row(s) 1, 3" in str(err.value) and "numerator_le_denominator" in str(err.value)


def test_rank_winsorisation_option_reaches_phi():
    rng = np.random.default_rng(30)
    e = rng.uniform(20, 300, 40)
    df = pd.DataFrame({"u": range(40), "o": rng.poisson(e * 1.1), "e": e})
    table = funnel_table(df, "o", "e", "u", sr_method="CQC", winsorise_method="rank")
    z = np.sort(table["z"].to_numpy())
    zw = np.clip(table["z"].to_numpy(), z[4], z[-5])  # k = floor(0.1 * 40) = 4
    assert table.attrs["phi"] == pytest.approx(float(np.mean(zw**2)), rel=1e-12)


def test_score_funnel_limits_on_a_precision_grid():
    lim = funnel_limits([1.0, 4.0], data_type="score", target=75.0, tau2=0.5, levels=(0.95,))
    z = 1.959963984540054
    np.testing.assert_allclose(lim["upper95"], 75 + z * np.sqrt(np.array([1.0, 0.25]) + 0.5))
