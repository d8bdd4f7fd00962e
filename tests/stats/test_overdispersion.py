"""Overdispersion (METHODS.md section 2) against FunnelPlotR and independent computations."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from surveillance.stats.overdispersion import (
    adjust,
    phi_chi2_test,
    phi_estimate,
    quantile_type7,
    shmi_rank_groups,
    tau2_dersimonian_laird,
    tau2_reml,
    truncate_shmi,
    winsorise,
    winsorise_detail,
    z_adjusted_additive,
)
from surveillance.stats.transforms import transform_ratio

RTOL = 1e-6


def _toy(oracle_dir, method):
    inp = pd.read_csv(oracle_dir / "input_toy6.csv")
    ref = pd.read_csv(oracle_dir / f"funnelplotr_toy6_{method.lower()}_units.csv")
    return transform_ratio(inp["num"], inp["denom"], method), ref


def _big(oracle_dir, method):
    inp = pd.read_csv(oracle_dir / "input_ratio_obs_expected.csv")
    ref = pd.read_csv(oracle_dir / f"funnelplotr_sr_{method.lower()}_units.csv")
    ref = ref.set_index("group").loc[inp["unit"]].reset_index()
    e = inp["expected"].round(2) if method == "SHMI" else inp["expected"]
    return transform_ratio(inp["obs"], e, method, zero_correction=None), ref


def test_quantile_type7_equals_numpy_linear():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4, 37))
    for p in (0.1, 0.9, 0.25):
        np.testing.assert_allclose(quantile_type7(z, p), np.quantile(z, p, axis=-1), rtol=1e-14)


def test_quantile_keeps_minus_inf_like_r():
    z = np.array([-np.inf, 0.0, 1.0, 2.0, 3.0, 4.0])
    assert quantile_type7(z, 0.1)[0] == -np.inf  # R: (1 - h) * -Inf + h * 0 = -Inf


@pytest.mark.parametrize("source", ["toy", "big"])
def test_winsorised_z_matches_funnelplotr(oracle_dir, source):
    t, ref = (_toy if source == "toy" else _big)(oracle_dir, "CQC")
    w = winsorise_detail(t.z, 0.1)
    np.testing.assert_allclose(w.z, ref["Wuzscore"], rtol=RTOL)
    np.testing.assert_array_equal(w.winsorised.astype(int), ref["winsorised"])


def test_winsorise_equals_clip_at_numpy_quantiles():
    z = np.random.default_rng(5).standard_t(3, size=161)
    lo, hi = np.quantile(z, [0.1, 0.9])
    np.testing.assert_allclose(winsorise(z, 0.1), np.clip(z, lo, hi), rtol=1e-14)


def test_rank_winsorise_sets_k_extremes_to_next_value():
    z = np.arange(20.0)  # k = floor(0.1 * 20) = 2
    out = winsorise(z, 0.1, method="rank")
    expected = np.clip(z, 2.0, 17.0)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("source", ["toy", "big"])
def test_shmi_rank_groups_and_truncation_match_funnelplotr(oracle_dir, source):
    t, ref = (_toy if source == "toy" else _big)(oracle_dir, "SHMI")
    rank, sp = shmi_rank_groups(t.z, 0.1)
    np.testing.assert_array_equal(rank, ref["rk"])
    np.testing.assert_array_equal(sp, ref["sp"])
    zt = truncate_shmi(t.z, 0.1)
    np.testing.assert_array_equal(np.isnan(zt).astype(int), ref["truncated"])
    keep = ~np.isnan(zt)
    np.testing.assert_allclose(zt[keep], ref["Wuzscore"][keep], rtol=RTOL)


def test_average_ties_in_rank():
    rank, sp = shmi_rank_groups(np.array([1.0, 1.0, 2.0, np.nan, 3.0]), 0.1)
    np.testing.assert_array_equal(rank[[0, 1, 2, 4]], [1.5, 1.5, 3, 4])
    assert np.isnan(rank[3])
    np.testing.assert_array_equal(sp[[0, 1, 2, 4]], np.floor(np.array([1.5, 1.5, 3, 4]) * 2))


@pytest.mark.parametrize(
    ("method", "trim", "phi", "tau2"),
    [("CQC", "winsorise", 2.327178, 0.00343978), ("SHMI", "truncate", 2.948033, 0.0194775)],
)
def test_toy_phi_tau2_match_published_values(oracle_dir, method, trim, phi, tau2):
    t, ref = _toy(oracle_dir, method)
    adj = adjust(t.Y, t.s, t.target, trim=trim)
    # METHODS.md prints 7 significant digits: agree to half a unit of the last one
    assert adj.phi == pytest.approx(phi, abs=5e-7)
    assert adj.tau2 == pytest.approx(tau2, abs=5e-8)
    # and, exactly, with phi and tau2 recomputed from the oracle's own columns
    used = ref["Wuzscore"].notna()
    phi_ref = float(np.mean(ref["Wuzscore"][used] ** 2))
    w = 1 / ref["s"][used] ** 2
    n = used.sum()
    tau2_ref = max(0.0, (n * phi_ref - (n - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    assert adj.phi == pytest.approx(phi_ref, rel=1e-12)
    assert adj.tau2 == pytest.approx(tau2_ref, rel=1e-12)


@pytest.mark.parametrize(("method", "trim"), [("CQC", "winsorise"), ("SHMI", "truncate")])
def test_big_tau2_equals_the_one_behind_funnelplotr_limits(oracle_dir, method, trim):
    """FunnelPlotR does not print tau2 here: recover it from its OD95 upper limit."""
    t, ref = _big(oracle_dir, method)
    adj = adjust(t.Y, t.s, t.target, trim=trim)
    s = ref["s"].to_numpy()
    if method == "SHMI":
        half_width = np.log(ref["OD95UCL"].to_numpy()) / 1.959964
    else:  # FunnelPlotR's CQC OD limit sits on the sqrt scale (known bug)
        half_width = (ref["OD95UCL"].to_numpy() - 1) / 1.959964
    tau2_from_limits = half_width**2 - s**2
    # 1e-5, not 1e-6: inverting the limit amplifies FunnelPlotR's rounded 1.959964 and print digits
    np.testing.assert_allclose(tau2_from_limits, adj.tau2, rtol=1e-5)
    used = ref["Wuzscore"].notna()
    assert adj.phi == pytest.approx(float(np.mean(ref["Wuzscore"][used] ** 2)), rel=1e-10)
    assert adj.n_used == used.sum()


def test_dersimonian_laird_hand_example_and_zero_branch():
    s = np.array([0.1, 0.2, 0.4])
    w = 1 / s**2
    phi = 3.0
    expected = (3 * 3.0 - 2) / (w.sum() - (w**2).sum() / w.sum())
    assert tau2_dersimonian_laird(phi, s) == pytest.approx(expected, rel=1e-12)
    assert tau2_dersimonian_laird(0.5, s) == 0.0  # I phi < I - 1
    # NaN entries are units not used
    assert tau2_dersimonian_laird(phi, np.array([0.1, np.nan, 0.2, 0.4])) == pytest.approx(
        expected, rel=1e-12
    )


def test_reml_maximises_the_restricted_likelihood():
    rng = np.random.default_rng(11)
    s = rng.uniform(0.05, 0.3, 80)
    y = rng.normal(0.1, np.sqrt(s**2 + 0.02))

    def neg_reml(tau2):
        v = s**2 + tau2
        w = 1 / v
        mu = np.sum(w * y) / np.sum(w)
        return 0.5 * (np.sum(np.log(v)) + np.log(np.sum(w)) + np.sum(w * (y - mu) ** 2))

    best = optimize.minimize_scalar(
        neg_reml, bounds=(0, 1), method="bounded", options={"xatol": 1e-12}
    )
    assert tau2_reml(y, s) == pytest.approx(best.x, rel=1e-5)


def test_reml_is_zero_without_heterogeneity():
    s = np.full(50, 0.2)
    y = np.linspace(-0.01, 0.01, 50)
    assert tau2_reml(y, s) == 0.0


# metafor REML values, computed with (R 4.2.2 Patched (2022-11-10 r83330), metafor 3.8.1,
# 2026-11-26):
#   rma(yi = y, sei = s, method = "REML", control = list(threshold = 1e-15, maxiter = 10000))$tau2
# printed with sprintf("%.17g"), on the data of _REML_DATA below (same literals in R). As a
# check, uniroot of the REML score on the same data gave 0.00034836041906096467 (rates) and
# 0.011273682098324043 (log ratios): metafor and the score root agree to ~1e-14 relative.
_DEATHS = np.array([21, 62, 18, 110, 40, 60, 9, 82, 101, 31, 45, 70], dtype=float)
_SPELLS = np.array([420, 610, 250, 1030, 380, 905, 190, 820, 1150, 260, 700, 690], dtype=float)
_OBS = np.array([35, 120, 48, 260, 75, 19, 150, 88, 210, 64], dtype=float)
_EXP = np.array([41.5, 101.2, 50.3, 231.8, 90.4, 15.1, 166.0, 70.2, 228.9, 60.7])
_REML_DATA = {
    # rates of 12 trusts, s from a national rate of 0.08: tau2 ~ 3e-4, as for rate indicators
    "rates": (_DEATHS / _SPELLS, np.sqrt(0.08 * 0.92 / _SPELLS), 0.00034836041906098977),
    # log(O/E) of 10 trusts, s = 1/sqrt(O)
    "log_ratios": (np.log(_OBS / _EXP), 1 / np.sqrt(_OBS), 0.011273682098324035),
    # no heterogeneity: metafor gives 0
    "homogeneous": (np.array([0.10, 0.11, 0.09, 0.10, 0.105, 0.095]), np.full(6, 0.02), 0.0),
}


@pytest.mark.parametrize("name", list(_REML_DATA))
def test_reml_matches_metafor(name):
    y, s, tau2_metafor = _REML_DATA[name]
    assert tau2_reml(y, s) == pytest.approx(tau2_metafor, rel=1e-9, abs=0.0)


def test_reml_batched_with_missing_units_matches_metafor():
    rows = list(_REML_DATA.values())
    width = max(r[0].shape[0] for r in rows)
    y = np.full((len(rows), width), np.nan)
    s = np.full((len(rows), width), np.nan)
    for i, (yi, si, _) in enumerate(rows):
        y[i, : yi.shape[0]], s[i, : si.shape[0]] = yi, si
    np.testing.assert_allclose(tau2_reml(y, s), [r[2] for r in rows], rtol=1e-9, atol=0.0)


def _reml_score(tau2, y, s):
    """Twice the derivative of the restricted log-likelihood: y'PPy - tr P (Harville 1977)."""
    w = 1 / (s**2 + tau2)
    mu = np.sum(w * y) / np.sum(w)
    return np.sum(w**2 * (y - mu) ** 2) - (np.sum(w) - np.sum(w**2) / np.sum(w))


def test_reml_convergence_is_relative_for_small_tau2():
    """Rescaling Y and s by c scales tau2 by c^2 exactly: a criterion absolute in tau2 (as the
    former 1e-10 one) breaks this for small c, a relative one keeps it to rounding."""
    y, s, _ = _REML_DATA["log_ratios"]
    base = tau2_reml(y, s)
    for c in (1e-1, 1e-2, 1e-3, 1e-4):
        assert tau2_reml(c * y, c * s) == pytest.approx(c * c * base, rel=1e-12)
    # and the estimate is the root of the REML score to rounding, however small tau2 is
    for c in (1.0, 1e-4):
        t = tau2_reml(c * y, c * s)
        root = optimize.brentq(
            _reml_score, 0.5 * t, 2 * t, args=(c * y, c * s), xtol=1e-30, rtol=1e-15
        )
        assert t == pytest.approx(root, rel=1e-12)


# Sampling variances over 5 orders of magnitude (numpy seed 761, s = exp(U(-6, 1)), 20 units).
# Fisher scoring alone oscillates here: metafor's rma(method = "REML") stops with "Fisher scoring
# algorithm did not converge" (default control, and with threshold = 1e-15, maxiter = 10000); with
# control = list(threshold = 1e-15, maxiter = 10000, stepadj = 0.5) it gives
# 9.7167389545885647e-05, and uniroot of the REML score 9.7167389545898373e-05 (R 4.2.2, metafor
# 3.8.1, 2026-11-26). Our former Fisher-only iteration returned 0 here.
_OSCILLATING = np.random.default_rng(761)
_OSC_S = np.exp(_OSCILLATING.uniform(-6, 1, 20))
_OSC_Y = _OSCILLATING.normal(0.0, np.sqrt(_OSC_S**2 + 1e-5))


def test_reml_converges_where_fisher_scoring_oscillates():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no convergence" warning
        t = tau2_reml(_OSC_Y, _OSC_S)
    assert t == pytest.approx(9.7167389545898373e-05, rel=1e-9)  # uniroot in R
    assert t == pytest.approx(9.7167389545885647e-05, rel=1e-9)  # metafor, stepadj = 0.5


def test_reml_is_never_negative_and_zero_is_a_fixed_point():
    rng = np.random.default_rng(4)
    s = rng.uniform(0.01, 0.3, size=(50, 25))
    y = rng.normal(0.0, s)  # no heterogeneity: many estimates at the boundary 0
    t = tau2_reml(y, s)
    assert np.all(t >= 0) and np.sum(t == 0) >= 10
    for i in np.flatnonzero(t == 0):
        assert _reml_score(0.0, y[i], s[i]) <= 0  # the boundary is the maximum
        assert tau2_reml(y[i], s[i]) == 0.0  # exactly, one row at a time as in the batch
    for i in np.flatnonzero(t > 0):
        assert _reml_score(0.0, y[i], s[i]) > 0


def test_reml_warns_when_max_iter_is_reached_and_checks_options():
    y, s, _ = _REML_DATA["log_ratios"]
    with pytest.warns(RuntimeWarning, match="no convergence in max_iter=1"):
        tau2_reml(y, s, max_iter=1)
    with pytest.raises(ValueError, match="tol"):
        tau2_reml(y, s, tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        tau2_reml(y, s, max_iter=0)


def test_phi_chi2_test_is_chi2_upper_tail():
    assert phi_chi2_test(1.5, 100) == pytest.approx(stats.chi2.sf(150, 99), rel=1e-12)


def test_phi_estimate_ignores_unused():
    assert phi_estimate(np.array([1.0, np.nan, 3.0])) == pytest.approx(5.0)


def test_multiplicative_applies_only_when_significant():
    rng = np.random.default_rng(2)
    s = rng.uniform(0.05, 0.1, 200)
    y_over = rng.normal(0, 2 * s)
    adj = adjust(y_over, s, 0.0, trim=None, overdispersion="multiplicative")
    assert adj.method == "multiplicative"
    np.testing.assert_allclose(adj.z_adjusted, (y_over / s) / np.sqrt(adj.phi), rtol=1e-12)
    y_ok = rng.normal(0, s)
    adj_ok = adjust(y_ok, s, 0.0, trim=None, overdispersion="multiplicative")
    assert adj_ok.phi_p_value > 0.05
    assert adj_ok.method == "none"
    np.testing.assert_allclose(adj_ok.z_adjusted, y_ok / s, rtol=1e-12)


def test_additive_z_formula_and_no_adjustment():
    y = np.array([0.3, -0.1, 0.05])
    s = np.array([0.1, 0.05, 0.2])
    adj = adjust(y, s, 0.0, trim=None)
    np.testing.assert_allclose(adj.z_adjusted, y / np.sqrt(s**2 + adj.tau2), rtol=1e-12)
    np.testing.assert_allclose(z_adjusted_additive(y, s, 0.0, adj.tau2), adj.z_adjusted)
    none = adjust(y, s, 0.0, overdispersion=None)
    np.testing.assert_array_equal(none.z_adjusted, none.z)
    assert none.tau2 == 0.0 and none.method == "none"


def test_batched_adjust_equals_row_by_row():
    rng = np.random.default_rng(8)
    s = rng.uniform(0.03, 0.2, size=(5, 40))
    y = rng.normal(0, np.sqrt(s**2 + rng.uniform(0, 0.02, (5, 1))))
    y[2, :7] = np.nan  # missing trusts
    for trim in ("winsorise", "truncate", None):
        for od in ("additive", "multiplicative", None):
            batch = adjust(y, s, np.zeros(5), trim=trim, overdispersion=od)
            for i in range(5):
                row = adjust(y[i], s[i], 0.0, trim=trim, overdispersion=od)
                np.testing.assert_allclose(batch.z_adjusted[i], row.z_adjusted, rtol=1e-12)
                assert batch.phi[i] == pytest.approx(row.phi, rel=1e-12)
                assert batch.tau2[i] == pytest.approx(row.tau2, rel=1e-12, abs=1e-300)


def test_missing_units_do_not_enter_phi():
    t = transform_ratio([10.0, 30, 12, 40, 5, 9, 0], [12.0, 20, 11, 30, 9, 8, 0], "CQC")
    with_missing = adjust(t.Y, t.s, t.target)
    without = adjust(t.Y[:6], t.s[:6], t.target)
    assert with_missing.phi == pytest.approx(without.phi, rel=1e-12)
    assert np.isnan(with_missing.z_adjusted[6])


def test_bad_options_raise():
    with pytest.raises(ValueError, match="trim"):
        adjust([0.1], [0.1], 0.0, trim="chop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fraction"):
        winsorise([0.1, 0.2], 0.6)


def test_single_unit_has_no_between_unit_variance():
    assert tau2_dersimonian_laird(4.0, np.array([0.1])) == 0.0
    adj = adjust([0.5], [0.1], 0.0)
    assert adj.tau2 == 0.0 and adj.z_adjusted[0] == pytest.approx(5.0)
