"""Types shared by requests, events and reference records: enums, the subject, the decision and
the error detail of a rejection."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Bounded strings used across the contract; every required string is non-empty.
Code = Annotated[str, Field(min_length=1, max_length=64)]
"""A code: unit, field, standard, measure, MOU (e.g. `110000-SAT`, `tax`)."""
Identifier = Annotated[str, Field(min_length=1, max_length=200)]
"""A message or aggregate id (UUIDv7 in practice): designation, objection, application, case."""
Name = Annotated[str, Field(min_length=1, max_length=200)]
"""A person's or organisation's name, a title."""
Text = Annotated[str, Field(min_length=1, max_length=20_000)]
"""Free prose: facts, grounds, reasoning, descriptions."""
Region = Annotated[str, Field(pattern=r"^\d{6}$")]
"""A 6-digit GB/T 2260 administrative division code."""


class ContractModel(BaseModel):
    """Base of every data model on the wire."""

    # Readers ignore unknown fields: the contract lets fields be added without a new topic version.
    model_config = ConfigDict(extra="ignore")


class ListKind(StrEnum):
    """Every list an entry can be on (the warning list included)."""

    RED = "red"
    BLACK = "black"
    KEY_SCRUTINY = "key_scrutiny"
    WARNING = "warning"


class DesignationList(StrEnum):
    """The lists a unit designates onto (the warning list is computed, never designated)."""

    RED = "red"
    BLACK = "black"
    KEY_SCRUTINY = "key_scrutiny"


class SubjectKind(StrEnum):
    LEGAL_PERSON = "legal_person"
    OTHER_ORG = "other_org"
    NATURAL_PERSON = "natural_person"


class IdScheme(StrEnum):
    USCC = "uscc"
    RESIDENT_ID = "resident_id"
    OTHER = "other"


class UnitLevel(StrEnum):
    NATIONAL = "national"
    PROVINCIAL = "provincial"
    PREFECTURE = "prefecture"
    COUNTY = "county"


_LEVEL_RANK = {UnitLevel.COUNTY: 0, UnitLevel.PREFECTURE: 1, UnitLevel.PROVINCIAL: 2, UnitLevel.NATIONAL: 3}


def level_rank(level: UnitLevel | str) -> int:
    """The rank of an administrative level: county 0 < prefecture 1 < provincial 2 < national 3."""
    return _LEVEL_RANK[UnitLevel(level)]


def level_at_least(level: UnitLevel | str, minimum: UnitLevel | str) -> bool:
    """Whether a unit at `level` may act where `minimum` is required (`level_too_low` otherwise)."""
    return level_rank(level) >= level_rank(minimum)


class DesignationStatus(StrEnum):
    ACTIVE = "active"
    REMOVED = "removed"


class RemovalReason(StrEnum):
    EXPIRED = "expired"
    REVOKED = "revoked"
    OBJECTION_UPHELD = "objection_upheld"
    RESTORED = "restored"
    TRANSFERRED = "transferred"
    SUPERSEDED = "superseded"
    STANDARD_REPEALED = "standard_repealed"


class ObjectorKind(StrEnum):
    SUBJECT = "subject"
    UNIT = "unit"


class ObjectionOutcome(StrEnum):
    UPHELD = "upheld"
    PARTIALLY_UPHELD = "partially_upheld"
    REJECTED = "rejected"


class RestorationOutcome(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class RestorationMeasureKind(StrEnum):
    OBLIGATION_PERFORMED = "obligation_performed"
    CREDIT_COMMITMENT = "credit_commitment"
    RESTORATION_TRAINING = "restoration_training"
    VOLUNTEER_SERVICE = "volunteer_service"
    PUBLIC_INTEREST_SERVICE = "public_interest_service"


class MeasureKind(StrEnum):
    REWARD = "reward"
    PUNISHMENT = "punishment"


class MediaLevel(StrEnum):
    NATIONAL = "national"
    PROVINCIAL = "provincial"
    LOCAL = "local"


class ErrorCode(StrEnum):
    """Every error code a rejection may carry; the strings are stable (contract: Requests)."""

    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_UNIT = "unknown_unit"
    UNIT_INACTIVE = "unit_inactive"
    UNKNOWN_STANDARD = "unknown_standard"
    STANDARD_NOT_IN_FORCE = "standard_not_in_force"
    LIST_MISMATCH = "list_mismatch"
    FIELD_NOT_AUTHORISED = "field_not_authorised"
    LEVEL_TOO_LOW = "level_too_low"
    INVALID_IDENTIFIER = "invalid_identifier"
    INVALID_CHECKSUM = "invalid_checksum"
    INVALID_PERIOD = "invalid_period"
    PERIOD_TOO_LONG = "period_too_long"
    ALREADY_DESIGNATED = "already_designated"
    CONFLICTS_WITH_BLACK_LIST = "conflicts_with_black_list"
    UNKNOWN_DESIGNATION = "unknown_designation"
    NOT_DESIGNATING_UNIT = "not_designating_unit"
    NOT_ACTIVE = "not_active"
    RESTORATION_NOT_ALLOWED = "restoration_not_allowed"
    RESTORATION_TOO_EARLY = "restoration_too_early"
    UNKNOWN_OBJECTION = "unknown_objection"
    DUPLICATE_OBJECTION = "duplicate_objection"
    UNKNOWN_APPLICATION = "unknown_application"
    UNKNOWN_MEASURE = "unknown_measure"
    MEASURE_NOT_APPLICABLE = "measure_not_applicable"
    NOT_IMPLEMENTING_UNIT = "not_implementing_unit"
    DESIGNATION_NOT_ACTIVE_ON_DATE = "designation_not_active_on_date"
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown_key"
    KEY_NOT_VALID = "key_not_valid"
    BAD_SIGNATURE = "bad_signature"
    CLOCK_SKEW = "clock_skew"
    INVALID_DATE = "invalid_date"
    DUPLICATE_ID = "duplicate_id"
    TOO_LARGE = "too_large"
    UNKNOWN_FIELD = "unknown_field"
    NOT_SUBJECT = "not_subject"
    PROCESSING_FAILED = "processing_failed"
    SUSPENDED_UNDER_OBJECTION = "suspended_under_objection"

    def detail(self, field: str | None, message: str) -> ErrorDetail:
        """An error detail with this code, e.g. `ErrorCode.UNKNOWN_UNIT.detail("source", "...")`."""
        return ErrorDetail(code=self, field=field, message=message)

    @classmethod
    def codes(cls) -> frozenset[str]:
        """Every code as a plain string."""
        return frozenset(code.value for code in cls)


class Subject(ContractModel):
    """The credit subject an entry is about. `id` is normalised (masked on the public feed)."""

    kind: SubjectKind
    scheme: IdScheme
    id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Name
    legal_representative: Name | None = None


class Decision(ContractModel):
    """The designating unit's decision document."""

    document_no: Annotated[str, Field(min_length=1, max_length=100)]
    decided_on: date
    legal_basis: Annotated[str, Field(min_length=1, max_length=2_000)] | None = None
    facts: Text


class ChecksumOverride(ContractModel):
    """An explicit acceptance of an identifier whose check character fails (real such codes exist)."""

    reason: Annotated[str, Field(min_length=1, max_length=2_000)]


class DesignationChanges(ContractModel):
    """What an amendment changes; `effective_to` may only move earlier."""

    facts: Text | None = None
    decision: Decision | None = None
    effective_to: date | None = None


class Objector(ContractModel):
    """Who objects: the subject itself or an enforcing unit."""

    kind: ObjectorKind
    id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Name
    contact: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class ErrorDetail(ContractModel):
    """One reason a request was rejected. `field` is a dotted path into the request, or None."""

    code: ErrorCode
    field: Annotated[str, Field(max_length=200)] | None = None
    message: Annotated[str, Field(min_length=1, max_length=2_000)]
