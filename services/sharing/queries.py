"""The query arguments of sharing's HTTP reads as the service understands them: `as_of` and
`known_at` (a date or a time, Asia/Shanghai unless it says otherwise) and a region filter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from credit_common.clock import SHANGHAI, start_of_local_day

ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open interval of time [start, end)."""

    start: datetime
    end: datetime


def _parse(text: str) -> date | datetime:
    text = text.strip()
    if len(text) == 10:
        return date.fromisoformat(text)
    if "T" in text and " " in text:  # a `+` of an offset left unencoded in a query string
        text = text.replace(" ", "+")
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo is not None else t.replace(tzinfo=SHANGHAI)


def as_of_window(text: str | None, now: datetime) -> Window:
    """`as_of`: a date means that whole day (Asia/Shanghai), a time that instant; none: now.
    Raises ValueError on anything else (a date at the edge of the calendar, `0001-01-01`, too:
    its day in UTC falls outside what a datetime holds)."""
    if text is None or not text.strip():
        return Window(now.astimezone(UTC), now.astimezone(UTC) + ONE_MICROSECOND)
    try:
        return _window(_parse(text))
    except OverflowError as exc:
        raise ValueError(f"{text!r} is outside the dates the platform answers for") from exc


def _window(point: date | datetime) -> Window:
    if isinstance(point, datetime):
        return Window(point.astimezone(UTC), point.astimezone(UTC) + ONE_MICROSECOND)
    return Window(
        start_of_local_day(point).astimezone(UTC), start_of_local_day(point + timedelta(days=1)).astimezone(UTC)
    )


def known_at_instant(text: str | None) -> datetime | None:
    """`known_at`: a time is that instant; a date the end of that day (everything recorded on it);
    none: everything known (None). Raises ValueError on anything else (`9999-12-31` included)."""
    if text is None or not text.strip():
        return None
    point = _parse(text)
    try:
        if isinstance(point, datetime):
            return point.astimezone(UTC)
        return start_of_local_day(point + timedelta(days=1)).astimezone(UTC) - ONE_MICROSECOND
    except OverflowError as exc:
        raise ValueError(f"{text!r} is outside the dates the platform answers for") from exc


def region_prefix(region: str | None) -> str | None:
    """A GB/T 2260 code as a filter: a province (`440000`) covers its prefectures and counties, a
    prefecture (`440100`) its counties; a county is itself."""
    if region is None:
        return None
    if region.endswith("0000"):
        return region[:2]
    if region.endswith("00"):
        return region[:4]
    return region
