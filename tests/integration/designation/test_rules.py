"""The designation rules (design.md section 4) against the real service, broker and database:
every error code a designate request can earn, through the requests topic and through
POST /v1/requests, for legal and natural persons, and what an accepted designation publishes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from credit_common.contracts.envelope import new_id
from credit_common.identifiers import normalise
from credit_common.reference.catalog import Catalog

from tests.support.subjects import new_resident_id, new_uscc, wrong_check

from .conftest import (
    INGRESSES,
    Departments,
    company,
    designate,
    kinds,
    person,
    post,
    remove,
    request,
    subject_of,
    today,
)

pytestmark = pytest.mark.integration

via_both = pytest.mark.parametrize("via", INGRESSES)

# One standard of each list that the State Taxation Administration (100000-SAT, national) may use.
TAX_STANDARD = {"red": "taxation-red", "black": "taxation-black", "key_scrutiny": "taxation-key_scrutiny"}


def expected_record(event: dict[str, Any], catalogue: Catalog) -> dict[str, Any]:
    """The whole record the contract says a just-created designation carries."""
    data = event["data"]
    std = catalogue.standard(data["standard"])
    unit = catalogue.unit(event["source"].removeprefix("unit/"))
    assert std is not None
    assert unit is not None
    start = date.fromisoformat(data.get("effective_from") or data["decision"]["decided_on"])
    end = data.get("effective_to") or (start + timedelta(days=std.default_period_days - 1)).isoformat()
    subject = {**data["subject"], "id": normalise(data["subject"]["scheme"], data["subject"]["id"])}
    record = {
        "designation_id": event["id"],
        "list": data["list"],
        "field": std.field,
        "standard": std.code,
        "standard_version": std.version,
        "subject": subject,
        "unit": unit.code,
        "unit_level": unit.level,
        "region": unit.region,
        "decision": data["decision"],
        "effective_from": start.isoformat(),
        "effective_to": end,
        "public": std.public,
        "status": "active",
    }
    for optional in ("transfer_from", "checksum_override"):
        if optional in data:
            record[optional] = data[optional]
    return record


# ---------------------------------------------------------------------- accepted designations


@pytest.mark.parametrize("list_", ["red", "black", "key_scrutiny"])
@kinds()
@via_both
async def test_designation_on_each_list(
    departments: Departments, catalogue: Catalog, list_: str, kind: str, via: str
) -> None:
    """Accepted: `credit.request.accepted` to the unit with result_id = the designation id (the
    request id), and `credit.designation.created` keyed by the subject carrying the whole record
    (the standard's default period when none is given); GET /v1/designations/{id} shows it."""
    event = designate(list_, TAX_STANDARD[list_], subject_of(kind))
    record = await departments.designated(event, via)
    assert record == expected_record(event, catalogue)
    std = catalogue.standard(TAX_STANDARD[list_])
    assert std is not None
    start = date.fromisoformat(record["effective_from"])
    assert date.fromisoformat(record["effective_to"]) == start + timedelta(days=std.default_period_days - 1)
    (created,) = departments.events_of(event["id"])
    assert created["type"] == "credit.designation.created"
    assert created["_key"] == created["subject"] == event["data"]["subject"]["id"]
    assert created["causationid"] == event["id"]
    assert await departments.record(event["id"]) == record


@kinds()
async def test_identifier_is_normalised(departments: Departments, catalogue: Catalog, kind: str) -> None:
    """Lower case, spaces and dashes are taken off the identifier: the record, the event key and
    the rules (already_designated) all see the normalised id."""
    subject = subject_of(kind)
    clean = subject["id"]
    messy = f" {clean[:6]} {clean[6:10]}-{clean[10:]} ".lower()
    event = designate("black", "taxation-black", {**subject, "id": messy})
    event["subject"] = clean
    record = await departments.designated(event)
    assert record["subject"]["id"] == clean
    assert record == expected_record(event, catalogue)
    again = await departments.rejected(designate("black", "taxation-black", subject))
    assert again.fields == {("already_designated", "subject.id")}


async def test_other_scheme_needs_no_checksum(departments: Departments) -> None:
    """A passport number (`other`) is accepted for a natural person without any checksum."""
    passport = {"kind": "natural_person", "scheme": "other", "id": f"e{new_uscc()[8:16]}", "name": "John Smith"}
    record = await departments.designated(designate("key_scrutiny", "taxation-key_scrutiny", passport))
    assert record["subject"]["id"] == passport["id"].upper()
    assert record["subject"]["scheme"] == "other"


@kinds()
@via_both
async def test_checksum_override_is_accepted_and_kept(departments: Departments, kind: str, via: str) -> None:
    """invalid_checksum without an override; with `checksum_override` and a reason the same code
    is accepted and the override stays on the record."""
    subject = subject_of(kind)
    subject["id"] = wrong_check(subject["id"])
    refused = await departments.rejected(designate("black", "taxation-black", subject), via)
    assert refused.fields == {("invalid_checksum", "subject.id")}

    override = {"reason": "Code issued before the check character rule; confirmed by the registry."}
    record = await departments.designated(
        designate("black", "taxation-black", subject, checksum_override=override), via
    )
    assert record["subject"]["id"] == subject["id"]
    assert record["checksum_override"] == override
    assert (await departments.record(record["designation_id"]))["checksum_override"] == override


async def test_checksum_override_does_not_cover_other_identifier_errors(departments: Departments) -> None:
    """An override accepts a failing check character only: a bad birth date stays invalid."""
    subject = person()
    subject["id"] = subject["id"][:10] + "1399" + subject["id"][14:]  # month 13, day 99
    answer = await departments.rejected(
        designate("black", "taxation-black", subject, checksum_override={"reason": "We are sure."})
    )
    assert answer.fields == {("invalid_identifier", "subject.id")}


# ---------------------------------------------------------------------- refusals, one rule at a time


@dataclass(frozen=True)
class Refusal:
    build: Callable[[], dict[str, Any]]
    errors: set[tuple[str, str | None]]


def _with_subject(base: str, /, **changes: Any) -> dict[str, Any]:
    """A legal or natural person (`base`) with some of its fields changed."""
    subject = subject_of(base)
    subject.update(changes)
    return subject


def _period(standard: str, list_: str, start: date, end: date, *, unit: str = "100000-SAT") -> dict[str, Any]:
    return designate(
        list_,
        standard,
        company(),
        unit=unit,
        decided_on=today(),
        effective_from=start.isoformat(),
        effective_to=end.isoformat(),
    )


REFUSALS: dict[str, Refusal] = {
    "unknown_unit": Refusal(
        lambda: designate("black", "taxation-black", company(), unit="999999-XYZ"), {("unknown_unit", "source")}
    ),
    "unit_inactive": Refusal(
        lambda: designate("black", "food_drug-black", person(), unit="100000-CFDA"), {("unit_inactive", "source")}
    ),
    "unknown_standard": Refusal(
        lambda: designate("black", "taxation-purple", company()), {("unknown_standard", "standard")}
    ),
    "standard_not_in_force-draft": Refusal(
        lambda: designate("red", "e_commerce-red", company(), unit="100000-SAMR"),
        {("standard_not_in_force", "standard")},
    ),
    "standard_not_in_force-repealed": Refusal(
        lambda: designate("black", "food_drug-black-cfda", person(), unit="100000-SAMR"),
        {("standard_not_in_force", "standard")},
    ),
    "list_mismatch": Refusal(lambda: designate("black", "taxation-red", company()), {("list_mismatch", "list")}),
    "field_not_authorised": Refusal(
        lambda: designate("black", "customs-black", person()), {("field_not_authorised", "standard")}
    ),
    "level_too_low": Refusal(
        lambda: designate("red", "taxation-red", company(), unit="110108-SAT"), {("level_too_low", "source")}
    ),
    "invalid_identifier-person_with_uscc": Refusal(
        lambda: designate("black", "taxation-black", _with_subject("natural_person", scheme="uscc", id=new_uscc())),
        {("invalid_identifier", "subject.id")},
    ),
    "invalid_identifier-company_with_resident_id": Refusal(
        lambda: designate(
            "black", "taxation-black", _with_subject("legal_person", scheme="resident_id", id=new_resident_id())
        ),
        {("invalid_identifier", "subject.id")},
    ),
    "invalid_identifier-uscc_too_short": Refusal(
        lambda: designate("black", "taxation-black", _with_subject("legal_person", id=new_uscc()[:17])),
        {("invalid_identifier", "subject.id")},
    ),
    "invalid_identifier-no_such_birth_date": Refusal(
        lambda: designate("black", "taxation-black", _with_subject("natural_person", id="11010119990230123X")),
        {("invalid_identifier", "subject.id")},
    ),
    "invalid_checksum-legal_person": Refusal(
        lambda: designate("black", "taxation-black", _with_subject("legal_person", id=wrong_check(new_uscc()))),
        {("invalid_checksum", "subject.id")},
    ),
    "invalid_checksum-natural_person": Refusal(
        lambda: designate(
            "key_scrutiny", "taxation-key_scrutiny", _with_subject("natural_person", id=wrong_check(new_resident_id()))
        ),
        {("invalid_checksum", "subject.id")},
    ),
    "invalid_period-ends_before_start": Refusal(
        lambda: _period("taxation-black", "black", today() + timedelta(days=10), today() + timedelta(days=5)),
        {("invalid_period", "effective_to")},
    ),
    "invalid_period-already_over": Refusal(
        lambda: _period("taxation-black", "black", today() - timedelta(days=800), today() - timedelta(days=1)),
        {("invalid_period", "effective_to")},
    ),
    "period_too_long-standard_max": Refusal(
        lambda: _period("taxation-red", "red", today(), today() + timedelta(days=365)),  # 366 days; max 365
        {("period_too_long", "effective_to")},
    ),
    "period_too_long-key_scrutiny": Refusal(
        lambda: _period("taxation-key_scrutiny", "key_scrutiny", today(), today() + timedelta(days=730)),  # 731
        {("period_too_long", "effective_to")},
    ),
    "period_too_long-shorter_standard": Refusal(
        lambda: _period(
            "work_safety-key_scrutiny", "key_scrutiny", today(), today() + timedelta(days=365), unit="100000-MEM"
        ),
        {("period_too_long", "effective_to")},
    ),
    "every_broken_rule_at_once": Refusal(
        lambda: designate(
            "red",
            "customs-black",
            _with_subject("legal_person", id=wrong_check(new_uscc())),
            unit="110108-SAT",
            decided_on=today(),
            effective_to=(today() - timedelta(days=1)).isoformat(),
        ),
        {
            ("list_mismatch", "list"),
            ("field_not_authorised", "standard"),
            ("level_too_low", "source"),
            ("invalid_checksum", "subject.id"),
            ("invalid_period", "effective_to"),
        },
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
@via_both
async def test_designation_refused(departments: Departments, case: str, via: str) -> None:
    """Each rule of `designate`, broken alone (and all at once), earns its error code and field,
    answered to the sending unit; nothing is designated."""
    refusal = REFUSALS[case]
    event = refusal.build()
    answer = await departments.rejected(event, via)
    assert answer.fields == refusal.errors, answer.errors
    assert answer.result_id is None
    response = await departments.http.get(f"/v1/designations/{event['id']}")
    assert response.status_code == 404
    assert not departments.events_of(event["id"])


ACCEPTED_AT_THE_LIMIT = {
    # (list, standard, unit, first day offset from today, number of days)
    "red_365_of_365": ("red", "taxation-red", "100000-SAT", 0, 365),
    "key_scrutiny_730_of_730": ("key_scrutiny", "taxation-key_scrutiny", "100000-SAT", 0, 730),
    "black_1095_of_1095": ("black", "taxation-black", "100000-SAT", 0, 1095),
    "shorter_standard_365": ("key_scrutiny", "work_safety-key_scrutiny", "100000-MEM", 0, 365),
    "ends_today": ("black", "taxation-black", "100000-SAT", -30, 31),
    "county_unit_for_a_county_standard": ("black", "taxation-black", "110108-SAT", 0, 10),
    "provincial_unit_for_a_provincial_standard": ("red", "taxation-red", "440000-SAT", 0, 10),
}


@pytest.mark.parametrize("case", list(ACCEPTED_AT_THE_LIMIT), ids=list(ACCEPTED_AT_THE_LIMIT))
async def test_designation_accepted_at_the_limit(departments: Departments, catalogue: Catalog, case: str) -> None:
    """The limits are inclusive: a period of exactly the maximum, a period ending today, a unit of
    exactly the standard's minimum level."""
    list_, standard, unit, offset, days = ACCEPTED_AT_THE_LIMIT[case]
    start = today() + timedelta(days=offset)
    event = designate(
        list_,
        standard,
        subject_of("natural_person" if days % 2 else "legal_person"),
        unit=unit,
        decided_on=start,
        effective_from=start.isoformat(),
        effective_to=(start + timedelta(days=days - 1)).isoformat(),
    )
    assert await departments.designated(event) == expected_record(event, catalogue)


@kinds()
@via_both
async def test_already_designated_under_the_same_standard(departments: Departments, kind: str, via: str) -> None:
    """A second active entry under the same standard is refused; another standard is fine, and
    once the first entry is revoked the standard can be used again."""
    subject = subject_of(kind)
    first = await departments.designated(designate("black", "taxation-black", subject), via)
    answer = await departments.rejected(designate("black", "taxation-black", subject), via)
    assert answer.fields == {("already_designated", "subject.id")}
    await departments.designated(designate("key_scrutiny", "taxation-key_scrutiny", subject), via)
    await departments.accepted(remove(first["designation_id"], subject=subject["id"]), via)
    await departments.designated(designate("black", "taxation-black", subject), via)


# ---------------------------------------------------------------------- schema violations


def _remove_with_reason(reason: str) -> dict[str, Any]:
    event = remove(new_id())
    event["data"]["reason"] = reason  # only `revoked` is a department's to send
    return event


SCHEMA_CASES: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "missing_decision": (
        lambda: request(
            "credit.designation.designate",
            {"list": "black", "standard": "taxation-black", "subject": company()},
        ),
        "decision",
    ),
    "misspelt_field": (
        lambda: designate("black", "taxation-black", person(), efective_to=today().isoformat()),
        "efective_to",
    ),
    "warning_is_not_designated": (lambda: designate("warning", "taxation-black", company()), "list"),
    "bad_subject_kind": (
        lambda: designate("black", "taxation-black", _with_subject("legal_person", kind="company")),
        "subject.kind",
    ),
    "remove_for_another_reason": (lambda: _remove_with_reason("expired"), "reason"),
    "amend_changes_nothing": (
        lambda: request(
            "credit.designation.amend", {"designation_id": "x", "changes": {}, "reason": "Nothing at all."}
        ),
        "changes",
    ),
}


@pytest.mark.parametrize("case", list(SCHEMA_CASES), ids=list(SCHEMA_CASES))
async def test_schema_violation_through_kafka(departments: Departments, case: str) -> None:
    """A request whose data does not fit its type's schema is answered `schema_violation`, with
    the field, to the sending unit."""
    build, field = SCHEMA_CASES[case]
    answer = await departments.rejected(build())
    assert answer.codes == {"schema_violation"}
    assert field in {e["field"] for e in answer.errors}, answer.errors


async def test_unknown_request_type_through_kafka(departments: Departments) -> None:
    """A type that is not a request of the requests topic is a schema violation (field `type`)."""
    answer = await departments.rejected(request("credit.designation.erase", {"designation_id": "x"}))
    assert answer.fields == {("schema_violation", "type")}


@pytest.mark.parametrize("case", list(SCHEMA_CASES), ids=list(SCHEMA_CASES))
async def test_schema_violation_through_http(departments: Departments, case: str) -> None:
    """Through HTTP the same request is refused at once: 400 problem details with the
    `schema_violation` errors, and nothing is published or recorded."""
    build, field = SCHEMA_CASES[case]
    event = build()
    response = await post(departments.http, event)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400
    assert problem["title"]
    assert {e["code"] for e in problem["errors"]} == {"schema_violation"}
    assert f"data.{field}" in {e["field"] for e in problem["errors"]}, problem
    assert (await departments.http.get(f"/v1/requests/{event['id']}")).status_code == 404


# ---------------------------------------------------------------------- times need an offset


@via_both
async def test_request_time_without_offset_is_a_schema_violation(departments: Departments, via: str) -> None:
    """contracts.md: times are RFC 3339 with an offset. A request whose `time` has none is not a
    valid event: through Kafka the unit is answered `schema_violation`, through HTTP it is a 400."""
    event = designate("black", "taxation-purple", company())  # refused anyway: no state is left behind
    event["time"] = "2026-11-25T09:30:00"
    if via == "http":
        response = await post(departments.http, event)
        assert response.status_code == 400, response.text
        return
    answer = await departments.rejected(event)
    assert answer.codes == {"schema_violation"}, answer.errors
