"""The designation rules as pure functions over the shipped catalogue (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from credit_common.contracts.events import DesignationRecord
from credit_common.contracts.requests import AmendDesignation, Designate, RemoveDesignation
from credit_common.outcomes import Rejected
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files

from services.designation import domain
from tests.support.subjects import new_resident_id, new_uscc, wrong_check

CATALOG = Catalog.of(load_files([Path(__file__).resolve().parents[3] / "deploy" / "catalog"]))
TODAY = date(2026, 11, 25)
AT = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)


def req(
    list_: str = "black", standard: str = "taxation-black", subject: dict[str, Any] | None = None, **kw: Any
) -> Designate:
    return Designate.model_validate(
        {
            "list": list_,
            "standard": standard,
            "subject": subject or {"kind": "legal_person", "scheme": "uscc", "id": new_uscc(), "name": "Example Co."},
            "decision": {"document_no": "D-1", "decided_on": "2026-11-20", "facts": "facts"},
            **kw,
        }
    )


def run(
    r: Designate, unit: str | None = "100000-SAT", active: Sequence[DesignationRecord] = (), **kw: Any
) -> domain.Designated:
    by_id = {a.designation_id: a for a in active}
    return domain.designate(
        r,
        designation_id=kw.pop("designation_id", "new-1"),
        unit_code=unit,
        catalog=CATALOG,
        today=kw.pop("today", TODAY),
        at=AT,
        active_of_subject=lambda s: [a for a in active if a.subject.id == s and a.status == "active"],
        lookup=by_id.get,
    )


def codes(exc: pytest.ExceptionInfo[Rejected]) -> set[str]:
    return {e.code for e in exc.value.errors}


def test_a_black_designation_gets_the_default_period_and_the_whole_record() -> None:
    r = run(req())
    rec = r.record
    assert rec.list == "black"
    assert rec.field == "taxation"
    assert rec.effective_from == date(2026, 11, 20)
    assert (rec.effective_to - rec.effective_from).days + 1 == CATALOG.standard("taxation-black").default_period_days  # type: ignore[union-attr]
    assert rec.unit == "100000-SAT"
    assert rec.unit_level == "national"
    assert rec.status == "active"
    assert r.removals == []


@pytest.mark.parametrize(
    ("unit", "standard", "list_", "code"),
    [
        ("999999-NOPE", "taxation-black", "black", "unknown_unit"),
        ("100000-CFDA", "food_drug-black", "black", "unit_inactive"),
        ("100000-SAT", "no-such-standard", "black", "unknown_standard"),
        ("100000-SAT", "taxation-black", "red", "list_mismatch"),
        ("100000-SAMR", "taxation-black", "black", "field_not_authorised"),
    ],
)
def test_unit_and_standard_rules(unit: str, standard: str, list_: str, code: str) -> None:
    with pytest.raises(Rejected) as exc:
        run(req(list_, standard), unit=unit)
    assert code in codes(exc)


def test_a_standard_not_in_force_is_refused() -> None:
    draft = next(s for s in CATALOG.standards() if s.status != "in_force")
    unit = next(u for u in CATALOG.units() if draft.field in u.authorised_fields and u.active and u.level == "national")
    with pytest.raises(Rejected) as exc:
        run(req(draft.list, draft.code), unit=unit.code)
    assert "standard_not_in_force" in codes(exc)


def test_level_too_low() -> None:
    from credit_common.contracts.common import level_at_least

    std, low = next(
        (s, u)
        for s in CATALOG.standards()
        if s.status == "in_force"
        for u in CATALOG.units()
        if u.active and s.field in u.authorised_fields and not level_at_least(u.level, s.min_level)
    )
    with pytest.raises(Rejected) as exc:
        run(req(std.list, std.code), unit=low.code)
    assert codes(exc) == {"level_too_low"}


def test_identifiers_checksum_and_override() -> None:
    bad = wrong_check(new_uscc())
    with pytest.raises(Rejected) as exc:
        run(req(subject={"kind": "legal_person", "scheme": "uscc", "id": bad, "name": "X"}))
    assert codes(exc) == {"invalid_checksum"}
    ok = run(
        req(
            subject={"kind": "legal_person", "scheme": "uscc", "id": bad, "name": "X"},
            checksum_override={"reason": "real code on the business licence"},
        )
    )
    assert ok.record.checksum_override is not None
    with pytest.raises(Rejected) as exc:
        run(req(subject={"kind": "natural_person", "scheme": "resident_id", "id": "110101190013451234", "name": "X"}))
    assert codes(exc) == {"invalid_identifier"}


def test_periods() -> None:
    with pytest.raises(Rejected) as exc:
        run(req(effective_from="2026-11-20", effective_to="2026-11-10"))
    assert codes(exc) == {"invalid_period"}
    with pytest.raises(Rejected) as exc:
        run(req(effective_from="2026-01-01", effective_to="2029-12-31"))
    assert codes(exc) == {"period_too_long"}
    with pytest.raises(Rejected) as exc:
        run(req(effective_from="2025-01-01", effective_to="2025-06-30"))
    assert codes(exc) == {"invalid_period"}, "already over on the request's date"


def _active(list_: str, standard: str, subject: dict[str, Any], did: str) -> DesignationRecord:
    return run(req(list_, standard, subject), designation_id=did).record


def test_red_black_exclusion_and_supersede() -> None:
    subject = {"kind": "natural_person", "scheme": "resident_id", "id": new_resident_id(), "name": "Li Na"}
    red = _active("red", "taxation-red", subject, "red-1")
    ks = run(req("key_scrutiny", "taxation-key_scrutiny", subject), active=[red], designation_id="ks-1")
    assert [(x.record.designation_id, x.reason, x.related_id) for x in ks.removals] == [("red-1", "superseded", "ks-1")]
    assert ks.removals[0].record.status == "removed"
    with pytest.raises(Rejected) as exc:
        run(req("red", "taxation-red", subject), active=[ks.record])
    assert codes(exc) == {"conflicts_with_black_list"}
    with pytest.raises(Rejected) as exc:
        run(req("key_scrutiny", "taxation-key_scrutiny", subject), active=[ks.record])
    assert codes(exc) == {"already_designated"}


def test_transfer_from_key_scrutiny_to_black() -> None:
    subject = {"kind": "legal_person", "scheme": "uscc", "id": new_uscc(), "name": "Example Co."}
    ks = _active("key_scrutiny", "taxation-key_scrutiny", subject, "ks-1")
    black = run(req("black", "taxation-black", subject, transfer_from="ks-1"), active=[ks], designation_id="bl-1")
    assert [(x.record.designation_id, x.reason) for x in black.removals] == [("ks-1", "transferred")]
    assert black.record.transfer_from == "ks-1"
    with pytest.raises(Rejected) as exc:
        run(req("black", "taxation-black", subject, transfer_from="nope"), active=[ks])
    assert codes(exc) == {"unknown_designation"}


def test_only_the_designating_unit_or_its_parent_transfers_an_entry() -> None:
    subject = {"kind": "legal_person", "scheme": "uscc", "id": new_uscc(), "name": "Example Co."}
    ks = run(req("key_scrutiny", "taxation-key_scrutiny", subject), unit="110000-SAT", designation_id="ks-2").record
    transfer = req("black", "taxation-black", subject, transfer_from="ks-2")
    for unit in ("110000-SAT", "100000-SAT"):  # the designating unit, its parent
        assert [x.reason for x in run(transfer, unit=unit, active=[ks]).removals] == ["transferred"]
    with pytest.raises(Rejected) as exc:
        run(transfer, unit="440000-SAT", active=[ks])  # another province's tax service
    assert [(e.code, e.field) for e in exc.value.errors] == [("not_designating_unit", "transfer_from")]


def test_a_transfer_across_fields_says_so() -> None:
    subject = {"kind": "legal_person", "scheme": "uscc", "id": new_uscc(), "name": "Example Co."}
    ks = _active("key_scrutiny", "taxation-key_scrutiny", subject, "ks-3")
    other = CATALOG.standard("customs-black")
    assert other is not None
    assert other.field != "taxation"
    with pytest.raises(Rejected) as exc:
        run(req("black", "customs-black", subject, transfer_from="ks-3"), unit="100000-GAC", active=[ks])
    (error,) = exc.value.errors
    assert (error.code, error.field) == ("list_mismatch", "transfer_from")
    assert error.message.startswith("field mismatch: ks-3 is a key-scrutiny entry in field taxation")


def test_a_designation_names_a_campaign_that_covers_it() -> None:
    """The shipped catalogue: 2026-false-invoices (taxation, nationwide, 2026), 2026-gd-food-safety
    (food and drug, Guangdong); the decision is of 20 Nov 2026."""
    named = run(req(campaign="2026-false-invoices"))
    assert named.record.campaign == "2026-false-invoices"
    for campaign, message in (
        ("no-such-campaign", "no campaign 'no-such-campaign'"),
        ("2026-gd-food-safety", "campaign 2026-gd-food-safety covers the fields food_drug, not taxation"),
    ):
        with pytest.raises(Rejected) as exc:
            run(req(campaign=campaign))
        (error,) = exc.value.errors
        assert (error.code, error.field) == ("schema_violation", "campaign")
        assert error.message.startswith(message)
    late = req(campaign="2026-false-invoices")
    late = late.model_copy(update={"decision": late.decision.model_copy(update={"decided_on": date(2025, 12, 31)})})
    with pytest.raises(Rejected) as exc:
        run(late, today=date(2026, 1, 5))
    assert [e.message for e in exc.value.errors if e.field == "campaign"] == [
        "a decision of 2025-12-31 is outside campaign 2026-false-invoices (2026-01-01 to 2026-12-31)"
    ]


def test_a_campaign_covers_the_regions_under_its_own() -> None:
    gd = CATALOG.campaign("2026-gd-food-safety")
    assert gd is not None
    assert gd.covers_region("440000")
    assert gd.covers_region("440106")
    assert not gd.covers_region("110108")
    national = CATALOG.campaign("2026-false-invoices")
    assert national is not None
    assert national.covers_region("650102")


def test_revoke_and_amend_only_by_the_designating_unit_or_its_parent() -> None:
    subject = {"kind": "legal_person", "scheme": "uscc", "id": new_uscc(), "name": "Example Co."}
    rec = _active("black", "taxation-black", subject, "bl-9")
    removal = RemoveDesignation.model_validate(
        {
            "designation_id": "bl-9",
            "reason": "revoked",
            "decision": {"document_no": "R", "decided_on": "2026-11-25", "facts": "x"},
        }
    )
    with pytest.raises(Rejected) as exc:
        domain.revoke(removal, unit_code="100000-SAMR", catalog=CATALOG, at=AT, lookup={"bl-9": rec}.get)
    assert codes(exc) == {"not_designating_unit"}
    done = domain.revoke(removal, unit_code="100000-SAT", catalog=CATALOG, at=AT, lookup={"bl-9": rec}.get)
    assert (done.record.status, done.record.removal_reason) == ("removed", "revoked")
    with pytest.raises(Rejected) as exc:
        domain.revoke(removal, unit_code="100000-SAT", catalog=CATALOG, at=AT, lookup={"bl-9": done.record}.get)
    assert codes(exc) == {"not_active"}
    later = AmendDesignation.model_validate(
        {"designation_id": "bl-9", "changes": {"effective_to": "2031-01-01"}, "reason": "r"}
    )
    with pytest.raises(Rejected) as exc:
        domain.amend(later, unit_code="100000-SAT", catalog=CATALOG, lookup={"bl-9": rec}.get)
    assert codes(exc) == {"invalid_period"}
    shorter = AmendDesignation.model_validate(
        {"designation_id": "bl-9", "changes": {"effective_to": "2027-06-30", "facts": "new facts"}, "reason": "r"}
    )
    amended = domain.amend(shorter, unit_code="100000-SAT", catalog=CATALOG, lookup={"bl-9": rec}.get)
    assert amended.record.effective_to == date(2027, 6, 30)
    assert amended.record.decision.facts == "new facts"


def test_restoration_rules() -> None:
    subject = {"kind": "legal_person", "scheme": "uscc", "id": new_uscc(), "name": "Example Co."}
    rec = _active("black", "taxation-black", subject, "bl-1")
    std = CATALOG.standard("taxation-black")
    assert std is not None
    assert std.restorable
    assert domain.restoration_allowed(rec, std, date(2026, 12, 1)) is not None, "too early"
    assert domain.restoration_allowed(rec, std, date(2028, 1, 1)) is None
    assert domain.restoration_allowed(rec, None, date(2028, 1, 1)) is not None
