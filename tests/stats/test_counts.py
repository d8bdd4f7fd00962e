"""Count tests (METHODS.md section 4): upper-tail Poisson / negative-binomial p-values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from surveillance.stats.counts import (
    count_test,
    negbin_alpha_ml,
    negbin_alpha_moments,
    pearson_dispersion,
)


def _poisson_upper(x: int, mu: float) -> float:
    """P(X >= x) = 1 - sum_{k < x} pmf(k), by hand."""
    return 1.0 - sum(math.exp(-mu + k * math.log(mu) - math.lgamma(k + 1)) for k in range(x))


def _negbin_upper(x: int, mu: float, alpha: float) -> float:
    size = 1 / alpha
    p = size / (size + mu)

    def pmf(k: int) -> float:
        return math.exp(
            math.lgamma(k + size)
            - math.lgamma(size)
            - math.lgamma(k + 1)
            + size * math.log(p)
            + k * math.log(1 - p)
        )

    return 1.0 - sum(pmf(k) for k in range(x))


def test_poisson_p_values_against_hand_sum():
    events = np.array([0, 1, 3, 8, 2])
    activity = np.array([1000.0, 2000, 1500, 3000, 2500])
    res = count_test(events, activity, method="poisson")
    rate = events.sum() / activity.sum()
    assert res.rate == pytest.approx(rate)
    np.testing.assert_allclose(res.expected, rate * activity, rtol=1e-12)
    for x, mu, p in zip(events, res.expected, res.p_value, strict=True):
        assert p == pytest.approx(_poisson_upper(int(x), mu), rel=1e-9, abs=1e-15)
    assert res.p_value[0] == 1.0  # P(X >= 0) = 1
    assert res.method == "poisson" and res.alpha == 0.0


def test_negbin_p_values_against_hand_sum():
    rng = np.random.default_rng(7)
    activity = rng.uniform(1e4, 1e5, 161)
    mu = activity * 1e-4
    events = rng.poisson(rng.gamma(1.0, mu))  # alpha = 1
    res = count_test(events, activity, method="negbin")
    assert res.method == "negbin" and res.alpha > 0
    for i in range(0, 161, 20):
        expected = _negbin_upper(int(events[i]), res.expected[i], res.alpha)
        assert res.p_value[i] == pytest.approx(expected, rel=1e-8, abs=1e-14)


def test_moments_alpha_solves_the_pearson_equation():
    rng = np.random.default_rng(3)
    mu = rng.uniform(2, 30, 200)
    x = rng.poisson(rng.gamma(1 / 0.3, 0.3 * mu))
    alpha = negbin_alpha_moments(x, mu)
    lhs = np.sum((x - mu) ** 2 / (mu * (1 + alpha * mu)))
    assert lhs == pytest.approx(len(x) - 1, rel=1e-9)
    assert 0.15 < alpha < 0.5  # true 0.3
    assert 0.15 < negbin_alpha_ml(x, mu) < 0.5


def test_auto_picks_poisson_or_negbin_by_the_dispersion_test():
    rng = np.random.default_rng(12)
    activity = rng.uniform(2e4, 2e5, 161)
    mu = activity * 5e-5
    poisson_data = rng.poisson(mu)
    res = count_test(poisson_data, activity)
    phi, n = pearson_dispersion(poisson_data, res.expected)
    assert res.phi == pytest.approx(phi) and n == 161
    assert res.method == "poisson" and res.phi_p_value > 0.05
    over = rng.poisson(rng.gamma(0.5, 2 * mu))
    res_over = count_test(over, activity)
    assert res_over.method == "negbin" and res_over.phi_p_value < 0.05
    # overdispersion makes the same count less surprising
    pois = count_test(over, activity, method="poisson")
    worst = np.argmax(over - res_over.expected)
    assert res_over.p_value[worst] > pois.p_value[worst]


def test_zero_activity_is_not_assessable_and_bad_counts_raise():
    res = count_test([1, 2, 0], [100.0, 0.0, 50.0], method="poisson")
    assert np.isnan(res.p_value[1]) and np.isnan(res.expected[1])
    assert res.rate == pytest.approx(1 / 150)
    with pytest.raises(ValueError, match="whole numbers"):
        count_test([1.5, 2], [1.0, 1.0])
    with pytest.raises(ValueError, match="method"):
        count_test([1, 2], [1.0, 1.0], method="binomial")  # type: ignore[arg-type]


def test_fixed_baseline_rate():
    res = count_test([4, 0], [1000.0, 1000.0], method="poisson", rate=1e-3)
    assert res.p_value[0] == pytest.approx(_poisson_upper(4, 1.0), rel=1e-10)
