"""The batch state of the sharing consumer, without a database: which entry an event is about
(a subject's stay on the warning list is one entry, a later listing a new one) and which changes a
sequence of events makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from credit_common.contracts.envelope import CloudEvent, new_id
from credit_common.contracts.registry import parse_data
from credit_common.messaging.unit_of_work import Incoming

from services.sharing import domain
from services.sharing.handlers import BatchState, target_of

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
SUBJECT = {"kind": "legal_person", "scheme": "uscc", "id": "91110000101623741K", "name": "Example Co."}


def incoming(type_: str, data: dict[str, Any], at: datetime) -> Incoming:
    event = CloudEvent(id=new_id(), source="platform/test", type=type_, time=at, subject=SUBJECT["id"], data=data)
    return Incoming(event, parse_data(event), None, "t", 0, 0, None, [])


def record(**changes: Any) -> dict[str, Any]:
    return {
        "designation_id": "d-1",
        "list": "key_scrutiny",
        "field": "taxation",
        "standard": "taxation-key_scrutiny",
        "standard_version": 1,
        "subject": SUBJECT,
        "unit": "100000-SAT",
        "unit_level": "national",
        "region": "100000",
        "decision": {"document_no": "D-1", "decided_on": "2026-03-01", "facts": "Facts."},
        "effective_from": "2026-03-01",
        "effective_to": "2027-02-28",
        "public": False,
        "status": "active",
        **changes,
    }


def run(state: BatchState, *events: Incoming) -> list[tuple[str, str]]:
    before = len(state.changes)
    for inc in events:
        target = target_of(inc)
        assert target is not None
        state.apply(inc, target)
    return [(c.type.rsplit(".", 1)[1], c.version.entry_id) for _, c in state.changes[before:]]


def warning(type_: str, at: datetime, fields: list[str]) -> Incoming:
    if type_ == "credit.warning.cleared":
        return incoming(type_, {"subject": SUBJECT, "remaining_fields": fields}, at)
    data = {"subject": SUBJECT, "fields": fields, "designation_ids": ["d-1"], "since": at.date().isoformat()}
    return incoming(type_, data, at)


def test_a_stay_on_the_warning_list_is_one_entry_and_a_new_listing_a_new_one() -> None:
    state = BatchState({}, {}, {})
    listed = warning("credit.warning.listed", T0, ["a", "b", "c"])
    first = listed.event.id
    assert run(state, listed) == [("entry_added", first)]
    # more fields keep it listed: nothing a list entry shows has changed
    assert run(state, warning("credit.warning.updated", T0 + timedelta(hours=1), ["a", "b", "c", "d"])) == []
    assert run(state, warning("credit.warning.cleared", T0 + timedelta(days=1), ["a"])) == [("entry_removed", first)]
    # clearing a subject that is not listed changes nothing
    assert run(state, warning("credit.warning.cleared", T0 + timedelta(days=2), [])) == []
    again = warning("credit.warning.listed", T0 + timedelta(days=3), ["a", "b", "c"])
    assert run(state, again) == [("entry_added", again.event.id)]
    assert state.current[first].reason == "cleared"
    assert state.current[again.event.id].active


def test_an_objection_before_its_designation_marks_the_entry_when_it_arrives() -> None:
    state = BatchState({}, {}, {})
    opened = {
        "objection_id": "o-1",
        "designation_id": "d-1",
        "unit": "100000-SAT",
        "objector": {"kind": "subject", "id": SUBJECT["id"], "name": SUBJECT["name"]},
        "grounds": "Wrong.",
        "due_on": "2026-03-15",
    }
    assert run(state, incoming("credit.objection.opened", opened, T0 + timedelta(hours=1))) == []
    assert run(state, incoming("credit.designation.created", {"record": record()}, T0)) == [("entry_added", "d-1")]
    assert state.current["d-1"].under_objection
    resolved = {
        "objection_id": "o-1",
        "designation_id": "d-1",
        "unit": "100000-SAT",
        "outcome": "rejected",
        "reasoning": "No.",
        "decided_on": "2026-03-02",
    }
    assert run(state, incoming("credit.objection.resolved", resolved, T0 + timedelta(days=1))) == [
        ("entry_updated", "d-1")
    ]
    assert state.changes[-1][1].reason == "objection_resolved"
    removal = {
        "record": record(status="removed", removal_reason="revoked", removed_at=(T0 + timedelta(days=2)).isoformat()),
        "reason": "revoked",
    }
    assert run(state, incoming("credit.designation.removed", removal, T0 + timedelta(days=2))) == [
        ("entry_removed", "d-1")
    ]
    # the history knows the designation was not yet objected to when it was created
    versions = state.versions["d-1"]
    assert [(v.status, v.under_objection) for v in versions] == [
        (domain.ACTIVE, False),
        (domain.ACTIVE, True),
        (domain.ACTIVE, False),
        (domain.REMOVED, False),
    ]


def test_events_that_change_no_list_are_not_targets() -> None:
    overdue = {"objection_id": "o-1", "designation_id": "d-1", "unit": "100000-SAT", "due_on": "2026-03-15"}
    assert target_of(incoming("credit.objection.overdue", overdue, T0)) is None
