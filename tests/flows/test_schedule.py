"""Deployment schedules: the quarterly run lands on the first working day after each quarter."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from flows import deploy, schedule

LONDON = ZoneInfo("Europe/London")

# England and Wales bank holidays as published on gov.uk/bank-holidays (the oracle).
GOV_UK = {
    2020: ["01-01", "04-10", "04-13", "05-08", "05-25", "08-31", "12-25", "12-28"],
    2022: [
        "01-03",
        "04-15",
        "04-18",
        "05-02",
        "06-02",
        "06-03",
        "08-29",
        "09-19",
        "12-26",
        "12-27",
    ],
    2023: ["01-02", "04-07", "04-10", "05-01", "05-08", "05-29", "08-28", "12-25", "12-26"],
    2026: ["01-01", "04-03", "04-06", "05-04", "05-25", "08-31", "12-25", "12-28"],
    2027: ["01-01", "03-26", "03-29", "05-03", "05-31", "08-30", "12-27", "12-28"],
}


@pytest.mark.parametrize("year", sorted(GOV_UK))
def test_bank_holidays_match_gov_uk(year: int) -> None:
    expected = {dt.date.fromisoformat(f"{year}-{d}") for d in GOV_UK[year]}
    assert schedule.bank_holidays(year) == expected


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (2013, "03-31"),
        (2016, "03-27"),
        (2019, "04-21"),
        (2024, "03-31"),
        (2027, "03-28"),
        (2038, "04-25"),
        (2285, "03-22"),
    ],
)
def test_easter(year: int, easter: str) -> None:
    assert schedule.easter_sunday(year) == dt.date.fromisoformat(f"{year}-{easter}")


def test_next_quarterly_runs_from_2026_11_26() -> None:
    start = dt.datetime(2026, 11, 26, 9, 0, tzinfo=LONDON)
    runs = deploy.next_quarterly_runs(start, 6)
    assert runs == [
        dt.date(2027, 1, 4),  # 1 Jan 2027 is a bank holiday Friday, then the weekend
        dt.date(2027, 4, 1),
        dt.date(2027, 7, 1),
        dt.date(2027, 10, 1),
        dt.date(2028, 1, 4),  # 1 Jan 2028 is a Saturday: substitute holiday Monday 3 Jan
        dt.date(2028, 4, 3),  # 1 April 2028 is a Saturday
    ]


def test_cron_fires_and_guard_skips() -> None:
    start = dt.datetime(2026, 12, 31, 12, 0, tzinfo=LONDON)
    fires = deploy.cron_dates(deploy.quarterly_schedule(), start, 5)
    assert [f.date().isoformat() for f in fires] == [
        "2027-01-01",
        "2027-01-04",
        "2027-01-05",
        "2027-01-06",
        "2027-01-07",
    ]
    assert all(f.hour == 7 and f.tzinfo is not None for f in fires)
    assert [schedule.is_first_working_day(f.date()) for f in fires] == [
        False,
        True,
        False,
        False,
        False,
    ]


def test_latest_first_working_day_is_within_cron_days() -> None:
    """Days 1-7 always contain the first working day (worst case: Good Friday on 1 April)."""
    worst = max(
        schedule.first_working_day(year, month).day
        for year in range(1990, 2101)
        for month in (1, 4, 7, 10)
    )
    assert worst <= 7
    assert schedule.first_working_day(2067, 4) == dt.date(2067, 4, 5)  # Good Friday 1 April


def test_scheduled_run_reports_the_quarter_just_ended() -> None:
    assert schedule.quarter_just_ended(dt.date(2027, 1, 4)) == "2026Q4"
    assert schedule.quarter_just_ended(dt.date(2013, 10, 1)) == "2013Q3"
    assert schedule.month_just_ended(dt.date(2027, 1, 15)) == "2026-12"


def test_monthly_runs() -> None:
    start = dt.datetime(2026, 11, 26, 9, 0, tzinfo=LONDON)
    assert deploy.next_monthly_runs(start, 3) == [
        dt.date(2026, 12, 15),
        dt.date(2027, 1, 15),
        dt.date(2027, 2, 15),
    ]


def test_deployments_carry_schedule_and_parameters(tmp_path) -> None:
    quarterly, monthly = deploy.build_deployments(tmp_path / "data", tmp_path / "out")
    assert quarterly.name == deploy.QUARTERLY_NAME
    assert quarterly.parameters["scheduled"] is True
    assert quarterly.parameters["out"] == str((tmp_path / "out").resolve())
    cron = quarterly.schedules[0].schedule
    assert (cron.cron, cron.timezone, cron.day_or) == (
        "0 7 1-7 1,4,7,10 1-5",
        "Europe/London",
        False,
    )
    assert monthly.schedules[0].schedule.cron == "0 7 15 * *"


def test_task_runner_choices() -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.runners import task_runner

    assert isinstance(task_runner("local"), ThreadPoolTaskRunner)
    local_cluster = task_runner("dask")
    assert isinstance(local_cluster, DaskTaskRunner)
    assert local_cluster.cluster_kwargs["n_workers"] == 2
    assert task_runner("dask", "tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    for bad in (("local", "tcp://x:1"), ("dask", "10.0.0.5:8786"), ("spark", None)):
        with pytest.raises(ValueError):
            task_runner(*bad)
