"""The quarterly flow: assemble -> validate -> (derive | mortality) -> assess -> band -> publish.

Wiring only: every task is one call into :mod:`surveillance.pipeline` (see ``flows/tasks.py``).
``derive`` (staffing, intelligence) and ``mortality`` are independent and are submitted together,
so on a Dask cluster they run in parallel; ``assess`` needs both (the mortality ratios and alerts
are indicators too), then ``band``; ``publish`` writes the tables, the reports and the manifest
into a staging directory and renames it into place. The flow holds the quarter's lock from start
to end, so a second run of the same quarter refuses at once; if any stage fails nothing is
published and the finished stages' cached results let a rerun resume.

Scheduled runs (``scheduled=True``, set by the deployment) first apply the working-day guard of
``flows/schedule.py`` and report the quarter that has just ended.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from flows import schedule, tasks
from surveillance import pipeline, store

#: environment variable naming where the stage cache lives (default: the user's cache folder)
CACHE_ENV = "SURVEILLANCE_CACHE_DIR"


def cache_root() -> Path:
    """``$SURVEILLANCE_CACHE_DIR``, else ``$XDG_CACHE_HOME/surveillance``, else
    ``~/.cache/surveillance``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "surveillance"


def work_directory(out: Path, quarter: str) -> Path:
    """Where a quarter's cached stage results live until it is published.

    Outside ``--out`` (:func:`cache_root`), one folder per resolved output directory and quarter:
    a failed run leaves nothing in ``--out``, and cached stage results never fill the disk the
    outputs go to before they are written. Removed once the quarter is published.
    """
    digest = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:16]
    return cache_root() / "stages" / digest / quarter


@flow(name="quarterly", validate_parameters=False)
def quarterly(
    data_dir: str,
    out: str,
    quarter: str | None = None,
    force: bool = False,
    quarantine: bool = False,
    scheduled: bool = False,
    code: dict[str, Any] | None = None,
    render_reports: bool = True,
    mlflow: bool = True,
    spells: str | None = None,
    checked_run_id: str | None = None,
) -> dict[str, Any]:
    """Run one quarter and publish it to ``<out>/<quarter>/``; returns a small summary dict.

    ``checked_run_id``: the run id :func:`surveillance.pipeline.preflight` passed (the CLI checks
    before starting Prefect); when the flow's fingerprint is the same, the bytes are the ones
    checked and the contract check is not repeated.

    ``spells``: ``auto``, ``memory`` or ``chunked`` (:attr:`surveillance.pipeline.RunOptions.
    spells`); by default ``chunked`` under the Dask task runner (the spell-level steps run as a
    Dask data frame on the cluster, reading ``spells.parquet`` by row group from shared storage)
    and ``auto`` otherwise. The outputs are the same.
    """
    logger = get_run_logger()
    if scheduled:
        today = dt.datetime.now(ZoneInfo(schedule.TIMEZONE)).date()
        if not schedule.is_first_working_day(today):
            logger.info("%s is not the first working day of the quarter: skipping", today)
            return {"skipped": f"{today} is not the first working day of the quarter"}
        quarter = quarter or schedule.quarter_just_ended(today)
    if quarter is None:
        raise ValueError("quarter is required (e.g. 2013Q3) unless the run is scheduled")
    options = pipeline.RunOptions(
        data_dir=Path(data_dir),
        quarter=quarter,
        out=Path(out),
        force=force,
        quarantine=quarantine,
        code=code,
        render_reports=render_reports,
        mlflow=mlflow,
        spells=spells or ("chunked" if _runner_name() == "DaskTaskRunner" else "auto"),
    ).resolved()
    store.check_apart(options.data_dir, options.out)
    root = store.ensure_output_dir(options.out)
    with store.quarter_lock(root, options.quarter):
        target = store.run_directory(root, options.quarter)
        if target.exists() and not options.force:
            if scheduled:
                logger.info("%s is already published: nothing to do", target)
                return {"skipped": f"{target} is already published"}
            raise store.AlreadyPublishedError(
                f"{target} already exists: pass --force to replace it with this run"
            )
        store.clean_stale(root, options.quarter)
        work = work_directory(root, options.quarter)
        run_dir = _run(options, work, logger, checked_run_id)
        shutil.rmtree(work, ignore_errors=True)
        _prune_work_root(work)
    return {"run_dir": str(run_dir), "quarter": options.quarter}


def _run(
    options: pipeline.RunOptions, work: Path, logger, checked_run_id: str | None = None
) -> Path:
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = now - clock[0]
        clock[0] = now

    q = options.quarter
    pipeline.import_stages()  # import once here: concurrent first imports in threads can race
    fp = tasks.fingerprint(options)
    key = fp.key
    logger.info("run %s", fp.run_id)
    storage = tasks.result_storage(work)

    def cached(task_obj):
        return tasks.with_storage(task_obj, storage, tasks.LARGE.get(task_obj.name, ()))

    lap("fingerprint")
    catalogue = tasks.catalogue(str(options.catalogue_path), key)
    bundle = tasks.load(str(options.data_dir), options.spells, key)
    lap("load")
    assembly = cached(tasks.assemble)(bundle, catalogue, q, key)
    lap("assemble")
    checked = checked_run_id == fp.run_id
    validated = tasks.validate(bundle, assembly, catalogue, q, options.quarantine, key, checked)
    lap("validate")
    derived_future = cached(tasks.derive).submit(validated, catalogue, q, key)
    mortality_future = cached(tasks.mortality).submit(validated, catalogue, q, key)
    previous_bands, previous_flags = pipeline.previous_outputs(options, fp.previous)
    # .result() re-raises a failed stage's own exception (never a later "not ready")
    derived = derived_future.result()
    mortality_result = mortality_future.result()
    lap("derive_and_mortality")
    flags = (
        cached(tasks.assess)
        .submit(validated, derived, mortality_result, assembly, catalogue, q, previous_flags, key)
        .result()
    )
    lap("assess")
    bands = (
        cached(tasks.band)
        .submit(
            flags,
            validated.bundle.trusts,
            q,
            previous_bands,
            key,
            pipeline.banding_config_path(options),
        )
        .result()
    )
    lap("band")
    results = pipeline.QuarterResults(
        flags,
        bands,
        mortality_result,
        assembly,
        validated,
        pipeline.excluded_indicators(flags),
        wards=derived.wards,
        band_history=pipeline.band_history(options),
    )
    extra = {"flow_run_id": _flow_run_id(), "runner": _runner_name()}
    if options.mlflow:
        extra.update(tasks.track(str(options.out), fp, flags, bands, mortality_result))
        lap("mlflow")
    run_dir = tasks.publish(options, fp, results, catalogue, timings, extra)
    return Path(run_dir)


def _flow_run_id() -> str | None:
    try:
        return str(get_run_context().flow_run.id)
    except Exception:  # pragma: no cover - outside a flow run
        return None


def _runner_name() -> str:
    try:
        return type(get_run_context().task_runner).__name__
    except Exception:  # pragma: no cover
        return "unknown"


def _prune_work_root(work: Path) -> None:
    """Remove the output directory's cache folder once no quarter of it is cached."""
    folder = Path(work).parent
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
