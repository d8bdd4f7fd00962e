"""Mortality programme at national scale: risk-model fit and one month of RA-CUSUM monitoring.

Generates the synthetic nation (``surveillance.synth``, scale ``national``: ~46 million spells
over 36 months; ``--skip-slow``: ``demo`` scale) into a temporary directory unless ``--data``
points at a bundle directory holding ``spells.parquet``. Each step runs in a fresh process so
its peak memory is its own:

1. fit: read the 36 months of spells and fit every diagnosis group's risk model;
2. monthly: load the fitted model, read the 12 months to the month, predict, calibrate every
   trust x group chart's threshold (fitted surface, cached on disk; its one-off fit is timed
   separately), run all charts, emit the month's alerts;
3. quarterly (demo scale, or ``--quarterly``): mortality.csv, alerts, indicators, data quality.

Targets (issue 4): fit < 3 min, monthly < 30 s, peak memory < 12 GiB. Wall times depend on the
load of the shared machine, so CPU seconds of the step's process are reported beside them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_table, run_isolated, write_result  # noqa: E402

QUARTER = "2013Q3"
MONTH = "2013-09"


def _fit(spells_path: Path, model_path: Path):
    def step():
        from surveillance.mortality.encode import read_spells
        from surveillance.mortality.risk_model import RiskModel

        cpu0, t0 = time.process_time(), time.perf_counter()
        spells = read_spells(spells_path)
        read_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        model = RiskModel().fit(spells, end=QUARTER)
        fit_s = time.perf_counter() - t1
        model.save(model_path)
        g = model.groups_
        return {
            "spells": len(spells),
            "read_seconds": read_s,
            "fit_seconds": fit_s,
            "cpu_seconds": time.process_time() - cpu0,
            "groups": len(g),
            "levels": g["level"].value_counts().to_dict(),
            "c_statistic_median": float(g["c_statistic"].median()),
        }

    return step


def _surface():
    from surveillance.mortality.monitor import threshold_surface

    t0 = time.perf_counter()
    threshold_surface()
    return {"seconds": time.perf_counter() - t0}


def _monthly(spells_path: Path, model_path: Path):
    def step():
        import pandas as pd

        from surveillance.mortality.encode import read_spells
        from surveillance.mortality.monitor import monitor_month, threshold_surface
        from surveillance.mortality.risk_model import RiskModel

        cpu0, t0 = time.process_time(), time.perf_counter()
        model = RiskModel.load(model_path)
        surface = threshold_surface()
        end = pd.Period(MONTH, "M")
        spells = read_spells(spells_path, start=(end - 11).start_time, end=end.end_time)
        read_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        alerts = monitor_month(spells, model, MONTH, surface=surface)
        return {
            "spells_in_window": len(spells),
            "read_seconds": read_s,
            "monitor_seconds": time.perf_counter() - t1,
            "total_seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0,
            "alerts": len(alerts),
            "alerts_new": int((alerts["status"] == "new").sum()) if len(alerts) else 0,
        }

    return step


def _quarterly(spells_path: Path, model_path: Path):
    def step():
        from surveillance.mortality import run_mortality
        from surveillance.mortality.encode import read_spells
        from surveillance.mortality.monitor import threshold_surface
        from surveillance.mortality.risk_model import RiskModel

        cpu0, t0 = time.process_time(), time.perf_counter()
        model = RiskModel.load(model_path)
        spells = read_spells(spells_path)
        res = run_mortality(spells, QUARTER, model, surface=threshold_surface())
        all_rows = res.mortality[res.mortality["diagnosis_group"] == "ALL"]
        return {
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0,
            "mortality_rows": len(res.mortality),
            "trusts_higher": int((all_rows["banding"] == "higher than expected").sum()),
            "trusts_lower": int((all_rows["banding"] == "lower than expected").sum()),
            "alerts_in_quarter": len(res.alerts),
        }

    return step


def _streamed(spells_path: Path):
    """The quarterly run's mortality stage streamed by row group (``--spells chunked``, the
    national default): both risk models (SHMI-style and the alert charts' HSMR-style model), the
    typical-trust baseline, ratios, indicators and every trust x group chart over the window."""

    def step():
        from surveillance.bundle import spell_source
        from surveillance.mortality.monitor import threshold_surface
        from surveillance.mortality.partials import run_chunked
        from surveillance.spell_engine import StreamChunks

        threshold_surface()  # the cached surface (its one-off fit is timed separately)
        cpu0, t0 = time.process_time(), time.perf_counter()
        chunks = StreamChunks(spell_source(spells_path))
        run = run_chunked(chunks.apply, chunks.apply_reduce, QUARTER)
        charts = run.chart_run.charts if run.chart_run is not None else None
        return {
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0,
            "charts": 0 if charts is None else int(len(charts.offsets) - 1),
            "window_spells": 0 if charts is None else int(len(charts.p)),
            "alerts": len(run.alerts),
            "baseline": run.alert_model.baseline_.method if run.alert_model else "national",
            "baseline_shift_median": float(np.median(run.alert_model.baseline_.shift))
            if run.alert_model
            else 0.0,
        }

    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-slow", action="store_true", help="demo scale instead of national")
    parser.add_argument("--data", type=Path, default=None, help="bundle dir with spells.parquet")
    parser.add_argument("--quarterly", action="store_true", help="also time the quarterly outputs")
    parser.add_argument(
        "--streamed-only",
        action="store_true",
        help="only the streamed quarterly stage (fit + baseline + charts; target 60 s, 6 GiB)",
    )
    args = parser.parse_args()
    if args.streamed_only:
        return streamed_main(args)
    scale = "demo" if args.skip_slow else "national"
    with tempfile.TemporaryDirectory(prefix="bench_mortality_") as tmp:
        tmp = Path(tmp)
        synth_seconds = None
        if args.data is None:
            from surveillance.synth import synthesise

            t0 = time.perf_counter()
            run_isolated(
                lambda: str(
                    synthesise(
                        tmp / "nation", seed=2013, scale=scale, quarter=QUARTER, quarters=1
                    ).out
                )
            )
            synth_seconds = time.perf_counter() - t0
            data = tmp / "nation" / QUARTER
        else:
            data = args.data
        spells_path = data / "spells.parquet"
        model_path = tmp / "risk_model.json"
        fit = run_isolated(_fit(spells_path, model_path))
        surface = run_isolated(_surface)
        monthly = run_isolated(_monthly(spells_path, model_path))
        quarterly = None
        if args.quarterly or args.skip_slow:
            quarterly = run_isolated(_quarterly(spells_path, model_path))
    f, m = fit["result"], monthly["result"]
    gib = 1024.0
    rows = [
        {
            "step": "fit (read + all groups)",
            "wall_s": fit["seconds"],
            "cpu_s": f["cpu_seconds"],
            "peak_gib": fit["peak_rss_mib"] / gib,
            "target": "< 180 s, < 12 GiB",
        },
        {
            "step": "threshold surface (one-off, cached)",
            "wall_s": surface["seconds"],
            "cpu_s": float("nan"),
            "peak_gib": surface["peak_rss_mib"] / gib,
            "target": "",
        },
        {
            "step": "monthly monitoring",
            "wall_s": monthly["seconds"],
            "cpu_s": m["cpu_seconds"],
            "peak_gib": monthly["peak_rss_mib"] / gib,
            "target": "< 30 s, < 12 GiB",
        },
    ]
    if quarterly:
        rows.append(
            {
                "step": "quarterly outputs",
                "wall_s": quarterly["seconds"],
                "cpu_s": quarterly["result"]["cpu_seconds"],
                "peak_gib": quarterly["peak_rss_mib"] / gib,
                "target": "",
            }
        )
    print_table(rows, title=f"mortality benchmark ({scale} scale, {f['spells']:,} spells)")
    ok = (
        fit["seconds"] < 180
        and monthly["seconds"] < 30
        and max(fit["peak_rss_mib"], monthly["peak_rss_mib"]) < 12 * gib
    )
    summary = (
        f"{scale}: {f['spells']:,} spells, fit {fit['seconds']:.0f} s wall / {f['cpu_seconds']:.0f} s "
        f"CPU, peak {fit['peak_rss_mib'] / gib:.1f} GiB; monthly {monthly['seconds']:.1f} s wall / "
        f"{m['cpu_seconds']:.1f} s CPU, peak {monthly['peak_rss_mib'] / gib:.1f} GiB "
        f"({'targets met' if ok else 'target missed'})"
    )
    print(summary)
    write_result(
        "mortality",
        {
            "summary": summary,
            "scale": scale,
            "synth_seconds": synth_seconds,
            "fit": fit,
            "surface": surface,
            "monthly": monthly,
            "quarterly": quarterly,
            "targets": {"fit_seconds": 180, "monthly_seconds": 30, "peak_gib": 12},
            "targets_met": ok,
        },
    )
    return 0


def streamed_main(args) -> int:
    """``--streamed-only``: the quarterly mortality stage streamed, in a fresh process."""
    if args.data is None:
        raise SystemExit("--streamed-only needs --data (a bundle directory with spells.parquet)")
    run_isolated(_surface)
    res = run_isolated(_streamed(args.data / "spells.parquet"))
    r = res["result"]
    gib = 1024.0
    ok = res["seconds"] < 60 and res["peak_rss_mib"] < 6 * gib
    summary = (
        f"streamed quarterly mortality stage ({args.data}): {res['seconds']:.1f} s wall / "
        f"{r['cpu_seconds']:.1f} s CPU, peak {res['peak_rss_mib'] / gib:.2f} GiB, {r['charts']:,} "
        f"charts of {r['window_spells']:,} window spells, {r['alerts']} alert rows in the 12-month window, "
        f"{r['baseline']} baseline (median shift {r['baseline_shift_median']:+.4f}); target "
        f"60 s / 6 GiB {'met' if ok else 'missed'}"
    )
    print(summary)
    write_result(
        "mortality_streamed",
        {
            "summary": summary,
            "step": r,
            "seconds": res["seconds"],
            "peak_rss_mib": res["peak_rss_mib"],
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
