"""National scale: the quarterly run at 1, 5, 15 and 45 million spells, and the same flow on Dask.

For each scale the synthetic nation is built once (one bundle, quarter 2013Q3; ``demo`` is ~1M
spells over 36 months, ``m5`` ~5M, ``m15`` ~15M, ``national`` 46.6M, see
``surveillance/synth/nation.yaml``) under ``--root`` (default ``/tmp/national_bench``; the national
bundle is taken from ``/tmp/national`` when it exists), then the whole quarter is run by
:func:`surveillance.pipeline.run_quarter` (MLflow and the reports included) in a fresh process.
Inside that process each stage function of ``surveillance.pipeline`` is wrapped to record its wall
time, its CPU time (user + system, all threads) and its own peak resident memory (the kernel's
high-water mark ``VmHWM`` is reset before the stage through ``/proc/self/clear_refs``). The parent
records the child's wall time and, from ``os.wait4``, its CPU time and peak RSS, plus the load
average before and after: other engineers use the same 2 cores, so wall times are noisy and CPU
time is the steadier measure.

``--profile`` also runs the largest scale under cProfile and keeps the top functions by
cumulative time. ``--dask`` runs the Prefect ``quarterly`` flow at the 1M scale twice, with the
local (thread) task runner and with the Dask task runner on a ``LocalCluster`` of 2 worker
processes, and compares the sha256 of every published file; ``timings.json`` is the one
documented volatile file (docs/operations.md) and is left out of the comparison. Both flow runs
get the same ``code`` version dict, so a commit by someone else between them cannot change the
manifest.

``--skip-slow`` (``make bench``) runs the 1M point only (plus the Dask comparison).

Targets (issue 6): the national quarter under 5 minutes and 12 GiB on this 2-core 24 GiB
machine; stretch 2 minutes and 6 GiB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import print_table, write_result  # noqa: E402

QUARTER = "2013Q3"
SCALES = ("demo", "m5", "m15", "national")
NATIONAL_DATA = Path("/tmp/national")
VOLATILE = {"timings.json"}
TARGET_SECONDS, TARGET_GIB = 300, 12
STRETCH_SECONDS, STRETCH_GIB = 120, 6

#: ``surveillance.pipeline`` function -> stage name (as in ``timings.json``)
STAGES = {
    "fingerprint": "fingerprint",
    "load_catalogue": "catalogue",
    "load": "load",
    "assemble_sources": "assemble",
    "validate": "validate",
    "derive": "derive",
    "mortality": "mortality",
    "previous_outputs": "previous",
    "assess_flags": "assess",
    "band": "band",
    "band_history": "band_history",
    "track": "mlflow",
    "write_outputs": "write",
    "render_reports": "report",
    "finish_manifest": "manifest",
}


# ============================================================================================
# child side: one instrumented run in this process


def _status_kib(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def instrument(module: Any, stages: dict[str, str], records: list[dict[str, Any]]) -> None:
    """Wrap ``module``'s stage functions to append wall, CPU and peak RSS per call to ``records``.

    Only the outermost wrapped call is measured (a stage calling another is counted once).
    """
    import functools

    depth = [0]

    def wrap(fn, name):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            if depth[0]:
                return fn(*args, **kwargs)
            depth[0] += 1
            rss_before = _status_kib("VmRSS")
            _reset_peak()
            wall, cpu = time.perf_counter(), _cpu_seconds()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                records.append(
                    {
                        "stage": name,
                        "seconds": round(time.perf_counter() - wall, 3),
                        "cpu_seconds": round(_cpu_seconds() - cpu, 3),
                        "peak_rss_mib": round(_status_kib("VmHWM") / 1024, 1),
                        "rss_before_mib": round(rss_before / 1024, 1),
                    }
                )

        return inner

    for attr, name in stages.items():
        setattr(module, attr, wrap(getattr(module, attr), name))


def child_run(
    data: str,
    out: str,
    report: str,
    profile: str | None,
    spells: str = "memory",
    workers: int = 0,
    code: str | None = None,
) -> None:
    """One quarter with :func:`run_quarter`; stage records (and profile) written to ``report``.

    ``spells``: the run's spell engine (``memory`` or ``chunked``); with ``workers`` > 0 a Dask
    ``LocalCluster`` of that many single-threaded worker processes is started first and the
    chunked spell-level steps run on it as a Dask data frame (the workers' own peak memory is
    recorded too: it is not part of this process's). ``code``: the code version as JSON (runs
    compared byte for byte get the same one: engineers commit while benchmarks run).
    """
    from surveillance import pipeline

    records: list[dict[str, Any]] = []
    instrument(pipeline, STAGES, records)
    options = pipeline.RunOptions(
        data_dir=Path(data),
        quarter=QUARTER,
        out=Path(out),
        spells=spells,
        code=json.loads(code) if code else None,
    )
    body: dict[str, Any] = {}
    cluster = client = None
    if workers:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    if profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        summary = pipeline.run_quarter(options)
        prof.disable()
        prof.dump_stats(profile)
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(45)
        body["profile_text"] = text.getvalue()
    else:
        summary = pipeline.run_quarter(options)
    if client is not None:
        body["worker_peak_rss_mib"] = sorted(
            round(v / 1024, 0) for v in client.run(lambda: _status_kib("VmHWM")).values()
        )
        client.close()
        cluster.close()
    body.update({"stages": records, "bands": summary.band_counts, "new_alerts": summary.new_alerts})
    Path(report).write_text(json.dumps(body, default=str))


def child_flow(data: str, out: str, runner: str, code: str) -> None:
    """The Prefect ``quarterly`` flow on the ``local`` or ``dask`` task runner."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from flows.quarterly import quarterly
    from flows.runners import task_runner

    flow = quarterly.with_options(task_runner=task_runner(runner))
    flow(data_dir=data, out=out, quarter=QUARTER, code=json.loads(code))


# ============================================================================================
# parent side


def spawn(args: list[str]) -> dict[str, Any]:
    """Run this script in a child process; wall time, CPU time and peak RSS from ``os.wait4``."""
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"child {args[:2]} failed with exit status {proc.returncode}")
    return {
        "seconds": round(wall, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 0),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def ensure_bundle(root: Path, scale: str) -> tuple[Path, dict[str, Any]]:
    """The scale's 2013Q3 bundle (built once; build time and spell count recorded)."""
    if scale == "national" and (NATIONAL_DATA / QUARTER / "spells.parquet").is_file():
        nation = NATIONAL_DATA
    else:
        nation = root / scale
    data = nation / QUARTER
    info: dict[str, Any] = {}
    if not (data / "spells.parquet").is_file():
        from surveillance.synth.build import synthesise

        start = time.perf_counter()
        synthesise(nation, scale=scale, quarter=QUARTER, quarters=1)
        info["synth_seconds"] = round(time.perf_counter() - start, 1)
    import pyarrow.parquet as pq

    info["spells"] = pq.ParquetFile(data / "spells.parquet").metadata.num_rows
    info["spells_parquet_mib"] = round((data / "spells.parquet").stat().st_size / 2**20, 1)
    return data, info


def run_scale(
    root: Path,
    scale: str,
    profile: bool,
    spells: str = "memory",
    workers: int = 0,
    code: str | None = None,
) -> dict[str, Any]:
    data, info = ensure_bundle(root, scale)
    mode = mode_name(spells, workers)
    out = root / "out" / (scale if mode == "memory" else f"{scale}-{mode}")
    shutil.rmtree(out, ignore_errors=True)
    report = root / f"stages-{scale}-{mode}.json"
    args = ["--child-run", str(data), str(out), str(report), "--child-spells", spells]
    args += ["--child-workers", str(workers)]
    if code:
        args += ["--child-code", code]
    prof_path = root / f"profile-{scale}.prof"
    if profile:
        args += ["--child-profile", str(prof_path)]
    measured = spawn(args)
    body = json.loads(report.read_text())
    timings = json.loads((out / QUARTER / "timings.json").read_text())
    # the child resets its peak-RSS mark before every stage, so the whole run's peak is the
    # largest of the stage peaks and what the kernel reports at exit
    stage_peak = max((s["peak_rss_mib"] for s in body["stages"]), default=0.0)
    measured["peak_rss_mib"] = max(measured["peak_rss_mib"], stage_peak)
    row = {"scale": scale, "mode": mode, **info, **measured, "stages": body["stages"]}
    if "worker_peak_rss_mib" in body:
        row["worker_peak_rss_mib"] = body["worker_peak_rss_mib"]
    row["output_sha256"] = {
        k: v for k, v in tree_hashes(out / QUARTER).items() if k not in VOLATILE
    }
    row["pipeline_stage_seconds"] = timings.get("stage_seconds", {})
    row["bands"] = body["bands"]
    if profile:
        row["profile_text"] = body.get("profile_text", "")
        row["profile_file"] = str(prof_path)
    return row


def mode_name(spells: str, workers: int) -> str:
    return f"dask{workers}" if workers else spells


def run_modes(root: Path, scale: str, workers: int) -> dict[str, Any]:
    """The same scale with the spells in memory, streamed by row group (chunked, one process) and
    as a Dask data frame on ``workers`` worker processes; are the published files identical?"""
    from surveillance.pipeline import current_code_version

    code = json.dumps(current_code_version())
    rows = [
        run_scale(root, scale, False, "memory", code=code),
        run_scale(root, scale, False, "chunked", code=code),
        run_scale(root, scale, False, "chunked", workers, code=code),
    ]
    base = rows[0]["output_sha256"]
    for r in rows:
        r["differing_files"] = sorted(
            n
            for n in set(base) | set(r["output_sha256"])
            if base.get(n) != r["output_sha256"].get(n)
        )
    return {
        "scale": scale,
        "spells": rows[0]["spells"],
        "files_compared": len(base),
        "runs": [
            {
                k: r.get(k)
                for k in (
                    "mode",
                    "seconds",
                    "cpu_seconds",
                    "peak_rss_mib",
                    "worker_peak_rss_mib",
                    "load_before",
                    "differing_files",
                )
            }
            for r in rows
        ],
        "stage_table": stage_table(rows, key="mode"),
        "identical": all(not r["differing_files"] for r in rows),
    }


def with_summary(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with its one-line summary: the last memory run, then the modes comparison."""
    parts = []
    scales = payload.get("scales") or []
    if scales:
        big = scales[-1]
        parts.append(
            f"{big['scale']} ({big['spells'] / 1e6:.1f}M spells) in memory: {big['seconds']} s, "
            f"peak {big['peak_rss_mib'] / 1024:.1f} GiB"
        )
    modes = payload.get("modes")
    if modes:
        runs = ", ".join(
            f"{r['mode']} {r['seconds']} s / {r['peak_rss_mib'] / 1024:.1f} GiB"
            for r in modes["runs"]
        )
        same = "identical" if modes["identical"] else "DIFFERENT"
        parts.append(f"modes at {modes['scale']}: {runs} ({same} outputs)")
    flows = dict(payload.get("dask_flows") or {})
    if payload.get("dask"):
        flows.setdefault(payload["dask"]["scale"], payload["dask"])
    for scale, flow in sorted(flows.items()):
        same = "identical" if flow["identical"] else "DIFFERENT"
        parts.append(f"Prefect flow local vs Dask at {scale}: {same}")
    parts.append(
        f"targets {TARGET_SECONDS} s / {TARGET_GIB} GiB, stretch {STRETCH_SECONDS} s / "
        f"{STRETCH_GIB} GiB"
    )
    return {**payload, "summary": "; ".join(parts)}


def tree_hashes(run_dir: Path) -> dict[str, str]:
    return {
        p.relative_to(run_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def dask_comparison(root: Path, scale: str = "demo") -> dict[str, Any]:
    """The quarterly flow on the local and the Dask task runner: identical published files?

    Under the Dask runner the flow's spell-level steps run as a Dask data frame (the spells stay
    in ``spells.parquet``, read by row group on the workers); under the local runner in memory.
    """
    from surveillance.pipeline import current_code_version

    data, info = ensure_bundle(root, scale)
    code = json.dumps(current_code_version())
    runs = {}
    hashes = {}
    for runner in ("local", "dask"):
        out = root / "out" / f"flow-{runner}-{scale}"
        shutil.rmtree(out, ignore_errors=True)
        runs[runner] = spawn(["--child-flow", str(data), str(out), runner, code])
        hashes[runner] = tree_hashes(out / QUARTER)
    names = sorted(set(hashes["local"]) | set(hashes["dask"]))
    differ = [
        n for n in names if n not in VOLATILE and hashes["local"].get(n) != hashes["dask"].get(n)
    ]
    return {
        "scale": scale,
        "spells": info["spells"],
        "runs": runs,
        "files_compared": len([n for n in names if n not in VOLATILE]),
        "excluded_volatile": sorted(VOLATILE),
        "differing_files": differ,
        "identical": not differ,
    }


def stage_table(rows: list[dict[str, Any]], key: str = "scale") -> list[dict[str, Any]]:
    """One row per stage, columns ``<key> s`` / ``<key> cpu`` / ``<key> MiB`` (key: scale or
    mode)."""
    order: list[str] = []
    for r in rows:
        for s in r["stages"]:
            if s["stage"] not in order:
                order.append(s["stage"])
    table = []
    for stage in order:
        line: dict[str, Any] = {"stage": stage}
        for r in rows:
            rec = [s for s in r["stages"] if s["stage"] == stage]
            line[f"{r[key]} s"] = round(sum(s["seconds"] for s in rec), 1) if rec else ""
            line[f"{r[key]} cpu"] = round(sum(s["cpu_seconds"] for s in rec), 1) if rec else ""
            line[f"{r[key]} MiB"] = max((s["peak_rss_mib"] for s in rec), default="")
        table.append(line)
    total: dict[str, Any] = {"stage": "TOTAL (process)"}
    for r in rows:
        total[f"{r[key]} s"] = r["seconds"]
        total[f"{r[key]} cpu"] = r["cpu_seconds"]
        total[f"{r[key]} MiB"] = r["peak_rss_mib"]
    table.append(total)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-slow", action="store_true", help="the 1M point only")
    parser.add_argument("--root", default="/tmp/national_bench")
    parser.add_argument("--scales", nargs="*", default=None, choices=SCALES)
    parser.add_argument("--profile", action="store_true", help="cProfile the largest scale")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask comparison")
    parser.add_argument("--child-run", nargs=3, metavar=("DATA", "OUT", "REPORT"))
    parser.add_argument("--child-profile", default=None)
    parser.add_argument("--child-flow", nargs=4, metavar=("DATA", "OUT", "RUNNER", "CODE"))
    parser.add_argument("--child-spells", default="memory")
    parser.add_argument("--child-workers", type=int, default=0)
    parser.add_argument("--child-code", default=None)
    parser.add_argument(
        "--modes",
        default=None,
        choices=SCALES,
        help="also run this scale with the spells streamed and on a Dask cluster; compare outputs",
    )
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (--modes)")
    parser.add_argument("--modes-only", action="store_true", help="only the --modes comparison")
    parser.add_argument(
        "--curve-chunked",
        action="store_true",
        help="only the scaling curve (all scales) with --spells chunked, kept beside the other",
    )
    parser.add_argument(
        "--flow-scale",
        default=None,
        choices=SCALES,
        help="only the Prefect flow comparison (local vs Dask runner) at this scale",
    )
    args = parser.parse_args()
    if args.child_run:
        child_run(
            *args.child_run,
            profile=args.child_profile,
            spells=args.child_spells,
            workers=args.child_workers,
            code=args.child_code,
        )
        return
    if args.child_flow:
        child_flow(*args.child_flow)
        return

    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    previous = ROOT / "benchmarks" / "results" / "national.json"
    old = json.loads(previous.read_text()) if previous.is_file() else {}
    if args.curve_chunked:
        curve = [run_scale(root, scale, False, "chunked") for scale in SCALES]
        print_table(stage_table(curve), "scaling curve, --spells chunked")
        old["scales_chunked"] = curve
        old["stage_table_chunked"] = stage_table(curve)
        write_result("national", with_summary(old))
        return
    if args.flow_scale:
        flow = dask_comparison(root, args.flow_scale)
        print(f"flow local vs Dask at {args.flow_scale}: identical {flow['identical']}")
        old.setdefault("dask_flows", {})[args.flow_scale] = flow
        write_result("national", with_summary(old))
        return
    modes = old.get("modes")
    modes_scale = args.modes or ("demo" if args.skip_slow else "national")
    if args.modes_only or args.modes or not old.get("modes"):
        print(f"== modes at {modes_scale}", flush=True)
        modes = run_modes(root, modes_scale, args.workers)
        print_table(modes["stage_table"], f"{modes_scale}: memory, chunked and Dask")
        print(f"identical outputs across modes: {modes['identical']}")
    if args.modes_only:
        old["modes"] = modes
        write_result("national", with_summary(old))
        return
    scales = args.scales or (["demo"] if args.skip_slow else list(SCALES))
    rows = []
    for scale in scales:
        print(f"== {scale}", flush=True)
        rows.append(run_scale(root, scale, profile=args.profile and scale == scales[-1]))
    if args.scales and not args.skip_slow:
        # rerun of some scales: keep the other scales' last measurements (marked as such)
        kept = [dict(r, rerun=False) for r in old.get("scales", []) if r["scale"] not in scales]
        rows = sorted(kept + rows, key=lambda r: SCALES.index(r["scale"]))
    print_table(stage_table(rows), f"quarterly run {QUARTER}: wall s, CPU s, peak MiB per stage")
    summary_rows = [
        {
            "scale": r["scale"],
            "spells": r["spells"],
            "seconds": r["seconds"],
            "cpu_seconds": r["cpu_seconds"],
            "peak_gib": round(r["peak_rss_mib"] / 1024, 2),
            "load_1min": r["load_before"][0],
        }
        for r in rows
    ]
    print_table(summary_rows, "whole run per scale")
    dask = old.get("dask") if args.no_dask else dask_comparison(root)
    if dask:
        print(
            f"Dask vs local flow (demo, {dask['files_compared']} files): "
            f"{'identical' if dask['identical'] else 'DIFFER: ' + ', '.join(dask['differing_files'])}"
        )
    payload: dict[str, Any] = {
        "quarter": QUARTER,
        "scales": rows,
        "stage_table": stage_table(rows),
        "dask": dask,
        "modes": modes,
        "targets": {
            "seconds": TARGET_SECONDS,
            "gib": TARGET_GIB,
            "stretch_seconds": STRETCH_SECONDS,
            "stretch_gib": STRETCH_GIB,
        },
    }
    for key in ("dask_flows", "scales_chunked", "stage_table_chunked"):
        if key in old:  # measured by --flow-scale / --curve-chunked: kept until rerun
            payload[key] = old[key]
    if old and args.skip_slow:
        # keep the last full national measurement beside the quick 1M point
        payload["last_full_run"] = old.get("last_full_run") or (
            old if any(r["scale"] == "national" for r in old.get("scales", [])) else None
        )
    payload = with_summary(payload)
    write_result("national", payload)
    print(payload["summary"])


if __name__ == "__main__":
    main()
