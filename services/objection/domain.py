"""The objection and credit-restoration rules of design.md section 4: pure functions over an entry
(the designation as its events carry it), the reference catalogue and the working-day calendar.
No I/O: handlers load, call these, and save what they return."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from credit_common.calendar import WorkingDayCalendar
from credit_common.clock import start_of_local_day
from credit_common.contracts.reference import StandardRecord
from credit_common.contracts.requests import ApplyRestoration, FileObjection
from credit_common.identifiers import normalise
from credit_common.outcomes import ErrorItem, Rejected
from credit_common.reference.catalog import Catalog

OBJECTION_DUE_WORKING_DAYS = 10  # design.md 4: the unit decides an objection within 10 working days
RESTORATION_DUE_WORKING_DAYS = 3  # ... an application within 3 working days of receipt
RESTORATION_NOTIFY_WORKING_DAYS = 10  # ... and the applicant is told within 10 working days of applying
RESTORABLE_LISTS = frozenset({"black", "key_scrutiny"})
PENDING = ("open", "overdue")  # an item still waiting for a decision
ENTERPRISES = frozenset({"legal_person", "other_org"})


@dataclass(frozen=True, slots=True)
class Entry:
    """A designation as these rules see it (`record`: the whole record, as its events carry it)."""

    designation_id: str
    subject_id: str
    list: str
    standard: str
    unit: str
    status: str
    effective_from: date
    effective_to: date
    record: dict[str, Any]

    @classmethod
    def of(cls, record: dict[str, Any]) -> Entry:
        return cls(
            designation_id=record["designation_id"],
            subject_id=record["subject"]["id"],
            list=record["list"],
            standard=record["standard"],
            unit=record["unit"],
            status=record["status"],
            effective_from=date.fromisoformat(record["effective_from"]),
            effective_to=date.fromisoformat(record["effective_to"]),
            record=record,
        )

    @property
    def subject(self) -> dict[str, Any]:
        return dict(self.record["subject"])

    @property
    def province(self) -> str:
        """The designating unit's province (its region's first two digits + `0000`)."""
        return str(self.record["region"])[:2] + "0000"


def _err(code: str, message: str, field: str | None = None) -> ErrorItem:
    return ErrorItem(code, field, message)


def _target(designation_id: str, entry: Entry | None) -> Entry:
    if entry is None:
        raise Rejected(_err("unknown_designation", f"no designation {designation_id}", "designation_id"))
    if entry.status != "active":
        reason = entry.record.get("removal_reason") or "removed"
        raise Rejected(_err("not_active", f"{designation_id} is no longer on its list ({reason})", "designation_id"))
    return entry


def _same_subject(entry: Entry, raw_id: str) -> bool:
    return normalise(entry.record["subject"]["scheme"], raw_id) == entry.subject_id


# ---------------------------------------------------------------------- objections


@dataclass(frozen=True, slots=True)
class Filing:
    """An accepted objection: who objects (normalised) and when it is due."""

    objector_key: str
    objector: dict[str, Any]
    due_on: date


def objector_key(kind: str, id_: str) -> str:
    return f"{kind}:{id_}"


def file_objection(
    req: FileObjection,
    *,
    entry: Entry | None,
    catalog: Catalog,
    has_open: Callable[[str], bool],
    filed_day: date,
    calendar: WorkingDayCalendar,
    working_days: int = OBJECTION_DUE_WORKING_DAYS,
    sender_unit: str | None = None,
    rejected_evidence: Callable[[str], set[str] | None] = lambda _key: None,
) -> Filing:
    """Accept an objection or raise `Rejected` with every rule it breaks: the entry exists and is
    on its list; the objector is the entry's subject, or a known, active unit that is the one
    sending the request (`sender_unit`: a unit objects only in its own name); that objector has no
    open objection on the entry (`has_open(objector_key)`); after a rejected objection of that
    objector on the entry (`rejected_evidence(objector_key)`: the evidence it brought), only with
    new evidence: the same grounds again would hold the punishment off once more for nothing.
    Due `working_days` after filing."""
    target = _target(req.designation_id, entry)
    errors: list[ErrorItem] = []
    objector = req.objector.model_dump(mode="json", exclude_none=True)
    if req.objector.kind == "subject":
        if not _same_subject(target, req.objector.id):
            errors.append(
                _err(
                    "not_subject",
                    f"a subject may object only to its own entry; {target.designation_id} is about another subject",
                    "objector.id",
                )
            )
        objector["id"] = target.subject_id
    else:
        unit = catalog.unit(req.objector.id)
        if req.objector.id != sender_unit:
            sender = f"unit {sender_unit}" if sender_unit else "a sender that is not a unit"
            message = f"an objection in the name of unit {req.objector.id} must come from that unit, not {sender}"
            errors.append(_err("not_subject", message, "objector.id"))
        elif unit is None:
            message = f"no unit {req.objector.id!r} in the reference catalogue"
            errors.append(_err("unknown_unit", message, "objector.id"))
        elif not unit.active:
            errors.append(_err("unit_inactive", f"unit {unit.code} is not active", "objector.id"))
    key = objector_key(str(req.objector.kind), str(objector["id"]))
    if not errors and has_open(key):
        errors.append(
            _err(
                "duplicate_objection",
                f"{objector['id']} already has an open objection on {target.designation_id}",
                "designation_id",
            )
        )
    previous = rejected_evidence(key) if not errors else None
    if previous is not None and not set(req.evidence) - previous:
        errors.append(
            _err(
                "duplicate_objection",
                f"{objector['id']}'s objection to {target.designation_id} was rejected; "
                "a new one needs evidence the rejected one did not have",
                "evidence",
            )
        )
    if errors:
        raise Rejected(errors)
    return Filing(key, objector, calendar.add_working_days(filed_day, working_days))


# ---------------------------------------------------------------------- decisions (both kinds)


@dataclass(frozen=True, slots=True)
class Pending:
    """An objection or application as a decision sees it."""

    item_id: str
    unit: str
    status: str
    escalated_to: str | None
    chain: tuple[str, ...] = ()  # the units above `unit` it was escalated through, up to escalated_to


def check_decider(
    item: Pending | None, *, item_id: str, decider: str | None, unknown_code: str, id_field: str, what: str
) -> Pending:
    """A decision is taken by the designating unit, or by a unit above it the item was escalated
    to (each overdue step takes it one level up the chain), on an item still pending."""
    if item is None:
        raise Rejected(_err(unknown_code, f"no {what} {item_id}", id_field))
    may = decider is not None and decider in (item.unit, item.escalated_to, *item.chain)
    if not may:
        who = f"{item.unit} (or {item.escalated_to}, to which it was escalated)" if item.escalated_to else item.unit
        raise Rejected(_err("not_designating_unit", f"{what} {item_id} is decided by {who}, not {decider}", "source"))
    if item.status not in PENDING:
        raise Rejected(_err("not_active", f"{what} {item_id} is {item.status} already", id_field))
    return item


# ---------------------------------------------------------------------- credit restoration


def earliest_restoration(entry: Entry, standard: StandardRecord) -> date:
    """The first day the entry may leave its list by restoration (its minimum time on the list)."""
    return entry.effective_from + timedelta(days=standard.min_days_before_restoration)


def restoration_errors(entry: Entry, standard: StandardRecord | None, on: date, field: str) -> list[ErrorItem]:
    """Why restoration of `entry` is not possible on `on` (empty when it is): the list must be black
    or key scrutiny, the standard must allow it, and the minimum time must have passed."""
    if entry.list not in RESTORABLE_LISTS:
        return [
            _err(
                "list_mismatch",
                f"credit restoration applies to black and key-scrutiny entries; {entry.designation_id} is {entry.list}",
                "designation_id",
            )
        ]
    if standard is None or not standard.restorable:
        return [
            _err(
                "restoration_not_allowed",
                f"standard {entry.standard} does not allow early removal by credit restoration",
                "designation_id",
            )
        ]
    earliest = earliest_restoration(entry, standard)
    if on < earliest:
        return [
            _err(
                "restoration_too_early",
                f"restoration is possible from {earliest.isoformat()} "
                f"(at least {standard.min_days_before_restoration} days on the list from {entry.effective_from})",
                field,
            )
        ]
    return []


@dataclass(frozen=True, slots=True)
class Application:
    """An accepted application: when the unit must decide, and by when the applicant is told."""

    due_on: date
    notify_by: date


def apply_restoration(
    req: ApplyRestoration,
    *,
    entry: Entry | None,
    standard: StandardRecord | None,
    applied_on: date,
    calendar: WorkingDayCalendar,
    due_working_days: int = RESTORATION_DUE_WORKING_DAYS,
    notify_working_days: int = RESTORATION_NOTIFY_WORKING_DAYS,
) -> Application:
    """Accept an application or raise `Rejected`: the entry exists, is active, black or key
    scrutiny, of a standard that allows restoration, on its list at least the standard's minimum
    time (`restoration_too_early` names the earliest date); the applicant is its subject. Routed to
    the designating unit at once: due `due_working_days` after, the applicant told within
    `notify_working_days` of applying."""
    target = _target(req.designation_id, entry)
    errors = restoration_errors(target, standard, applied_on, "designation_id")
    if not _same_subject(target, req.applicant.id):
        errors.append(
            _err(
                "invalid_identifier",
                f"only the entry's subject may apply; {target.designation_id} is about another subject",
                "applicant.id",
            )
        )
    if errors:
        raise Rejected(errors)
    return Application(
        calendar.add_working_days(applied_on, due_working_days),
        calendar.add_working_days(applied_on, notify_working_days),
    )


def check_approval(entry: Entry | None, standard: StandardRecord | None, decided_on: date) -> None:
    """An approval must be one the designation service can carry out: the entry still on its list,
    its standard still allowing restoration, the minimum time passed by `decided_on`."""
    if entry is None or entry.status != "active":
        raise Rejected(_err("not_active", "the entry is no longer on its list", "application_id"))
    errors = restoration_errors(entry, standard, decided_on, "decided_on")
    if errors:
        raise Rejected(errors)


@dataclass(frozen=True, slots=True)
class MeasureRow:
    """A restoration measure as recorded and counted."""

    position: int
    kind: str
    detail: str
    completed_on: date
    hours: float | None
    legal_representative: str | None
    legal_rep_training: bool


def measure_rows(req: ApplyRestoration, entry: Entry) -> list[MeasureRow]:
    """The application's measures; restoration training for a black-listed enterprise counts as
    training of its legal representative (policy: such training is recorded)."""
    subject = entry.record["subject"]
    enterprise_on_black = entry.list == "black" and subject.get("kind") in ENTERPRISES
    rep = subject.get("legal_representative") if enterprise_on_black else None
    return [
        MeasureRow(
            position=i,
            kind=str(m.kind),
            detail=m.detail,
            completed_on=m.completed_on,
            hours=m.hours,
            legal_representative=rep if m.kind == "restoration_training" else None,
            legal_rep_training=enterprise_on_black and m.kind == "restoration_training",
        )
        for i, m in enumerate(req.measures)
    ]


# ---------------------------------------------------------------------- deadlines


def overdue_at(due: date) -> datetime:
    """When an item due on `due` becomes overdue: the start of the next day, Asia/Shanghai."""
    return start_of_local_day(due + timedelta(days=1))
