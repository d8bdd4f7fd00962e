"""Synthesis benchmark: wall time, peak memory and file sizes of the synthetic nation.

Each scale runs in a fresh process (``run_isolated``) so peak RSS is that build's own. The
national scale (45 million spells per bundle) writes to a temporary directory that is deleted
afterwards; ``--skip-slow`` leaves it out. Usage: ``python benchmarks/synthesis.py [--skip-slow]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table, run_isolated, write_result  # noqa: E402

QUARTER = "2013Q3"
QUARTERS = 2


def _build(scale: str, out: str) -> dict:
    from surveillance.synth import synthesise

    summary = synthesise(Path(out), seed=2013, scale=scale, quarter=QUARTER, quarters=QUARTERS)
    return {
        "counts": summary.counts,
        "bytes": summary.bytes,
        "stage_seconds": summary.seconds,
    }


def measure(scale: str) -> dict:
    tmp = tempfile.mkdtemp(prefix=f"synth-{scale}-")
    try:
        out = run_isolated(lambda: _build(scale, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = out["result"]
    last = result["counts"][QUARTER]
    size = result["bytes"][QUARTER]
    return {
        "scale": scale,
        "seconds": round(out["seconds"], 2),
        "peak_rss_mib": round(out["peak_rss_mib"], 1),
        "spells_per_bundle": last["spells"],
        "bundles": QUARTERS,
        "spells_parquet_mib": round(size["spells.parquet"] / 2**20, 1),
        "bundle_mib": round(sum(size.values()) / 2**20, 1),
        "stage_seconds": {k: round(v, 2) for k, v in result["stage_seconds"].items()},
        "counts": result["counts"],
        "bytes": result["bytes"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-slow", action="store_true", help="skip the national scale")
    args = parser.parse_args()
    scales = ["demo"] if args.skip_slow else ["demo", "national"]
    rows = [measure(s) for s in scales]
    print_table(
        [
            {
                k: r[k]
                for k in (
                    "scale",
                    "seconds",
                    "peak_rss_mib",
                    "spells_per_bundle",
                    "spells_parquet_mib",
                    "bundle_mib",
                )
            }
            for r in rows
        ],
        title=f"synthetic nation, {QUARTERS} bundles ending {QUARTER}",
    )
    summary = "; ".join(
        f"{r['scale']}: {r['seconds']:.0f} s, peak {r['peak_rss_mib']:.0f} MiB, "
        f"{r['spells_per_bundle'] / 1e6:.1f} M spells/bundle, {r['bundle_mib']:.0f} MiB/bundle"
        for r in rows
    )
    write_result(
        "synthesis", {"summary": summary, "runs": rows, "skipped_national": args.skip_slow}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
