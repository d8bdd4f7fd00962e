"""The quarterly run at demo scale: wall time and peak memory, plain pipeline and Prefect flow.

Builds the demo nation in ``data/synth`` if absent (not timed), then runs quarter 2013Q3 (with
2013Q2 published first, so movement and history are computed as in production) in fresh
interpreters: ``pipeline.run_quarter`` (no Prefect, no MLflow) and the ``quarterly`` flow on the
local runner with MLflow (Prefect's embedded server starts inside the measured time but runs in
its own process, so its memory is not in the peak; MLflow's first database set-up is included). Target (issue 9):
the demo quarter under 2 minutes on this machine after install.

``--skip-slow`` skips nothing here (there is no national-scale part); it is accepted for
``make bench``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import print_table, write_result  # noqa: E402

NATION = ROOT / "data" / "synth"
QUARTERS = ("2013Q2", "2013Q3")


def _plain(out: str) -> dict:
    from surveillance.pipeline import RunOptions, run_quarter

    s = run_quarter(
        RunOptions(data_dir=NATION / QUARTERS[1], quarter=QUARTERS[1], out=Path(out), mlflow=False)
    )
    return {"bands": s.band_counts, "new_alerts": s.new_alerts}


def _flow(out: str) -> dict:
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.quarterly import quarterly

    result = quarterly(data_dir=str(NATION / QUARTERS[1]), out=out, quarter=QUARTERS[1])
    return {"run_dir": result["run_dir"]}


def _previous(out: str) -> None:
    from surveillance.pipeline import RunOptions, run_quarter

    run_quarter(
        RunOptions(data_dir=NATION / QUARTERS[0], quarter=QUARTERS[0], out=Path(out), mlflow=False)
    )


def _child(name: str, out: str) -> None:
    """Run one step in this (fresh) process and print its wall time and peak RSS as JSON."""
    import json
    import time

    from _common import peak_rss_mib

    fn = {"previous": _previous, "pipeline": _plain, "prefect_flow": _flow}[name]
    start = time.perf_counter()
    fn(out)
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mib": peak_rss_mib()}))


def _fresh(name: str, out: Path) -> dict:
    """Run a step in a fresh interpreter (fork after pyarrow's threads can deadlock)."""
    import json
    import subprocess

    proc = subprocess.run(
        [sys.executable, __file__, "--child", name, str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-slow", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("STEP", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    from surveillance.synth.demo import ensure_nation

    ensure_nation(NATION)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("pipeline", "prefect_flow"):
            out = Path(tmp) / name
            _fresh("previous", out)
            result = _fresh(name, out)
            rows.append(
                {
                    "run": name,
                    "seconds": round(result["seconds"], 1),
                    "peak_rss_mib": round(result["peak_rss_mib"], 0),
                }
            )
    print_table(rows, "quarterly run, demo scale, quarter 2013Q3")
    flow = rows[1]
    write_result(
        "quarterly",
        {
            "summary": (
                f"demo quarter 2013Q3: Prefect flow {flow['seconds']} s, peak "
                f"{flow['peak_rss_mib']:.0f} MiB; plain pipeline {rows[0]['seconds']} s "
                f"(target < 120 s)"
            ),
            "runs": rows,
            "target_seconds": 120,
        },
    )


if __name__ == "__main__":
    main()
