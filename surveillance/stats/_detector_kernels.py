"""numba kernels for the alert detectors of ``detectors.py`` (many charts at once).

Arrays in, arrays out; no validation here (the typed wrappers in ``detectors.py`` check inputs
once). Rows are sorted by chart then time; chart ``c`` is rows ``offsets[c]:offsets[c+1]``.
Equations implemented, with ``W_t(theta) = y_t theta - log(1 + (e^theta - 1) p_t)`` the Steiner
et al. (2000) log-likelihood-ratio weight of odds ratio ``e^theta``:

- Several RA-CUSUMs side by side (design odds ratios ``R_k``, limits ``h_k``):
  ``X_k,t = max(0, X_k,t-1 + W_t(log R_k))``; signal when any ``X_k,t >= h_k``; the component
  reported is the one furthest past its limit (largest ``X_k / h_k``); after a signal every
  component restarts at ``restart_fraction * h_k``.
- Risk-adjusted Bernoulli GLR over change points (Siegmund & Venkatraman 1995; Lai 1995), odds
  ratio ``>= 1`` estimated by maximum likelihood on a grid ``theta_1 < ... < theta_K``:
  ``G_t = max_{tau < t} max_k sum_{tau < s <= t} W_s(theta_k) = max_k X_k,t`` (Page's CUSUM is
  the maximum over change points for a fixed ``theta``); signal when ``G_t >= g``; after a
  signal each ``X_k`` restarts at ``min(X_k, restart_fraction * g)``.
- Exact one-sided O/E test: the distribution of observed deaths ``O = sum y_t`` under
  ``y_t ~ Bernoulli(p_t)`` independent (Poisson-binomial), by the recursion
  ``P_t(j) = P_{t-1}(j) (1 - p_t) + P_{t-1}(j - 1) p_t``, truncated with an overflow state.
- In-control running maximum of the GLR over a chart's own patients, by simulating only the
  deaths: patient ``t`` dies when a unit-rate Poisson process has a point in
  ``[H_{t-1}, H_t)``, ``H_t = -sum_{s <= t} log(1 - p_s)``, which is exactly Bernoulli(p_t)
  and independent over patients; between deaths every ``X_k`` only falls, so
  ``max(0, X - (A_k(j) - A_k(i)))`` with ``A_k`` the cumulative ``log(1 + (e^theta_k - 1) p)``
  is exact, and the running maximum is reached at deaths. The cost is per death, not per
  patient.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from surveillance.stats._cusum_kernels import _splitmix_next, _stream_start


@njit(cache=True, parallel=True)
def grouped_multi_cusum(
    offsets, p, y, log_r, h, restart_fraction, statistic, signal, value, threshold, component
):
    """Several RA-CUSUMs per chart (``log_r``: K design log odds ratios; ``h``: n_charts x K).

    ``statistic[t]`` is ``max_k X_k / h_k`` after any restart (1 = at the limit); at a signal
    row ``value``/``threshold``/``component`` are the reported component's ``X_k`` (before the
    restart), ``h_k`` and ``k`` (0 and -1 elsewhere).
    """
    n_charts = offsets.shape[0] - 1
    n_k = log_r.shape[0]
    r_minus_1 = np.exp(log_r) - 1.0
    for c in prange(n_charts):
        x = np.zeros(n_k)
        for t in range(offsets[c], offsets[c + 1]):
            pt = p[t]
            best = -1
            best_ratio = 0.0
            for k in range(n_k):
                w = -np.log1p(r_minus_1[k] * pt)
                if y[t] == 1:
                    w += log_r[k]
                x[k] = max(0.0, x[k] + w)
                ratio = x[k] / h[c, k]
                if ratio >= 1.0 and ratio > best_ratio:
                    best = k
                    best_ratio = ratio
            if best >= 0:
                signal[t] = True
                value[t] = x[best]
                threshold[t] = h[c, best]
                component[t] = best
                for k in range(n_k):
                    x[k] = restart_fraction * h[c, k]
            else:
                signal[t] = False
                value[t] = 0.0
                threshold[t] = 0.0
                component[t] = -1
            top = 0.0
            for k in range(n_k):
                top = max(top, x[k] / h[c, k])
            statistic[t] = top


@njit(cache=True, parallel=True)
def grouped_glr(offsets, p, y, log_r, g, restart_fraction, statistic, signal, value, k_hat):
    """Risk-adjusted Bernoulli GLR ``G_t = max_k X_k,t`` per chart, limit ``g`` per chart.

    ``statistic[t]`` is ``G_t`` after any restart; at signal rows ``value`` is ``G_t`` before
    the restart; ``k_hat[t]`` is the grid index of the maximising odds ratio (every row).
    """
    n_charts = offsets.shape[0] - 1
    n_k = log_r.shape[0]
    r_minus_1 = np.exp(log_r) - 1.0
    for c in prange(n_charts):
        x = np.zeros(n_k)
        restart = restart_fraction * g[c]
        for t in range(offsets[c], offsets[c + 1]):
            pt = p[t]
            best = 0
            top = -1.0
            for k in range(n_k):
                w = -np.log1p(r_minus_1[k] * pt)
                if y[t] == 1:
                    w += log_r[k]
                x[k] = max(0.0, x[k] + w)
                if x[k] > top:
                    top = x[k]
                    best = k
            k_hat[t] = best
            if top >= g[c]:
                signal[t] = True
                value[t] = top
                top = 0.0
                for k in range(n_k):
                    x[k] = min(x[k], restart)
                    top = max(top, x[k])
            else:
                signal[t] = False
                value[t] = 0.0
            statistic[t] = top


@njit(cache=True)
def _poisson_binomial_tail(p, start, stop, k_max, pmf):
    """``pmf[j] = P(O = j)`` for j < k_max and ``pmf[k_max] = P(O >= k_max)`` (overflow)."""
    pmf[: k_max + 1] = 0.0
    pmf[0] = 1.0
    top = 0  # highest count with mass, below the overflow
    for t in range(start, stop):
        pt = p[t]
        q = 1.0 - pt
        if top == k_max - 1:
            pmf[k_max] += pmf[k_max - 1] * pt
            hi = k_max - 1
        else:
            top += 1
            hi = top
        for j in range(hi, 0, -1):
            pmf[j] = pmf[j] * q + pmf[j - 1] * pt
        pmf[0] *= q


@njit(cache=True, parallel=True)
def oe_critical_counts(offsets, p, alpha, k_max, critical, tail_at_critical):
    """Per chart the smallest count ``c`` with ``P(O >= c) <= alpha`` (exact Poisson-binomial),
    and that tail probability. ``k_max[c]`` bounds the counts tracked; if the tail beyond it is
    still above ``alpha``, ``critical[c] = -1`` (the caller widens ``k_max``)."""
    n_charts = offsets.shape[0] - 1
    for c in prange(n_charts):
        km = k_max[c]
        pmf = np.empty(km + 1)
        _poisson_binomial_tail(p, offsets[c], offsets[c + 1], km, pmf)
        tail = pmf[km]
        if tail > alpha:
            critical[c] = -1
            tail_at_critical[c] = tail
            continue
        j = km
        # walk down while P(O >= j - 1) stays within alpha
        while j > 0 and tail + pmf[j - 1] <= alpha:
            tail += pmf[j - 1]
            j -= 1
        critical[c] = j
        tail_at_critical[c] = tail


@njit(cache=True, parallel=True)
def simulate_glr_running_max(offsets, p, charts, log_r, n_sims, seed, out):
    """In-control ``max_t G_t`` (no restarts) of each chart in ``charts``, ``n_sims`` times.

    ``out`` is (len(charts), n_sims). Deaths are drawn by the Poisson-clock construction of the
    module docstring, one independent generator stream per (seed, chart, simulation).
    """
    n_k = log_r.shape[0]
    r_minus_1 = np.exp(log_r) - 1.0
    for a in prange(charts.shape[0]):
        c = charts[a]
        start = offsets[c]
        n = offsets[c + 1] - start
        hazard = np.empty(n + 1)
        cum = np.empty((n + 1, n_k))  # row per patient: one death reads one row
        hazard[0] = 0.0
        for k in range(n_k):
            cum[0, k] = 0.0
        for t in range(n):
            pt = p[start + t]
            # a certain death gets a hazard large enough to hold a point almost surely
            hazard[t + 1] = hazard[t] + (-np.log1p(-pt) if pt < 1.0 else 60.0)
            for k in range(n_k):
                cum[t + 1, k] = cum[t, k] + np.log1p(r_minus_1[k] * pt)
        total = hazard[n]
        x = np.empty(n_k)
        for i in range(n_sims):
            state = _stream_start(seed, c * 1_000_003 + i)
            x[:] = 0.0
            top = 0.0
            pos = 0.0
            last = 0  # patients [0, last) are processed
            while True:
                state, u = _splitmix_next(state)
                pos += -np.log1p(-u)
                if pos >= total:
                    break
                # patient j: hazard[j] <= pos < hazard[j + 1]
                lo = last
                hi = n
                while hi - lo > 1:
                    mid = (lo + hi) >> 1
                    if hazard[mid] <= pos:
                        lo = mid
                    else:
                        hi = mid
                j = lo
                g = 0.0
                for k in range(n_k):
                    xk = max(0.0, x[k] - (cum[j, k] - cum[last, k]))
                    xk += log_r[k] - (cum[j + 1, k] - cum[j, k])
                    x[k] = xk
                    g = max(g, xk)
                top = max(top, g)
                last = j + 1
                # later points of the same patient do not matter (memoryless clock)
                pos = hazard[j + 1]
            out[a, i] = top
