"""Detection of planted deteriorations and false alarms of the monthly RA-CUSUM charts.

Part 1 (own simulator, chart level, the production kernels and threshold surface): charts of a
trust x diagnosis group over the monitored 12 months with a logit-normal case mix (mean risk
``--mean-risk``, logit sd 1). Each chart's threshold comes from the fitted surface for a 0.1%
probability of a false alarm in 12 months. In-control charts give the measured false-alarm
probability (target 0.001); charts with the odds of death multiplied by 1.5, 2 or 3 from the start
of month 4 give the detection rate within 6 months of the step (signal in months 4-9), the rate
by the end of the window, and the median delay in months (1 = signal in the step's own month),
by chart volume (expected deaths a year).

Part 1b: the same odds-ratio-2 charts with thresholds for a looser false-alarm target
(``--alt-target``, default 1% in 12 months), to show the trade-off.

Part 2 (synthetic nation ground truth): the demo-scale nation (generated into a temporary
directory; or ``--data`` with any bundle directory; skipped by ``--skip-slow`` unless ``--data``
is given): fit the risk models, run the quarter's charts over the 12 months, and report how many
of the planted trust x group deteriorations (ground_truth.json) signalled, by odds ratio band
and expected deaths, and how many other charts alarmed.

Targets (issue 4): odds ratio 2 with >= 50 expected deaths a year detected within 6 months in
>= 80% of charts; measured false-alarm probability within 2x of 0.1%.
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


def part2(data_dir: Path, surface):
    import pandas as pd

    from surveillance.mortality.encode import read_spells
    from surveillance.mortality.monitor import monitor
    from surveillance.mortality.risk_model import RiskModel

    truth = json.loads((data_dir.parent / "ground_truth.json").read_text())
    planted = pd.DataFrame(truth["planted_deteriorations"]["rows"])
    spells = read_spells(data_dir / "spells.parquet")
    model = RiskModel().fit(spells, end="2013Q3")
    p = model.predict(spells)
    alerts = monitor(spells, p, "2013Q3", surface=surface, report="window")
    hit = alerts.groupby(["trust_code", "diagnosis_group"])["signal_month"].min().rename("first")
    planted = planted.merge(hit, on=["trust_code", "diagnosis_group"], how="left")
    planted["detected"] = planted["first"].notna() & (planted["first"] >= planted["start_month"])
    planted["expected_after"] = planted["expected_deaths_without_deterioration"]
    planted["or_band"] = pd.cut(
        planted["odds_ratio"], [1.0, 1.75, 2.5, 10.0], labels=["1.5-1.75", "1.75-2.5", "2.5-3"]
    )
    planted["volume_band"] = pd.cut(
        planted["expected_after"], [-1, 5, 20, 1e9], labels=["<5", "5-20", ">=20"]
    )
    table = (
        planted.groupby(["or_band", "volume_band"], observed=True)["detected"]
        .agg(["size", "mean"])
        .reset_index()
    )
    charts = alerts[["trust_code", "diagnosis_group"]].drop_duplicates()
    key = set(zip(planted["trust_code"], planted["diagnosis_group"], strict=True))
    false_charts = sum((t, g) not in key for t, g in charts.itertuples(index=False))
    n_charts = (
        spells[spells["discharge_date"] >= "2012-10-01"]
        .groupby(["trust_code", "diagnosis_group"], observed=True)
        .ngroups
    )
    return {
        "planted": len(planted),
        "detected": int(planted["detected"].sum()),
        "by_band": table.astype({"or_band": str, "volume_band": str}).to_dict(orient="records"),
        "charts": int(n_charts),
        "charts_alarmed_not_planted": int(false_charts),
        "false_alarm_rate_unplanted": false_charts / max(n_charts - len(planted), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-slow", action="store_true", help="fewer charts; skip part 2")
    parser.add_argument("--charts", type=int, default=400)
    parser.add_argument("--in-control-charts", type=int, default=8000)
    parser.add_argument("--mean-risk", type=float, default=0.06)
    parser.add_argument("--data", type=Path, default=None, help="bundle dir for part 2")
    parser.add_argument("--alt-target", type=float, default=0.01)
    args = parser.parse_args()
    if args.skip_slow:
        args.charts, args.in_control_charts = 200, 2000
    from surveillance.mortality.monitor import threshold_surface

    t0 = time.perf_counter()
    surface = threshold_surface()
    rows, fa_rows = part1(args, surface)
    print_table(rows, title="Detection of a step in the odds of death (from month 4)")
    print_table(fa_rows, title="False alarms of in-control charts in 12 months (target 0.001)")
    alt_surface = threshold_surface(target=args.alt_target)
    alt_rows = []
    for v_i, e in enumerate((25, 50, 100)):
        offsets, p, y, month = simulate_charts(args.charts, e, args.mean_risk, 2.0, 2000 + 10 * v_i)
        first, _ = run(offsets, p, y, month, alt_surface, target=args.alt_target)
        delay = first - STEP_MONTH + 1
        alt_rows.append(
            {
                "target": args.alt_target,
                "odds_ratio": 2.0,
                "expected_per_year": e,
                "detected_6m": float(((first >= STEP_MONTH) & (delay <= 6)).mean()),
                "alarm_before_step": float((first < STEP_MONTH).mean()),
            }
        )
        ic = simulate_charts(args.in_control_charts // 4, e, args.mean_risk, 1.0, 3000 + v_i)
        first_ic, _ = run(*ic, alt_surface, target=args.alt_target)
        alt_rows[-1]["false_alarm_rate"] = float((first_ic < 99).mean())
    print_table(alt_rows, title=f"Odds ratio 2 with a false-alarm target of {args.alt_target}")
    gt = None
    if not args.skip_slow or args.data is not None:
        if args.data is None:
            from surveillance.synth import synthesise

            tmp = Path(tempfile.mkdtemp(prefix="bench_detection_"))
            synthesise(tmp / "nation", seed=2013, scale="demo", quarter="2013Q3", quarters=1)
            args.data = tmp / "nation" / "2013Q3"
        gt = part2(args.data, surface)
        print(
            f"synthetic nation: {gt['detected']}/{gt['planted']} planted deteriorations "
            f"signalled; {gt['charts_alarmed_not_planted']} of {gt['charts']} other charts "
            f"alarmed ({gt['false_alarm_rate_unplanted']:.4f})"
        )
        print_table(
            gt["by_band"],
            title="planted deteriorations detected, by odds ratio and "
            "expected deaths after the start (without the deterioration)",
        )
    or2 = [r for r in rows if r["odds_ratio"] == 2.0 and r["expected_per_year"] >= 50]
    fa_all = sum(r["false_alarms"] for r in fa_rows) / sum(r["charts"] for r in fa_rows)
    det50 = next(r["detected_6m"] for r in or2 if r["expected_per_year"] == 50)
    ok = all(r["detected_6m"] >= 0.8 for r in or2) and 0.0005 <= fa_all <= 0.002
    summary = (
        f"OR 2 detected within 6 months: {det50:.0%} at 50 expected deaths/yr, "
        + ", ".join(f"{r['detected_6m']:.0%} at {r['expected_per_year']}" for r in or2[1:])
        + f"; false-alarm rate {fa_all:.4f} (target 0.001)"
        + ("; targets met" if ok else "; target missed")
    )
    print(summary)
    write_result(
        "detection",
        {
            "summary": summary,
            "detection": rows,
            "false_alarms": fa_rows,
            "false_alarm_rate_pooled": fa_all,
            "synthetic_nation": gt,
            "targets_met": ok,
            "seconds": time.perf_counter() - t0,
            "mean_risk": args.mean_risk,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
