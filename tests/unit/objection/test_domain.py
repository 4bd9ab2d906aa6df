"""The objection and credit-restoration rules as pure functions over the shipped catalogue (no I/O)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from credit_common.calendar import WorkingDayCalendar
from credit_common.clock import SHANGHAI
from credit_common.contracts.requests import ApplyRestoration, FileObjection
from credit_common.outcomes import Rejected
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files

from services.objection import domain
from services.objection.domain import Entry, Pending
from services.objection.handlers import BatchState
from services.objection.store import ApplicationRow, ObjectionRow
from tests.support.subjects import new_uscc

CATALOG = Catalog.of(load_files([Path(__file__).resolve().parents[3] / "deploy" / "catalog"]))
CALENDAR = WorkingDayCalendar(CATALOG.calendars())


def entry(
    *,
    list_: str = "black",
    standard: str = "taxation-black",
    unit: str = "110108-SAT",
    status: str = "active",
    effective_from: date = date(2025, 6, 1),
    kind: str = "legal_person",
    **extra: Any,
) -> Entry:
    return Entry.of(
        {
            "designation_id": "d-1",
            "list": list_,
            "field": standard.split("-")[0],
            "standard": standard,
            "standard_version": 1,
            "subject": {
                "kind": kind,
                "scheme": "uscc",
                "id": SUBJECT,
                "name": "Example Co.",
                "legal_representative": "Li Ming",
            },
            "unit": unit,
            "unit_level": "county",
            "region": "110108",
            "decision": {"document_no": "D-1", "decided_on": "2025-06-01", "facts": "Facts."},
            "effective_from": effective_from.isoformat(),
            "effective_to": "2028-05-31",
            "public": True,
            "status": status,
            **extra,
        }
    )


SUBJECT = new_uscc()


def filing(kind: str = "subject", id_: str | None = None) -> FileObjection:
    return FileObjection.model_validate(
        {
            "designation_id": "d-1",
            "objector": {"kind": kind, "id": id_ or SUBJECT.lower(), "name": "Objector"},
            "grounds": "The facts are wrong.",
            "evidence": ["DOC-1"],
        }
    )


def file(req: FileObjection, e: Entry | None, *, has_open: bool = False, day: date = date(2026, 9, 30)) -> Any:
    """Filed as the portal files for subjects, or, for a unit objector, by that unit itself."""
    sender = req.objector.id if req.objector.kind == "unit" else None
    return domain.file_objection(
        req,
        entry=e,
        catalog=CATALOG,
        has_open=lambda _k: has_open,
        filed_day=day,
        calendar=CALENDAR,
        sender_unit=sender,
    )


def codes(exc: pytest.ExceptionInfo[Rejected]) -> list[tuple[str, str | None]]:
    return [(e.code, e.field) for e in exc.value.errors]


# ---------------------------------------------------------------------- objections


def test_an_objection_by_the_subject_is_due_ten_working_days_later_across_national_day() -> None:
    """Filed Wed 30 Sep 2026: 1-7 Oct are off and Sat 10 Oct is worked: 8, 9, 10, 12-16, 19, 20 Oct."""
    f = file(filing(), entry())
    assert f.due_on == date(2026, 10, 20)
    assert f.objector_key == f"subject:{SUBJECT}"
    assert f.objector["id"] == SUBJECT  # normalised


def test_an_objection_by_a_unit() -> None:
    f = file(filing("unit", "110000-SAMR"), entry())
    assert f.objector_key == "unit:110000-SAMR"


@pytest.mark.parametrize(
    ("req", "e", "expected"),
    [
        (filing(), None, [("unknown_designation", "designation_id")]),
        (filing(), entry(status="removed", removal_reason="revoked"), [("not_active", "designation_id")]),
        (filing("subject", new_uscc()), entry(), [("not_subject", "objector.id")]),
        (filing("unit", "999999-XYZ"), entry(), [("unknown_unit", "objector.id")]),
        (filing("unit", "100000-CFDA"), entry(), [("unit_inactive", "objector.id")]),
    ],
)
def test_filing_checks(req: FileObjection, e: Entry | None, expected: list[tuple[str, str]]) -> None:
    with pytest.raises(Rejected) as exc:
        file(req, e)
    assert codes(exc) == expected


@pytest.mark.parametrize("sender", ["110108-SAT", None])  # another unit; the portal
def test_a_unit_objects_only_in_its_own_name(sender: str | None) -> None:
    with pytest.raises(Rejected) as exc:
        domain.file_objection(
            filing("unit", "110000-SAMR"),
            entry=entry(),
            catalog=CATALOG,
            has_open=lambda _k: False,
            filed_day=date(2026, 9, 30),
            calendar=CALENDAR,
            sender_unit=sender,
        )
    assert codes(exc) == [("not_subject", "objector.id")]


def test_a_second_open_objection_by_the_same_objector_is_a_duplicate() -> None:
    with pytest.raises(Rejected) as exc:
        file(filing(), entry(), has_open=True)
    assert codes(exc) == [("duplicate_objection", "designation_id")]


# ---------------------------------------------------------------------- decisions


def decide(item: Pending | None, decider: str | None) -> Pending:
    return domain.check_decider(
        item,
        item_id="o-1",
        decider=decider,
        unknown_code="unknown_objection",
        id_field="objection_id",
        what="objection",
    )


def test_every_unit_of_the_chain_an_item_climbed_may_decide_it() -> None:
    top = Pending("o-1", "110108-SAT", "overdue", "100000-SAT", ("110000-SAT", "100000-SAT"))
    for unit in ("110108-SAT", "110000-SAT", "100000-SAT"):
        assert decide(top, unit) is top
    with pytest.raises(Rejected) as exc:
        decide(top, "440000-SAT")
    assert codes(exc) == [("not_designating_unit", "source")]


def test_the_designating_unit_decides_and_its_parent_only_once_escalated() -> None:
    open_ = Pending("o-1", "110108-SAT", "open", None)
    assert decide(open_, "110108-SAT") is open_
    with pytest.raises(Rejected) as exc:
        decide(open_, "110000-SAT")
    assert codes(exc) == [("not_designating_unit", "source")]
    overdue = Pending("o-1", "110108-SAT", "overdue", "110000-SAT")
    assert decide(overdue, "110000-SAT") is overdue
    assert decide(overdue, "110108-SAT") is overdue  # late, but still its own
    with pytest.raises(Rejected):
        decide(overdue, "100000-SAT")
    with pytest.raises(Rejected) as exc:
        decide(open_, None)  # from the portal
    assert codes(exc) == [("not_designating_unit", "source")]


def test_unknown_and_already_decided_items() -> None:
    with pytest.raises(Rejected) as exc:
        decide(None, "110108-SAT")
    assert codes(exc) == [("unknown_objection", "objection_id")]
    for status in ("resolved", "closed"):
        with pytest.raises(Rejected) as exc:
            decide(Pending("o-1", "110108-SAT", status, None), "110108-SAT")
        assert codes(exc) == [("not_active", "objection_id")]


# ---------------------------------------------------------------------- credit restoration


def application(*measures: dict[str, Any], applicant: str | None = None) -> ApplyRestoration:
    return ApplyRestoration.model_validate(
        {
            "designation_id": "d-1",
            "applicant": {"id": applicant or SUBJECT, "name": "Example Co."},
            "measures": list(measures)
            or [{"kind": "obligation_performed", "detail": "Paid the tax due.", "completed_on": "2026-08-01"}],
            "evidence": ["RECEIPT-1"],
        }
    )


def apply(req: ApplyRestoration, e: Entry | None, on: date = date(2026, 9, 30)) -> domain.Application:
    std = CATALOG.standard(e.standard) if e else None
    return domain.apply_restoration(req, entry=e, standard=std, applied_on=on, calendar=CALENDAR)


def test_an_application_is_due_three_working_days_after_routing_and_told_within_ten() -> None:
    """Applied Wed 30 Sep 2026: due Sat 10 Oct (a working Saturday), told by Tue 20 Oct."""
    a = apply(application(), entry())
    assert (a.due_on, a.notify_by) == (date(2026, 10, 10), date(2026, 10, 20))


def test_restoration_too_early_names_the_earliest_date() -> None:
    """taxation-black needs 365 days on the list: from 2025-10-01 + 365 = 2026-10-01."""
    e = entry(effective_from=date(2025, 10, 1))
    with pytest.raises(Rejected) as exc:
        apply(application(), e, on=date(2026, 9, 30))
    assert codes(exc) == [("restoration_too_early", "designation_id")]
    assert "2026-10-01" in exc.value.errors[0].message
    assert apply(application(), e, on=date(2026, 10, 1)).due_on == date(2026, 10, 10)


@pytest.mark.parametrize(
    ("e", "expected"),
    [
        (None, [("unknown_designation", "designation_id")]),
        (entry(status="removed"), [("not_active", "designation_id")]),
        (entry(list_="red", standard="taxation-red"), [("list_mismatch", "designation_id")]),
        (entry(standard="court_enforcement-black"), [("restoration_not_allowed", "designation_id")]),
        (entry(standard="no-such-standard"), [("restoration_not_allowed", "designation_id")]),
    ],
)
def test_application_checks(e: Entry | None, expected: list[tuple[str, str]]) -> None:
    with pytest.raises(Rejected) as exc:
        apply(application(), e)
    assert codes(exc) == expected


def test_only_the_subject_applies() -> None:
    with pytest.raises(Rejected) as exc:
        apply(application(applicant=new_uscc()), entry())
    assert codes(exc) == [("invalid_identifier", "applicant.id")]


def test_an_approval_rechecks_what_the_designation_service_will() -> None:
    e = entry(effective_from=date(2025, 10, 1))
    std = CATALOG.standard("taxation-black")
    domain.check_approval(e, std, date(2026, 10, 1))
    with pytest.raises(Rejected) as exc:
        domain.check_approval(e, std, date(2026, 9, 30))
    assert codes(exc) == [("restoration_too_early", "decided_on")]
    with pytest.raises(Rejected) as exc:
        domain.check_approval(entry(status="removed"), std, date(2026, 10, 1))
    assert codes(exc) == [("not_active", "application_id")]
    repealed = std.model_copy(update={"restorable": False}) if std else None
    with pytest.raises(Rejected) as exc:
        domain.check_approval(e, repealed, date(2026, 10, 1))
    assert codes(exc) == [("restoration_not_allowed", "designation_id")]


def test_restoration_training_of_a_black_listed_enterprise_is_its_legal_representatives() -> None:
    req = application(
        {"kind": "restoration_training", "detail": "Credit training.", "completed_on": "2026-09-01", "hours": 8},
        {"kind": "credit_commitment", "detail": "Public commitment.", "completed_on": "2026-09-02"},
    )
    rows = domain.measure_rows(req, entry())
    assert [(r.kind, r.legal_rep_training, r.legal_representative, r.hours) for r in rows] == [
        ("restoration_training", True, "Li Ming", 8.0),
        ("credit_commitment", False, None, None),
    ]
    on_key_scrutiny = domain.measure_rows(req, entry(list_="key_scrutiny", standard="taxation-key_scrutiny"))
    assert not any(r.legal_rep_training for r in on_key_scrutiny)
    person = domain.measure_rows(req, entry(kind="natural_person"))
    assert not any(r.legal_rep_training for r in person)
    assert entry().province == "110000"


def test_overdue_at_the_start_of_the_day_after_the_due_day() -> None:
    assert domain.overdue_at(date(2026, 10, 20)) == datetime(2026, 10, 21, tzinfo=SHANGHAI)


# ---------------------------------------------------------------------- the batch's in-memory state


def test_an_entry_leaving_its_list_closes_only_what_is_pending_on_it() -> None:
    at = datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI)

    def objection(oid: str, designation_id: str, status: str) -> ObjectionRow:
        return ObjectionRow(
            objection_id=oid,
            designation_id=designation_id,
            subject_id=SUBJECT,
            unit="110108-SAT",
            objector_key=f"subject:{SUBJECT}",
            objector={},
            grounds="g",
            evidence=[],
            due_on=date(2026, 12, 9),
            record={},
            filed_by="portal",
            filed_at=at,
            status=status,
        )

    application = ApplicationRow(
        application_id="a-1",
        designation_id="d-1",
        subject_id=SUBJECT,
        unit="110108-SAT",
        applicant={},
        measures=[],
        evidence=[],
        applied_on=date(2026, 11, 25),
        due_on=date(2026, 11, 30),
        notify_by=date(2026, 12, 9),
        record={},
        filed_by="portal",
        filed_at=at,
        status="overdue",
    )
    rows = [objection("o-1", "d-1", "open"), objection("o-2", "d-1", "resolved"), objection("o-3", "d-2", "open")]
    state = BatchState(entries={}, objections={o.objection_id: o for o in rows}, applications={"a-1": application})
    assert state.open_objection_of("d-1", f"subject:{SUBJECT}")
    state.close_pending("d-1", "objection_upheld", at, "event-1")
    assert {o.objection_id: o.status for o in state.objections.values()} == {
        "o-1": "closed",
        "o-2": "resolved",
        "o-3": "open",
    }
    assert (application.status, application.closed_reason, application.closed_by) == (
        "closed",
        "objection_upheld",
        "event-1",
    )
    assert state.changed_objections == {"o-1"}
    assert state.changed_applications == {"a-1"}
    assert not state.open_objection_of("d-1", f"subject:{SUBJECT}")
    assert application.values()[0] == "a-1"
