"""The designation rules of design.md section 4: pure functions over the reference catalogue and a
subject's current entries. No I/O: handlers load, call these, and save what they return."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from credit_common.contracts.common import DesignationStatus, RemovalReason, level_at_least
from credit_common.contracts.events import DesignationRecord
from credit_common.contracts.reference import StandardRecord
from credit_common.contracts.requests import AmendDesignation, Designate, RemoveDesignation
from credit_common.identifiers import check_identifier
from credit_common.outcomes import ErrorItem, Rejected, id_taken
from credit_common.reference.catalog import Catalog

# design.md 3: black at most 3 years and key scrutiny at most 2 years unless a standard says less.
STATUTORY_MAX_DAYS = {"black": 1095, "key_scrutiny": 730}

Lookup = Callable[[str], DesignationRecord | None]


@dataclass
class Removal:
    record: DesignationRecord  # as it stands after removal
    reason: str
    related_id: str | None = None


@dataclass
class Designated:
    record: DesignationRecord
    removals: list[Removal] = field(default_factory=list)  # superseded reds, the transferred entry


def _err(code: str, message: str, field_: str | None = None) -> ErrorItem:
    return ErrorItem(code, field_, message)


def designate(
    req: Designate,
    *,
    designation_id: str,
    unit_code: str | None,
    catalog: Catalog,
    today: date,
    at: datetime,
    active_of_subject: Callable[[str], Iterable[DesignationRecord]],
    lookup: Lookup,
) -> Designated:
    """Accept a designation or raise `Rejected` with every rule it breaks.

    `today` is the request's own date (Asia/Shanghai), so a replay judges it the same way;
    `active_of_subject(id)` gives the subject's active entries. The new designation's id is the
    request's: one that already names a designation (another unit's request under the same id:
    requests are known by source and id) is `duplicate_id`."""
    if lookup(designation_id) is not None:
        raise id_taken(designation_id, "a designation")
    errors: list[ErrorItem] = []
    unit = catalog.unit(unit_code) if unit_code else None
    if unit is None:
        errors.append(_err("unknown_unit", f"no unit {unit_code!r} in the reference catalogue", "source"))
    elif not unit.active:
        errors.append(_err("unit_inactive", f"unit {unit.code} is not active", "source"))

    std = catalog.standard(req.standard)
    if std is None:
        errors.append(_err("unknown_standard", f"no standard {req.standard!r}", "standard"))
    else:
        if std.status != "in_force":
            errors.append(_err("standard_not_in_force", f"standard {std.code} is {std.status}", "standard"))
        if std.list != req.list:
            errors.append(
                _err("list_mismatch", f"standard {std.code} is a {std.list} standard, not {req.list}", "list")
            )
        if unit is not None:
            if std.field not in unit.authorised_fields:
                errors.append(
                    _err(
                        "field_not_authorised",
                        f"unit {unit.code} is not authorised for field {std.field}",
                        "standard",
                    )
                )
            if not level_at_least(unit.level, std.min_level):
                errors.append(
                    _err(
                        "level_too_low",
                        f"standard {std.code} needs a {std.min_level} unit or above; {unit.code} is {unit.level}",
                        "source",
                    )
                )

    ident = check_identifier(req.subject.scheme, req.subject.kind, req.subject.id, req.checksum_override is not None)
    if ident.error is not None:
        errors.append(ErrorItem(str(ident.error.code), ident.error.field, ident.error.message))

    effective_from = req.effective_from or req.decision.decided_on
    effective_to = req.effective_to
    if std is not None:
        if effective_to is None:
            effective_to = effective_from + timedelta(days=std.default_period_days - 1)
        errors.extend(_period_errors(std, effective_from, effective_to, today))
    if req.campaign is not None and std is not None and unit is not None:
        errors.extend(_campaign_errors(catalog, req.campaign, std.field, unit.region, req.decision.decided_on))
    if errors:
        raise Rejected(errors)

    assert std is not None
    assert unit is not None
    assert ident.id is not None
    assert effective_to is not None
    subject_id = ident.id
    active = list(active_of_subject(subject_id))
    if any(r.standard == std.code for r in active):
        raise Rejected(
            _err(
                "already_designated",
                f"{subject_id} already has an active entry under {std.code}",
                "subject.id",
            )
        )
    if req.list == "red":
        blocking = [r for r in active if r.list in ("black", "key_scrutiny")]
        if blocking:
            raise Rejected(
                _err(
                    "conflicts_with_black_list",
                    f"{subject_id} is on the {blocking[0].list} list ({blocking[0].designation_id})",
                    "subject.id",
                )
            )

    removals: list[Removal] = []
    if req.transfer_from is not None:
        removals.append(_transfer(req, subject_id, lookup, at, designation_id, std.field, catalog, unit_code))
    if req.list in ("black", "key_scrutiny"):
        removals.extend(
            Removal(_removed(r, "superseded", at), "superseded", designation_id) for r in active if r.list == "red"
        )

    subject = req.subject.model_dump()
    subject["id"] = subject_id
    record = DesignationRecord.model_validate(
        {
            "designation_id": designation_id,
            "list": req.list,
            "field": std.field,
            "standard": std.code,
            "standard_version": std.version,
            "subject": subject,
            "unit": unit.code,
            "unit_level": unit.level,
            "region": unit.region,
            "decision": req.decision.model_dump(),
            "effective_from": effective_from,
            "effective_to": effective_to,
            "public": std.public,
            "status": "active",
            "transfer_from": req.transfer_from,
            "campaign": req.campaign,
            "checksum_override": req.checksum_override.model_dump()
            if ident.checksum_overridden and req.checksum_override
            else None,
        }
    )
    return Designated(record, removals)


def _campaign_errors(catalog: Catalog, code: str, field_: str, region: str, decided_on: date) -> list[ErrorItem]:
    """A designation may name a campaign (special handling of prominent problems, section VI) that
    covers its field and its unit's region, decided within the campaign's period. The contract
    has no code of its own for a campaign refused: `schema_violation` on `campaign`."""
    campaign = catalog.campaign(code)
    if campaign is None:
        return [_err("schema_violation", f"no campaign {code!r} in the reference catalogue", "campaign")]
    why = campaign.refusal(field=field_, region=region, day=decided_on, what="a decision")
    return [] if why is None else [_err("schema_violation", why, "campaign")]


def _period_errors(std: StandardRecord, start: date, end: date, today: date) -> list[ErrorItem]:
    if end < start:
        return [_err("invalid_period", f"effective_to {end} is before effective_from {start}", "effective_to")]
    if end < today:
        return [_err("invalid_period", f"effective_to {end} is already past ({today})", "effective_to")]
    limit = min(std.max_period_days, STATUTORY_MAX_DAYS.get(std.list, std.max_period_days))
    days = (end - start).days + 1
    if days > limit:
        return [
            _err(
                "period_too_long",
                f"{days} days from {start} to {end}; standard {std.code} allows at most {limit}",
                "effective_to",
            )
        ]
    return []


def _transfer(
    req: Designate,
    subject_id: str,
    lookup: Lookup,
    at: datetime,
    designation_id: str,
    std_field: str | None = None,
    catalog: Catalog | None = None,
    unit_code: str | None = None,
) -> Removal:
    """A black designation naming `transfer_from` removes that key-scrutiny entry (`transferred`).
    Only the unit that designated the entry, or its parent, transfers it (as only they revoke)."""
    assert req.transfer_from is not None
    if req.list != "black":
        raise Rejected(_err("list_mismatch", "only a black designation may transfer an entry", "transfer_from"))
    source = lookup(req.transfer_from)
    if source is None or source.subject.id != subject_id:
        raise Rejected(
            _err("unknown_designation", f"no designation {req.transfer_from} of {subject_id}", "transfer_from")
        )
    if source.list != "key_scrutiny":
        raise Rejected(_err("list_mismatch", f"{source.designation_id} is on the {source.list} list", "transfer_from"))
    if source.status != "active":
        raise Rejected(_err("not_active", f"{source.designation_id} is no longer active", "transfer_from"))
    if std_field is not None and source.field != std_field:
        # design.md: a subject on a key-scrutiny list is moved to the black list of the same field.
        raise Rejected(
            _err(
                "list_mismatch",
                f"field mismatch: {source.designation_id} is a key-scrutiny entry in field {source.field}, "
                f"the black standard {req.standard} is in field {std_field}; a transfer stays in its field",
                "transfer_from",
            )
        )
    if catalog is not None and not _may_act_on(catalog, unit_code, source):
        raise Rejected(
            _err(
                "not_designating_unit",
                f"{source.designation_id} was designated by {source.unit}; {unit_code} may not transfer it",
                "transfer_from",
            )
        )
    return Removal(_removed(source, "transferred", at), "transferred", designation_id)


def _removed(record: DesignationRecord, reason: str, at: datetime) -> DesignationRecord:
    return record.model_copy(
        update={"status": DesignationStatus.REMOVED, "removal_reason": RemovalReason(reason), "removed_at": at}
    )


def _may_act_on(catalog: Catalog, unit_code: str | None, record: DesignationRecord) -> bool:
    """Only the designating unit, or its parent (escalation), may revoke or amend."""
    if unit_code is None:
        return False
    return unit_code == record.unit or catalog.parent_of(record.unit) == unit_code


def _active_target(designation_id: str, unit_code: str | None, catalog: Catalog, lookup: Lookup) -> DesignationRecord:
    record = lookup(designation_id)
    if record is None:
        raise Rejected(_err("unknown_designation", f"no designation {designation_id}", "designation_id"))
    if not _may_act_on(catalog, unit_code, record):
        raise Rejected(
            _err(
                "not_designating_unit",
                f"{designation_id} was designated by {record.unit}; {unit_code} may not change it",
                "source",
            )
        )
    if record.status != "active":
        raise Rejected(_err("not_active", f"{designation_id} was removed ({record.removal_reason})", "designation_id"))
    return record


def revoke(req: RemoveDesignation, *, unit_code: str | None, catalog: Catalog, at: datetime, lookup: Lookup) -> Removal:
    """The designating unit (or its parent) revokes an active entry."""
    record = _active_target(req.designation_id, unit_code, catalog, lookup)
    return Removal(_removed(record, "revoked", at), "revoked")


@dataclass
class Amended:
    record: DesignationRecord
    changes: dict[str, object]


def amend(
    req: AmendDesignation, *, unit_code: str | None, catalog: Catalog, lookup: Lookup, today: date | None = None
) -> Amended:
    """Correct the facts or the decision, or shorten the period (effective_to only moves earlier)."""
    record = _active_target(req.designation_id, unit_code, catalog, lookup)
    ch = req.changes
    update: dict[str, object] = {}
    decision = record.decision
    if ch.decision is not None:
        decision = decision.model_validate(ch.decision.model_dump())
    if ch.facts is not None:
        decision = decision.model_copy(update={"facts": ch.facts})
    if ch.decision is not None or ch.facts is not None:
        update["decision"] = decision
    if ch.effective_to is not None:
        if ch.effective_to >= record.effective_to:
            raise Rejected(
                _err(
                    "invalid_period",
                    f"effective_to may only move earlier than {record.effective_to}",
                    "changes.effective_to",
                )
            )
        if ch.effective_to < record.effective_from:
            raise Rejected(
                _err(
                    "invalid_period",
                    f"effective_to {ch.effective_to} is before effective_from {record.effective_from}",
                    "changes.effective_to",
                )
            )
        if today is not None and ch.effective_to < today:
            raise Rejected(
                _err(
                    "invalid_period",
                    f"effective_to {ch.effective_to} is already past ({today}); revoke the entry instead",
                    "changes.effective_to",
                )
            )
        update["effective_to"] = ch.effective_to
    return Amended(record.model_copy(update=update), ch.model_dump(mode="json", exclude_none=True))


def remove_for(record: DesignationRecord | None, reason: str, at: datetime, related_id: str | None) -> Removal | None:
    """An automatic removal (objection upheld, restored, expired, repealed): None when the entry is
    unknown here or already off its list, which is not an error for an event."""
    if record is None or record.status != "active":
        return None
    return Removal(_removed(record, reason, at), reason, related_id)


def restoration_from(record: DesignationRecord, std: StandardRecord | None) -> date | None:
    """The first day the subject may apply for credit restoration of this entry (None where its
    standard, or a red list, allows none)."""
    if std is None or not std.restorable or record.list == "red":
        return None
    return record.effective_from + timedelta(days=std.min_days_before_restoration)


def restoration_allowed(record: DesignationRecord, std: StandardRecord | None, decided_on: date) -> str | None:
    """Why an approved restoration may not remove this entry (None when it may)."""
    if std is None or not std.restorable:
        return f"standard {record.standard} does not allow early removal by credit restoration"
    earliest = record.effective_from + timedelta(days=std.min_days_before_restoration)
    if decided_on < earliest:
        days = std.min_days_before_restoration
        return f"restoration is possible from {earliest} (at least {days} days on the list)"
    return None
