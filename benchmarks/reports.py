"""Static site: render time and size for a run, and the figure engine measured against matplotlib.

Usage: ``python benchmarks/reports.py [--skip-slow] [--run-dir DIR] [--repeat N]``.

* ``fixture``: the hand-made 12-trust run of the report tests.
* ``demo``: a quarterly run of the synthetic nation (161 trusts): ``--run-dir`` (or
  ``SURVEILLANCE_RUN_DIR``, or ``out/2013Q3`` when present); otherwise, unless ``--skip-slow``,
  a test-scale nation is synthesised and run (reports off) in a temporary directory first.
* ``figures``: 160 funnel plots drawn by our direct SVG writer against the same plots through
  matplotlib (``savefig`` to SVG), to justify the engine.

Writes ``benchmarks/results/reports.json``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import print_table, timed, write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reports"))


def site_size(site: Path) -> dict:
    files = [p for p in site.rglob("*") if p.is_file()]
    by_kind = {}
    for sub in ("trusts", "qsg", "funnels"):
        sizes = [p.stat().st_size for p in (site / sub).glob("*.html")]
        by_kind[sub] = {
            "files": len(sizes),
            "bytes": int(sum(sizes)),
            "max_bytes": int(max(sizes, default=0)),
        }
    return {
        "files": len(files),
        "bytes": int(sum(p.stat().st_size for p in files)),
        "index_bytes": (site / "index.html").stat().st_size,
        **{f"{k}_{m}": v[m] for k, v in by_kind.items() for m in v},
    }


def bench_site(
    run_dir: Path, catalogue, repeat: int, label: str, bundle_dir: Path | None = None
) -> dict:
    from surveillance.reports import build_site

    out = Path(tempfile.mkdtemp(prefix=f"site-{label}-")) / "reports"
    seconds, index = timed(
        lambda: build_site(run_dir, out, catalogue=catalogue, bundle_dir=bundle_dir), repeat=repeat
    )
    import pandas as pd

    bands = pd.read_csv(run_dir / "bands.csv", usecols=["trust_code"])
    flags = pd.read_csv(run_dir / "flags.csv", usecols=["indicator_id"])
    return {
        "case": label,
        "trusts": len(bands),
        "indicators": int(flags["indicator_id"].nunique()),
        "seconds": round(seconds, 3),
        **site_size(index.parent),
    }


def demo_run_dir(skip_slow: bool, given: str | None) -> Path | None:
    candidates = [given, os.environ.get("SURVEILLANCE_RUN_DIR"), str(ROOT / "out" / "2013Q3")]
    for c in candidates:
        if c and (Path(c) / "bands.csv").is_file():
            return Path(c)
    if skip_slow:
        return None
    from surveillance.pipeline import RunOptions, run_quarter
    from surveillance.synth.build import synthesise

    tmp = Path(tempfile.mkdtemp(prefix="reports-bench-"))
    start = time.perf_counter()
    synthesise(tmp / "synth", scale="test", quarter="2013Q3", quarters=2)
    for q in ("2013Q2", "2013Q3"):
        run_quarter(
            RunOptions(
                data_dir=tmp / "synth" / q,
                quarter=q,
                out=tmp / "out",
                render_reports=False,
                mlflow=False,
            )
        )
    print(f"(built a test-scale synthetic run in {time.perf_counter() - start:.0f} s)")
    return tmp / "out" / "2013Q3"


def bench_figures(n_plots: int = 160, n_units: int = 161) -> list[dict]:
    """Direct SVG (our engine) against matplotlib for the same funnel plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from surveillance.reports.figures import FunnelFigure, funnel_axes
    from surveillance.reports.funnels import funnel_plot_data

    rng = np.random.default_rng(1)
    import pandas as pd

    datasets = []
    for k in range(n_plots):
        e = rng.uniform(50, 3000, n_units)
        o = rng.poisson(e * np.exp(rng.normal(0, 0.08, n_units)))
        z = np.sqrt(e) * np.log(np.maximum(o, 0.5) / e)
        rows = pd.DataFrame(
            {
                "trust_code": [f"T{i:03d}" for i in range(n_units)],
                "indicator_id": f"i{k}",
                "observed": o,
                "expected": e,
                "z": z,
                "z_adjusted": z / 1.5,
                "flag": np.where(z / 1.5 > 1.96, "risk", "no_evidence"),
                "method": "SHMI",
                "phi": 2.0,
                "tau2": 0.004,
            }
        )
        datasets.append(funnel_plot_data(rows, "ratio", "SHMI"))
    labels = [f"Trust {i}" for i in range(n_units)]

    def ours() -> int:
        total = 0
        for d in datasets:
            fig = FunnelFigure(
                d.x,
                d.y,
                labels,
                d.flags,
                d.target,
                d.limits,
                title="t",
                xlabel="expected",
                ylabel="O/E",
                compact=True,
            )
            total += len(fig.svg(3))
        return total

    def mpl() -> int:
        total = 0
        fig, ax = plt.subplots(figsize=(7, 4))
        for d in datasets:
            ax.clear()
            funnel_axes(
                ax,
                d.x,
                d.y,
                d.target,
                d.limits,
                title="t",
                xlabel="expected",
                ylabel="O/E",
                flags=d.flags,
            )
            buf = io.StringIO()
            fig.savefig(buf, format="svg")
            total += len(buf.getvalue())
        plt.close(fig)
        return total

    t_ours, b_ours = timed(ours)
    t_mpl, b_mpl = timed(mpl)
    return [
        {
            "engine": "direct SVG (FunnelFigure)",
            "plots": n_plots,
            "seconds": round(t_ours, 3),
            "bytes_per_plot": b_ours // n_plots,
        },
        {
            "engine": "matplotlib savefig(svg), one reused figure",
            "plots": n_plots,
            "seconds": round(t_mpl, 3),
            "bytes_per_plot": b_mpl // n_plots,
        },
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-slow", action="store_true", help="skip building a synthetic run")
    parser.add_argument("--run-dir", default=None, help="a finished run directory")
    parser.add_argument("--bundle-dir", default=None, help="the run's input bundle (CUSUM charts)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from run_fixture import fixture_catalogue, write_fixture_run

    rows = []
    fixture = write_fixture_run(Path(tempfile.mkdtemp(prefix="reports-fixture-")) / "2013Q3")
    rows.append(bench_site(fixture, fixture_catalogue(), args.repeat, "fixture"))
    demo = demo_run_dir(args.skip_slow, args.run_dir)
    if demo is not None:
        rows.append(bench_site(demo, None, args.repeat, "demo"))
        from run_fixture import demo_bundle_dir

        bundle = Path(args.bundle_dir) if args.bundle_dir else demo_bundle_dir(ROOT, demo)
        if bundle is not None and bundle.is_dir():
            # The same run with the alerted RA-CUSUM charts re-run from the bundle's spells.
            rows.append(bench_site(demo, None, args.repeat, "demo+cusum", bundle))
    print_table(rows, "Site render (best of repeats) and size")
    figures = bench_figures()
    print_table(figures, "Funnel figure engines")
    main_row = next(r for r in rows if r["case"] == "demo") if demo is not None else rows[0]
    summary = (
        f"{main_row['case']} run: {main_row['trusts']} trusts, {main_row['indicators']} indicators -> "
        f"{main_row['files']} files, {main_row['bytes'] / 1e6:.1f} MB in {main_row['seconds']:.1f} s; "
        f"160 funnels: direct SVG {figures[0]['seconds']:.2f} s vs matplotlib {figures[1]['seconds']:.2f} s"
    )
    print(summary)
    write_result(
        "reports",
        {
            "summary": summary,
            "sites": rows,
            "figures": figures,
            "demo_run_dir": str(demo) if demo else None,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
