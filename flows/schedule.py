"""When the scheduled runs happen: first working day after each quarter, and monthly.

A cron expression cannot say "first working day of the month" (it knows weekdays but not bank
holidays), so the quarterly deployment uses a cron that fires at 07:00 Europe/London on every
weekday of days 1-7 of January, April, July and October (``day_or=False``: day-of-month AND
day-of-week), and the flow starts with a guard, :func:`is_first_working_day`, that lets only the
first working day run and makes the others return at once. Days 1-7 are enough: the latest first
working day of a quarter month is the 5th (Good Friday on 1 April puts Easter Monday on the 4th).

Working days are Monday to Friday except the bank holidays of England and Wales (Banking and
Financial Dealings Act 1971 rules, substitute days when a holiday falls at a weekend, and the
one-off moves listed in :data:`MOVED`).

The monthly mortality deployment runs at 07:00 on the 15th of each month (Europe/London) for the
month before, when the previous month's spells have been submitted.
"""

from __future__ import annotations

import datetime as dt

TIMEZONE = "Europe/London"
QUARTERLY_CRON = "0 7 1-7 1,4,7,10 1-5"
MONTHLY_CRON = "0 7 15 * *"

#: one-off changes by royal proclamation: regular date -> moved date (None = dropped), plus extras.
MOVED: dict[dt.date, dt.date | None] = {
    dt.date(1995, 5, 1): dt.date(1995, 5, 8),  # VE day 50th anniversary
    dt.date(2002, 5, 27): dt.date(2002, 6, 4),  # golden jubilee
    dt.date(2012, 5, 28): dt.date(2012, 6, 4),  # diamond jubilee
    dt.date(2020, 5, 4): dt.date(2020, 5, 8),  # VE day 75th anniversary
    dt.date(2022, 5, 30): dt.date(2022, 6, 2),  # platinum jubilee
}
EXTRA: tuple[dt.date, ...] = (
    dt.date(1999, 12, 31),
    dt.date(2002, 6, 3),
    dt.date(2011, 4, 29),
    dt.date(2012, 6, 5),
    dt.date(2022, 6, 3),
    dt.date(2022, 9, 19),
    dt.date(2023, 5, 8),
)


def easter_sunday(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _first_monday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(7 - first.weekday()) % 7)


def _last_monday(year: int, month: int) -> dt.date:
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=last.weekday())


def bank_holidays(year: int) -> set[dt.date]:
    """Bank holidays in England and Wales in ``year``."""
    days: set[dt.date] = set()
    new_year = dt.date(year, 1, 1)
    days.add(new_year + dt.timedelta(days={5: 2, 6: 1}.get(new_year.weekday(), 0)))
    easter = easter_sunday(year)
    days.add(easter - dt.timedelta(days=2))
    days.add(easter + dt.timedelta(days=1))
    days.add(_first_monday(year, 5))
    days.add(_last_monday(year, 5))
    days.add(_last_monday(year, 8))
    christmas = dt.date(year, 12, 25)
    if christmas.weekday() == 5:  # Saturday: Mon 27 and Tue 28
        days.update({dt.date(year, 12, 27), dt.date(year, 12, 28)})
    elif christmas.weekday() == 6:  # Sunday: Boxing Day Mon 26, substitute Tue 27
        days.update({dt.date(year, 12, 26), dt.date(year, 12, 27)})
    elif christmas.weekday() == 4:  # Friday: Boxing Day on Saturday -> Mon 28
        days.update({christmas, dt.date(year, 12, 28)})
    else:
        days.update({christmas, dt.date(year, 12, 26)})
    for regular, moved in MOVED.items():
        if regular.year == year and regular in days:
            days.discard(regular)
            if moved is not None:
                days.add(moved)
    days.update(d for d in EXTRA if d.year == year)
    return days


def is_working_day(day: dt.date) -> bool:
    """Monday to Friday and not a bank holiday in England and Wales."""
    return day.weekday() < 5 and day not in bank_holidays(day.year)


def first_working_day(year: int, month: int) -> dt.date:
    """The first working day of a month."""
    day = dt.date(year, month, 1)
    while not is_working_day(day):
        day += dt.timedelta(days=1)
    return day


def is_first_working_day(day: dt.date) -> bool:
    """The guard of the quarterly flow: is ``day`` the first working day of a quarter month?"""
    return day.month in (1, 4, 7, 10) and day == first_working_day(day.year, day.month)


def quarter_just_ended(day: dt.date) -> str:
    """The calendar quarter before the one containing ``day`` (what a scheduled run reports)."""
    q = (day.month - 1) // 3 + 1
    year, q = (day.year - 1, 4) if q == 1 else (day.year, q - 1)
    return f"{year}Q{q}"


def month_just_ended(day: dt.date) -> str:
    """``YYYY-MM`` of the month before ``day``."""
    first = day.replace(day=1) - dt.timedelta(days=1)
    return f"{first:%Y-%m}"
