"""The `data` of every event the platform publishes (past-tense names)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field, RootModel, model_validator

from credit_common.contracts.common import (
    ChecksumOverride,
    Code,
    ContractModel,
    Decision,
    DesignationChanges,
    DesignationList,
    DesignationStatus,
    ErrorDetail,
    Identifier,
    ListKind,
    MeasureKind,
    ObjectionOutcome,
    Objector,
    Region,
    RemovalReason,
    RestorationMeasureKind,
    RestorationOutcome,
    Subject,
    Text,
    UnitLevel,
)
from credit_common.contracts.reference import ReferenceRecord

Codes = Annotated[list[Code], Field(max_length=1_000)]
Identifiers = Annotated[list[Identifier], Field(max_length=10_000)]

# --- credit.designation.events.v1 ---------------------------------------------------------------


class DesignationRecord(ContractModel):
    """A designation as it stands after a change; every designation event carries it whole."""

    designation_id: Identifier
    list: DesignationList
    field: Code
    standard: Code
    standard_version: Annotated[int, Field(ge=1)]
    subject: Subject
    unit: Code
    unit_level: UnitLevel
    region: Region
    decision: Decision
    effective_from: date
    effective_to: date
    public: bool
    status: DesignationStatus
    removal_reason: RemovalReason | None = None
    removed_at: AwareDatetime | None = None
    transfer_from: Identifier | None = None
    checksum_override: ChecksumOverride | None = None
    campaign: Code | None = None


class DesignationCreated(ContractModel):
    record: DesignationRecord


class DesignationAmended(ContractModel):
    record: DesignationRecord
    changes: DesignationChanges
    reason: Text


class DesignationRemoved(ContractModel):
    """`related_id`: the objection, application or designation that caused the removal, if any."""

    record: DesignationRecord
    reason: RemovalReason
    related_id: Identifier | None = None


# --- credit.objection.events.v1 -----------------------------------------------------------------


class ObjectionOpened(ContractModel):
    """`unit` is the designating unit, which must decide by `due_on`."""

    objection_id: Identifier
    designation_id: Identifier
    unit: Code
    objector: Objector
    grounds: Text
    due_on: date


class ObjectionOverdue(ContractModel):
    """`escalated_to` is the parent unit; None when the unit has no parent."""

    objection_id: Identifier
    designation_id: Identifier
    unit: Code
    escalated_to: Code | None = None
    due_on: date


class ObjectionResolved(ContractModel):
    """`decided_by`: the unit that decided (the designating unit, or its parent on escalation)."""

    objection_id: Identifier
    designation_id: Identifier
    unit: Code
    outcome: ObjectionOutcome
    reasoning: Text
    decided_on: date
    decided_by: Code | None = None


class RestorationOpened(ContractModel):
    """The unit decides by `due_on`; the applicant must be told the outcome by `notify_by`."""

    application_id: Identifier
    designation_id: Identifier
    unit: Code
    due_on: date
    notify_by: date


class RestorationOverdue(ContractModel):
    application_id: Identifier
    designation_id: Identifier
    unit: Code
    escalated_to: Code | None = None
    due_on: date


class RestorationResolved(ContractModel):
    """`decided_by`: the unit that decided (the designating unit, or its parent on escalation)."""

    application_id: Identifier
    designation_id: Identifier
    unit: Code
    outcome: RestorationOutcome
    reasoning: Text
    decided_on: date
    decided_by: Code | None = None


# --- credit.warning.events.v1 -------------------------------------------------------------------


class WarningListed(ContractModel):
    """The subject is on the warning list: active key-scrutiny entries in `fields` (3 or more)."""

    subject: Subject
    fields: Codes
    designation_ids: Identifiers
    since: date


class WarningUpdated(WarningListed):
    """The entries keeping the subject on the warning list changed."""


class WarningCleared(ContractModel):
    subject: Subject
    remaining_fields: Codes


class TransferRecommended(ContractModel):
    """A serious conduct report hit an active key-scrutiny entry: `unit` should move it to black."""

    recommendation_id: Identifier
    subject: Subject
    designation_id: Identifier
    unit: Code
    conduct_report_id: Identifier
    due_on: date


class TransferOverdue(ContractModel):
    recommendation_id: Identifier
    designation_id: Identifier
    unit: Code
    escalated_to: Code | None = None
    due_on: date


# --- credit.cases.events.v1 ---------------------------------------------------------------------


class CaseRecorded(ContractModel):
    """An enforcement case. `province` is the 6-digit code of the reporting unit's province."""

    case_id: Identifier
    designation_id: Identifier
    subject: Subject
    list: DesignationList
    field: Code
    measure: Code
    measure_kind: MeasureKind
    unit: Code
    province: Region
    applied_on: date
    typical: bool
    media_reported: bool


# --- credit.unit.inbox.v1 -----------------------------------------------------------------------


Evidence = Annotated[list[Annotated[str, Field(min_length=1, max_length=2_000)]], Field(max_length=100)]


class InboxObjection(ContractModel):
    """An objection the unit must decide, with the designation it is about and the evidence."""

    objection: ObjectionOpened
    designation: DesignationRecord
    evidence: Evidence | None = None


class Applicant(ContractModel):
    """Who applies for restoration (`id`: the entry's subject)."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    contact: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class MeasureTaken(ContractModel):
    """One thing the applicant did to restore its credit."""

    kind: RestorationMeasureKind
    detail: Text
    completed_on: date
    hours: float | None = None


class InboxRestoration(ContractModel):
    """A restoration application the unit must decide, with the designation it is about and what
    the applicant did."""

    restoration: RestorationOpened
    designation: DesignationRecord
    applicant: Applicant | None = None
    measures: Annotated[list[MeasureTaken], Field(max_length=50)] | None = None
    evidence: Evidence | None = None


class InboxTransfer(ContractModel):
    """A transfer to the black list the unit should make, with the key-scrutiny designation."""

    transfer: TransferRecommended
    designation: DesignationRecord


class EscalationKind(StrEnum):
    OBJECTION = "objection"
    RESTORATION = "restoration"
    TRANSFER = "transfer"


class InboxEscalation(ContractModel):
    """An item `unit` left undecided past `due_on`, sent to its parent `escalated_to`.

    `item_id` is the objection, application or recommendation id (per `kind`).
    """

    kind: EscalationKind
    item_id: Identifier
    unit: Code
    escalated_to: Code
    due_on: date
    designation: DesignationRecord


# --- credit.lists.changes.v1 / credit.lists.public.v1 -------------------------------------------


class EntryDecision(ContractModel):
    """The decision as a list entry shows it; the public view leaves out `facts`."""

    document_no: Annotated[str, Field(min_length=1, max_length=100)]
    decided_on: date
    legal_basis: Annotated[str, Field(min_length=1, max_length=2_000)] | None = None
    facts: Text | None = None


class ListEntry(ContractModel):
    """An entry on a list. A warning-list entry has no single field, standard, unit or decision
    (those are None) and its `effective_from` is the date the subject was listed."""

    entry_id: Identifier
    subject: Subject
    field: Code | None = None
    standard: Code | None = None
    unit: Code | None = None
    region: Region | None = None
    effective_from: date
    effective_to: date | None = None
    under_objection: bool
    decision: EntryDecision | None = None


class ListChange(ContractModel):
    """`credit.list.entry_added|entry_updated|entry_removed`; `seq` increases over all changes."""

    seq: Annotated[int, Field(ge=1)]
    list: ListKind
    entry: ListEntry
    reason: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    at: AwareDatetime
    # Publication delay (contracts.md, Additions): the decision's date and when the platform
    # published the change; a warning-list change has no decision.
    decided_on: date | None = None
    published_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _designated_entries_are_whole(self) -> ListChange:
        if self.list is not ListKind.WARNING:
            entry = self.entry
            missing = [
                name
                for name in ("field", "standard", "unit", "region", "effective_to", "decision")
                if getattr(entry, name) is None
            ]
            if missing:
                raise ValueError(f"an entry on the {self.list} list needs {', '.join(missing)}")
        return self


# --- credit.subject.notices.v1 -----------------------------------------------------------------


class NoticeRights(ContractModel):
    """What the subject may do about an entry: object now, apply for restoration from a date
    (None where the standard does not allow restoration)."""

    objection: bool
    restoration_from: date | None = None


class NoticeDesignated(ContractModel):
    """`credit.notice.designated`: the subject learns it was put on a list, by whom, under which
    standard, until when, and its rights. The subject is unmasked: the portal is its channel."""

    subject: Subject
    designation_id: Identifier
    list: DesignationList
    standard: Code
    unit: Code
    effective_from: date
    effective_to: date
    rights: NoticeRights


class NoticeRemoved(ContractModel):
    """`credit.notice.removed`: an entry of the subject left its list."""

    subject: Subject
    designation_id: Identifier
    reason: RemovalReason


class NoticeObjectionResolved(ContractModel):
    """`credit.notice.objection_resolved`: the outcome of the subject's objection (`id`)."""

    subject: Subject
    id: Identifier
    outcome: ObjectionOutcome
    reasoning: Text


class NoticeRestorationResolved(ContractModel):
    """`credit.notice.restoration_resolved`: the outcome of the subject's application (`id`)."""

    subject: Subject
    id: Identifier
    outcome: RestorationOutcome
    reasoning: Text


# --- credit.feedback.v1 / credit.deadletter.v1 --------------------------------------------------


class ImportRefusal(ContractModel):
    """An entry of a historical import that was refused, by its `ref`, with the reasons."""

    ref: Annotated[str, Field(min_length=1, max_length=200)]
    errors: Annotated[list[ErrorDetail], Field(min_length=1, max_length=100)]


class RequestAccepted(ContractModel):
    """The answer to an accepted request; `result_id` is the id of what it created or changed.

    An import (`credit.designation.import`) also says how many entries it `imported` and which
    it `refused`; its `result_id` is the request's id."""

    request_id: Identifier
    request_type: Annotated[str, Field(min_length=1, max_length=200)]
    result_id: Identifier
    imported: Annotated[int, Field(ge=0)] | None = None
    refused: Annotated[list[ImportRefusal], Field(max_length=1_000)] | None = None


class RequestRejected(ContractModel):
    request_id: Identifier
    request_type: Annotated[str, Field(min_length=1, max_length=200)]
    errors: Annotated[list[ErrorDetail], Field(min_length=1, max_length=100)]


class DeadLetterRecorded(ContractModel):
    """A message that is not a parseable event, kept byte for byte (base64; None for a null key
    or value) up to 64 KiB of its value, with the length and SHA-256 of the whole value."""

    service: Annotated[str, Field(min_length=1, max_length=64)]
    topic: Annotated[str, Field(min_length=1, max_length=249)]
    partition: Annotated[int, Field(ge=0)]
    offset: Annotated[int, Field(ge=0)]
    key_b64: str | None = None
    value_b64: str | None = None
    value_bytes: Annotated[int, Field(ge=0)] | None = None
    value_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    error: Annotated[str, Field(min_length=1, max_length=20_000)]


# --- credit.reference.v1 ------------------------------------------------------------------------


class ReferenceUpserted(RootModel[ReferenceRecord]):
    """`credit.reference.upserted`: the data is the reference record itself (kind-discriminated)."""
