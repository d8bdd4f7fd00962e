"""Benchmark: RA-CUSUM thresholds for ~24,000 national charts, and their accuracy.

1. Time to set ``h`` for every chart: fit the ``ThresholdSurface`` (Markov-chain calibration on a
   design grid), compute each chart's case-mix summary (volume, mean risk, sd of logit risk) from
   its spells, predict. Target: under 60 s in total.
2. Accuracy on a random sample of 100 charts: the 12-month false-alarm probability actually
   achieved at the predicted ``h`` for the chart's own patients (fixed sequence, outcomes
   simulated in control), checked by direct Monte-Carlo simulation (running maximum, seeded,
   with its standard error) and by the exact time-inhomogeneous Markov chain (fine grid).
   Target: within +-20% (relative) of the target probability. Case mixes of the sample charts
   are drawn from a skewed family (gamma-distributed logit risk), not the logit-normal family
   the surface was fitted on, so shape mismatch is part of the measured error.
   Checked at target 0.001 and 0.01.

3. ``--accuracy`` (only this part; its results go under ``product_accuracy``, the other keys
   keep the last full run's values): the PRODUCT path, ``monitor.chart_thresholds`` with default
   settings (surface from the disk cache, count floor included), on stratified samples (up to
   ``--per-band`` charts per volume band 1-19, 20-99, 100-499, 500-1999, 2000+; seeded) of the
   12-month charts of a synthetic bundle (``--data``, default an ``m5`` nation built in a temp
   dir) with risks from a fitted ``RiskModel``; of the same case mixes resampled to national
   volume (15 million window spells); and of harder case mixes (skewed, bimodal, a few very
   high-risk patients). Achieved probability by the exact sequence chain (grid 0.002) at odds
   ratio 2 / target 0.001 and odds ratios 1.5 and 3 / target 0.001/3; share within +-20%, with
   the step rule of :func:`step_within` for charts whose probability is a step function of h.
   Also times the product path on the national-volume charts. Target: >= 95% within.

Usage: ``python benchmarks/thresholds.py [--skip-slow] [--accuracy [--data DIR]]`` (skip-slow:
2,400 charts, fewer sims).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np
from scipy import special

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS_DIR, machine, print_table, timed, write_result  # noqa: E402

from surveillance.stats import _cusum_kernels as kernels  # noqa: E402
from surveillance.stats.thresholds import (  # noqa: E402
    ThresholdSurface,
    calibrate_threshold,
    chart_thresholds,
)


def national_case_mixes(n_charts: int, seed: int = 0):
    """Charts (trust x diagnosis group): volume 10-5,000 spells a year (log-uniform), mean risk
    0.5%-40% (logit-uniform), risk spread 0.3-1.5 on the logit scale, skewed (gamma) shape."""
    rng = np.random.default_rng(seed)
    volume = np.round(np.exp(rng.uniform(np.log(10), np.log(5000), n_charts))).astype(np.int64)
    mean_risk = special.expit(rng.uniform(special.logit(0.005), special.logit(0.4), n_charts))
    scale = rng.uniform(0.3, 1.5, n_charts)
    offsets = np.concatenate([[0], np.cumsum(volume)])
    chart = np.repeat(np.arange(n_charts), volume)
    score = rng.gamma(2.0, 1.0 / np.sqrt(2.0), offsets[-1])  # skewed, sd 1
    score -= np.repeat(np.add.reduceat(score, offsets[:-1]) / volume, volume)
    p = special.expit(special.logit(mean_risk[chart]) + scale[chart] * score)
    # rescale so each chart's mean risk is the drawn one (risk models are calibrated)
    p = np.clip(
        p * np.repeat(mean_risk / (np.add.reduceat(p, offsets[:-1]) / volume), volume), 1e-6, 0.99
    )
    return offsets, p


def chart_features(surface: ThresholdSurface, offsets: np.ndarray, p: np.ndarray):
    """Per chart: volume, mean risk, equivalent spread (vectorised over all charts)."""
    mean, spread = surface.chart_features(offsets, p)
    return np.diff(offsets), mean, spread


def check_sample(surface, offsets, p, sample, target, n_sims, seed):
    n, mean, spread = chart_features(surface, offsets, p)
    h = surface.predict(n[sample], mean[sample], spread[sample])
    # hybrid: exact per-chart calibration for the small charts of the sample
    small = sample[n[sample] < 100].astype(np.int64)
    h_small = np.empty(small.shape[0])
    log_r = np.log(2.0)
    kernels.calibrate_sequences(
        offsets, p, small, log_r, target, 0.005, 60, 1000, 20.0, 1e-4, h_small
    )
    h_hybrid = h.copy()
    h_hybrid[np.isin(sample, small)] = h_small
    # a small chart's false-alarm probability is step-like in h: the target is attainable within
    # +-20% iff the smallest h reaching 1.2 x target is below the smallest reaching 0.8 x target
    h_12 = np.empty(small.shape[0])
    h_08 = np.empty(small.shape[0])
    kernels.calibrate_sequences(
        offsets, p, small, log_r, 1.2 * target, 0.005, 60, 1000, 20.0, 1e-4, h_12
    )
    kernels.calibrate_sequences(
        offsets, p, small, log_r, 0.8 * target, 0.005, 60, 1000, 20.0, 1e-4, h_08
    )
    attainable_small = dict(zip(small.tolist(), (h_12 < h_08 - 2e-4).tolist(), strict=True))
    rows = []
    for i, c in enumerate(sample):
        seq = np.ascontiguousarray(p[offsets[c] : offsets[c + 1]])
        exact = float(kernels.ra_sequence_signal_probability(seq, log_r, float(h[i]), 1500)[-1])
        hybrid = float(
            kernels.ra_sequence_signal_probability(seq, log_r, float(h_hybrid[i]), 1500)[-1]
        )
        top = np.empty(n_sims)
        kernels.simulate_ra_running_max(seq, False, log_r, seq.shape[0], n_sims, seed + i, top)
        mc = float(np.mean(top >= h[i]))
        attainable = attainable_small.get(int(c), True)
        rows.append(
            {
                "chart": int(c),
                "volume": int(n[c]),
                "mean_risk": float(mean[c]),
                "spread": float(spread[c]),
                "h": float(h[i]),
                "p_markov": exact,
                "p_mc": mc,
                "p_hybrid_markov": hybrid,
                "attainable_within_20pct": attainable,
                "mc_se": float(np.sqrt(max(mc, 1e-12) * (1 - mc) / n_sims)),
            }
        )
    return rows


def summarise(rows, target, key):
    ratio = np.array([r[key] for r in rows]) / target
    vol = np.array([r["volume"] for r in rows])
    big = vol >= 100
    attainable = np.array([r["attainable_within_20pct"] for r in rows])
    return {
        "attainable_charts": int(attainable.sum()),
        "within_20pct_of_attainable": float(np.mean(np.abs(ratio[attainable] - 1) <= 0.2)),
        "target": target,
        "estimate": key,
        "within_20pct": float(np.mean(np.abs(ratio - 1) <= 0.2)),
        "within_20pct_volume_ge_100": float(np.mean(np.abs(ratio[big] - 1) <= 0.2)),
        "within_20pct_volume_lt_100": float(np.mean(np.abs(ratio[~big] - 1) <= 0.2))
        if (~big).any()
        else None,
        "median_ratio": float(np.median(ratio)),
        "ratio_p05": float(np.quantile(ratio, 0.05)),
        "ratio_p95": float(np.quantile(ratio, 0.95)),
        "n_volume_ge_100": int(big.sum()),
    }


# --------------------------------------------------------------------------------------------
# --accuracy: the product path on real and harder case mixes

#: volume bands (patients in the 12-month window) the accuracy sample is stratified by
VOLUME_BANDS = (1, 20, 100, 500, 2000, 10**9)
#: (design odds ratio, target): the default chart, and a design-OR split of the 0.1% budget
ACCURACY_SETTINGS = ((2.0, 0.001), (1.5, 0.001 / 3), (3.0, 0.001 / 3))
#: window spells of a national quarter's charts (the thresholds budget)
NATIONAL_WINDOW_SPELLS = 15_000_000
#: the checking chain: grid step 0.002 of the statistic (0.1-0.3% from the grid limit)
CHECK_DELTA, CHECK_M_MIN, CHECK_M_MAX = 0.002, 500, 8000
#: width in h of a step of the false-alarm probability on the checking chain's grid (5 steps)
STEP_WIDTH = 0.01


def bundle_charts(data_dir: Path, quarter: str = "2013Q3"):
    """The quarter's 12-month charts (rows by chart, then time) of a bundle, with in-control risks
    from a ``RiskModel`` fitted on the bundle (as ``benchmarks/detection.py`` part 2 does)."""
    from surveillance.mortality.encode import encode_spells, month_number, read_spells
    from surveillance.mortality.monitor import build_charts
    from surveillance.mortality.ratios import as_quarter
    from surveillance.mortality.risk_model import RiskModel

    spells = read_spells(data_dir / "spells.parquet")
    model = RiskModel().fit(spells, end=quarter)
    p = model.predict(spells)
    enc = encode_spells(spells, model.outcome, model.spec.period_date)
    charts = build_charts(enc, p, month_number(as_quarter(quarter).end), 12)
    return charts.offsets, np.ascontiguousarray(charts.p)


def at_volume(offsets, p, factor: float, seed: int):
    """Each chart's own risks resampled (with replacement, seeded) to ``factor`` times its
    volume: the bundle's case mixes at national volumes."""
    rng = np.random.default_rng(seed)
    n = np.diff(offsets)
    new_n = np.maximum(np.round(n * factor).astype(np.int64), 1)
    new_offsets = np.r_[0, np.cumsum(new_n)].astype(np.int64)
    pick = np.repeat(offsets[:-1], new_n) + np.floor(
        rng.random(new_offsets[-1]) * np.repeat(n, new_n)
    ).astype(np.int64)
    return new_offsets, p[pick]


def hard_case_mixes(n_per_kind: int, seed: int):
    """Case mixes unlike the logit-normal family the surface is fitted on, at volumes 10-8,000
    (log-uniform): ``skewed`` (logit risk = base + gamma(0.5) with sd 1.5: a long tail),
    ``bimodal`` (70-95% of patients near 1%, the rest near 15-40%), ``few_very_high`` (0.5-3% of
    patients at 60-95% risk among patients at 0.3-3%). Returns offsets, p and each chart's kind."""
    rng = np.random.default_rng(seed)
    kinds = ("skewed", "bimodal", "few_very_high")
    n_charts = n_per_kind * len(kinds)
    kind = np.repeat(np.arange(len(kinds)), n_per_kind)
    volume = np.round(np.exp(rng.uniform(np.log(10), np.log(8000), n_charts))).astype(np.int64)
    offsets = np.r_[0, np.cumsum(volume)].astype(np.int64)
    parts = []
    for c in range(n_charts):
        n = int(volume[c])
        if kind[c] == 0:
            base = special.logit(rng.uniform(0.003, 0.05))
            lp = base + 1.5 * (rng.gamma(0.5, 1.0, n) - 0.5) / np.sqrt(0.5)
        elif kind[c] == 1:
            high = rng.random(n) < rng.uniform(0.05, 0.3)
            lp = np.where(
                high,
                special.logit(rng.uniform(0.15, 0.4)) + 0.3 * rng.normal(size=n),
                special.logit(rng.uniform(0.003, 0.02)) + 0.3 * rng.normal(size=n),
            )
        else:
            high = rng.random(n) < rng.uniform(0.005, 0.03)
            lp = np.where(
                high,
                special.logit(rng.uniform(0.6, 0.95)) + 0.2 * rng.normal(size=n),
                special.logit(rng.uniform(0.003, 0.03)) + 0.8 * rng.normal(size=n),
            )
        parts.append(special.expit(lp))
    p = np.clip(np.concatenate(parts), 1e-6, 0.99)
    return offsets, p, np.asarray(kinds)[kind]


def stratified_sample(volume, per_band: int, seed: int):
    """Up to ``per_band`` charts per ``VOLUME_BANDS`` band, without replacement, sorted."""
    rng = np.random.default_rng(seed)
    out = []
    for lo, hi in zip(VOLUME_BANDS[:-1], VOLUME_BANDS[1:], strict=True):
        idx = np.flatnonzero((volume >= lo) & (volume < hi))
        out.append(np.sort(rng.choice(idx, min(per_band, idx.size), replace=False)))
    return np.concatenate(out).astype(np.int64)


def subset(offsets, p, charts):
    """Offsets and risks of the charts ``charts`` only (their own patients, in order)."""
    n = np.diff(offsets)[charts]
    rows = np.concatenate([np.arange(offsets[c], offsets[c + 1]) for c in charts])
    return np.r_[0, np.cumsum(n)].astype(np.int64), np.ascontiguousarray(p[rows])


def product_limits(offsets, p, odds_ratio: float, target: float):
    """The product path: ``monitor.chart_thresholds`` with default settings but for
    ``odds_ratio`` and ``target`` (surface from the disk cache, count floor included)."""
    from surveillance.mortality.monitor import (
        Charts,
        CusumSettings,
        chart_thresholds,
        threshold_surface,
    )

    n_charts = len(offsets) - 1
    charts = Charts(
        order=np.arange(len(p)),
        offsets=offsets,
        trust=np.arange(n_charts, dtype=np.int32),
        group=np.zeros(n_charts, np.int32),
        p=p,
        y=np.zeros(len(p), np.int8),
        month=np.zeros(len(p), np.int64),
        trusts=np.array([f"T{i}" for i in range(n_charts)]),
        groups=np.array(["G"]),
    )
    settings = CusumSettings(odds_ratio=odds_ratio, target=target)
    return chart_thresholds(charts, settings, threshold_surface(target, odds_ratio))


def check_probability(offsets, p, h, log_r):
    """12-month false-alarm probability of each chart at ``h``: the exact sequence chain (the
    chart's own patients in order) on a fine grid."""
    out = np.empty(len(h))
    kernels.sequence_signal_probabilities(
        offsets,
        p,
        np.arange(len(h), dtype=np.int64),
        np.asarray(h, dtype=float),
        log_r,
        CHECK_DELTA,
        CHECK_M_MIN,
        CHECK_M_MAX,
        out,
    )
    return out


def step_within(offsets, p, achieved, log_r: float, target: float):
    """Step rule for charts outside +-20% (``offsets``/``p`` hold only those charts).

    Let ``h_T`` be the smallest ``h`` with probability <= target (bisection on the checking
    chain). The chart's probability is a step function of ``h`` across the target when it falls
    below 0.8 x target within ``STEP_WIDTH`` of ``h_T`` (one more death needed; on the chain's
    grid a step is a ramp a few grid steps wide, so the attainable value is read just past it,
    at ``h_T + STEP_WIDTH``). Such a chart counts as within when its own probability is that
    attainable value nearest the target from below (at least 0.9 x it: not a whole step lower)
    or anything up to 1.2 x target. Returns (step-like, counted within)."""
    charts = np.arange(len(offsets) - 1, dtype=np.int64)
    h_t = np.empty(len(charts))
    kernels.smallest_limits(
        offsets, p, charts, log_r, target, CHECK_DELTA, CHECK_M_MIN, CHECK_M_MAX, 60.0, 1e-4, h_t
    )
    below = check_probability(offsets, p, h_t + STEP_WIDTH, log_r)
    step = below < 0.8 * target
    return step, step & (achieved <= 1.2 * target) & (achieved >= 0.9 * below)


def check_accuracy(name: str, offsets, p, sample, kinds=None) -> tuple[list[dict], list[dict]]:
    """Achieved probability / target of the product path's ``h`` on the ``sample`` charts, for
    every ``ACCURACY_SETTINGS`` entry: summary rows (overall, by volume band, by kind) and
    per-chart rows."""
    o, pp = subset(offsets, p, sample)
    vol = np.diff(o)
    band = np.searchsorted(np.asarray(VOLUME_BANDS), vol, side="right") - 1
    summary, details = [], []
    for odds_ratio, target in ACCURACY_SETTINGS:
        log_r = float(np.log(odds_ratio))
        h = product_limits(o, pp, odds_ratio, target)
        achieved = check_probability(o, pp, h, log_r)
        ratio = achieved / target
        within = np.abs(ratio - 1.0) <= 0.2
        step = np.zeros(len(h), dtype=bool)
        # the step rule can only apply where few deaths are expected (below 5 the probability
        # moves in steps of one death; above, it is smooth in h on the +-20% scale)
        expected = np.add.reduceat(pp, o[:-1])
        out = np.flatnonzero(~within & ((expected < 5.0) | (vol < 100)))
        if out.size:
            so, sp = subset(o, pp, out)
            step[out], counted = step_within(so, sp, achieved[out], log_r, target)
            within[out] = counted
        groups = [("all", np.ones(len(h), dtype=bool))]
        groups += [
            (f"{lo}-{hi - 1}" if hi < 10**9 else f">={lo}", band == b)
            for b, (lo, hi) in enumerate(zip(VOLUME_BANDS[:-1], VOLUME_BANDS[1:], strict=True))
        ]
        if kinds is not None:
            k = np.asarray(kinds)[sample]
            groups += [(f"kind={v}", k == v) for v in np.unique(k)]
        for label, mask in groups:
            if not mask.any():
                continue
            summary.append(
                {
                    "sample": name,
                    "odds_ratio": odds_ratio,
                    "target": target,
                    "charts": label,
                    "n": int(mask.sum()),
                    "within_20pct": float(within[mask].mean()),
                    "step_charts": int(step[mask].sum()),
                    "median_ratio": float(np.median(ratio[mask])),
                    "ratio_p05": float(np.quantile(ratio[mask], 0.05)),
                    "ratio_p95": float(np.quantile(ratio[mask], 0.95)),
                }
            )
        details += [
            {
                "sample": name,
                "odds_ratio": odds_ratio,
                "chart": int(c),
                "volume": int(vol[i]),
                "h": float(h[i]),
                "ratio": float(ratio[i]),
                "step": bool(step[i]),
                "within": bool(within[i]),
            }
            for i, c in enumerate(sample)
            if not within[i]  # the charts outside +-20% only (the summary counts the rest)
        ]
    return summary, details


def ensure_bundle(data: Path | None) -> Path:
    """``data`` or, if None, an ``m5`` synthetic nation (one quarter, 2013Q3) in a temp dir."""
    if data is not None:
        return data
    import tempfile

    from surveillance.synth import synthesise

    root = Path(tempfile.mkdtemp(prefix="bench_thresholds_"))
    synthesise(root / "nation", seed=2013, scale="m5", quarter="2013Q3", quarters=1)
    return root / "nation" / "2013Q3"


def accuracy_main(data: Path | None, per_band: int) -> dict:
    """The product path's accuracy on the bundle's charts (as they are and at national volume)
    and on harder case mixes, and its time on a national quarter's charts."""
    offsets, p = bundle_charts(ensure_bundle(data))
    factor = NATIONAL_WINDOW_SPELLS / offsets[-1]
    nat_offsets, nat_p = at_volume(offsets, p, factor, seed=7)
    hard_offsets, hard_p, kinds = hard_case_mixes(max(per_band * 5 // 3, 1), seed=11)
    # fit (or load) the surfaces and compile the kernels first (a few charts of every band), so
    # the timing below is the per-quarter cost
    warm = subset(nat_offsets, nat_p, stratified_sample(np.diff(nat_offsets), 3, seed=0))
    fit = {}
    for odds_ratio, target in ACCURACY_SETTINGS:
        t_fit, _ = timed(lambda o=odds_ratio, t=target: product_limits(*warm, o, t))
        fit[f"or{odds_ratio:g}"] = t_fit
    cpu0 = time.process_time()
    t_nat, h_nat = timed(lambda: product_limits(nat_offsets, nat_p, 2.0, 0.001))
    cpu_nat = time.process_time() - cpu0
    national = {
        "charts": len(nat_offsets) - 1,
        "window_spells": int(nat_offsets[-1]),
        "thresholds_s": t_nat,
        "thresholds_cpu_s": cpu_nat,
        "threads": numba.get_num_threads(),
        "surface_fit_or_load_s": fit,
        "load_average": os.getloadavg(),
    }
    print(
        f"national quarter: {national['charts']} charts, {national['window_spells']:,} spells: "
        f"thresholds in {t_nat:.1f} s wall, {cpu_nat:.1f} s CPU"
    )
    summary, details = [], []
    samples = (
        ("bundle", offsets, p, None, 1),
        ("bundle_national_volume", nat_offsets, nat_p, None, 2),
        ("hard", hard_offsets, hard_p, kinds, 3),
    )
    for name, o, pp, k, seed in samples:
        sample = stratified_sample(np.diff(o), per_band, seed)
        start = time.perf_counter()
        rows, per_chart = check_accuracy(name, o, pp, sample, k)
        print(f"{name}: {len(sample)} charts checked in {time.perf_counter() - start:.0f} s")
        print_table([r for r in rows if r["charts"] == "all"])
        summary += rows
        details += per_chart
    print_table(summary, "product path: achieved 12-month false-alarm probability / target")
    return {"national": national, "summary": summary, "charts": details, "per_band": per_band}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-slow", action="store_true")
    parser.add_argument(
        "--accuracy", action="store_true", help="only the product path's accuracy check"
    )
    parser.add_argument("--data", type=Path, default=None, help="bundle dir (default: m5 synth)")
    parser.add_argument("--per-band", type=int, default=100)
    args = parser.parse_args()
    if args.accuracy:
        result = accuracy_main(args.data, args.per_band)
        path = RESULTS_DIR / "thresholds.json"
        previous = json.loads(path.read_text()) if path.is_file() else {}
        previous.pop("benchmark", None)  # the other keys keep the last full run's values
        previous["product_accuracy"] = {**result, "machine": machine()}
        write_result("thresholds", previous)
        return 0
    n_charts = 2_400 if args.skip_slow else 24_000
    sims = {0.001: 20_000, 0.01: 10_000} if args.skip_slow else {0.001: 200_000, 0.01: 50_000}

    offsets, p = national_case_mixes(n_charts)
    # compile once on a tiny surface so the timing below is the method, not numba's JIT
    ThresholdSurface(
        volumes=np.array([5.0, 10.0]),
        mean_risks=np.array([0.1, 0.2]),
        spreads=np.array([0.0, 1.0]),
        h_grid=np.array([1.0, 2.0]),
    ).fit()

    cpu0 = time.process_time()
    t_fit, surface = timed(lambda: ThresholdSurface(target=0.001).fit())
    cpu_fit = time.process_time() - cpu0
    t_feat, feats = timed(lambda: chart_features(surface, offsets, p))
    t_pred, h_all = timed(lambda: surface.predict(*feats))
    total = t_fit + t_feat + t_pred
    cpu0 = time.process_time()
    t_hybrid, h_hybrid = timed(lambda: chart_thresholds(offsets, p, surface, exact_below=100))
    cpu_hybrid = time.process_time() - cpu0
    print(
        f"hybrid (exact per chart below 100 spells): {t_hybrid:.1f} s wall, {cpu_hybrid:.1f} s CPU"
    )
    print(f"fit CPU time {cpu_fit:.1f} s (all threads); load average {os.getloadavg()}")
    print(
        f"{n_charts} charts ({offsets[-1]:,} spells): fit {t_fit:.1f} s + features {t_feat:.2f} s + predict {t_pred:.3f} s = {total:.1f} s"
    )

    # per-chart direct calibration cost, for comparison (simulation, 20,000 runs, 5 charts)
    rng = np.random.default_rng(3)
    few = rng.choice(n_charts, 5, replace=False)
    start = time.perf_counter()
    for c in few:
        calibrate_threshold(
            p[offsets[c] : offsets[c + 1]],
            int(offsets[c + 1] - offsets[c]),
            0.001,
            sequence=True,
            n_sims=20_000,
        )
    per_chart = (time.perf_counter() - start) / len(few)

    sample = np.sort(rng.choice(n_charts, 100, replace=False))
    accuracy = []
    details = {}
    for target in (0.001, 0.01):
        surf = surface if target == 0.001 else ThresholdSurface(target=target).fit()
        rows = check_sample(surf, offsets, p, sample, target, sims[target], seed=100)
        details[str(target)] = rows
        accuracy.append(summarise(rows, target, "p_markov"))
        accuracy.append(summarise(rows, target, "p_mc"))
        accuracy.append(summarise(rows, target, "p_hybrid_markov"))
        se = np.median([r["mc_se"] for r in rows]) / target
        accuracy[-2]["median_mc_se_relative"] = float(se)
    print_table(accuracy, "achieved 12-month false-alarm probability / target on 100 random charts")

    a = accuracy[0]
    summary = (
        f"thresholds for {n_charts} charts in {total:.1f} s wall (fit {t_fit:.1f} s, {cpu_fit:.1f} s CPU; predict {t_pred * 1e3:.0f} ms); "
        f"target 0.001: {a['within_20pct']:.0%} of 100 charts within +-20% (Markov check), "
        f"{a['within_20pct_volume_ge_100']:.0%} of those with >= 100 spells; median ratio {a['median_ratio']:.2f}; "
        f"direct simulation per chart {per_chart:.2f} s"
    )
    print(summary)
    write_result(
        "thresholds",
        {
            "summary": summary,
            "n_charts": n_charts,
            "n_spells": int(offsets[-1]),
            "fit_s": t_fit,
            "fit_cpu_s": cpu_fit,
            "features_s": t_feat,
            "predict_s": t_pred,
            "total_s": total,
            "hybrid_s": t_hybrid,
            "hybrid_cpu_s": cpu_hybrid,
            "direct_simulation_per_chart_s": per_chart,
            "h_range": [float(h_all.min()), float(h_all.max())],
            "accuracy": accuracy,
            "sample": details,
            "load_average": os.getloadavg(),
            "skip_slow": args.skip_slow,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
