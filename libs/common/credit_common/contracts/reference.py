"""Reference records (contracts.md, "Reference records"): the values of the compacted topic
`credit.reference.v1`, keyed `<kind>:<code>`, each wrapped in a `credit.reference.upserted` CloudEvent;
a tombstone (null value) deletes the record."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, TypeAdapter, model_validator

from credit_common.contracts.common import Code, ContractModel, Name, Region

REFERENCE_EVENT_TYPE = "credit.reference.upserted"
REFERENCE_SOURCE = "platform/reference"
REFERENCE_KINDS = ("field", "unit", "standard", "mou", "calendar", "key", "campaign")

Level = Literal["national", "provincial", "prefecture", "county"]
UnitKind = Literal["department", "association"]
DesignationListName = Literal["red", "black", "key_scrutiny"]
StandardStatus = Literal["draft", "in_force", "repealed"]
MeasureKindName = Literal["reward", "punishment"]

Codes = Annotated[list[Code], Field(max_length=1_000)]
LongText = Annotated[str, Field(min_length=1, max_length=4_000)]
Days = Annotated[int, Field(ge=1, le=36_500)]


class ReferenceModel(ContractModel):
    """Base of the reference records. Frozen: a catalogue hands out shared instances.

    Numbers are taken for strings so that an unquoted region (`region: 440106`) or calendar year
    (`code: 2027`) in a YAML file still reads as the string the contract says.
    """

    model_config = ConfigDict(frozen=True, coerce_numbers_to_str=True)


class FieldRecord(ReferenceModel):
    """A field of regulation (taxation, customs, ...); key fields count toward the warning list."""

    kind: Literal["field"] = "field"
    code: Code
    name: Name
    key_field: bool


class Liaison(ReferenceModel):
    """The person a unit named to download the lists and relay objections (policy, section V)."""

    name: Name
    title: Name
    phone: Annotated[str, Field(min_length=3, max_length=64)]


class UnitRecord(ReferenceModel):
    """A designating or enforcing unit: a department at some level, or an authorised national
    industry association (whose `parent` is the state department that authorised it)."""

    kind: Literal["unit"] = "unit"
    code: Code
    name: Name
    level: Level
    region: Region
    unit_kind: UnitKind
    authorised_fields: Codes
    parent: Code | None = None
    liaison: Liaison | None = None
    active: bool = True


class StandardRecord(ReferenceModel):
    """A unified designation standard of one field and one list."""

    kind: Literal["standard"] = "standard"
    code: Code
    field: Code
    list: DesignationListName
    title: Name
    legal_basis: LongText
    min_level: Level
    default_period_days: Days
    max_period_days: Days
    restorable: bool
    min_days_before_restoration: Annotated[int, Field(ge=0, le=36_500)] = 0
    public: bool
    status: StandardStatus
    version: Annotated[int, Field(ge=1)]


class Measure(ReferenceModel):
    """A reward or punishment measure of an MOU; applied by units of its implementing fields."""

    code: Code
    measure_kind: MeasureKindName
    list: DesignationListName
    implementing_fields: Codes
    description: LongText
    legal_basis: LongText


class MouRecord(ReferenceModel):
    """A memorandum of understanding on joint incentives or joint punishment."""

    kind: Literal["mou"] = "mou"
    code: Code
    title: Annotated[str, Field(min_length=1, max_length=1_000)]
    signed_on: date
    fields: Codes
    measures: Annotated[list[Measure], Field(max_length=1_000)]


class CalendarRecord(ReferenceModel):
    """One year of the working-day calendar: days off and weekend days made working days. It
    replaces the built-in official calendar for its year (and makes an unknown year known)."""

    kind: Literal["calendar"] = "calendar"
    code: Annotated[str, Field(pattern=r"^\d{4}$")]
    holidays: Annotated[list[date], Field(max_length=366)] = Field(default=[])
    working_weekend_days: Annotated[list[date], Field(max_length=366)] = Field(default=[])

    @property
    def year(self) -> int:
        return int(self.code)


Principal = Annotated[
    str,
    Field(
        pattern=r"^(unit:[A-Za-z0-9_.-]{1,64}|portal|reference|admin|(service|subscriber|operator):[a-z0-9_.-]{1,64})$"
    ),
]
"""A principal of the platform (contracts.md, Security): `unit:<code>`, `portal`, `service:<name>`, ..."""

PublicKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")]
"""An Ed25519 public key: base64url (no padding) of its 32 raw bytes."""


class KeyRecord(ReferenceModel):
    """A public key a principal signs its requests with; `code` is the key id (`signaturekid`).

    It verifies signatures received from `not_before` until `not_after` (open when None), and
    none from `revoked_at` on. A principal may hold several keys at once (rotation)."""

    kind: Literal["key"] = "key"
    code: Code
    principal: Principal
    alg: Literal["Ed25519"] = "Ed25519"
    public_key: PublicKey
    not_before: AwareDatetime
    not_after: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _period_is_ordered(self) -> KeyRecord:
        if self.not_after is not None and self.not_after <= self.not_before:
            raise ValueError("not_after must be after not_before")
        return self


class CampaignTargets(ReferenceModel):
    """What a campaign aims at: designations made and enforcement cases reported under it."""

    designations: Annotated[int, Field(ge=0)] | None = None
    cases: Annotated[int, Field(ge=0)] | None = None


class CampaignRecord(ReferenceModel):
    """A campaign of special handling of prominent problems in key areas (policy, section VI)."""

    kind: Literal["campaign"] = "campaign"
    code: Code
    title: Annotated[str, Field(min_length=1, max_length=1_000)]
    fields: Codes
    regions: Annotated[list[Region], Field(max_length=1_000)]
    starts_on: date
    ends_on: date
    targets: CampaignTargets

    @model_validator(mode="after")
    def _period_is_ordered(self) -> CampaignRecord:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on must not be before starts_on")
        return self

    def covers_region(self, region: str) -> bool:
        """Whether a unit of `region` works in this campaign: no regions is nationwide; a province
        (`440000`) or prefecture (`440100`) covers the divisions under it."""
        if not self.regions:
            return True
        for r in self.regions:
            if (
                r == region
                or (r.endswith("0000") and r[:2] == region[:2])
                or (r.endswith("00") and r[:4] == region[:4])
            ):
                return True
        return False

    def refusal(self, *, field: str, region: str, day: date, what: str) -> str | None:
        """Why a designation or case (`what`) of `field`, by a unit of `region`, on `day` may not
        be counted in this campaign (None when it may)."""
        if field not in self.fields:
            return f"campaign {self.code} covers the fields {', '.join(self.fields)}, not {field}"
        if not self.covers_region(region):
            return f"campaign {self.code} does not cover region {region}"
        if not self.starts_on <= day <= self.ends_on:
            return f"{what} of {day} is outside campaign {self.code} ({self.starts_on} to {self.ends_on})"
        return None


ReferenceRecord = Annotated[
    FieldRecord | UnitRecord | StandardRecord | MouRecord | CalendarRecord | KeyRecord | CampaignRecord,
    Field(discriminator="kind"),
]

MODEL_BY_KIND: dict[str, type[ReferenceModel]] = {
    "field": FieldRecord,
    "unit": UnitRecord,
    "standard": StandardRecord,
    "mou": MouRecord,
    "calendar": CalendarRecord,
    "key": KeyRecord,
    "campaign": CampaignRecord,
}

_ADAPTER: TypeAdapter[ReferenceRecord] = TypeAdapter(ReferenceRecord)


def parse_reference_record(data: object) -> ReferenceRecord:
    """Validate the `data` of a `credit.reference.upserted` event (raises pydantic's ValidationError)."""
    return _ADAPTER.validate_python(data)


def reference_key(record: ReferenceRecord) -> str:
    """The record's Kafka key on `credit.reference.v1`: `<kind>:<code>`, e.g. `unit:440106-SAMR`."""
    return f"{record.kind}:{record.code}"


def split_reference_key(key: str) -> tuple[str, str]:
    """`"unit:440106-SAMR"` -> `("unit", "440106-SAMR")`; ValueError when there is no `:`."""
    kind, sep, code = key.partition(":")
    if not sep or not kind or not code:
        raise ValueError(f"not a reference key (<kind>:<code>): {key!r}")
    return kind, code
