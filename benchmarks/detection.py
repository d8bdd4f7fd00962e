"""Detection of planted deteriorations and false alarms of the monthly RA-CUSUM charts.

Part 1 (own simulator, chart level, the production kernels and threshold surface): charts of a
trust x diagnosis group over the monitored 12 months with a logit-normal case mix (mean risk
``--mean-risk``, logit sd 1). Each chart's threshold comes from the fitted surface for a 0.1%
probability of a false alarm in 12 months. In-control charts give the measured false-alarm
probability (target 0.001); charts with the odds of death multiplied by 1.5, 2 or 3 from the start
of month 4 give the detection rate within 6 months of the step (signal in months 4-9), the rate
by the end of the window, and the median delay in months (1 = signal in the step's own month),
by chart volume (expected deaths a year).

Part 2 (issue 13: data the charts were not built on): ``--seeds`` (default 11 12 13) harder
nations (``surveillance synth --world harder --scale m5``, 36 months to ``--quarter`` 2013Q4, about
5 million spells each, built once under ``--root``): a worse minority of trusts, palliative care a
true risk factor, age effects not linear in the bands, a falling trend and winter, missing
deprivation in some trusts, clustered OR 2 and OR 3 deteriorations. The charts of the 12-month
window are run with each baseline: ``shmi_national`` (the SHMI-style model, as before issue 13),
``alert_national`` (the alert model, no baseline shift), ``alert_typical_trust`` (the product:
alert model at the typical trust), ``alert_typical_weighted`` (weighted-median location),
``alert_spell_palliative`` (the alert model on each spell's own palliative code, as before the
charts took the trust's phase I coding rate), ``alert_own_trust`` (each trust's own phase I level,
for comparison), ``ideal_typical`` (the TRUE in-control risks had the trust been the typical
trust: the ceiling of any chart whose standard is the typical trust) and ``ideal`` (the TRUE
in-control risks from the oracle sidecar of ground_truth.json, each trust's own effect included:
the ceiling), and the typical-trust and both ideal baselines with every detector but the GLR (too slow for 19,000 charts; compared at chart
level in ``benchmarks/detectors.py``). Reported per nation and pooled: planted charts with 30+
expected deaths a year detected within the window (first signal at or after the start month) and
the median delay (months, 1 = the start month) for OR 2 and OR 3; the measured false-alarm rate
per chart-year with its standard error, over the in-control charts of near-typical trusts (no
planted deterioration, the trust's true effect within 0.05 of the median trust's: the issue's
"no trust effect") and, more broadly, over every chart outside the worse minority and the planted
ones (their trusts' own effects, up to +-0.3, count as false alarms there); and the typical-trust O/E (a typical trust's true expected
deaths, odds moved from each trust's own true effect to the median trust's, over the chart's).

Targets (issue 13): >= 90% of the planted 30+ charts detected, >= 95% of what the ideal chart
detects, false alarms <= 0.1% per chart-year, typical-trust O/E within 1 +- 0.02.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_table, write_result  # noqa: E402

BASE_MONTH = (2012 - 1970) * 12 + 9  # 2012-10, first month of the 2013Q3 window
STEP_MONTH = 3  # step from the start of the 4th month


def simulate_charts(n_charts, expected_per_year, mean_risk, odds_ratio, seed):
    """Sorted chart arrays: offsets, in-control p, outcomes y, month index (0..11)."""
    from scipy.special import expit, logit

    rng = np.random.default_rng(seed)
    n_per = max(int(round(expected_per_year / mean_risk)), 1)
    n = n_charts * n_per
    p = np.clip(expit(logit(mean_risk) - 0.4 + rng.normal(0.0, 1.0, n)), 1e-5, 0.98)
    p *= mean_risk / p.mean()
    month = np.tile(np.sort(rng.integers(0, 12, n_per)), n_charts)
    odds = p / (1 - p) * np.where(month >= STEP_MONTH, odds_ratio, 1.0)
    y = (rng.random(n) < odds / (1 + odds)).astype(np.int8)
    offsets = np.arange(0, n + 1, n_per, dtype=np.int64)
    return offsets, p, y, month


def run(offsets, p, y, month, surface, target=0.001):
    from surveillance.mortality.monitor import Charts, CusumSettings, chart_thresholds, run_charts

    n_charts = len(offsets) - 1
    charts = Charts(
        order=np.arange(len(p)),
        offsets=offsets,
        trust=np.arange(n_charts, dtype=np.int32),
        group=np.zeros(n_charts, np.int32),
        p=p,
        y=y,
        month=month + BASE_MONTH,
        trusts=np.array([f"T{i}" for i in range(n_charts)]),
        groups=np.array(["G"]),
    )
    settings = CusumSettings(target=target)
    h = chart_thresholds(charts, settings, surface)
    _, signal, _ = run_charts(charts, h, settings)
    cid = np.repeat(np.arange(n_charts), np.diff(offsets))
    first = np.full(n_charts, 99)
    rows = np.flatnonzero(signal)
    np.minimum.at(first, cid[rows], month[rows])
    return first, h


def part1(args, surface):
    volumes = [10, 25, 50, 100, 200]
    rows, fa_rows = [], []
    for v_i, e in enumerate(volumes):
        offsets, p, y, month = simulate_charts(
            args.in_control_charts, e, args.mean_risk, 1.0, 1000 + v_i
        )
        first, h = run(offsets, p, y, month, surface)
        alarms = int((first < 99).sum())
        fa = alarms / len(first)
        fa_rows.append(
            {
                "expected_per_year": e,
                "charts": len(first),
                "false_alarms": alarms,
                "false_alarm_rate": fa,
                "target": 0.001,
                "h_median": float(np.median(h)),
            }
        )
        for r_i, odds_ratio in enumerate((1.5, 2.0, 3.0)):
            offsets, p, y, month = simulate_charts(
                args.charts, e, args.mean_risk, odds_ratio, 2000 + 10 * v_i + r_i
            )
            first, _ = run(offsets, p, y, month, surface)
            after = first >= STEP_MONTH
            delay = first - STEP_MONTH + 1
            within6 = after & (delay <= 6)
            by_end = after & (first < 12)
            rows.append(
                {
                    "odds_ratio": odds_ratio,
                    "expected_per_year": e,
                    "charts": len(first),
                    "detected_6m": float(within6.mean()),
                    "detected_by_end": float(by_end.mean()),
                    "median_delay_months": float(np.median(delay[by_end]))
                    if by_end.any()
                    else None,
                    "alarm_before_step": float((first < STEP_MONTH).mean()),
                }
            )
    return rows, fa_rows


# ------------------------------------------------------------------ part 2: harder nations

#: planted charts that the targets speak of: 30+ expected deaths a year (without the deterioration)
MIN_EXPECTED_PER_YEAR = 30.0


def nation_bundle(root: Path, seed: int, scale: str, quarter: str) -> Path:
    """The harder world's bundle for ``seed`` under ``root`` (built once, then reused)."""
    from surveillance.synth import synthesise

    out = root / f"harder_{scale}_{seed}"
    if not (out / "ground_truth.json").is_file():
        synthesise(out, seed=seed, scale=scale, quarter=quarter, quarters=1, world="harder")
    return out


def first_signals(charts, settings, surface) -> np.ndarray:
    """Month number (months since 1970) of each chart's first signal in the window; -1 if none."""
    from surveillance.mortality.monitor import chart_thresholds, detect, run_charts

    if getattr(settings, "detector", "cusum") == "cusum":
        h = chart_thresholds(charts, settings, surface)
        _, signal, _ = run_charts(charts, h, settings)
    else:
        signal = detect(charts, settings, surface)[1].signal
    return _first_month(charts, signal)


def _first_month(charts, signal: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(signal)
    cid = np.searchsorted(charts.offsets, rows, side="right") - 1
    first = np.full(len(charts.offsets) - 1, np.iinfo(np.int64).max)
    np.minimum.at(first, cid, charts.month[rows].astype(np.int64))
    return np.where(first == np.iinfo(np.int64).max, -1, first)


def chart_sums(charts, p_true: np.ndarray, p_typical: np.ndarray) -> dict[str, np.ndarray]:
    """Per chart: deaths, the chart's expected deaths, the true in-control expected deaths
    (the chart's own trust effect included), and the true expected deaths of a typical trust."""
    starts = charts.offsets[:-1]
    return {
        "observed": np.add.reduceat(charts.y.astype(float), starts),
        "expected": np.add.reduceat(charts.p, starts),
        "true_expected": np.add.reduceat(p_true[charts.order], starts),
        "typical_expected": np.add.reduceat(p_typical[charts.order], starts),
    }


#: trusts whose true effect is within this of the median trust's count as typical (log-odds)
TYPICAL_BAND = 0.05


def typical_truth(truth: dict, spells, p_true: np.ndarray) -> tuple[np.ndarray, set[str]]:
    """The true in-control risk of each spell had its trust been the typical trust (the median
    of the trusts' true effects; odds scaled by exp(median - own effect)), and the trusts whose
    true effect is within :data:`TYPICAL_BAND` of that median."""
    effects = {t["trust_code"]: t["true_logit_effect"] for t in truth["trusts"]}
    median = float(np.median(list(effects.values())))
    own = spells["trust_code"].astype(str).map(effects).to_numpy(float)
    odds = p_true / (1.0 - p_true) * np.exp(median - own)
    near = {t for t, e in effects.items() if abs(e - median) <= TYPICAL_BAND}
    return odds / (1.0 + odds), near


def evaluate(charts, first: np.ndarray, truth: dict, sums: dict, near: set[str]) -> dict:
    """Detection of the planted charts (30+ expected deaths a year) and in-control alarms."""
    import pandas as pd

    from surveillance.mortality.encode import month_number

    key = pd.MultiIndex.from_arrays(
        [charts.trusts[charts.trust].astype(str), charts.groups[charts.group].astype(str)]
    )
    chart_of = pd.Series(np.arange(len(key)), index=key)
    planted = pd.DataFrame(truth["planted_deteriorations"]["rows"])
    planted = planted[
        planted["expected_deaths_per_year_monitored_window"] >= MIN_EXPECTED_PER_YEAR
    ].copy()
    idx = chart_of.reindex(pd.MultiIndex.from_frame(planted[["trust_code", "diagnosis_group"]]))
    planted["chart"] = idx.to_numpy()
    planted = planted[planted["chart"].notna()]
    c = planted["chart"].astype(int).to_numpy()
    start = np.array([month_number(m) for m in planted["start_month"]])
    f = first[c]
    planted["detected"] = (f >= 0) & (f >= start)
    planted["early_alarm"] = (f >= 0) & (f < start)
    planted["delay_months"] = np.where(planted["detected"], f - start + 1, np.nan)
    worse = {t["trust_code"] for t in truth["trusts"] if t.get("worse_minority")}
    planted_keys = set(zip(planted["trust_code"], planted["diagnosis_group"], strict=True))
    all_planted = {
        (r["trust_code"], r["diagnosis_group"]) for r in truth["planted_deteriorations"]["rows"]
    }
    trusts = charts.trusts[charts.trust].astype(str)
    groups = charts.groups[charts.group].astype(str)
    in_control = np.array(
        [t not in worse and (t, g) not in all_planted for t, g in zip(trusts, groups, strict=True)]
    )
    typical = in_control & np.isin(trusts, sorted(near))
    out = {
        "planted_30plus": int(len(planted)),
        "detected": int(planted["detected"].sum()),
        "detected_share": float(planted["detected"].mean()) if len(planted) else None,
        "early_alarms": int(planted["early_alarm"].sum()),
        "in_control_charts": int(in_control.sum()),
        "in_control_alarms": int((first[in_control] >= 0).sum()),
        # the in-control charts: no trust effect (here: the trust's true effect within
        # TYPICAL_BAND of the typical trust's) and nothing planted
        "typical_alarms": int((first[typical] >= 0).sum()),
        # observed / expected over the in-control charts of trusts near the typical trust
        "typical_trust_oe": float(
            sums["observed"][typical].sum() / sums["expected"][typical].sum()
        ),
        "typical_trust_charts": int(typical.sum()),
        "in_control_oe": float(
            sums["observed"][in_control].sum() / sums["expected"][in_control].sum()
        ),
        # the chart's expected deaths against a typical trust's true ones (all in-control charts)
        "expected_over_typical_true": float(
            sums["expected"][in_control].sum() / sums["typical_expected"][in_control].sum()
        ),
        # the typical-trust O/E: a typical trust's true expected deaths over the chart's
        # (what its O/E would be in control), over all in-control charts
        "typical_true_oe": float(
            sums["typical_expected"][in_control].sum() / sums["expected"][in_control].sum()
        ),
        "expected_over_true": float(
            sums["expected"][in_control].sum() / sums["true_expected"][in_control].sum()
        ),
        "planted_expected_over_true": float(
            sums["expected"][c].sum() / sums["true_expected"][c].sum()
        )
        if len(c)
        else None,
    }
    for odds in (2.0, 3.0):
        rows = planted[np.isclose(planted["odds_ratio"], odds)]
        out[f"or{odds:g}"] = {
            "planted": int(len(rows)),
            "detected": int(rows["detected"].sum()),
            "median_delay_months": float(rows["delay_months"].median())
            if rows["detected"].any()
            else None,
        }
    del planted_keys
    return out


def part2(seeds, scale: str, quarter: str, root: Path, detectors: list[str]) -> dict:
    """The alert charts on independently seeded harder nations, against the ideal chart."""
    import pandas as pd
    import pyarrow.parquet as pq

    from surveillance.mortality.encode import (
        SPELL_COLUMNS,
        encode_spells,
        month_number,
        read_spells,
    )
    from surveillance.mortality.monitor import build_charts, load_cusum_settings, threshold_surface
    from surveillance.mortality.partials import run_in_memory
    from surveillance.mortality.risk_model import RiskModel
    from surveillance.periods import Quarter

    base = load_cusum_settings()
    surface = threshold_surface(base.target, base.odds_ratio)
    per_nation = []
    for seed in seeds:
        t0 = time.perf_counter()
        out = nation_bundle(root, seed, scale, quarter)
        truth = json.loads((out / "ground_truth.json").read_text())
        spells = read_spells(out / quarter / "spells.parquet", columns=list(SPELL_COLUMNS))
        oracle = pq.read_table(out / truth["oracle_risks"]["path"]).to_pandas()
        if not np.array_equal(oracle["spell_id"].to_numpy(), spells["spell_id"].to_numpy()):
            raise ValueError(f"{out}: oracle risks are not in the spells' order")
        p_true = oracle["p_in_control"].to_numpy(float)
        p_typical, near = typical_truth(truth, spells, p_true)
        synth_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        shmi = RiskModel().fit(spells, end=quarter)
        p_shmi = shmi.predict(spells)
        run = run_in_memory(spells, quarter, shmi, base)
        alert = run.alert_model
        enc_a, pattern_a = alert.encode(spells)
        p_alert_typical = alert.chart_risks(enc_a, pattern_a)
        p_alert_national = alert.chart_prediction(enc_a, pattern_a)
        fit_s = time.perf_counter() - t0
        p_alert_weighted = weighted_baseline(alert, enc_a, p_alert_national, quarter)
        # for comparison: the charts on each spell's own palliative code (before the charts
        # took the trust's phase I coding rate), moved to the typical trust the same way
        p_alert_spell = weighted_baseline(
            alert, enc_a, alert.predict_encoded(enc_a, pattern_a), quarter, location=None
        )
        # for comparison only: each trust's own phase I level (the baseline's trust effect u_t
        # on top of the typical trust), i.e. charts that test a change within the trust
        b = alert.baseline_
        own = pd.Series(b.trust_effect, index=b.trusts).reindex(enc_a.trusts).fillna(0.0)
        p_alert_own = b.adjust(p_alert_typical, own.to_numpy()[enc_a.trust])
        enc = encode_spells(spells, "died_30d", "discharge_date")
        end = month_number(Quarter.parse(quarter).end)
        variants = {
            "shmi_national": p_shmi,
            "alert_national": p_alert_national,
            "alert_typical_trust": p_alert_typical,
            "alert_spell_palliative": p_alert_spell,
            "alert_typical_weighted": p_alert_weighted,
            "alert_own_trust": p_alert_own,
            "ideal_typical": p_typical,
            "ideal": p_true,
        }
        rows = []
        for name, p in variants.items():
            charts = build_charts(enc, p, end, base.months)
            sums = chart_sums(charts, p_true, p_typical)
            full = ("alert_typical_trust", "ideal_typical", "ideal")
            for det in detectors if name in full else [detectors[0]]:
                t1 = time.perf_counter()
                first = first_signals(charts, _settings(base, det), surface)
                res = evaluate(charts, first, truth, sums, near)
                res.update(
                    {"seed": seed, "baseline": name, "detector": det},
                    seconds=time.perf_counter() - t1,
                )
                rows.append(res)
        per_nation.append(
            {
                "seed": seed,
                "spells": len(spells),
                "synth_seconds": synth_s,
                "fit_seconds": fit_s,
                "baseline_shift_median": float(np.median(alert.baseline_.shift)),
                "rows": rows,
            }
        )
        print(f"nation seed {seed}: {len(spells):,} spells, fits {fit_s:.1f} s")
    return {"scale": scale, "quarter": quarter, "nations": per_nation, "pooled": pool(per_nation)}


def weighted_baseline(
    alert, enc, p: np.ndarray, quarter: str, location: str | None = "weighted_median"
) -> np.ndarray:
    """Risks ``p`` moved to the typical trust by the alert model's baseline fitted on them, with
    ``location`` (default the weighted median; None: the configured one)."""
    from surveillance.mortality.baseline import CellSums, typical_trust_baseline
    from surveillance.mortality.encode import month_number
    from surveillance.periods import Quarter

    keep = alert.fit_mask(enc.period_month, month_number(Quarter.parse(quarter).end))
    cells = CellSums.from_risks(
        enc.trust[keep],
        enc.group[keep],
        enc.died[keep],
        p[keep],
        (len(enc.trusts), len(enc.groups)),
    )
    spec = alert.spec.baseline
    if location is not None:
        spec = spec.model_copy(update={"location": location})
    b = typical_trust_baseline(cells, enc.trusts, enc.groups, spec)
    return b.adjust(p, b.shift_for(enc.groups)[enc.group])


def _settings(base, detector: str):
    from dataclasses import replace

    if detector == "cusum":
        return base
    return replace(base, detector=detector)


def pool(per_nation: list[dict]) -> list[dict]:
    """Per baseline x detector, summed over the nations."""
    import pandas as pd

    rows = [r for n in per_nation for r in n["rows"]]
    out = []
    for (baseline, det), grp in pd.DataFrame(rows).groupby(["baseline", "detector"], sort=False):
        ic = int(grp["in_control_charts"].sum())
        fa = int(grp["in_control_alarms"].sum())
        tc = int(grp["typical_trust_charts"].sum())
        ta = int(grp["typical_alarms"].sum())
        item = {
            "baseline": baseline,
            "detector": det,
            "typical_false_alarms": ta,
            "typical_chart_years": tc,
            "typical_false_alarm_rate": ta / tc if tc else None,
            "typical_false_alarm_rate_se": float(np.sqrt(max(ta, 1)) / tc) if tc else None,
            "planted_30plus": int(grp["planted_30plus"].sum()),
            "detected": int(grp["detected"].sum()),
            "false_alarms": fa,
            "in_control_chart_years": ic,
            "false_alarm_rate": fa / ic if ic else None,
            "false_alarm_rate_se": float(np.sqrt(max(fa, 1)) / ic) if ic else None,
            "typical_true_oe": [round(v, 4) for v in grp["typical_true_oe"]],
            "typical_trust_oe": [round(v, 4) for v in grp["typical_trust_oe"]],
            "in_control_oe": [round(v, 4) for v in grp["in_control_oe"]],
            "expected_over_true": [round(v, 4) for v in grp["expected_over_true"]],
            "expected_over_typical_true": [round(v, 4) for v in grp["expected_over_typical_true"]],
        }
        item["detected_share"] = item["detected"] / item["planted_30plus"]
        for odds in ("or2", "or3"):
            sub = [r[odds] for r in grp.to_dict(orient="records")]
            item[f"{odds}_detected"] = (
                f"{sum(s['detected'] for s in sub)}/{sum(s['planted'] for s in sub)}"
            )
            delays = [s["median_delay_months"] for s in sub if s["median_delay_months"] is not None]
            item[f"{odds}_median_delay_months"] = float(np.median(delays)) if delays else None
        out.append(item)
    for ceiling, key in (("ideal", "share_of_ideal"), ("ideal_typical", "share_of_ideal_typical")):
        best = max((r["detected"] for r in out if r["baseline"] == ceiling), default=None)
        for r in out:
            r[key] = r["detected"] / best if best else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-slow", action="store_true", help="fewer charts; one nation")
    parser.add_argument("--charts", type=int, default=400)
    parser.add_argument("--in-control-charts", type=int, default=8000)
    parser.add_argument("--mean-risk", type=float, default=0.06)
    parser.add_argument("--alt-target", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--scale", default="m5", help="harder nations' scale")
    parser.add_argument("--quarter", default="2013Q4")
    parser.add_argument(
        "--root", type=Path, default=Path(tempfile.gettempdir()) / "detection_bench"
    )
    parser.add_argument(
        "--detectors", nargs="+", default=None, help="default: every detector in DETECTORS"
    )
    parser.add_argument("--nations-only", action="store_true", help="skip the chart-level part")
    args = parser.parse_args()
    if args.skip_slow:
        args.charts, args.in_control_charts = 200, 2000
        args.seeds = args.seeds[:1]
    from surveillance.mortality.monitor import load_cusum_settings, threshold_surface

    detectors = args.detectors or _all_detectors()
    t0 = time.perf_counter()
    result: dict = {"mean_risk": args.mean_risk}
    if not args.nations_only:
        surface = threshold_surface()
        rows, fa_rows = part1(args, surface)
        print_table(rows, title="Detection of a step in the odds of death (from month 4)")
        print_table(fa_rows, title="False alarms of in-control charts in 12 months (target 0.001)")
        result.update(detection=rows, false_alarms=fa_rows)
    else:  # keep the chart-level part of the last full run (it does not depend on the nations)
        last = Path(__file__).resolve().parent / "results" / "detection.json"
        if last.is_file():
            old = json.loads(last.read_text())
            result.update({k: old[k] for k in ("detection", "false_alarms") if k in old})
    nations = part2(args.seeds, args.scale, args.quarter, args.root, detectors)
    print_table(
        [{k: v for k, v in r.items() if not isinstance(v, list)} for r in nations["pooled"]],
        title=f"Harder nations (seeds {args.seeds}, {args.scale}): planted charts with "
        f"{MIN_EXPECTED_PER_YEAR:g}+ expected deaths a year, and in-control charts",
    )
    default = getattr(load_cusum_settings(), "detector", "cusum")
    chosen = next(
        r
        for r in nations["pooled"]
        if r["baseline"] == "alert_typical_trust" and r["detector"] == default
    )
    oe = chosen["typical_true_oe"]
    targets = {
        "detected_share >= 0.90": chosen["detected_share"] >= 0.90,
        "share_of_ideal >= 0.95": (chosen["share_of_ideal"] or 0) >= 0.95,
        "false_alarm_rate (near-typical in-control charts) <= 0.001": chosen[
            "typical_false_alarm_rate"
        ]
        <= 0.001,
        "typical_true_oe within 1 +- 0.02": all(abs(v - 1) <= 0.02 for v in oe),
    }
    summary = (
        f"default ({default}, typical-trust baseline) on {len(args.seeds)} harder nations: "
        f"{chosen['detected']}/{chosen['planted_30plus']} planted 30+ charts detected "
        f"({chosen['detected_share']:.0%}; OR 2 {chosen['or2_detected']}, OR 3 "
        f"{chosen['or3_detected']}), {chosen['share_of_ideal']:.0%} of the ideal chart "
        f"({chosen['share_of_ideal_typical']:.0%} of the ideal typical-trust chart), "
        f"false alarms {chosen['typical_false_alarms']}/{chosen['typical_chart_years']} "
        f"chart-years of near-typical trusts ({chosen['typical_false_alarm_rate']:.4%}; "
        f"{chosen['false_alarms']}/{chosen['in_control_chart_years']} = "
        f"{chosen['false_alarm_rate']:.4%} over all trusts outside the worse minority), typical-trust O/E (true typical expected over the "
        f"chart's) {oe}; targets: "
        + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in targets.items())
    )
    print(summary)
    result.update(
        summary=summary,
        harder_nations=nations,
        targets=targets,
        seconds=time.perf_counter() - t0,
    )
    write_result("detection", result)
    return 0


def _all_detectors() -> list[str]:
    """Every detector but the GLR, whose per-chart simulated limits take over an hour for a
    5-million-spell nation (benchmarks/detectors.py compares it at chart level)."""
    from surveillance.stats.detectors import DETECTORS

    return [d for d in DETECTORS if d != "glr"]


if __name__ == "__main__":
    raise SystemExit(main())
