"""The `data` of every request departments and the portal send (commands: imperative names).

Domain rules (periods, authorisation, identifiers' checksums) are checked by the services and
answered with their own error codes; these models only check the shape (`schema_violation`).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from credit_common.contracts.common import (
    ChecksumOverride,
    Code,
    ContractModel,
    Decision,
    DesignationChanges,
    DesignationList,
    Identifier,
    MediaLevel,
    Name,
    ObjectionOutcome,
    Objector,
    RemovalReason,
    RestorationMeasureKind,
    RestorationOutcome,
    Subject,
    Text,
)

Evidence = Annotated[list[Annotated[str, Field(min_length=1, max_length=2_000)]], Field(max_length=100)]
"""References to evidence: document numbers or URLs."""

# Requests refuse unknown fields: a misspelt optional field (`efective_to`) would otherwise be
# dropped silently and change the legal effect of a decision; the platform is never behind them.
_FORBID = ConfigDict(extra="forbid")


class RequestModel(ContractModel):
    """Base of every request model (and of the parts nested in one)."""

    model_config = _FORBID


class SubjectIn(Subject):
    """`Subject` as a request carries it; the identifier is checked by the service, not here."""

    model_config = _FORBID


class DecisionIn(Decision):
    model_config = _FORBID


class ChecksumOverrideIn(ChecksumOverride):
    model_config = _FORBID


class ObjectorIn(Objector):
    model_config = _FORBID


class Designate(RequestModel):
    """`credit.designation.designate`: put a subject on a list. The designation id is the request id."""

    list: DesignationList
    standard: Code
    subject: SubjectIn
    decision: DecisionIn
    effective_from: date | None = None
    effective_to: date | None = None
    transfer_from: Identifier | None = None
    checksum_override: ChecksumOverrideIn | None = None
    campaign: Code | None = None


class RemovalDecision(RequestModel):
    document_no: Annotated[str, Field(min_length=1, max_length=100)]
    decided_on: date
    facts: Text


class RemoveDesignation(RequestModel):
    """`credit.designation.remove`: the designating unit revokes an entry."""

    designation_id: Identifier
    reason: Literal["revoked"]
    decision: RemovalDecision


class DesignationChangesIn(DesignationChanges):
    model_config = _FORBID

    decision: DecisionIn | None = None

    @model_validator(mode="after")
    def _something_changes(self) -> DesignationChangesIn:
        if self.facts is None and self.decision is None and self.effective_to is None:
            raise ValueError("changes must name at least one of facts, decision, effective_to")
        return self


class AmendDesignation(RequestModel):
    """`credit.designation.amend`: correct facts or the decision, or shorten the period."""

    designation_id: Identifier
    changes: DesignationChangesIn
    reason: Text


class FileObjection(RequestModel):
    """`credit.objection.file`: object to a designation. The objection id is the request id."""

    designation_id: Identifier
    objector: ObjectorIn
    grounds: Text
    evidence: Evidence


class DecideObjection(RequestModel):
    """`credit.objection.decide`: the designating unit (or its parent) decides an objection."""

    objection_id: Identifier
    outcome: ObjectionOutcome
    reasoning: Text
    decided_on: date


class Applicant(RequestModel):
    id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Name
    contact: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class RestorationMeasure(RequestModel):
    """One thing the subject did to restore its credit."""

    kind: RestorationMeasureKind
    detail: Text
    completed_on: date
    hours: Annotated[float, Field(gt=0, le=100_000)] | None = None


class ApplyRestoration(RequestModel):
    """`credit.restoration.apply`: apply for credit restoration. The application id is the request id."""

    designation_id: Identifier
    applicant: Applicant
    measures: Annotated[list[RestorationMeasure], Field(min_length=1, max_length=50)]
    evidence: Evidence


class DecideRestoration(RequestModel):
    """`credit.restoration.decide`: the designating unit decides an application."""

    application_id: Identifier
    outcome: RestorationOutcome
    reasoning: Text
    decided_on: date


class ReportConduct(RequestModel):
    """`credit.conduct.report`: untrustworthy (or `serious`) conduct of a subject in a field."""

    subject: SubjectIn
    field: Code
    serious: bool
    occurred_on: date
    document_no: Annotated[str, Field(min_length=1, max_length=100)]
    description: Text


class MediaReport(RequestModel):
    outlet: Name
    level: MediaLevel
    url: Annotated[str, Field(min_length=1, max_length=2_000, pattern=r"^https?://\S+$")]
    published_on: date


class ReportEnforcement(RequestModel):
    """`credit.enforcement.report`: a measure applied on a designation. The case id is the request id."""

    designation_id: Identifier
    measure: Code
    applied_on: date
    outcome: Text
    description: Text
    typical: bool
    media: Annotated[list[MediaReport], Field(max_length=100)]
    campaign: Code | None = None


IMPORT_BATCH_MAX = 1_000
"""The most entries one `credit.designation.import` message carries (contracts.md, Additions)."""


class ImportEntry(RequestModel):
    """One entry of a historical import, as the unit published it since 2018. `ref` is the unit's
    own reference for it (unique within the unit's imports: a repeated `ref` is the same entry).
    An ended entry carries `removed_on` and `removal_reason`; one whose period has run out is
    history without them."""

    ref: Annotated[str, Field(min_length=1, max_length=200)]
    list: DesignationList
    standard: Code
    subject: SubjectIn
    decision: DecisionIn
    effective_from: date
    effective_to: date
    removed_on: date | None = None
    removal_reason: RemovalReason | None = None
    checksum_override: ChecksumOverrideIn | None = None

    @model_validator(mode="after")
    def _removal_is_whole(self) -> ImportEntry:
        if (self.removed_on is None) != (self.removal_reason is None):
            raise ValueError("removed_on and removal_reason come together")
        return self


class ImportDesignations(RequestModel):
    """`credit.designation.import`: a unit's historical entries, up to 1,000 a message (key: the
    unit's code). Answered with one `credit.request.accepted` `{imported, refused}`."""

    entries: Annotated[list[ImportEntry], Field(min_length=1, max_length=IMPORT_BATCH_MAX)]
