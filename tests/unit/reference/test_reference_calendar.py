"""The working-day calendar: chinese-calendar's official years, `calendar` records on top."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import pytest
from credit_common.calendar import CalendarYearUnknown, WorkingDayCalendar
from credit_common.contracts.reference import CalendarRecord

# Provisional 2027, as in deploy/catalog/calendar.yaml (only what the tests need).
RECORD_2027 = CalendarRecord(
    code="2027",
    holidays=[
        date(2027, 1, 1),
        date(2027, 1, 2),
        date(2027, 1, 3),
        *(date(2027, 2, d) for d in range(5, 14)),
    ],
    working_weekend_days=[date(2027, 1, 31), date(2027, 2, 20)],
)


@pytest.fixture
def calendar() -> WorkingDayCalendar:
    return WorkingDayCalendar([RECORD_2027])


def test_national_day_2026_and_its_make_up_days(calendar: WorkingDayCalendar) -> None:
    for day in range(1, 8):
        assert not calendar.is_working_day(date(2026, 10, day))
    # The make-up working days come from chinese-calendar itself, not from this test.
    make_up = sorted(
        d
        for d, name in chinese_calendar.workdays.items()
        if d.year == 2026 and name == chinese_calendar.Holiday.national_day.value
    )
    assert make_up, "chinese-calendar lists the 2026 National Day make-up days"
    for d in make_up:
        assert d.weekday() >= 5
        assert calendar.is_working_day(d)
    assert calendar.is_working_day(date(2026, 10, 8))
    assert not calendar.is_working_day(date(2026, 10, 11))  # an ordinary Sunday


def test_a_2027_date_known_only_through_the_record(calendar: WorkingDayCalendar) -> None:
    with pytest.raises(CalendarYearUnknown):
        WorkingDayCalendar().is_working_day(date(2027, 2, 8))
    assert not calendar.is_working_day(date(2027, 2, 8))  # Spring Festival, a Monday
    assert calendar.is_working_day(date(2027, 1, 31))  # a Sunday made a working day
    assert calendar.is_working_day(date(2027, 3, 1))
    assert not calendar.is_working_day(date(2027, 3, 6))  # an ordinary Saturday
    assert calendar.knows(2027)
    assert 2027 in calendar.known_years()


def test_an_unknown_year_says_which_and_how_to_fix_it(calendar: WorkingDayCalendar) -> None:
    with pytest.raises(CalendarYearUnknown, match="2030") as caught:
        calendar.is_working_day(date(2030, 3, 1))
    assert isinstance(caught.value, LookupError)
    assert caught.value.year == 2030
    assert "calendar" in str(caught.value)
    assert 'code "2030"' in str(caught.value)
    assert not calendar.knows(2030)


def test_add_working_days_across_a_holiday(calendar: WorkingDayCalendar) -> None:
    # Wed 30 Sep 2026 + 1 working day: the National Day week is skipped, and Sat 10 Oct works.
    assert calendar.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert calendar.add_working_days(date(2026, 9, 30), 3) == date(2026, 10, 10)
    assert calendar.add_working_days(date(2026, 9, 30), 4) == date(2026, 10, 12)
    # A 10-working-day objection deadline across New Year into 2027 (known from the record).
    assert calendar.add_working_days(date(2026, 12, 25), 10) == date(2027, 1, 11)


def test_add_working_days_across_a_weekend_made_working_day(calendar: WorkingDayCalendar) -> None:
    # Fri 29 Jan 2027 + 1: Sunday 31 Jan is a working day.
    assert calendar.add_working_days(date(2027, 1, 29), 1) == date(2027, 1, 31)
    # Thu 4 Feb: 5-13 Feb off and Sun 14 off, so +1 is Mon 15; +6 is Sat 20 Feb, made a working day.
    assert calendar.add_working_days(date(2027, 2, 4), 1) == date(2027, 2, 15)
    assert calendar.add_working_days(date(2027, 2, 4), 6) == date(2027, 2, 20)


def test_add_working_days_edges(calendar: WorkingDayCalendar) -> None:
    saturday = date(2026, 11, 28)
    assert calendar.add_working_days(saturday, 0) == saturday
    assert calendar.add_working_days(saturday, 1) == date(2026, 11, 30)
    assert calendar.add_working_days(date(2026, 11, 30), -1) == date(2026, 11, 27)
    with pytest.raises(CalendarYearUnknown, match="2028"):
        calendar.add_working_days(date(2027, 12, 20), 20)


def test_working_days_between_is_the_inverse(calendar: WorkingDayCalendar) -> None:
    start = date(2026, 9, 20)
    for n in range(0, 40):
        end = calendar.add_working_days(start, n)
        assert calendar.working_days_between(start, end) == n
    assert calendar.working_days_between(date(2026, 9, 30), date(2026, 10, 7)) == 0
    assert calendar.working_days_between(date(2026, 10, 8), date(2026, 9, 30)) == -1


def test_a_record_for_a_known_year_replaces_it() -> None:
    # A correction: 9 Oct 2026 (a Friday) declared a day off; the record is the whole year.
    official = [d for d in chinese_calendar.holidays if d.year == 2026]
    make_up = [d for d in chinese_calendar.workdays if d.year == 2026]
    corrected = CalendarRecord(code="2026", holidays=[*official, date(2026, 10, 9)], working_weekend_days=make_up)
    calendar = WorkingDayCalendar([corrected])
    assert not calendar.is_working_day(date(2026, 10, 9))
    day = date(2026, 1, 1)
    while day.year == 2026:
        if day != date(2026, 10, 9):
            assert calendar.is_working_day(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)
