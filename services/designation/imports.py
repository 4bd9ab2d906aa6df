"""Historical import (contracts.md, Additions): the entries a unit has published since 2018, each
judged by the designation rules as of its own dates. Pure functions, like `domain`.

An entry still in its period today is imported active, with every rule of a designation
(authorisation, period, the identifier, `already_designated`, the red-and-black exclusion; an
active black or key-scrutiny entry supersedes the subject's active reds, as a designation does).
An entry that has ended, by its period or by a removal the unit records (`removed_on`,
`removal_reason`), is history: it is judged for what it was (unit, standard, identifier, period)
and not against today's lists, and a standard repealed since does not refuse it. It is kept
removed, `removed_at` the start of the day it ended (Asia/Shanghai), so the history answers `as_of`
one of its dates as it would have then.

Its designation id derives from the unit and its `ref`, so the same entry imported twice is one
entry: the second is refused `duplicate_id`, whichever message carries it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any, cast

from credit_common.clock import start_of_local_day
from credit_common.contracts.common import DesignationStatus, RemovalReason
from credit_common.contracts.events import DesignationRecord
from credit_common.contracts.reference import StandardRecord
from credit_common.contracts.requests import Designate, ImportEntry
from credit_common.outcomes import ErrorItem, Rejected, derived_id
from credit_common.reference.catalog import Catalog

from . import domain

#: What a historical entry is not refused for: the standard it was designated under may have
#: been repealed since (its entries were removed then; this one had already ended).
HISTORY_EXEMPT = frozenset({"standard_not_in_force"})


def import_id(unit_code: str, ref: str) -> str:
    """The designation id of a unit's imported entry `ref` (a platform id: no sender claims one)."""
    return derived_id(f"{unit_code}|{ref}", "designation", "import")


def unit_problem(catalog: Catalog, unit_code: str | None) -> ErrorItem | None:
    """Why `unit_code` may not import at all (then the whole message is refused, not each entry)."""
    unit = catalog.unit(unit_code) if unit_code else None
    if unit is None:
        return ErrorItem("unknown_unit", "source", f"no unit {unit_code!r} in the reference catalogue")
    if not unit.active:
        return ErrorItem("unit_inactive", "source", f"unit {unit.code} is not active")
    return None


def ended_on(entry: ImportEntry, today: date) -> tuple[date, RemovalReason] | None:
    """The day an entry left its list and why (None: it is on its list today)."""
    if entry.removed_on is not None and entry.removal_reason is not None:
        return entry.removed_on, entry.removal_reason
    if entry.effective_to < today:
        return entry.effective_to + timedelta(days=1), RemovalReason.EXPIRED
    return None


def _date_errors(entry: ImportEntry, today: date) -> list[ErrorItem]:
    errors: list[ErrorItem] = []
    if entry.decision.decided_on > today:
        errors.append(
            ErrorItem("invalid_date", "decision.decided_on", f"{entry.decision.decided_on} is after today ({today})")
        )
    if entry.removed_on is not None:
        if entry.removed_on > today:
            errors.append(ErrorItem("invalid_date", "removed_on", f"{entry.removed_on} is after today ({today})"))
        last = entry.effective_to + timedelta(days=1)
        if not entry.effective_from <= entry.removed_on <= last:
            errors.append(
                ErrorItem(
                    "invalid_period",
                    "removed_on",
                    f"removed_on {entry.removed_on} is outside its period {entry.effective_from}..{last}",
                )
            )
    return errors


def import_entry(
    entry: ImportEntry,
    *,
    designation_id: str,
    unit_code: str,
    catalog: Catalog,
    today: date,
    at: datetime,
    active_of_subject: Callable[[str], Iterable[DesignationRecord]],
    lookup: domain.Lookup,
) -> domain.Designated:
    """The entry as the designation it was, or `Rejected` with every rule it breaks. `today` is
    the platform's day of receipt; `at` the receipt time (when the platform learned it)."""
    if lookup(designation_id) is not None:
        raise Rejected(ErrorItem("duplicate_id", "ref", f"{entry.ref} was imported already by {unit_code}"))
    errors = _date_errors(entry, today)
    if errors:
        raise Rejected(errors)
    end = ended_on(entry, today)
    request = Designate.model_validate(
        entry.model_dump(exclude={"ref", "removed_on", "removal_reason"}, exclude_none=True)
    )
    try:
        result = domain.designate(
            request,
            designation_id=designation_id,
            unit_code=unit_code,
            catalog=catalog,
            # The period is judged as of its own first day: an ended entry is history, not late.
            today=entry.effective_from,
            at=at,
            # History is not held against today's lists, nor today's lists against history.
            active_of_subject=active_of_subject if end is None else (lambda _subject: ()),
            lookup=lookup,
        )
    except Rejected as exc:
        kept = exc.errors if end is None else [e for e in exc.errors if e.code not in HISTORY_EXEMPT]
        if kept:
            raise Rejected(kept) from None
        result = _designated_anyway(request, designation_id, unit_code, catalog, at)
    if end is None:
        return result
    day, reason = end
    record = result.record.model_copy(
        update={
            "status": DesignationStatus.REMOVED,
            "removal_reason": reason,
            "removed_at": start_of_local_day(day),
        }
    )
    return domain.Designated(record)


def _designated_anyway(
    request: Designate, designation_id: str, unit_code: str, catalog: Catalog, at: datetime
) -> domain.Designated:
    """A historical entry whose only fault is a standard no longer in force: judged against the
    standard as if it were, which is how it stood while the entry ran."""
    std = catalog.standard(request.standard)
    assert std is not None  # unknown_standard is not exempt
    in_force = _AsInForce(catalog, std.model_copy(update={"status": "in_force"}))
    return domain.designate(
        request,
        designation_id=designation_id,
        unit_code=unit_code,
        catalog=cast(Catalog, in_force),
        today=request.effective_from or request.decision.decided_on,
        at=at,
        active_of_subject=lambda _subject: (),
        lookup=lambda _id: None,
    )


class _AsInForce:
    """The catalogue with one standard as it stood while a historical entry ran: in force."""

    def __init__(self, catalog: Catalog, standard: StandardRecord) -> None:
        self._catalog = catalog
        self._standard = standard

    def standard(self, code: str) -> StandardRecord | None:
        return self._standard if code == self._standard.code else self._catalog.standard(code)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._catalog, name)
