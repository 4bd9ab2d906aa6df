"""The warning rules as pure functions over the shipped catalogue (no I/O)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from credit_common.calendar import WorkingDayCalendar
from credit_common.clock import SHANGHAI
from credit_common.contracts.requests import ReportConduct
from credit_common.outcomes import Rejected
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files
from hypothesis import given
from hypothesis import strategies as st

from services.warning import domain
from services.warning.domain import Entry, Listing, Standing
from tests.support.subjects import new_resident_id, new_uscc, wrong_check

CATALOG = Catalog.of(load_files([Path(__file__).resolve().parents[3] / "deploy" / "catalog"]))
CALENDAR = WorkingDayCalendar(CATALOG.calendars())
KEY = CATALOG.key_fields()
TODAY = date(2026, 11, 25)


def is_key(code: str) -> bool:
    return code in KEY


def e(designation_id: str, field: str, unit: str = "100000-SAT") -> Entry:
    return Entry(designation_id, field, unit, date(2026, 1, 1), date(2027, 12, 31))


# ---------------------------------------------------------------------- the warning list


def test_three_distinct_key_fields_list_the_subject_with_every_entry_in_them() -> None:
    entries = [e("d1", "taxation"), e("d2", "customs"), e("d3", "environment"), e("d4", "e_commerce")]
    change = domain.evaluate(None, entries, is_key, 3, TODAY)
    assert change is not None
    assert change.type == domain.LISTED
    assert change.after == Standing(Listing(("customs", "environment", "taxation"), ("d1", "d2", "d3")), TODAY)


def test_two_entries_in_one_field_count_once_but_both_caused_it() -> None:
    two_fields = [e("d1", "taxation"), e("d2", "taxation"), e("d3", "customs")]
    assert domain.evaluate(None, two_fields, is_key, 3, TODAY) is None
    change = domain.evaluate(None, [*two_fields, e("d4", "finance")], is_key, 3, TODAY)
    assert change is not None
    assert change.after.listing == Listing(("customs", "finance", "taxation"), ("d1", "d2", "d3", "d4"))


def test_entries_outside_key_fields_never_count() -> None:
    entries = [e("d1", "taxation"), e("d2", "customs"), e("d3", "e_commerce"), e("d4", "transport")]
    assert domain.evaluate(None, entries, is_key, 3, TODAY) is None


def test_a_change_of_fields_or_entries_while_listed_is_an_update_keeping_since() -> None:
    since = date(2026, 1, 5)
    before = Standing(Listing(("customs", "environment", "taxation"), ("d1", "d2", "d3")), since)
    base = [e("d1", "taxation"), e("d2", "customs"), e("d3", "environment")]
    assert domain.evaluate(before, base, is_key, 3, TODAY) is None  # nothing changed
    more = domain.evaluate(before, [*base, e("d4", "finance")], is_key, 3, TODAY)
    assert more is not None
    assert more.type == domain.UPDATED
    assert more.after == Standing(
        Listing(("customs", "environment", "finance", "taxation"), ("d1", "d2", "d3", "d4")), since
    )
    same_field = domain.evaluate(before, [*base, e("d5", "taxation")], is_key, 3, TODAY)
    assert same_field is not None
    assert same_field.type == domain.UPDATED
    assert same_field.after.listing is not None
    assert same_field.after.listing.fields == ("customs", "environment", "taxation")
    assert same_field.after.listing.designation_ids == ("d1", "d2", "d3", "d5")
    # An entry outside the key fields changes nothing.
    assert domain.evaluate(before, [*base, e("d6", "e_commerce")], is_key, 3, TODAY) is None


def test_falling_below_the_threshold_clears_with_the_remaining_key_fields() -> None:
    before = Standing(Listing(("customs", "environment", "taxation"), ("d1", "d2", "d3")), date(2026, 1, 5))
    change = domain.evaluate(before, [e("d1", "taxation"), e("d2", "customs"), e("d9", "e_commerce")], is_key, 3, TODAY)
    assert change is not None
    assert change.type == domain.CLEARED
    assert change.after == Standing(None, None)
    assert change.remaining_fields == ("customs", "taxation")


def test_a_field_ceasing_to_be_key_clears_and_becoming_key_lists() -> None:
    entries = [e("d1", "taxation"), e("d2", "customs"), e("d3", "e_commerce")]
    before = domain.evaluate(None, entries, lambda f: f in KEY | {"e_commerce"}, 3, TODAY)
    assert before is not None
    assert before.type == domain.LISTED
    cleared = domain.evaluate(before.after, entries, is_key, 3, TODAY)
    assert cleared is not None
    assert cleared.type == domain.CLEARED


def test_the_threshold_is_configuration() -> None:
    entries = [e("d1", "taxation"), e("d2", "customs")]
    assert domain.evaluate(None, entries, is_key, 3, TODAY) is None
    change = domain.evaluate(None, entries, is_key, 2, TODAY)
    assert change is not None
    assert change.type == domain.LISTED


def test_a_subject_never_listed_with_nothing_left_changes_nothing() -> None:
    assert domain.evaluate(None, [], is_key, 3, TODAY) is None
    assert domain.evaluate(Standing(None), [e("d1", "taxation")], is_key, 3, TODAY) is None


FIELDS = ["taxation", "customs", "environment", "finance", "e_commerce", "transport"]


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(FIELDS), st.booleans()),
        max_size=40,
    )
)
def test_evaluating_after_every_change_tracks_the_listing(steps: list[tuple[str, bool]]) -> None:
    """Adding and removing entries one at a time: the events emitted, applied in turn, always
    leave the standing equal to a listing computed from scratch."""
    entries: list[Entry] = []
    standing: Standing | None = None
    for n, (field, add) in enumerate(steps):
        if add:
            entries.append(e(f"d{n:03d}", field))
        else:
            entries = [x for x in entries if x.field != field]
        change = domain.evaluate(standing, entries, is_key, 3, TODAY)
        expected = domain.listing_of(entries, is_key, 3)
        if change is not None:
            was_listed = standing is not None and standing.listing is not None
            assert change.type == (
                domain.CLEARED if expected is None else domain.UPDATED if was_listed else domain.LISTED
            )
            standing = change.after
        assert (standing.listing if standing else None) == expected


# ---------------------------------------------------------------------- conduct reports


def report(subject: dict[str, Any] | None = None, **kw: Any) -> ReportConduct:
    return ReportConduct.model_validate(
        {
            "subject": subject or {"kind": "legal_person", "scheme": "uscc", "id": new_uscc(), "name": "Example Co."},
            "field": kw.pop("field", "taxation"),
            "serious": kw.pop("serious", True),
            "occurred_on": "2026-11-20",
            "document_no": "R-1",
            "description": "Tax evasion of a serious amount.",
            **kw,
        }
    )


def codes(exc: pytest.ExceptionInfo[Rejected]) -> set[tuple[str, str | None]]:
    return {(x.code, x.field) for x in exc.value.errors}


def test_a_valid_report_gives_the_normalised_subject() -> None:
    uscc = new_uscc()
    r = report({"kind": "legal_person", "scheme": "uscc", "id": " " + uscc.lower() + " ", "name": "Co."})
    assert domain.validate_report(r, unit_code="110000-SAT", catalog=CATALOG) == uscc


@pytest.mark.parametrize(
    ("unit", "field", "expected"),
    [
        (None, "taxation", {("unknown_unit", "source")}),
        ("999999-XYZ", "taxation", {("unknown_unit", "source")}),
        ("100000-CFDA", "food_drug", {("unit_inactive", "source")}),
        ("110000-SAT", "customs", {("field_not_authorised", "field")}),
        ("110000-SAT", "no_such_field", {("unknown_field", "field")}),
        ("999999-XYZ", "no_such_field", {("unknown_unit", "source"), ("unknown_field", "field")}),
    ],
)
def test_unit_and_field_rules(unit: str | None, field: str, expected: set[tuple[str, str | None]]) -> None:
    with pytest.raises(Rejected) as exc:
        domain.validate_report(report(field=field), unit_code=unit, catalog=CATALOG)
    assert codes(exc) == expected


def test_identifier_rules() -> None:
    bad_check = {"kind": "legal_person", "scheme": "uscc", "id": wrong_check(new_uscc()), "name": "Co."}
    with pytest.raises(Rejected) as exc:
        domain.validate_report(report(bad_check), unit_code="110000-SAT", catalog=CATALOG)
    assert codes(exc) == {("invalid_checksum", "subject.id")}
    wrong_scheme = {"kind": "natural_person", "scheme": "uscc", "id": new_uscc(), "name": "Li Na"}
    with pytest.raises(Rejected) as exc:
        domain.validate_report(report(wrong_scheme), unit_code="110000-SAT", catalog=CATALOG)
    assert codes(exc) == {("invalid_identifier", "subject.id")}
    person = {"kind": "natural_person", "scheme": "resident_id", "id": new_resident_id(), "name": "Li Na"}
    assert domain.validate_report(report(person), unit_code="110000-SAT", catalog=CATALOG) == person["id"]


# ---------------------------------------------------------------------- transfer recommendations


def test_a_serious_report_recommends_a_transfer_of_each_entry_in_its_field() -> None:
    entries = [e("d2", "taxation", "110108-SAT"), e("d1", "taxation", "110000-SAT"), e("d3", "customs")]
    recs = domain.recommend(
        report_id="r1",
        field="taxation",
        serious=True,
        occurred_on=date(2026, 11, 20),
        entries=entries,
        pending=lambda d: False,
        report_day=date(2026, 11, 25),
        calendar=CALENDAR,
    )
    assert [(r.designation_id, r.unit, r.field) for r in recs] == [
        ("d1", "110000-SAT", "taxation"),
        ("d2", "110108-SAT", "taxation"),
    ]
    assert {r.due_on for r in recs} == {date(2026, 12, 2)}  # Wed + 5 working days
    assert recs[0].recommendation_id == domain.recommendation_id("r1", "d1") != recs[1].recommendation_id


def test_no_recommendation_without_seriousness_a_matching_entry_or_when_one_is_pending() -> None:
    entries = [e("d1", "taxation")]
    common: dict[str, Any] = {
        "report_id": "r",
        "entries": entries,
        "report_day": TODAY,
        "calendar": CALENDAR,
        "occurred_on": date(2026, 11, 20),
    }
    assert domain.recommend(field="taxation", serious=False, pending=lambda d: False, **common) == []
    assert domain.recommend(field="customs", serious=True, pending=lambda d: False, **common) == []
    assert domain.recommend(field="taxation", serious=True, pending=lambda d: d == "d1", **common) == []


@pytest.mark.parametrize(
    ("occurred_on", "recommended"),
    [
        (date(2025, 12, 31), False),  # before the entry began: what put the subject under scrutiny
        (date(2026, 1, 1), True),  # its first day
        (date(2027, 12, 31), True),  # its last day
        (date(2028, 1, 1), False),  # after its period (a late report about an entry still active)
    ],
)
def test_a_transfer_is_recommended_only_for_conduct_within_the_entrys_period(
    occurred_on: date, recommended: bool
) -> None:
    recs = domain.recommend(
        report_id="r",
        field="taxation",
        serious=True,
        occurred_on=occurred_on,
        entries=[e("d1", "taxation")],
        pending=lambda d: False,
        report_day=TODAY,
        calendar=CALENDAR,
    )
    assert bool(recs) is recommended


@pytest.mark.parametrize(
    ("report_day", "due"),
    [
        # 2026 from chinese-calendar: Mid-Autumn Fri 25 Sep off, Sun 20 Sep worked.
        (date(2026, 9, 18), date(2026, 9, 24)),
        # National Day 1-7 Oct 2026 off, Sat 10 Oct worked.
        (date(2026, 9, 30), date(2026, 10, 13)),
        # 2027 from the catalogue's provisional record: Sun 26 Sep worked; National Day off; Sat 9 Oct worked.
        (date(2027, 9, 24), date(2027, 9, 30)),
        (date(2027, 9, 29), date(2027, 10, 12)),
        # Spring Festival 2027: Sun 31 Jan worked, 5-13 Feb off.
        (date(2027, 1, 29), date(2027, 2, 4)),
        (date(2027, 2, 3), date(2027, 2, 18)),
    ],
)
def test_due_in_five_working_days(report_day: date, due: date) -> None:
    assert domain.due_on(report_day, CALENDAR) == due


def test_overdue_at_the_start_of_the_day_after_due_in_shanghai() -> None:
    at = domain.overdue_at(date(2027, 10, 12))
    assert at == datetime(2027, 10, 13, tzinfo=SHANGHAI)
    assert at.utcoffset() == timedelta(hours=8)
