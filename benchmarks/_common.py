"""Helpers shared by the benchmark scripts: timing, peak memory, JSON results.

Every benchmark script writes ``benchmarks/results/<name>.json`` through :func:`write_result`
and prints a short human-readable table. Peak memory is the process's peak resident set size
(``ru_maxrss``), so scripts that measure memory for one step run that step in a fresh process
via :func:`run_isolated`.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time over ``repeat`` calls, in seconds, and the last result."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _child(fn: Callable[[], Any], queue: mp.Queue) -> None:
    start = time.perf_counter()
    out = fn()
    queue.put({"seconds": time.perf_counter() - start, "peak_rss_mib": peak_rss_mib(), "result": out})


def run_isolated(fn: Callable[[], Any]) -> dict[str, Any]:
    """Run ``fn`` in a fresh process; return its wall time, peak RSS (MiB) and picklable result."""
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": mp.cpu_count(),
        "commit": commit,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus machine info) to ``benchmarks/results/<name>.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    body = {"benchmark": name, "machine": machine(), **payload}
    path.write_text(json.dumps(body, indent=2, sort_keys=True, default=float) + "\n")
    return path


def print_table(rows: list[dict[str, Any]], title: str = "") -> None:
    """Print a list of flat dicts as an aligned text table."""
    if title:
        print(title)
    if not rows:
        return
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in cols))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
