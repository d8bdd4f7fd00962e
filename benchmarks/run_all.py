"""Run every benchmark script and write a summary (``make bench``).

Usage: ``python benchmarks/run_all.py [--skip-slow] [--only NAME ...]``. Each script is run in its
own process with ``--skip-slow`` passed through; its JSON lands in ``benchmarks/results/``.
The summary is ``benchmarks/results/SUMMARY.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def scripts() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py") if not p.name.startswith(("_", "run_all")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-slow", action="store_true", help="skip national-scale runs")
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names to run")
    args = parser.parse_args()
    failures = []
    lines = ["# Benchmark summary", "", "| benchmark | exit | seconds |", "|---|---|---|"]
    for script in scripts():
        if args.only and script.stem not in args.only:
            continue
        cmd = [sys.executable, str(script)] + (["--skip-slow"] if args.skip_slow else [])
        print(f"== {script.stem}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call(cmd)
        lines.append(f"| {script.stem} | {rc} | {time.perf_counter() - start:.1f} |")
        if rc:
            failures.append(script.stem)
    lines += ["", "Results (JSON) per benchmark:", ""]
    for path in sorted(RESULTS.glob("*.json")):
        body = json.loads(path.read_text())
        lines.append(f"- `{path.name}`: {body.get('summary', '')}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "SUMMARY.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
