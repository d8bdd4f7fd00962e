"""numba kernels for the CUSUM family, its run-length simulation and its Markov chains.

Arrays in, arrays out; no validation here (the typed wrappers in ``cusum.py``, ``arl.py`` and
``thresholds.py`` check inputs once at the boundary). Equations implemented:

- Normal CUSUM (Page 1954): ``C_t = max(0, C_{t-1} + z_t - k)``, signal when ``C_t > h``,
  then ``C_t = reset``.
- Risk-adjusted Bernoulli CUSUM (Steiner et al., Biostatistics 2000;1:441), odds ratio ``R``:
  ``W_t = y_t log R - log(1 - p_t + R p_t)``.
  Upper chart (``R > 1``): ``X_t = max(0, X_{t-1} + W_t)``, signal when ``X_t >= h``.
  Lower chart (``R < 1``, R package ``cusum`` convention, ``h < 0``):
  ``X_t = min(0, X_{t-1} - W_t)``, signal when ``X_t <= h``.
  After a signal the statistic restarts at ``restart`` (0 or h/2); the stored statistic is the
  value after the restart (as ``cusum::racusum`` stores it).
- Poisson CUSUM (Lucas 1985): ``S_t = max(0, S_{t-1} + x_t - k)`` (upper) or
  ``max(0, S_{t-1} + k - x_t)`` (lower), ``k = (mu1 - mu0) / log(mu1 / mu0)``, signal ``S_t >= h``.
- VLAD (Lovegrove et al. 1997): ``V_t = sum_{s<=t} (p_s - y_s)``.
- Brook & Evans (Biometrika 1972;59:539) Markov chain for the RA-CUSUM: the statistic on the grid
  ``x_i = i h / m`` (i = 0..m-1), each jump's landing point split linearly between its two
  neighbouring nodes (mass- and mean-preserving); the node ``h`` and beyond is absorbing.
- Monte-Carlo run lengths with a counter-based generator (splitmix64), so results do not depend
  on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


# --------------------------------------------------------------------------------------------
# Paths


@njit(cache=True)
def normal_cusum_path(z, k, h, reset, stat, signal):
    """Page's upper CUSUM of ``z``: ``C_t = max(0, C_{t-1} + z_t - k)``; signal ``C_t > h``."""
    c = 0.0
    for t in range(z.shape[0]):
        c = max(0.0, c + z[t] - k)
        if c > h:
            signal[t] = 1
            c = reset
        else:
            signal[t] = 0
        stat[t] = c


@njit(cache=True, inline="always")
def _ra_weight(p, y, log_r, r_minus_1):
    """Steiner (2000) log-likelihood-ratio weight ``y log R - log(1 - p + R p)``."""
    w = -np.log1p(r_minus_1 * p)
    if y != 0:
        w += log_r
    return w


@njit(cache=True, inline="always")
def _ra_segment(p, y, start, stop, log_r, h, restart, lower, stat, signal):
    r_minus_1 = np.exp(log_r) - 1.0
    x = 0.0
    if lower:
        for t in range(start, stop):
            x = min(0.0, x - _ra_weight(p[t], y[t], log_r, r_minus_1))
            if x <= h:
                signal[t] = 1
                x = restart
            else:
                signal[t] = 0
            stat[t] = x
    else:
        for t in range(start, stop):
            x = max(0.0, x + _ra_weight(p[t], y[t], log_r, r_minus_1))
            if x >= h:
                signal[t] = 1
                x = restart
            else:
                signal[t] = 0
            stat[t] = x


@njit(cache=True)
def ra_cusum_path(p, y, log_r, h, restart, lower, stat, signal):
    """Risk-adjusted Bernoulli CUSUM path (Steiner 2000), upper or lower chart."""
    _ra_segment(p, y, 0, p.shape[0], log_r, h, restart, lower, stat, signal)


@njit(cache=True, parallel=True)
def grouped_ra_cusum_path(offsets, p, y, log_r, h, restart_fraction, lower, stat, signal):
    """Many RA-CUSUM charts at once; chart ``c`` is rows ``offsets[c]:offsets[c+1]``.

    ``h`` is per chart; each chart restarts at ``restart_fraction * h[c]`` after a signal.
    """
    n_charts = offsets.shape[0] - 1
    for c in prange(n_charts):
        _ra_segment(
            p,
            y,
            offsets[c],
            offsets[c + 1],
            log_r,
            h[c],
            restart_fraction * h[c],
            lower,
            stat,
            signal,
        )


@njit(cache=True, parallel=True)
def grouped_normal_cusum_path(offsets, z, k, h, reset_fraction, stat, signal):
    """Many normal CUSUM charts at once (rows ``offsets[c]:offsets[c+1]``), per-chart ``h``."""
    n_charts = offsets.shape[0] - 1
    for c in prange(n_charts):
        hc = h[c]
        x = 0.0
        for t in range(offsets[c], offsets[c + 1]):
            x = max(0.0, x + z[t] - k)
            if x > hc:
                signal[t] = 1
                x = reset_fraction * hc
            else:
                signal[t] = 0
            stat[t] = x


@njit(cache=True)
def poisson_cusum_path(counts, k, h, lower, stat, signal):
    """Poisson CUSUM ``S_t = max(0, S_{t-1} +- (x_t - k_t))``; signal ``S_t >= h``, reset to 0."""
    s = 0.0
    for t in range(counts.shape[0]):
        step = counts[t] - k[t]
        if lower:
            step = -step
        s = max(0.0, s + step)
        if s >= h:
            signal[t] = 1
            s = 0.0
        else:
            signal[t] = 0
        stat[t] = s


@njit(cache=True)
def vlad_path(p, y, out):
    """Variable life-adjusted display: cumulative expected minus observed."""
    v = 0.0
    for t in range(p.shape[0]):
        v += p[t] - y[t]
        out[t] = v


# --------------------------------------------------------------------------------------------
# Counter-based random numbers


@njit(cache=True, inline="always")
def _splitmix_next(state):
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return state, (z >> np.uint64(11)) * _TO_UNIT


@njit(cache=True, inline="always")
def _stream_start(seed, index):
    """Independent stream per (seed, simulation index), whatever the thread layout."""
    state = np.uint64(seed) * _MIX1 + np.uint64(index) * _GOLDEN
    state, _ = _splitmix_next(state)
    state, _ = _splitmix_next(state ^ np.uint64(index))
    return state


# --------------------------------------------------------------------------------------------
# Monte-Carlo run lengths


@njit(cache=True, parallel=True)
def simulate_ra_run_lengths(p_pool, sample_pool, log_r, h, max_n, n_sims, seed, out):
    """First-signal times of the upper RA-CUSUM under the in-control model ``y ~ Bernoulli(p)``.

    If ``sample_pool`` the patient risk at each step is drawn uniformly from ``p_pool`` (an
    in-control case mix); otherwise ``p_pool`` is the fixed sequence of patients, ``max_n`` of
    them. ``out[i] = max_n + 1`` when simulation ``i`` has no signal within ``max_n`` patients.
    """
    r_minus_1 = np.exp(log_r) - 1.0
    n_pool = p_pool.shape[0]
    for i in prange(n_sims):
        state = _stream_start(seed, i)
        x = 0.0
        rl = max_n + 1
        for t in range(max_n):
            if sample_pool:
                state, u = _splitmix_next(state)
                j = min(int(u * n_pool), n_pool - 1)
                p = p_pool[j]
            else:
                p = p_pool[t]
            state, u = _splitmix_next(state)
            y = 1 if u < p else 0
            x = max(0.0, x + _ra_weight(p, y, log_r, r_minus_1))
            if x >= h:
                rl = t + 1
                break
        out[i] = rl


@njit(cache=True, parallel=True)
def simulate_normal_run_lengths(mu, k, h, max_n, n_sims, seed, out):
    """First-signal times (``C_t > h``) of the normal CUSUM with ``z ~ N(mu, 1)`` (Box-Muller)."""
    for i in prange(n_sims):
        state = _stream_start(seed, i)
        c = 0.0
        rl = max_n + 1
        for t in range(max_n):
            state, u1 = _splitmix_next(state)
            state, u2 = _splitmix_next(state)
            z = mu + np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)
            c = max(0.0, c + z - k)
            if c > h:
                rl = t + 1
                break
        out[i] = rl


# --------------------------------------------------------------------------------------------
# Markov chains for the RA-CUSUM


@njit(cache=True, inline="always")
def _land(x, w, h, delta, m):
    """Grid node below the landing point ``max(0, x + w)`` and the share of the node above.

    Returns ``(-1, 0)`` when the landing point is at or beyond ``h`` (absorbed).
    """
    v = max(0.0, x + w)
    if v >= h:
        return -1, 0.0
    pos = v / delta
    j = int(pos)
    if j >= m:
        return -1, 0.0
    return j, pos - j


@njit(cache=True)
def ra_transition_matrix(p_values, p_true, p_weights, log_r, h, m):
    """Brook-Evans transient matrix ``Q`` (m x m) of the upper RA-CUSUM on ``x_i = i h / m``.

    Case mix: model risk ``p_values[b]`` (used in the weights) with probability ``p_weights[b]``;
    the adverse outcome occurs with probability ``p_true[b]`` (= ``p_values`` in control). Mass
    landing between node ``m - 1`` and ``h`` is split with the absorbing node ``h`` (a signal).
    """
    delta = h / m
    r_minus_1 = np.exp(log_r) - 1.0
    q = np.zeros((m, m))
    for b in range(p_values.shape[0]):
        p = p_values[b]
        wb = p_weights[b]
        w_fail = _ra_weight(p, 1, log_r, r_minus_1)
        w_surv = _ra_weight(p, 0, log_r, r_minus_1)
        for i in range(m):
            x = i * delta
            for outcome in range(2):
                if outcome == 1:
                    prob = wb * p_true[b]
                    w = w_fail
                else:
                    prob = wb * (1.0 - p_true[b])
                    w = w_surv
                j, frac = _land(x, w, h, delta, m)
                if j < 0:
                    continue
                q[i, j] += prob * (1.0 - frac)
                if j + 1 < m:
                    q[i, j + 1] += prob * frac
    return q


@njit(cache=True)
def ra_sequence_signal_probability(p_seq, log_r, h, m):
    """P(first signal by patient t), t = 1..n, for a fixed sequence of in-control risks.

    Time-inhomogeneous Brook-Evans chain: the state distribution is pushed one patient at a time.
    """
    delta = h / m
    r_minus_1 = np.exp(log_r) - 1.0
    n = p_seq.shape[0]
    v = np.zeros(m)
    nxt = np.zeros(m)
    v[0] = 1.0
    out = np.empty(n)
    for t in range(n):
        p = p_seq[t]
        w_fail = _ra_weight(p, 1, log_r, r_minus_1)
        w_surv = _ra_weight(p, 0, log_r, r_minus_1)
        nxt[:] = 0.0
        for i in range(m):
            vi = v[i]
            if vi == 0.0:
                continue
            x = i * delta
            j, frac = _land(x, w_surv, h, delta, m)
            if j >= 0:
                nxt[j] += vi * (1.0 - p) * (1.0 - frac)
                if j + 1 < m:
                    nxt[j + 1] += vi * (1.0 - p) * frac
            j, frac = _land(x, w_fail, h, delta, m)
            if j >= 0:
                nxt[j] += vi * p * (1.0 - frac)
                if j + 1 < m:
                    nxt[j + 1] += vi * p * frac
        v, nxt = nxt, v
        out[t] = 1.0 - v.sum()
    return out


@njit(cache=True)
def survival_at(q, horizons):
    """``P(no signal by n)`` from state 0 for each ``n`` in the sorted ``horizons`` (row-vector DP)."""
    m = q.shape[0]
    v = np.zeros(m)
    v[0] = 1.0
    out = np.empty(horizons.shape[0])
    t = 0
    for a in range(horizons.shape[0]):
        while t < horizons[a]:
            v = v @ q
            t += 1
        out[a] = v.sum()
    return out


@njit(cache=True)
def _absorbed_curve(p_values, p_true, p_weights, log_r, h, m, n0):
    """Sparse Brook-Evans DP from state 0: ``F[t] = P(first signal <= t)``, t = 0..n0."""
    delta = h / m
    r_minus_1 = np.exp(log_r) - 1.0
    nb = p_values.shape[0]
    tj = np.empty((nb, 2, m), dtype=np.int64)
    tf = np.empty((nb, 2, m))
    tp = np.empty((nb, 2))
    for b in range(nb):
        tp[b, 0] = p_weights[b] * (1.0 - p_true[b])
        tp[b, 1] = p_weights[b] * p_true[b]
        for outcome in range(2):
            w = _ra_weight(p_values[b], outcome, log_r, r_minus_1)
            for i in range(m):
                j, frac = _land(i * delta, w, h, delta, m)
                tj[b, outcome, i] = j
                tf[b, outcome, i] = frac
    f = np.zeros(n0 + 1)
    v = np.zeros(m)
    nxt = np.zeros(m)
    v[0] = 1.0
    for t in range(1, n0 + 1):
        nxt[:] = 0.0
        for b in range(nb):
            for outcome in range(2):
                pr = tp[b, outcome]
                for i in range(m):
                    j = tj[b, outcome, i]
                    if j < 0:
                        continue
                    mass = v[i] * pr
                    fr = tf[b, outcome, i]
                    nxt[j] += mass * (1.0 - fr)
                    if j + 1 < m:
                        nxt[j + 1] += mass * fr
        v, nxt = nxt, v
        f[t] = 1.0 - v.sum()
    return f


@njit(cache=True, parallel=True)
def ra_false_alarm_table(p_values, p_weights, log_r, h_grid, delta, m_min, m_max, n_grid, n0_per_h):
    """``log P(first signal <= n)`` for every ``h`` in ``h_grid`` and ``n`` in ``n_grid``.

    Exact Brook-Evans DP up to ``n0 = n0_per_h[a]`` patients (chosen beyond the transient, a few
    out-of-control ARLs); beyond it the survival is extended geometrically, ``S(n) = S(n0) (1 - eta)^(n - n0)``, with the hazard ``eta`` fixed by the exact
    ARL: ``sum_{t >= n0} S(t) = ARL - sum_{t < n0} S(t) = S(n0) / eta``.
    """
    n_h = h_grid.shape[0]
    out = np.empty((n_h, n_grid.shape[0]))
    for a in prange(n_h):
        h = h_grid[a]
        n0 = n0_per_h[a]
        m = min(max(int(np.ceil(h / delta)), m_min), m_max)
        f = _absorbed_curve(p_values, p_values, p_weights, log_r, h, m, n0)
        s_n0 = 1.0 - f[n0]
        eta = 0.0
        if n_grid.max() > n0:  # the geometric tail is needed: fix its hazard by the exact ARL
            q = ra_transition_matrix(p_values, p_values, p_weights, log_r, h, m)
            arl = np.linalg.solve(np.eye(m) - q, np.ones(m))[0]
            head = 0.0
            for t in range(n0):
                head += 1.0 - f[t]
            tail = arl - head
            eta = s_n0 / tail if tail > 0 else 1.0
            eta = min(max(eta, 0.0), 1.0)
        for c in range(n_grid.shape[0]):
            n = n_grid[c]
            if n <= n0:
                fn = f[n]
            else:
                fn = -np.expm1(np.log(s_n0) + (n - n0) * np.log1p(-eta))
            out[a, c] = np.log(max(fn, 1e-300))
    return out


@njit(cache=True, parallel=True)
def simulate_ra_running_max(p_pool, sample_pool, log_r, n, n_sims, seed, out):
    """``max_{t <= n} X_t`` of the upper RA-CUSUM without restarts, in control.

    ``P(first signal within n) = P(max >= h)`` for every ``h`` at once. Risks drawn uniformly
    from ``p_pool`` (``sample_pool``) or taken in order (fixed sequence of ``n`` patients).
    """
    r_minus_1 = np.exp(log_r) - 1.0
    n_pool = p_pool.shape[0]
    for i in prange(n_sims):
        state = _stream_start(seed, i)
        x = 0.0
        top = 0.0
        for t in range(n):
            if sample_pool:
                state, u = _splitmix_next(state)
                j = min(int(u * n_pool), n_pool - 1)
                p = p_pool[j]
            else:
                p = p_pool[t]
            state, u = _splitmix_next(state)
            y = 1 if u < p else 0
            x = max(0.0, x + _ra_weight(p, y, log_r, r_minus_1))
            if x > top:
                top = x
        out[i] = top


@njit(cache=True, parallel=True)
def first_bad_risk_outcome(p, y):
    """Index of the first row with ``p`` outside [0, 1] (or NaN) or ``y`` not 0/1; -1 if none.

    One parallel pass for validating national-scale inputs (cheaper than numpy masks).
    """
    n = p.shape[0]
    n_blocks = 64
    size = (n + n_blocks - 1) // n_blocks
    first = np.full(n_blocks, -1, dtype=np.int64)
    for b in prange(n_blocks):
        for t in range(b * size, min(n, (b + 1) * size)):
            pt = p[t]
            yt = y[t]
            if not (pt >= 0.0 and pt <= 1.0) or (yt != 0 and yt != 1):
                first[b] = t
                break
    for b in range(n_blocks):
        if first[b] >= 0:
            return first[b]
    return -1


@njit(cache=True, parallel=True)
def grouped_ra_cusum_signals(
    offsets, p, y, log_r, h, restart_fraction, lower, signal, final, n_signals
):
    """As ``grouped_ra_cusum_path`` but without storing the statistic path: per-row signals,
    per-chart final statistic and signal count (less memory traffic for national runs)."""
    n_charts = offsets.shape[0] - 1
    r_minus_1 = np.exp(log_r) - 1.0
    for c in prange(n_charts):
        hc = h[c]
        restart = restart_fraction * hc
        x = 0.0
        count = 0
        for t in range(offsets[c], offsets[c + 1]):
            w = _ra_weight(p[t], y[t], log_r, r_minus_1)
            if lower:
                x = min(0.0, x - w)
                hit = x <= hc
            else:
                x = max(0.0, x + w)
                hit = x >= hc
            if hit:
                x = restart
                count += 1
            signal[t] = hit
        final[c] = x
        n_signals[c] = count


@njit(cache=True)
def _sequence_signal_probability(p, start, stop, log_r, h, m, v, nxt):
    """P(first signal within patients ``start:stop``) by the time-inhomogeneous chain (no alloc)."""
    delta = h / m
    r_minus_1 = np.exp(log_r) - 1.0
    v[:m] = 0.0
    v[0] = 1.0
    for t in range(start, stop):
        pt = p[t]
        w_fail = _ra_weight(pt, 1, log_r, r_minus_1)
        w_surv = _ra_weight(pt, 0, log_r, r_minus_1)
        nxt[:m] = 0.0
        for i in range(m):
            vi = v[i]
            if vi == 0.0:
                continue
            x = i * delta
            j, frac = _land(x, w_surv, h, delta, m)
            if j >= 0:
                nxt[j] += vi * (1.0 - pt) * (1.0 - frac)
                if j + 1 < m:
                    nxt[j + 1] += vi * (1.0 - pt) * frac
            j, frac = _land(x, w_fail, h, delta, m)
            if j >= 0:
                nxt[j] += vi * pt * (1.0 - frac)
                if j + 1 < m:
                    nxt[j + 1] += vi * pt * frac
        v, nxt = nxt, v
    return 1.0 - v[:m].sum()


@njit(cache=True, parallel=True)
def calibrate_sequences(offsets, p, charts, log_r, target, delta, m_min, m_max, h_max, tol, out):
    """Per chart (rows ``offsets[c]:offsets[c+1]``), the smallest ``h`` (to ``tol``) whose
    probability of a first signal within the chart's own patients is at most ``target``.

    Bisection on the time-inhomogeneous Brook-Evans chain; the probability is a non-increasing
    step-like function of ``h`` for small charts, so the result sits at the step (conservative).
    """
    for a in prange(charts.shape[0]):
        c = charts[a]
        start = offsets[c]
        stop = offsets[c + 1]
        v = np.empty(m_max)
        nxt = np.empty(m_max)
        lo = 0.0
        hi = h_max
        while hi - lo > tol:
            mid = 0.5 * (lo + hi)
            m = min(max(int(np.ceil(mid / delta)), m_min), m_max)
            if _sequence_signal_probability(p, start, stop, log_r, mid, m, v, nxt) <= target:
                hi = mid
            else:
                lo = mid
        out[a] = hi


# --------------------------------------------------------------------------------------------
# Per-chart chains on a uniform grid: one patient's step is a shift of the whole grid


@njit(cache=True, inline="always")
def _shift_split(src, dst, top, shift, mass, m):
    """Add ``mass * src`` moved by ``shift`` nodes to ``dst``. On the uniform grid every node's
    landing point ``i + shift`` has the same fractional part, so the Brook-Evans linear split
    (mass- and mean-preserving) is two shifted axpys; landing points below 0 go to node 0 (the
    ``max(0, .)``), those at or beyond node ``m`` are absorbed (a signal)."""
    k = int(np.floor(shift))
    f = shift - k
    a = mass * (1.0 - f)
    b = mass * f
    i0 = 0
    if shift < 0.0:
        i0 = min(int(np.ceil(-shift)), top + 1)
        lump = 0.0
        for i in range(i0):
            lump += src[i]
        dst[0] += mass * lump
    for i in range(i0, min(top + 1, m - k)):
        dst[i + k] += a * src[i]
    for i in range(i0, min(top + 1, m - 1 - k)):
        dst[i + k + 1] += b * src[i]


@njit(cache=True)
def grid_signal_probability(p, start, stop, log_r, h, m, work):
    """P(first signal within patients ``start:stop``) of the upper RA-CUSUM in control.

    The time-inhomogeneous Brook-Evans chain of ``ra_sequence_signal_probability`` on
    ``x_i = i h / m`` (equal to rounding), computed as per-patient grid shifts over only the nodes
    the chart can have reached so far. ``work``: (2, >= m) scratch array.
    """
    inv = m / h
    r_minus_1 = np.exp(log_r) - 1.0
    work[0, :m] = 0.0
    work[0, 0] = 1.0
    top = 0
    cur = 0
    for t in range(start, stop):
        src = work[cur]
        dst = work[1 - cur]
        pt = p[t]
        w_surv = -np.log1p(r_minus_1 * pt)
        s_fail = (log_r + w_surv) * inv
        new_top = min(m - 1, top + int(np.floor(s_fail)) + 1)
        dst[: new_top + 1] = 0.0
        _shift_split(src, dst, top, w_surv * inv, 1.0 - pt, m)
        _shift_split(src, dst, top, s_fail, pt, m)
        cur = 1 - cur
        top = new_top
    total = 0.0
    for i in range(top + 1):
        total += work[cur, i]
    return 1.0 - total


@njit(cache=True, inline="always")
def _grid_nodes(h, delta, m_min, m_max):
    return min(max(int(np.ceil(h / delta)), m_min), m_max)


@njit(cache=True, parallel=True)
def sequence_signal_probabilities(offsets, p, charts, h, log_r, delta, m_min, m_max, out):
    """``grid_signal_probability`` of each chart in ``charts`` (rows ``offsets[c]:offsets[c+1]``)
    at its limit ``h[a]``, grid step about ``delta`` (``m_min`` to ``m_max`` nodes)."""
    for a in prange(charts.shape[0]):
        c = charts[a]
        work = np.empty((2, m_max))
        m = _grid_nodes(h[a], delta, m_min, m_max)
        out[a] = grid_signal_probability(p, offsets[c], offsets[c + 1], log_r, h[a], m, work)


@njit(cache=True, parallel=True)
def smallest_limits(offsets, p, charts, log_r, target, delta, m_min, m_max, h_max, tol, out):
    """Per chart, the smallest ``h`` (bisection to ``tol``) whose ``grid_signal_probability``
    over the chart's own patients is at most ``target`` (``calibrate_sequences`` on the shift
    chain): where the probability is a step function of ``h`` this is the step just below
    ``target``."""
    for a in prange(charts.shape[0]):
        c = charts[a]
        work = np.empty((2, m_max))
        lo = 0.0
        hi = h_max
        while hi - lo > tol:
            mid = 0.5 * (lo + hi)
            m = _grid_nodes(mid, delta, m_min, m_max)
            if (
                grid_signal_probability(p, offsets[c], offsets[c + 1], log_r, mid, m, work)
                <= target
            ):
                hi = mid
            else:
                lo = mid
        out[a] = hi


@njit(cache=True)
def _log_gap(p, start, stop, log_r, log_target, h, delta, m_min, m_max, work):
    """``log P(first signal within start:stop at h) - log target`` on the shift chain."""
    m = _grid_nodes(h, delta, m_min, m_max)
    prob = grid_signal_probability(p, start, stop, log_r, h, m, work)
    return np.log(max(prob, 1e-300)) - log_target


@njit(cache=True)
def refine_limit(
    p, start, stop, log_r, log_target, h0, delta, m_min, m_max, tol, h_tol, max_iter, work
):
    """Root in ``h`` of ``g(h) = log P(signal within the chart at h) - log target`` from ``h0``.

    Secant steps (first slope -1: the in-control tail of a likelihood-ratio CUSUM's maximum
    falls like ``exp(-h)``, Siegmund 1985) until the root is bracketed, then the Illinois
    variant of regula falsi. Stops when ``|g| <= tol`` or the bracket is narrower than
    ``h_tol``; a step-like ``P`` (few deaths expected) then returns the bracket's upper end, the
    smallest ``h`` found with ``P <= target``. Returns ``(h, number of chain evaluations)``.
    """
    h = h0
    g = _log_gap(p, start, stop, log_r, log_target, h, delta, m_min, m_max, work)
    evals = 1
    if abs(g) <= tol:
        return h, evals
    lo, g_lo, hi, g_hi = -1.0, 0.0, -1.0, 0.0
    if g > 0.0:
        lo, g_lo = h, g
    else:
        hi, g_hi = h, g
    slope = -1.0
    side = 0  # which end the last Illinois step replaced (1 lower, 2 upper)
    while evals < max_iter:
        if lo >= 0.0 and hi >= 0.0:
            if hi - lo <= h_tol:
                return hi, evals
            h_new = (lo * g_hi - hi * g_lo) / (g_hi - g_lo)
            h_new = min(max(h_new, lo + 0.01 * (hi - lo)), hi - 0.01 * (hi - lo))
        else:
            step = min(max(-g / slope, -3.0), 3.0)
            if abs(step) < 0.01:
                step = 0.01 if g > 0.0 else -0.01
            h_new = max(h + step, 0.5 * h)
        g_new = _log_gap(p, start, stop, log_r, log_target, h_new, delta, m_min, m_max, work)
        evals += 1
        if abs(g_new) <= tol:
            return h_new, evals
        bracketed = lo >= 0.0 and hi >= 0.0
        if not bracketed and h_new != h:
            slope = min(max((g_new - g) / (h_new - h), -8.0), -0.2)
        if g_new > 0.0:
            if bracketed and side == 1:
                g_hi *= 0.5
            lo, g_lo, side = h_new, g_new, 1
        else:
            if bracketed and side == 2:
                g_lo *= 0.5
            hi, g_hi, side = h_new, g_new, 2
        h, g = h_new, g_new
    return (hi if hi >= 0.0 else h), evals


@njit(cache=True, parallel=True)
def refine_limits(
    offsets, p, charts, h0, log_r, target, delta, m_min, m_max, tol, h_tol, max_iter, out, evals
):
    """``refine_limit`` for each chart in ``charts`` (rows ``offsets[c]:offsets[c+1]``) from its
    starting limit ``h0[a]``; ``evals[a]``: chain evaluations used."""
    log_target = np.log(target)
    for a in prange(charts.shape[0]):
        c = charts[a]
        work = np.empty((2, m_max))
        out[a], evals[a] = refine_limit(
            p,
            offsets[c],
            offsets[c + 1],
            log_r,
            log_target,
            h0[a],
            delta,
            m_min,
            m_max,
            tol,
            h_tol,
            max_iter,
            work,
        )
