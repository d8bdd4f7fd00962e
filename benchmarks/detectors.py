"""Benchmark: alert detectors compared at the same measured false-alarm budget (issue 13 item 3).

Chart-level simulation of one monitored window (12 months, charts start at 0) for the detectors
of ``surveillance.stats.detectors``, each calibrated per chart exactly as the monitor does (the
fitted ``ThresholdSurface`` of each CUSUM's own odds ratio and share of the target, the exact
chain below 100 patients; the GLR by its own simulation, ``glr_n_sims`` = 20,000; the O/E test
exactly), at target 0.001 probability of any false alarm per chart-year:

- (a) ``cusum``: RA-CUSUM, design OR 2 (with the true risks this is the ideal chart);
- (b) ``multi_cusum``: ORs 1.5, 2, 3 side by side, Bonferroni target/3 each;
- (c) ``glr``: risk-adjusted Bernoulli GLR over change points, OR >= 1 by ML on a grid;
- (d) ``cusum_oe``: the OR 2 CUSUM at target/2 plus the window's exact O/E test at target/2.

Case mixes: 5% mean risk, expected deaths 10, 30, 50 or 100 a year (200-2,000 patients spread
evenly over the 12 months), risks logit-normal (sd 1.2) or heavier-tailed and skewed (logit risk
exponential, scale 1.3); each configuration has ``n_seq`` distinct case-mix sequences (each
calibrated on its own), rescaled so the year's expected deaths are exact. Out of control: the
odds of death times 1.5, 2 or 3 from the start of month 1, 4 or 7. In control: ``n_ic`` charts
per configuration (Monte-Carlo s.e. of a 0.1% rate: 0.022% at 20,000). Every detector sees the
same outcomes. Robustness: each detector also runs on a baseline mis-stated by +5% and +10% in
expected deaths (risks x 1.05, x 1.10, limits calibrated on those), as an inflated national
average would give it.

Measured: detection within the window (first signal at or after the change), median delay in
months from the change, false-alarm rate per chart-year with its s.e.; and the time to set
limits and run every detector on a synthetic nation of about 19,000 charts and 15 million
spells (the GLR's limits timed on a sample of charts and scaled by their deaths).

Usage: ``python benchmarks/detectors.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import special

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_table, write_result  # noqa: E402
from surveillance.mortality.monitor import threshold_surface  # noqa: E402
from surveillance.stats import detectors as d  # noqa: E402
from surveillance.stats.thresholds import chart_thresholds  # noqa: E402

TARGET = 0.001
MEAN_RISK = 0.05
EXPECTED = (10, 30, 50, 100)
MIXES = ("logit_normal", "heavy_tailed")
STEPS = (1.5, 2.0, 3.0)
STARTS = (1, 4, 7)
BIASES = (0.0, 0.05, 0.10)
DETECTORS = d.DETECTORS
GLR_SIMS = 20_000


def case_mix(mix: str, volume: int, expected: float, rng: np.random.Generator) -> np.ndarray:
    """One chart's in-control risks in time order, summing to ``expected``."""
    if mix == "logit_normal":
        score = rng.normal(0.0, 1.2, volume)
    else:  # heavier right tail: a minority of very high-risk patients
        score = 1.3 * (rng.exponential(1.0, volume) - 1.0)
    p = special.expit(special.logit(MEAN_RISK) + score)
    for _ in range(50):  # rescale on the logit scale until the sum is exact
        gap = expected - p.sum()
        if abs(gap) < 1e-9 * expected:
            break
        p = special.expit(special.logit(p) + gap / np.sum(p * (1 - p)))
    return np.clip(p, 1e-6, 0.999)


class Limits:
    """Per-sequence limits of each detector, through the same calibration as the monitor."""

    def __init__(self, n_sims: int):
        self.n_sims = n_sims
        self.surfaces: dict[tuple[float, float], object] = {}

    def cusum(self, offsets, p):
        def limits(odds_ratio: float, target: float) -> np.ndarray:
            key = (target, odds_ratio)
            if key not in self.surfaces:
                self.surfaces[key] = threshold_surface(target, odds_ratio)
            return chart_thresholds(offsets, p, self.surfaces[key])

        return limits

    def all(self, offsets, p, seed):
        return {
            name: d.detector_limits(
                offsets, p, name, self.cusum(offsets, p), TARGET, n_sims=self.n_sims, seed=seed
            )
            for name in DETECTORS
        }


def _replicate(limits: d.DetectorLimits, c: int, m: int) -> d.DetectorLimits:
    """Sequence ``c``'s limits for ``m`` replicate charts."""
    oe = None if limits.oe_critical is None else np.repeat(limits.oe_critical[c], m)
    return d.DetectorLimits(
        limits.detector,
        limits.components,
        np.repeat(limits.h[c : c + 1], m, axis=0),
        limits.odds_ratios,
        limits.target,
        oe,
        limits.oe_alpha,
    )


def simulate_config(mix, expected, n_seq, n_ic, n_oc, limits_maker, seed):
    """Counts per (detector, bias): in-control charts with a signal, and per (step, start) the
    detections and their delays (months), over ``n_seq`` case-mix sequences."""
    rng = np.random.default_rng(seed)
    volume = int(round(expected / MEAN_RISK))
    seqs = [case_mix(mix, volume, expected, rng) for _ in range(n_seq)]
    offsets_seq = np.arange(n_seq + 1, dtype=np.int64) * volume
    p_all = np.concatenate(seqs)
    # limits per bias, every sequence at once (the GLR simulates them in parallel)
    limits = {
        b: limits_maker.all(offsets_seq, np.clip(p_all * (1 + b), 0, 0.999), seed + int(b * 100))
        for b in BIASES
    }
    months = np.arange(volume) * 12.0 / volume  # month (0-based, continuous) of each patient
    out = {
        (name, b): {"ic_alarms": 0, "n_ic": 0, "det": {}, "delays": {}, "component": {}}
        for name in DETECTORS
        for b in BIASES
    }
    scenarios = [(1.0, 1)] * 1 + [(s, m) for s in STEPS for m in STARTS]
    for c, p in enumerate(seqs):
        # in-control replicates, then n_oc per (step, start); one set of outcomes for everyone
        blocks, changes, tags = [], [], []
        for step, start in scenarios:
            m = n_ic if step == 1.0 else n_oc
            change = int(round((start - 1) * volume / 12))
            pt = p.copy()
            if step != 1.0:
                odds = pt[change:] / (1 - pt[change:]) * step
                pt[change:] = odds / (1 + odds)
            blocks.append((rng.random((m, volume)) < pt).astype(np.int8).ravel())
            changes.append(np.full(m, change if step != 1.0 else 0))
            tags += [(step, start)] * m
        y = np.concatenate(blocks)
        change = np.concatenate(changes)
        n_charts = len(tags)
        tags_arr = np.array(tags)
        offsets = np.arange(n_charts + 1, dtype=np.int64) * volume
        for b in BIASES:
            p_used = np.tile(np.clip(p * (1 + b), 0, 0.999), n_charts)
            for name in DETECTORS:
                run = d.run_detector(offsets, p_used, y, _replicate(limits[b][name], c, n_charts))
                first_any = d.first_signals(offsets, run.signal)
                # first signal at or after the change
                row_in_chart = np.arange(offsets[-1]) - np.repeat(offsets[:-1], volume)
                after = run.signal & (row_in_chart >= np.repeat(change, volume))
                first = d.first_signals(offsets, after)
                rec = out[(name, b)]
                ic = tags_arr[:, 0] == 1.0
                rec["ic_alarms"] += int((first_any[ic] >= 0).sum())
                rec["n_ic"] += int(ic.sum())
                for step in STEPS:
                    for start in STARTS:
                        sel = (tags_arr[:, 0] == step) & (tags_arr[:, 1] == start)
                        f = first[sel]
                        key = f"{step:g}@{start}"
                        hit = f >= 0
                        rec["det"][key] = rec["det"].get(key, 0) + int(hit.sum())
                        ch = change[sel][hit]
                        rec["delays"].setdefault(key, []).extend(
                            (months[f[hit]] - months[ch]).tolist()
                        )
                        rows = offsets[:-1][sel][hit] + f[hit]
                        comps = np.asarray(run.components)[run.component[rows]]
                        for comp in comps:
                            rec["component"][comp] = rec["component"].get(comp, 0) + 1
    return out, volume


def summarise(out, n_oc_total):
    rows = []
    for (name, b), rec in out.items():
        fap = rec["ic_alarms"] / rec["n_ic"]
        row = {
            "detector": name,
            "bias": b,
            "fap": fap,
            "fap_se": float(np.sqrt(max(fap, 1e-12) * (1 - fap) / rec["n_ic"])),
            "n_ic": rec["n_ic"],
        }
        for step in STEPS:
            keys = [f"{step:g}@{s}" for s in STARTS]
            row[f"det_or{step:g}"] = sum(rec["det"][k] for k in keys) / (len(keys) * n_oc_total)
            delays = sum((rec["delays"][k] for k in keys), [])
            row[f"delay_or{step:g}"] = float(np.median(delays)) if delays else float("nan")
        row["by_start"] = {
            k: {
                "detected": rec["det"][k] / n_oc_total,
                "median_delay_months": float(np.median(rec["delays"][k]))
                if rec["delays"][k]
                else None,
            }
            for k in rec["det"]
        }
        total = sum(rec["component"].values())
        row["components"] = (
            {k: v / total for k, v in sorted(rec["component"].items())} if total else {}
        )
        rows.append(row)
    return rows


def national_timing(n_charts: int, limits_maker: Limits, glr_sample: int, seed: int = 0):
    """Seconds to set limits and run each detector on a synthetic nation."""
    rng = np.random.default_rng(seed)
    volume = np.round(np.exp(rng.uniform(np.log(10), np.log(5000), n_charts))).astype(np.int64)
    mean = special.expit(rng.uniform(special.logit(0.005), special.logit(0.3), n_charts))
    offsets = np.r_[0, np.cumsum(volume)].astype(np.int64)
    chart = np.repeat(np.arange(n_charts), volume)
    p = special.expit(special.logit(mean[chart]) + rng.normal(0, 1.0, offsets[-1]))
    y = (rng.random(offsets[-1]) < p).astype(np.int8)
    result = {"charts": n_charts, "spells": int(offsets[-1]), "deaths_expected": float(p.sum())}
    for name in DETECTORS:
        if name == "glr":
            # a random sample of charts, scaled by expected deaths (cost is per death)
            pick = np.sort(rng.choice(n_charts, glr_sample, replace=False))
            sub_o = np.r_[0, np.cumsum(volume[pick])].astype(np.int64)
            sub_p = np.concatenate([p[offsets[c] : offsets[c + 1]] for c in pick])
            t0 = time.perf_counter()
            d.glr_thresholds(sub_o, sub_p, TARGET, n_sims=GLR_SIMS)
            t_sample = time.perf_counter() - t0
            scale = p.sum() / sub_p.sum()
            g = np.full(n_charts, 8.0)  # run timing only: the limit's value does not matter
            lim = d.DetectorLimits("glr", ("glr",), g[:, None], d.glr_odds_ratio_grid(), TARGET)
            t0 = time.perf_counter()
            d.run_detector(offsets, p, y, lim)
            t_run = time.perf_counter() - t0
            result[name] = {
                "limits_s_estimated": t_sample * scale,
                "limits_s_sample": t_sample,
                "sample_charts": glr_sample,
                "run_s": t_run,
            }
            continue
        limits_maker.cusum(offsets, p)(2.0, TARGET)  # surfaces loaded before timing
        t0 = time.perf_counter()
        lim = d.detector_limits(offsets, p, name, limits_maker.cusum(offsets, p), TARGET)
        t_lim = time.perf_counter() - t0
        t0 = time.perf_counter()
        d.run_detector(offsets, p, y, lim)
        t_run = time.perf_counter() - t0
        result[name] = {"limits_s": t_lim, "run_s": t_run, "total_s": t_lim + t_run}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run (minutes)")
    args = parser.parse_args()
    if args.quick:
        n_seq, n_ic, n_oc, nat, glr_sample = 8, 250, 25, 2_000, 40
    else:
        n_seq, n_ic, n_oc, nat, glr_sample = 40, 500, 25, 19_000, 200
    limits_maker = Limits(GLR_SIMS)
    # fit (or load) every surface first, so the timings below exclude the one-off fits
    t0 = time.perf_counter()
    for key in [(TARGET, 2.0), (TARGET / 2, 2.0)] + [(TARGET / 3, r) for r in STEPS]:
        limits_maker.surfaces[key] = threshold_surface(*key)
    surfaces_s = time.perf_counter() - t0
    results = []
    t_start = time.perf_counter()
    for i, mix in enumerate(MIXES):
        for j, e in enumerate(EXPECTED):
            out, volume = simulate_config(mix, e, n_seq, n_ic, n_oc, limits_maker, 1000 * i + j)
            for row in summarise(out, n_seq * n_oc):
                results.append({"mix": mix, "expected": e, "volume": volume, **row})
            print(f"  {mix} E={e}: done at {time.perf_counter() - t_start:.0f} s", flush=True)
    for b in BIASES:
        print_table(
            [
                {k: v for k, v in r.items() if k not in ("by_start", "components", "bias")}
                for r in results
                if r["bias"] == b
            ],
            f"\nBaseline bias {b:+.0%} (expected deaths over-stated), target {TARGET}:",
        )
    print("\nPooled over configurations with 30+ expected deaths, true baseline:")
    pooled = []
    for name in DETECTORS:
        rs = [
            r for r in results if r["detector"] == name and r["bias"] == 0.0 and r["expected"] >= 30
        ]
        n_ic_all = sum(r["n_ic"] for r in rs)
        alarms = sum(r["fap"] * r["n_ic"] for r in rs)
        pooled.append(
            {
                "detector": name,
                "fap": alarms / n_ic_all,
                "fap_se": float(np.sqrt(max(alarms, 1) / n_ic_all**2)),
                **{f"det_or{s:g}": float(np.mean([r[f"det_or{s:g}"] for r in rs])) for s in STEPS},
                "delay_or2": float(np.median([r["delay_or2"] for r in rs])),
            }
        )
    print_table(pooled)
    t0 = time.perf_counter()
    nation = national_timing(nat, limits_maker, glr_sample)
    print(f"\nNational timing ({nation['charts']} charts, {nation['spells']} spells):")
    for name in DETECTORS:
        print(f"  {name}: {nation[name]}")
    write_result(
        "detectors",
        {
            "quick": args.quick,
            "target": TARGET,
            "mean_risk": MEAN_RISK,
            "sequences_per_config": n_seq,
            "in_control_per_config": n_seq * n_ic,
            "out_of_control_per_step_and_start": n_seq * n_oc,
            "glr_n_sims": GLR_SIMS,
            "surfaces_fit_or_load_s": surfaces_s,
            "simulation_s": t0 - t_start,
            "results": results,
            "pooled_30plus_true_baseline": pooled,
            "national": nation,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
