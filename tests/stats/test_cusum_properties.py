"""Property tests (hypothesis) for the CUSUM family and its ARL."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from surveillance.stats.arl import arl_normal_cusum, arl_ra_cusum
from surveillance.stats.cusum import grouped_ra_cusum, normal_cusum, ra_cusum

risks = arrays(np.float64, st.integers(1, 80), elements=st.floats(0.0, 1.0))


@settings(max_examples=60, deadline=None)
@given(risks, st.integers(0, 2**32 - 1), st.floats(0.1, 6.0), st.sampled_from(["zero", "half"]))
def test_upper_ra_cusum_never_negative_and_lower_never_positive(p, seed, h, restart):
    y = (np.random.default_rng(seed).uniform(size=p.shape[0]) < p).astype(np.int8)
    up = ra_cusum(p, y, 2.0, h, restart)
    assert np.all(up.statistic >= 0) and np.all(up.statistic < h)
    down = ra_cusum(p, y, 0.5, -h, restart)
    assert np.all(down.statistic <= 0) and np.all(down.statistic > -h)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 80), elements=st.floats(-10, 10)))
def test_normal_cusum_never_negative(z):
    path = normal_cusum(z)
    assert np.all(path.statistic >= 0) and np.all(path.statistic <= 5.48)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 1.0), st.floats(0.5, 5.0), st.floats(0.05, 1.0), st.floats(-0.5, 2.0))
def test_normal_arl_grows_with_h(k, h, dh, mu):
    assert arl_normal_cusum(k, h + dh, mu) > arl_normal_cusum(k, h, mu)


@settings(max_examples=15, deadline=None)
@given(st.floats(0.01, 0.4), st.floats(0.5, 3.0), st.floats(0.1, 1.0))
def test_ra_arl_grows_with_h(p, h, dh):
    # The Bernoulli CUSUM moves in discrete steps, so the ARL is a step function of h: it never
    # falls as h rises, but stays flat while no attainable path crosses between h and h + dh
    # (e.g. p = 0.03, h = 0.5 -> 0.625: one death signals either way). Over a whole unit of h it
    # must rise strictly.
    mix = np.array([p / 2, p, min(2 * p, 0.9)])
    base = arl_ra_cusum(mix, h=h, m=200)
    assert arl_ra_cusum(mix, h=h + dh, m=200) >= base * (1 - 1e-9)
    assert arl_ra_cusum(mix, h=h + 1.0, m=200) > base


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 25), min_size=1, max_size=12), st.integers(0, 2**32 - 1))
def test_grouped_run_equals_per_chart_runs(sizes, seed):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    p = rng.uniform(0, 0.6, offsets[-1])
    y = (rng.uniform(size=offsets[-1]) < p).astype(np.int8)
    h = rng.uniform(0.3, 2.0, len(sizes))
    grouped = grouped_ra_cusum(offsets, p, y, h)
    for c, hc in enumerate(h):
        a, b = offsets[c], offsets[c + 1]
        np.testing.assert_array_equal(
            grouped.statistic[a:b], ra_cusum(p[a:b], y[a:b], 2.0, hc).statistic
        )
