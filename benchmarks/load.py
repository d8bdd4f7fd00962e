"""Load: the national quarter within the memory target without swapping, and ten quarters back to
back in one process without growth in memory or open files (issue 7, part 6).

1. **National quarter** (skipped with ``--skip-slow``): the national synthetic bundle (46.6M
   spells, ``surveillance synth --scale national``, ~4 min; built into a temporary directory under
   ``/tmp`` and deleted afterwards, or taken from ``--national-data DIR``, which is copied first so
   nobody else's files are touched) is run by :func:`surveillance.pipeline.run_quarter` (reports
   on, MLflow off) in a fresh interpreter. The parent samples the child's ``/proc/<pid>/status``
   every 0.25 s (``VmRSS``, ``VmHWM``, ``VmSwap``) and reads the system's swap traffic
   (``pswpin``/``pswpout`` in ``/proc/vmstat``) before and after. Target: peak RSS under 12 GiB,
   ``VmSwap`` 0 throughout and no pages swapped in or out during the run.
2. **Ten quarters back to back** (always; ``test`` scale, 2011Q2..2013Q3): one process runs the ten
   quarters in order (each sees the previous one's bands), MLflow tracking on, as a scheduler
   replaying a backlog would. After each quarter (and a ``gc.collect()``) it records ``VmRSS``,
   the number of open file descriptors (``/proc/self/fd``) and threads. Growth is measured from
   quarter 3 (after the first quarters have loaded every module, compiled the numba kernels and
   opened MLflow's database) to quarter 10. Target: no file descriptors gained, RSS growth under
   64 MiB (allocator noise), i.e. nothing retained per quarter.

Writes ``benchmarks/results/load.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import print_table, write_result  # noqa: E402

MEMORY_TARGET_MIB = 12 * 1024
RSS_GROWTH_LIMIT_MIB = 64
QUARTER = "2013Q3"
N_QUARTERS = 10


def status(pid: int | str = "self") -> dict[str, int]:
    """``VmRSS``, ``VmHWM``, ``VmSwap`` (KiB) and ``Threads`` of a process."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "VmSwap", "Threads"):
                    out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def swap_traffic() -> dict[str, int]:
    """Pages swapped in and out since boot (``/proc/vmstat``)."""
    out = {}
    with open("/proc/vmstat") as handle:
        for line in handle:
            key, value = line.split()
            if key in ("pswpin", "pswpout"):
                out[key] = int(value)
    return out


def swap_total_kib() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("SwapTotal:"):
                return int(line.split()[1])
    return 0


# ------------------------------------------------------------------ 1. national quarter

_CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from surveillance.pipeline import RunOptions, run_quarter
s = run_quarter(RunOptions(data_dir=Path({data!r}), quarter={quarter!r}, out=Path({out!r}),
                           mlflow=False))
print(sum(s.band_counts.values()))
"""


def national(data: Path | None) -> dict[str, Any]:
    """Run the national quarter in a child process while sampling its memory and swap."""
    with tempfile.TemporaryDirectory(prefix="load-national-", dir="/tmp") as tmp:
        tmp_path = Path(tmp)
        start = time.perf_counter()
        if data is None:
            from surveillance.synth.build import synthesise

            synthesise(
                tmp_path / "nation", seed=2013, scale="national", quarter=QUARTER, quarters=1
            )
            bundle = tmp_path / "nation" / QUARTER
        else:
            bundle = tmp_path / "bundle"
            shutil.copytree(data, bundle, ignore=shutil.ignore_patterns("out", "*.prof", "*.json"))
        prepare_seconds = time.perf_counter() - start
        code = _CHILD.format(
            root=str(ROOT), data=str(bundle), quarter=QUARTER, out=str(tmp_path / "out")
        )
        swap_before = swap_traffic()
        samples: list[dict[str, int]] = []
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)

        def sample() -> None:
            while proc.poll() is None:
                s = status(proc.pid)
                if s:
                    samples.append(s)
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, _ = proc.communicate()
        seconds = time.perf_counter() - start
        sampler.join()
        swap_after = swap_traffic()
        spells = None
        try:
            import pyarrow.parquet as pq

            spells = pq.ParquetFile(bundle / "spells.parquet").metadata.num_rows
        except Exception:  # noqa: BLE001 - only for the report
            pass
    peak = max((s.get("VmHWM", 0) for s in samples), default=0) / 1024
    swap_peak = max((s.get("VmSwap", 0) for s in samples), default=0)
    swapped = {k: swap_after[k] - swap_before[k] for k in swap_after}
    note = ""
    if proc.returncode == -9:
        note = (
            "child killed by SIGKILL: on this shared machine that is the kernel's global OOM "
            "killer when other processes hold the rest of the memory (see dmesg)"
        )
    return {
        "note": note,
        "returncode": proc.returncode,
        "trusts_banded": stdout.strip(),
        "spells": spells,
        "prepare_seconds": round(prepare_seconds, 1),
        "run_seconds": round(seconds, 1),
        "peak_rss_mib": round(peak, 1),
        "max_vmswap_kib": swap_peak,
        "system_pages_swapped": swapped,
        "swap_total_kib": swap_total_kib(),
        "samples": len(samples),
        "within_target": proc.returncode == 0
        and peak < MEMORY_TARGET_MIB
        and swap_peak == 0
        and not any(swapped.values()),
    }


# ------------------------------------------------------------------ 2. ten quarters in one process


def quarters_back_to_back(n: int = N_QUARTERS, scale: str = "test") -> dict[str, Any]:
    from surveillance.pipeline import RunOptions, current_code_version, run_quarter
    from surveillance.synth.build import synthesise

    with tempfile.TemporaryDirectory(prefix="load-quarters-", dir="/tmp") as tmp:
        tmp_path = Path(tmp)
        summary = synthesise(
            tmp_path / "nation", seed=2013, scale=scale, quarter=QUARTER, quarters=n
        )
        code = current_code_version()
        rows = []
        for i, quarter in enumerate(summary.quarters, start=1):
            start = time.perf_counter()
            run_quarter(
                RunOptions(
                    data_dir=tmp_path / "nation" / quarter,
                    quarter=quarter,
                    out=tmp_path / "out",
                    mlflow=True,
                    code=code,
                )
            )
            gc.collect()
            s = status()
            rows.append(
                {
                    "n": i,
                    "quarter": quarter,
                    "seconds": round(time.perf_counter() - start, 1),
                    "rss_mib": round(s["VmRSS"] / 1024, 1),
                    "open_fds": len(os.listdir("/proc/self/fd")),
                    "threads": s["Threads"],
                }
            )
            print_table([rows[-1]])
    base = rows[min(2, len(rows) - 1)]
    last = rows[-1]
    growth = last["rss_mib"] - base["rss_mib"]
    fds = last["open_fds"] - base["open_fds"]
    threads = last["threads"] - base["threads"]
    return {
        "scale": scale,
        "quarters": rows,
        "rss_growth_mib_q3_to_last": round(growth, 1),
        "fd_growth_q3_to_last": fds,
        "thread_growth_q3_to_last": threads,
        "no_growth": growth < RSS_GROWTH_LIMIT_MIB and fds <= 0 and threads <= 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-slow", action="store_true", help="skip the national quarter")
    parser.add_argument("--national-data", type=Path, help="an existing national bundle to copy")
    parser.add_argument("--quarters", type=int, default=N_QUARTERS)
    args = parser.parse_args()

    payload: dict[str, Any] = {
        "memory_target_mib": MEMORY_TARGET_MIB,
        "rss_growth_limit_mib": RSS_GROWTH_LIMIT_MIB,
    }
    parts = []
    if not args.skip_slow:
        nat = national(args.national_data)
        payload["national"] = nat
        print_table(
            [{k: v for k, v in nat.items() if k != "system_pages_swapped"}], "national quarter"
        )
        parts.append(
            f"national {nat['spells'] or '?'} spells: peak {nat['peak_rss_mib']:.0f} MiB "
            f"(target {MEMORY_TARGET_MIB}), VmSwap max {nat['max_vmswap_kib']} KiB, "
            f"{'within target' if nat['within_target'] else 'OUT OF TARGET'}"
            + (f" (exit {nat['returncode']})" if nat["returncode"] else "")
        )
    else:
        payload["national"] = None
        parts.append("national quarter skipped (--skip-slow)")
    back = quarters_back_to_back(args.quarters)
    payload["back_to_back"] = back
    parts.append(
        f"{len(back['quarters'])} quarters in one process ({back['scale']} scale): RSS "
        f"{back['rss_growth_mib_q3_to_last']:+.1f} MiB, fds {back['fd_growth_q3_to_last']:+d}, "
        f"threads {back['thread_growth_q3_to_last']:+d} from quarter 3 "
        f"({'no growth' if back['no_growth'] else 'GROWTH'})"
    )
    payload["summary"] = "; ".join(parts)
    path = write_result("load", payload)
    print(payload["summary"])
    print(f"wrote {path}")
    print(
        json.dumps(
            {"ok": (payload["national"] or {}).get("within_target", True) and back["no_growth"]}
        )
    )


if __name__ == "__main__":
    main()
