"""Every message type round-trips a realistic example; requests refuse what events tolerate."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from credit_common.contracts import events as ev
from credit_common.contracts import requests as rq
from credit_common.contracts.common import ErrorCode, ErrorDetail, UnitLevel, level_at_least, level_rank
from credit_common.contracts.envelope import CloudEvent, new_event
from credit_common.contracts.reference import FieldRecord, UnitRecord
from credit_common.contracts.registry import REGISTRY, model_for, parse_data
from pydantic import ValidationError

from tests.unit.contracts.examples import EXAMPLES, RECORD, REFERENCE_EXAMPLES

NOW = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)


def test_every_registered_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(REGISTRY)


@pytest.mark.parametrize("type_", sorted(REGISTRY))
def test_example_round_trips(type_: str) -> None:
    example = EXAMPLES[type_]
    model = model_for(type_).model_validate(example)
    assert model.model_dump(mode="json", exclude_none=True) == example


@pytest.mark.parametrize("type_", sorted(REGISTRY))
def test_example_round_trips_through_the_envelope(type_: str) -> None:
    data = model_for(type_).model_validate(EXAMPLES[type_])
    event = new_event(type_, "platform/test", data, time=NOW, subject="91110000101623741K")
    received = CloudEvent.model_validate_json(event.model_dump_json())
    parsed = parse_data(received)
    assert parsed.model_dump(mode="json", exclude_none=True) == EXAMPLES[type_]


@pytest.mark.parametrize("record", REFERENCE_EXAMPLES, ids=lambda r: r["kind"])
def test_reference_upsert_yields_the_record_itself(record: dict[str, Any]) -> None:
    event = new_event("credit.reference.upserted", "platform/reference", record, time=NOW)
    parsed = parse_data(event)
    assert type(parsed).__name__.lower().startswith(record["kind"])
    assert parsed.model_dump(mode="json", exclude_none=True) == record


def test_reference_upsert_models() -> None:
    unit = parse_data(new_event("credit.reference.upserted", "platform/reference", REFERENCE_EXAMPLES[0], time=NOW))
    field = parse_data(new_event("credit.reference.upserted", "platform/reference", REFERENCE_EXAMPLES[1], time=NOW))
    assert isinstance(unit, UnitRecord)
    assert isinstance(field, FieldRecord)


def test_bad_data_raises_validation_error() -> None:
    event = new_event("credit.designation.designate", "unit/110000-SAT", {"list": "grey"}, time=NOW)
    with pytest.raises(ValidationError):
        parse_data(event)


@pytest.mark.parametrize("type_", sorted(t for t, row in REGISTRY.items() if row.kind == "request"))
def test_requests_refuse_unknown_fields(type_: str) -> None:
    example = {**EXAMPLES[type_], "efective_to": "2027-01-01"}
    with pytest.raises(ValidationError, match="efective_to"):
        model_for(type_).model_validate(example)


def test_requests_refuse_unknown_nested_fields() -> None:
    example = copy.deepcopy(EXAMPLES["credit.designation.designate"])
    example["subject"]["legal_representitive"] = "张伟"
    with pytest.raises(ValidationError, match="legal_representitive"):
        rq.Designate.model_validate(example)


def test_events_ignore_unknown_fields() -> None:
    data = {**EXAMPLES["credit.designation.created"], "added_in_a_later_version": 1}
    data["record"] = {**RECORD, "also_new": True}
    created = ev.DesignationCreated.model_validate(data)
    assert created.model_dump(mode="json", exclude_none=True) == EXAMPLES["credit.designation.created"]


@pytest.mark.parametrize(
    ("type_", "path", "value"),
    [
        ("credit.designation.designate", ("standard",), ""),
        ("credit.designation.designate", ("subject", "kind"), "company"),
        ("credit.designation.designate", ("decision", "decided_on"), "25/11/2026"),
        ("credit.designation.remove", ("reason",), "expired"),
        ("credit.objection.decide", ("outcome",), "dismissed"),
        ("credit.restoration.apply", ("measures",), []),
        ("credit.restoration.apply", ("measures", 2, "hours"), -1),
        ("credit.enforcement.report", ("media", 0, "url"), "ftp://example.cn/x"),
        ("credit.designation.created", ("record", "region"), "1100"),
        ("credit.list.entry_added", ("at",), "2026-11-25T09:30:02"),
        ("credit.list.entry_added", ("seq",), 0),
        ("credit.request.rejected", ("errors",), []),
        ("credit.request.rejected", ("errors", 0, "code"), "no_such_code"),
    ],
)
def test_shape_violations_are_refused(type_: str, path: tuple[str | int, ...], value: Any) -> None:
    example = copy.deepcopy(EXAMPLES[type_])
    node: Any = example
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    with pytest.raises(ValidationError):
        model_for(type_).model_validate(example)


def test_an_amendment_must_change_something() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        rq.AmendDesignation.model_validate({"designation_id": "d-1", "changes": {}, "reason": "nothing"})


def test_a_designated_list_entry_is_whole_but_a_warning_entry_need_not_be() -> None:
    change = copy.deepcopy(EXAMPLES["credit.list.entry_added"])
    del change["entry"]["standard"]
    with pytest.raises(ValidationError, match="standard"):
        ev.ListChange.model_validate(change)
    warning = {
        "seq": 9,
        "list": "warning",
        "entry": {
            "entry_id": "w-1",
            "subject": change["entry"]["subject"],
            "effective_from": "2027-01-20",
            "under_objection": False,
        },
        "at": "2027-01-20T10:00:00+08:00",
    }
    assert ev.ListChange.model_validate(warning).entry.standard is None


def test_public_entries_may_leave_out_the_facts() -> None:
    example = EXAMPLES["credit.list.entry_removed"]
    change = ev.ListChange.model_validate(example)
    assert change.entry.decision is not None
    assert change.entry.decision.facts is None


def test_error_code_helpers() -> None:
    detail = ErrorCode.UNKNOWN_UNIT.detail("source", "no unit 999999-X")
    assert detail == ErrorDetail(code=ErrorCode.UNKNOWN_UNIT, field="source", message="no unit 999999-X")
    assert detail.model_dump(mode="json") == {
        "code": "unknown_unit",
        "field": "source",
        "message": "no unit 999999-X",
    }
    assert "suspended_under_objection" in ErrorCode.codes()
    assert len(ErrorCode.codes()) == len(ErrorCode)


def test_level_ordering() -> None:
    ordered = sorted(UnitLevel, key=level_rank)
    assert ordered == [UnitLevel.COUNTY, UnitLevel.PREFECTURE, UnitLevel.PROVINCIAL, UnitLevel.NATIONAL]
    assert level_at_least("national", "provincial")
    assert level_at_least("provincial", "provincial")
    assert not level_at_least("county", UnitLevel.PREFECTURE)
    with pytest.raises(ValueError, match="township"):
        level_rank("township")


def test_an_import_is_answered_with_what_it_imported_and_what_it_refused() -> None:
    answer = {
        "request_id": "0193d1c7-6666-7000-8000-000000000009",
        "request_type": "credit.designation.import",
        "result_id": "0193d1c7-6666-7000-8000-000000000009",
        "imported": 998,
        "refused": [{"ref": "京税2019-0043", "errors": [{"code": "invalid_checksum", "message": "check character"}]}],
    }
    parsed = ev.RequestAccepted.model_validate(answer)
    assert parsed.model_dump(mode="json", exclude_none=True) == answer


def test_an_import_entry_is_removed_with_a_date_and_a_reason_or_not_at_all() -> None:
    entry = copy.deepcopy(EXAMPLES["credit.designation.import"]["entries"][1])
    del entry["removal_reason"]
    with pytest.raises(ValidationError, match="together"):
        rq.ImportEntry.model_validate(entry)
    too_many = {"entries": [EXAMPLES["credit.designation.import"]["entries"][0]] * (rq.IMPORT_BATCH_MAX + 1)}
    with pytest.raises(ValidationError):
        rq.ImportDesignations.model_validate(too_many)


def test_a_key_record_is_an_ed25519_key_of_a_principal() -> None:
    from credit_common.contracts.reference import KeyRecord

    key = next(r for r in REFERENCE_EXAMPLES if r["kind"] == "key")
    for bad in ({"principal": "unit 110000-SAT"}, {"public_key": "not-base64"}, {"alg": "RS256"}):
        with pytest.raises(ValidationError):
            KeyRecord.model_validate({**key, **bad})
    with pytest.raises(ValidationError, match="not_after"):
        KeyRecord.model_validate({**key, "not_after": key["not_before"]})
