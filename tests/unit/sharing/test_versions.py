"""The sharing service's pure rules: an entry's versions rebuilt from its inputs in the order of
their recorded times (late arrivals, removal ending the history, objections, warning entries), the
changes the current view makes, the change documents against the contract, and the time points of
the point-in-time queries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from credit_common.clock import SHANGHAI
from credit_common.contracts.events import ListChange

from services.sharing import csv_format, domain, queries
from services.sharing.domain import Input

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DID = "0193d1c2-7a51-7c3e-9f0a-3b1d2e4f5a6b"


def record(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "designation_id": DID,
        "list": "black",
        "field": "taxation",
        "standard": "taxation-black",
        "standard_version": 3,
        "subject": {"kind": "legal_person", "scheme": "uscc", "id": "91110000101623741K", "name": "Example Co."},
        "unit": "100000-SAT",
        "unit_level": "national",
        "region": "100000",
        "decision": {"document_no": "D-1", "decided_on": "2026-03-01", "facts": "Invoices."},
        "effective_from": "2026-03-01",
        "effective_to": "2027-02-28",
        "public": True,
        "status": "active",
    }
    return {**base, **changes}


def removed(at: datetime, reason: str = "revoked", **changes: Any) -> dict[str, Any]:
    return record(status="removed", removal_reason=reason, removed_at=at.isoformat(), **changes)


class Inputs:
    """Inputs of one entry in arrival order."""

    def __init__(self) -> None:
        self.items: list[Input] = []

    def add(self, kind: str, at: datetime, data: dict[str, Any], entry_id: str = DID) -> Input:
        inp = Input(f"e{len(self.items)}", entry_id, kind, at, len(self.items), data)
        self.items.append(inp)
        return inp

    def record(self, at: datetime, rec: dict[str, Any]) -> Input:
        return self.add(domain.RECORD, at, rec)


def local(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=SHANGHAI).astimezone(UTC)


def test_each_event_is_a_version_superseded_by_the_next() -> None:
    ins = Inputs()
    ins.record(T0, record())
    ins.record(
        T0 + timedelta(hours=1), record(decision={"document_no": "D-1", "decided_on": "2026-03-01", "facts": "New."})
    )
    v1, v2 = domain.build_versions(ins.items)
    assert (v1.recorded_at, v1.superseded_at) == (T0, T0 + timedelta(hours=1))
    assert (v2.recorded_at, v2.superseded_at) == (T0 + timedelta(hours=1), None)
    assert v2.entry["decision"]["facts"] == "New."
    assert v1.valid_from == local(date(2026, 3, 1))
    assert v1.valid_to == local(date(2027, 3, 1))  # the whole last day is on the list


def test_a_late_event_takes_its_place_by_recorded_time_not_arrival() -> None:
    ins = Inputs()
    ins.record(T0 + timedelta(hours=2), record(effective_to="2026-12-31"))  # amended, arrives first
    ins.record(T0, record())  # created, arrives late
    v1, v2 = domain.build_versions(ins.items)
    assert v1.entry["effective_to"] == "2027-02-28"
    assert v2.entry["effective_to"] == "2026-12-31"
    assert v1.superseded_at == v2.recorded_at


def test_a_removal_ends_the_history_even_when_an_amendment_was_recorded_after_it() -> None:
    # The expiry is stamped with its due time, which can be before an amendment accepted in the
    # seconds before the timer ran: the amendment must not bring the entry back.
    due = local(date(2027, 3, 1))
    ins = Inputs()
    ins.record(T0, record())
    ins.record(due + timedelta(seconds=20), record(decision={"document_no": "D-2", "decided_on": "2026-03-01"}))
    ins.record(due, removed(due, "expired"))
    versions = domain.build_versions(ins.items)
    assert [v.status for v in versions] == ["active", "removed"]
    assert versions[-1].reason == "expired"
    assert versions[-1].superseded_at is None
    assert versions[-1].valid_to == due


def test_a_removal_before_the_first_day_leaves_an_empty_validity() -> None:
    at = local(date(2026, 2, 20))
    (v,) = domain.build_versions([Input("e", DID, domain.RECORD, at, 0, removed(at))])
    assert v.valid_from == v.valid_to == local(date(2026, 3, 1))


def test_objections_mark_the_entry_while_open_even_when_opened_before_it_is_known() -> None:
    ins = Inputs()
    ins.add(domain.OBJECTION_OPENED, T0 - timedelta(hours=1), {"objection_id": "o1"})  # before, in time
    ins.record(T0, record())
    ins.add(domain.OBJECTION_OPENED, T0 + timedelta(hours=1), {"objection_id": "o2"})
    ins.add(domain.OBJECTION_RESOLVED, T0 + timedelta(hours=2), {"objection_id": "o1"})
    ins.add(domain.OBJECTION_RESOLVED, T0 + timedelta(hours=3), {"objection_id": "o2"})
    versions = domain.build_versions(ins.items)
    # o2 opening and o1 resolving change nothing visible: no version for them
    assert [(v.recorded_at - T0, v.under_objection) for v in versions] == [
        (timedelta(0), True),
        (timedelta(hours=3), False),
    ]


def test_an_objection_resolved_before_its_opening_arrives_stays_resolved() -> None:
    ins = Inputs()
    ins.record(T0, record())
    ins.add(domain.OBJECTION_RESOLVED, T0 + timedelta(hours=1), {"objection_id": "o1"})
    ins.add(domain.OBJECTION_OPENED, T0 + timedelta(hours=2), {"objection_id": "o1"})
    assert [v.under_objection for v in domain.build_versions(ins.items)] == [False]


def test_a_warning_entry_is_open_ended_until_cleared() -> None:
    subject = {"kind": "legal_person", "scheme": "uscc", "id": "91110000101623741K", "name": "Example Co."}
    listing = {"subject": subject, "fields": ["a", "b", "c"], "designation_ids": ["x", "y", "z"], "since": "2026-03-01"}
    ins = Inputs()
    ins.add(domain.WARNING, T0, listing, entry_id="w1")
    ins.add(domain.WARNING, T0 + timedelta(days=1), {**listing, "fields": ["a", "b", "c", "d"]}, entry_id="w1")
    ins.add(domain.WARNING_CLEARED, T0 + timedelta(days=2), {"subject": subject, "remaining_fields": []}, "w1")
    versions = domain.build_versions(ins.items)
    assert [(v.status, v.valid_to) for v in versions] == [("active", None), ("removed", T0 + timedelta(days=2))]
    assert versions[0].public
    assert versions[0].list == "warning"
    assert versions[1].reason == "cleared"


def test_changes_of_the_current_view() -> None:
    ins = Inputs()
    ins.record(T0, record())
    (v1,) = domain.build_versions(ins.items)
    ins.add(domain.OBJECTION_OPENED, T0 + timedelta(hours=1), {"objection_id": "o1"})
    _, v2 = domain.build_versions(ins.items)
    ins.record(T0 + timedelta(hours=2), removed(T0 + timedelta(hours=2), "objection_upheld"))
    *_, v3 = domain.build_versions(ins.items)

    added = domain.change_between(None, v1, domain.RECORD)
    updated = domain.change_between(v1, v2, domain.OBJECTION_OPENED)
    gone = domain.change_between(v2, v3, domain.RECORD)
    assert added is not None
    assert added.type == domain.ENTRY_ADDED
    assert added.reason is None
    assert updated is not None
    assert updated.type == domain.ENTRY_UPDATED
    assert updated.reason == "objection_opened"
    assert gone is not None
    assert gone.type == domain.ENTRY_REMOVED
    assert gone.reason == "objection_upheld"
    assert domain.change_between(v1, v1, domain.RECORD) is None
    assert domain.change_between(None, v3, domain.RECORD) is None  # never shown: never announced
    assert domain.change_between(v3, v3, domain.RECORD) is None
    for seq, change in enumerate((added, updated, gone), start=1):
        internal = ListChange.model_validate(change.data(seq))
        assert internal.seq == seq
        assert internal.entry.decision is not None
        assert internal.entry.decision.facts
        public = change.public_data(seq)
        assert public is not None
        public_decision = ListChange.model_validate(public).entry.decision
        assert public_decision is not None
        assert public_decision.facts is None
        assert public["at"] == internal.model_dump(mode="json")["at"]  # as the model writes it: ...Z


def test_the_public_hears_only_of_public_entries_and_of_what_it_can_see() -> None:
    ins = Inputs()
    ins.record(T0, record(public=False))
    (hidden,) = domain.build_versions(ins.items)
    change = domain.change_between(None, hidden, domain.RECORD)
    assert change is not None
    assert change.public_data(1) is None
    ins = Inputs()
    ins.record(T0, record())
    ins.record(
        T0 + timedelta(hours=1), record(decision={"document_no": "D-1", "decided_on": "2026-03-01", "facts": "X"})
    )
    v1, v2 = domain.build_versions(ins.items)
    facts_only = domain.change_between(v1, v2, domain.RECORD)
    assert facts_only is not None
    assert facts_only.type == domain.ENTRY_UPDATED
    assert facts_only.public_data(2) is None  # only the facts changed: nothing the public sees


def test_a_warning_change_matches_the_contract() -> None:
    subject = {"kind": "natural_person", "scheme": "resident_id", "id": "110101199003071233", "name": "Li Na"}
    listing = {"subject": subject, "fields": ["a", "b", "c"], "designation_ids": ["x"], "since": "2026-03-01"}
    (v,) = domain.build_versions([Input("e", "w1", domain.WARNING, T0, 0, listing)])
    change = domain.change_between(None, v, domain.WARNING)
    assert change is not None
    ListChange.model_validate(change.data(7))
    public = change.public_data(7)
    assert public is not None
    assert ListChange.model_validate(public).entry.subject.id == "110101********1233"


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-03-01", datetime(2026, 2, 28, 16, tzinfo=UTC), datetime(2026, 3, 1, 16, tzinfo=UTC)),
        (
            "2026-03-01T09:00:00+08:00",
            datetime(2026, 3, 1, 1, tzinfo=UTC),
            datetime(2026, 3, 1, 1, 0, 0, 1, tzinfo=UTC),
        ),
        (
            "2026-03-01T09:00:00 08:00",  # a `+` not encoded in a query string
            datetime(2026, 3, 1, 1, tzinfo=UTC),
            datetime(2026, 3, 1, 1, 0, 0, 1, tzinfo=UTC),
        ),
        ("2026-03-01T01:00:00Z", datetime(2026, 3, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, 1, 0, 0, 1, tzinfo=UTC)),
        ("2026-03-01T09:00:00", datetime(2026, 3, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, 1, 0, 0, 1, tzinfo=UTC)),
    ],
)
def test_as_of_is_a_day_or_an_instant(text: str, start: datetime, end: datetime) -> None:
    assert queries.as_of_window(text, T0) == queries.Window(start, end)


def test_as_of_defaults_to_now_and_known_at_to_everything() -> None:
    assert queries.as_of_window(None, T0).start == T0
    assert queries.known_at_instant(None) is None
    assert queries.known_at_instant("2026-03-01") == datetime(2026, 3, 1, 15, 59, 59, 999999, tzinfo=UTC)
    assert queries.known_at_instant("2026-03-01T09:00:00+08:00") == datetime(2026, 3, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="Invalid"):
        queries.as_of_window("yesterday", T0)


@pytest.mark.parametrize("text", ["0001-01-01", "9999-12-31", "0001-01-01T00:00:00+08:00"])
def test_a_date_at_the_edge_of_the_calendar_is_a_value_error_not_an_overflow(text: str) -> None:
    # It was an OverflowError, a 500 whose log line carried the subject's identity number.
    with pytest.raises(ValueError, match="outside the dates"):
        queries.as_of_window(text, T0)


@pytest.mark.parametrize("text", ["9999-12-31", "0001-01-01T00:00:00+08:00"])
def test_a_known_at_beyond_the_calendar_is_a_value_error_not_an_overflow(text: str) -> None:
    with pytest.raises(ValueError, match="outside the dates"):
        queries.known_at_instant(text)


def test_region_filters_cover_the_divisions_below() -> None:
    assert queries.region_prefix("440000") == "44"
    assert queries.region_prefix("440100") == "4401"
    assert queries.region_prefix("440106") == "440106"
    assert queries.region_prefix(None) is None


def test_csv_rows_follow_their_columns() -> None:
    entry = domain.designation_entry(record(), under_objection=True)
    row = csv_format.csv_row(entry)
    assert dict(zip(csv_format.CSV_COLUMNS, row, strict=True))["under_objection"] == "true"
    public = domain.public_view(entry, public=True)
    assert public is not None
    assert "facts" not in csv_format.PUBLIC_CSV_COLUMNS
    assert len(csv_format.csv_row(public, csv_format.PUBLIC_CSV_COLUMNS)) == len(csv_format.PUBLIC_CSV_COLUMNS)
    assert csv_format.csv_text([["a,b", 'c"d']]) == '"a,b","c""d"\n'
