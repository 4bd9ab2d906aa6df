"""The warning rules of design.md section 4 (Warning list, Transfer): pure functions over a
subject's active key-scrutiny entries, the key fields and the reference catalogue. No I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from credit_common.calendar import WorkingDayCalendar
from credit_common.clock import start_of_local_day
from credit_common.contracts import types as T
from credit_common.contracts.requests import ReportConduct
from credit_common.identifiers import check_identifier
from credit_common.outcomes import ErrorItem, Rejected, derived_id
from credit_common.reference.catalog import Catalog

LISTED = T.WARNING_LISTED
UPDATED = T.WARNING_UPDATED
CLEARED = T.WARNING_CLEARED
DEFAULT_THRESHOLD = 3  # design.md 4: key-scrutiny entries in 3 or more distinct key fields
DEFAULT_DUE_WORKING_DAYS = 5  # design.md 4: a transfer recommendation is due in 5 working days


@dataclass(frozen=True, slots=True)
class Entry:
    """An active key-scrutiny entry, as far as these rules care."""

    designation_id: str
    field: str
    unit: str
    effective_from: date | None = None
    effective_to: date | None = None

    def in_period(self, day: date) -> bool:
        """Whether `day` lies within the entry's effective period (unknown bounds do not limit)."""
        return (self.effective_from is None or self.effective_from <= day) and (
            self.effective_to is None or day <= self.effective_to
        )


@dataclass(frozen=True, slots=True)
class Listing:
    """What puts a subject on the warning list: its key fields and the entries in them (sorted)."""

    fields: tuple[str, ...]
    designation_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Standing:
    """A subject's stored place on the warning list (`listing` None: not on it)."""

    listing: Listing | None
    since: date | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A warning event to emit: `listed`, `updated` or `cleared`, and the standing after it."""

    type: str
    after: Standing
    remaining_fields: tuple[str, ...] = ()


def key_entries(entries: Iterable[Entry], is_key: Callable[[str], bool]) -> list[Entry]:
    return [e for e in entries if is_key(e.field)]


def listing_of(entries: Iterable[Entry], is_key: Callable[[str], bool], threshold: int) -> Listing | None:
    """The subject's listing when its active entries cover `threshold` or more distinct key
    fields, else None. Every entry in a key field is one of the entries that cause it."""
    keyed = key_entries(entries, is_key)
    fields = tuple(sorted({e.field for e in keyed}))
    if len(fields) < threshold:
        return None
    return Listing(fields, tuple(sorted(e.designation_id for e in keyed)))


def evaluate(
    before: Standing | None,
    entries: Iterable[Entry],
    is_key: Callable[[str], bool],
    threshold: int,
    today: date,
) -> Change | None:
    """The warning event the subject's current entries call for, given its stored standing:
    `listed` when it reaches the threshold, `updated` when the fields or entries keeping it listed
    change, `cleared` when it falls below; None when nothing changes. `today` (the causing
    event's date) becomes `since` of a new listing."""
    entries = list(entries)
    now = listing_of(entries, is_key, threshold)
    was = before.listing if before is not None else None
    if was is None and now is None:
        return None
    if was is None:
        assert now is not None
        return Change(LISTED, Standing(now, today))
    if now is None:
        remaining = tuple(sorted({e.field for e in key_entries(entries, is_key)}))
        return Change(CLEARED, Standing(None, None), remaining)
    if now == was:
        return None
    assert before is not None
    return Change(UPDATED, Standing(now, before.since))


# ---------------------------------------------------------------------- conduct reports


def _err(code: str, message: str, field: str | None) -> ErrorItem:
    return ErrorItem(code, field, message)


def validate_report(req: ReportConduct, *, unit_code: str | None, catalog: Catalog) -> str:
    """Accept a conduct report (returning the subject's normalised identifier) or raise
    `Rejected` with every rule it breaks: the unit must exist and be active, the field must exist
    and be one the unit is authorised for, the identifier must be valid for its scheme."""
    errors: list[ErrorItem] = []
    unit = catalog.unit(unit_code) if unit_code else None
    if unit is None:
        errors.append(_err("unknown_unit", f"no unit {unit_code!r} in the reference catalogue", "source"))
    elif not unit.active:
        errors.append(_err("unit_inactive", f"unit {unit.code} is not active", "source"))
    field = catalog.field(req.field)
    if field is None:
        errors.append(_err("unknown_field", f"no field {req.field!r} in the reference catalogue", "field"))
    elif unit is not None and req.field not in unit.authorised_fields:
        errors.append(
            _err("field_not_authorised", f"unit {unit.code} is not authorised for field {req.field}", "field")
        )
    ident = check_identifier(req.subject.scheme, req.subject.kind, req.subject.id, checksum_override=False)
    if ident.error is not None:
        errors.append(ErrorItem(str(ident.error.code), ident.error.field, ident.error.message))
    if errors:
        raise Rejected(errors)
    assert ident.id is not None
    return ident.id


# ---------------------------------------------------------------------- transfer recommendations


@dataclass(frozen=True, slots=True)
class Recommendation:
    recommendation_id: str
    designation_id: str
    unit: str
    field: str
    due_on: date


def recommendation_id(report_id: str, designation_id: str) -> str:
    """Stable: the same report about the same entry recommends the same thing, whoever replays it."""
    return derived_id(report_id, "warning", f"transfer-recommendation:{designation_id}")


def due_on(report_day: date, calendar: WorkingDayCalendar, working_days: int = DEFAULT_DUE_WORKING_DAYS) -> date:
    """The day a recommendation made on `report_day` is due: that many working days after it."""
    return calendar.add_working_days(report_day, working_days)


def overdue_at(due: date) -> datetime:
    """When a recommendation due on `due` becomes overdue: the start of the next day, Asia/Shanghai."""
    return start_of_local_day(due + timedelta(days=1))


def recommend(
    *,
    report_id: str,
    field: str,
    serious: bool,
    occurred_on: date,
    entries: Iterable[Entry],
    pending: Callable[[str], bool],
    report_day: date,
    calendar: WorkingDayCalendar,
    working_days: int = DEFAULT_DUE_WORKING_DAYS,
) -> list[Recommendation]:
    """The recommendations a conduct report makes: one per active key-scrutiny entry of the
    subject in the report's field, if the report is serious and the conduct `occurred_on` within
    that entry's effective period (the notice: conduct "during the period of key scrutiny";
    conduct before the entry began was what put the subject under scrutiny), unless one for that
    entry is still pending (open or overdue: the unit has it already)."""
    if not serious:
        return []
    hits = sorted(
        (e for e in entries if e.field == field and e.in_period(occurred_on) and not pending(e.designation_id)),
        key=_by_id,
    )
    if not hits:
        return []
    due = due_on(report_day, calendar, working_days)
    return [
        Recommendation(recommendation_id(report_id, e.designation_id), e.designation_id, e.unit, field, due)
        for e in hits
    ]


def _by_id(e: Entry) -> str:
    return e.designation_id
