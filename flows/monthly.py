"""The monthly mortality flow: RA-CUSUM alerts for a new month with the quarter's risk models.

Wiring only (``surveillance.pipeline``): find the risk models saved by the latest published
quarter, read the bundle's spells, run the charts over the 12 months to the month end and publish
``<out>/monthly/<YYYY-MM>/alerts.csv`` with its manifest (atomically, under the month's lock).
Scheduled runs report the month that has just ended.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows import schedule
from surveillance import pipeline


@task(name="find-risk-model", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def find_model(out: str, month: str) -> str:
    return str(pipeline.latest_risk_model(Path(out), month))


@task(name="load", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def load(data_dir: str):
    return pipeline.load(Path(data_dir))


@task(name="monthly-alerts", cache_policy=NO_CACHE)
def alerts(bundle, model_path: str, month: str):
    return pipeline.monthly_alerts(bundle, Path(model_path), month)


@task(name="publish-month", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def publish(out: str, month: str, frame, data_dir: str, model_path: str, force: bool, code):
    return str(
        pipeline.publish_month(
            Path(out), month, frame, Path(data_dir), Path(model_path), force, code
        )
    )


@flow(name="monthly_mortality", validate_parameters=False)
def monthly_mortality(
    data_dir: str,
    out: str,
    month: str | None = None,
    force: bool = False,
    scheduled: bool = False,
    code: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Alerts for ``month`` (default when scheduled: the month just ended)."""
    if month is None:
        if not scheduled:
            raise ValueError("month is required (e.g. 2013-08) unless the run is scheduled")
        month = schedule.month_just_ended(dt.datetime.now(ZoneInfo(schedule.TIMEZONE)).date())
    month = pipeline.parse_month(month)
    model_path = find_model(out, month)
    bundle = load(data_dir)
    frame = alerts(bundle, model_path, month)
    run_dir = publish(out, month, frame, data_dir, model_path, force, code)
    return {"run_dir": run_dir, "month": month, "alerts": int(len(frame))}
