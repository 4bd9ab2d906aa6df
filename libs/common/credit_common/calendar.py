"""The working-day calendar deadlines count in: China's official public holidays and the weekend
days made working days, from chinese-calendar, with `calendar` reference records on top."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

import chinese_calendar

from credit_common.contracts.reference import CalendarRecord

# The years the installed chinese-calendar has the State Council's arrangements for.
_BUILTIN_FIRST_YEAR = min(chinese_calendar.holidays).year
_BUILTIN_LAST_YEAR = max(chinese_calendar.holidays).year


class CalendarYearUnknown(LookupError):
    """No working-day calendar for a year: neither chinese-calendar nor a `calendar` record has it."""

    def __init__(self, year: int) -> None:
        self.year = year
        super().__init__(
            f"no working-day calendar for {year}: chinese-calendar {chinese_calendar.__version__} "
            f"knows {_BUILTIN_FIRST_YEAR}-{_BUILTIN_LAST_YEAR} only. Publish a `calendar` record with "
            f'code "{year}" (its holidays and working weekend days, e.g. in deploy/catalog/calendar.yaml, '
            f"then `credit-reference publish deploy/catalog`), or upgrade chinese-calendar."
        )


class WorkingDayCalendar:
    """Working days in mainland China.

    A `calendar` record for a year replaces chinese-calendar's data for that year as a whole (so it
    can correct a day as well as add one): a day is a working day when it is one of the record's
    `working_weekend_days`, or a Monday to Friday not among its `holidays`. Years without a record
    come from chinese-calendar; a year known to neither raises `CalendarYearUnknown`.
    """

    def __init__(self, records: Iterable[CalendarRecord] = ()) -> None:
        self._years: dict[int, tuple[frozenset[date], frozenset[date]]] = {}
        for record in records:
            self._years[record.year] = (frozenset(record.holidays), frozenset(record.working_weekend_days))

    def knows(self, year: int) -> bool:
        """Whether the calendar of `year` is known (from a record or from chinese-calendar)."""
        return year in self._years or _BUILTIN_FIRST_YEAR <= year <= _BUILTIN_LAST_YEAR

    def known_years(self) -> list[int]:
        """Every known year, ascending."""
        return sorted(set(self._years) | set(range(_BUILTIN_FIRST_YEAR, _BUILTIN_LAST_YEAR + 1)))

    def is_working_day(self, d: date) -> bool:
        """Whether `d` is a working day; raises `CalendarYearUnknown` for an unknown year."""
        if isinstance(d, datetime):
            d = d.date()
        override = self._years.get(d.year)
        if override is not None:
            holidays, working_weekend_days = override
            return d in working_weekend_days or (d.weekday() < 5 and d not in holidays)
        if not _BUILTIN_FIRST_YEAR <= d.year <= _BUILTIN_LAST_YEAR:
            raise CalendarYearUnknown(d.year)
        return bool(chinese_calendar.is_workday(d))

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after `start`, not counting `start` itself (n-th before it when n
        is negative; `start` when n is 0). Whether `start` is a working day does not matter: a
        deadline of 10 working days from a Saturday filing counts from the Monday."""
        if isinstance(start, datetime):
            start = start.date()
        step = timedelta(days=1 if n >= 0 else -1)
        remaining = abs(n)
        d = start
        while remaining:
            d += step
            if self.is_working_day(d):
                remaining -= 1
        return d

    def working_days_between(self, a: date, b: date) -> int:
        """How many working days lie after `a`, up to and including `b` (minus those after `b` up to
        `a` when b < a). For n >= 0, `working_days_between(a, add_working_days(a, n)) == n`."""
        if isinstance(a, datetime):
            a = a.date()
        if isinstance(b, datetime):
            b = b.date()
        if b < a:
            return -self.working_days_between(b, a)
        count = 0
        d = a + timedelta(days=1)
        while d <= b:
            if self.is_working_day(d):
                count += 1
            d += timedelta(days=1)
        return count
