"""The platform's one clock. Times recorded in state come from events; this clock only drives
expiry and deadlines, and `CREDIT_NOW` moves it so demos and tests can travel in time."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class OffsetClock:
    """Starts at `start` and runs on at the real rate (what `CREDIT_NOW` means)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("CREDIT_NOW needs an offset (RFC 3339), e.g. 2026-11-25T09:30:00+08:00")
        self._start = start
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._t0)


class ManualClock:
    """A clock a test sets and advances by hand."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def clock_from(credit_now: datetime | None) -> Clock:
    """The clock for the configured `CREDIT_NOW` (the system clock when unset)."""
    return OffsetClock(credit_now) if credit_now is not None else SystemClock()


def local_today(clock: Clock) -> date:
    """Today's date in Asia/Shanghai, the zone every date of the contract is in."""
    return clock.now().astimezone(SHANGHAI).date()


def local_day(at: datetime) -> date:
    """The day `at` falls on, Asia/Shanghai (what every rule's "today" is)."""
    return at.astimezone(SHANGHAI).date()


def start_of_local_day(day: date) -> datetime:
    """Midnight at the start of `day`, Asia/Shanghai."""
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
