"""Deployments: the quarterly flow on the first working day after each quarter, the monthly flow.

``surveillance deploy --data DIR --out DIR`` registers both deployments with the Prefect API in
``PREFECT_API_URL`` (a Prefect server backed by PostgreSQL in production; see
docs/operations.md) and, with ``--serve``, keeps serving them from this process (the scheduled
runs execute here). With ``--work-pool NAME`` the deployments are registered for that pool's
workers instead.

Schedules (Europe/London, see ``flows/schedule.py``): quarterly ``0 7 1-7 1,4,7,10 1-5`` with
``day_or=False`` plus the first-working-day guard inside the flow; monthly ``0 7 15 * *``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prefect.schedules import Cron

from flows import schedule

QUARTERLY_NAME = "quarterly-first-working-day"
MONTHLY_NAME = "monthly-mortality"


def quarterly_schedule() -> Any:
    """The quarterly Cron schedule (weekdays 1-7 of Jan/Apr/Jul/Oct; the flow guards the rest)."""
    return Cron(schedule.QUARTERLY_CRON, timezone=schedule.TIMEZONE, day_or=False)


def monthly_schedule() -> Any:
    return Cron(schedule.MONTHLY_CRON, timezone=schedule.TIMEZONE)


def build_deployments(data_dir: Path | str, out: Path | str) -> list[Any]:
    """The two RunnerDeployments (not yet registered)."""
    from flows.monthly import monthly_mortality
    from flows.quarterly import quarterly

    params = {"data_dir": str(Path(data_dir).resolve()), "out": str(Path(out).resolve())}
    return [
        quarterly.to_deployment(
            name=QUARTERLY_NAME,
            schedules=[quarterly_schedule()],
            parameters={**params, "scheduled": True},
            description="Quarterly run for the quarter just ended, on its first working day.",
            tags=["surveillance", "quarterly"],
        ),
        monthly_mortality.to_deployment(
            name=MONTHLY_NAME,
            schedules=[monthly_schedule()],
            parameters={**params, "scheduled": True},
            description="Monthly RA-CUSUM mortality alerts for the month just ended.",
            tags=["surveillance", "monthly"],
        ),
    ]


def deploy(
    data_dir: Path | str,
    out: Path | str,
    work_pool: str | None = None,
    serve: bool = False,
) -> list[str]:
    """Register the deployments (and optionally serve them); returns their ids."""
    deployments = build_deployments(data_dir, out)
    if serve:
        from prefect import serve as prefect_serve

        prefect_serve(*deployments)  # blocks, running scheduled flow runs in this process
        return []
    return [str(d.apply(work_pool_name=work_pool)) for d in deployments]


def cron_dates(cron: Any, start: dt.datetime, n: int) -> list[dt.datetime]:
    """The next ``n`` fire times of a Prefect Cron schedule after ``start`` (its own timezone)."""
    import asyncio

    from prefect.server.schemas.schedules import CronSchedule

    server = CronSchedule(cron=cron.cron, timezone=cron.timezone, day_or=cron.day_or)
    dates = asyncio.run(server.get_dates(n=n, start=start))
    zone = ZoneInfo(cron.timezone)
    return [d.astimezone(zone) for d in dates]


def next_quarterly_runs(start: dt.datetime, n: int = 4) -> list[dt.date]:
    """Dates on which the quarterly deployment actually runs (cron fires that pass the guard)."""
    runs: list[dt.date] = []
    fires = cron_dates(quarterly_schedule(), start, 7 * (n + 1))
    for fire in fires:
        if schedule.is_first_working_day(fire.date()):
            runs.append(fire.date())
        if len(runs) == n:
            break
    return runs


def next_monthly_runs(start: dt.datetime, n: int = 3) -> list[dt.date]:
    return [d.date() for d in cron_dates(monthly_schedule(), start, n)]
