"""The sample catalogue in deploy/catalog/ validates and is rich enough for the demo and the tests."""

from __future__ import annotations

from collections import Counter

from credit_common.calendar import WorkingDayCalendar
from credit_common.contracts.reference import ReferenceRecord, reference_key
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import NATIONAL_REGION


def test_every_record_has_a_unique_key(shipped_records: list[ReferenceRecord]) -> None:
    keys = [reference_key(r) for r in shipped_records]
    assert len(keys) == len(set(keys))
    # Ordered so that what a record refers to is published before it.
    kinds = [r.kind for r in shipped_records]
    assert kinds == sorted(kinds, key=["field", "unit", "standard", "mou", "calendar", "campaign"].index)


def test_fields(shipped: Catalog) -> None:
    assert len(shipped.fields()) >= 12
    assert len(shipped.key_fields()) >= 6
    for code in ("taxation", "customs", "environment", "food_drug", "work_safety", "court_enforcement"):
        assert code in shipped.key_fields()
    for code in ("e_commerce", "transport", "market_regulation", "finance", "construction"):
        assert shipped.field(code) is not None


def test_units_cover_levels_provinces_and_kinds(shipped: Catalog) -> None:
    units = shipped.units()
    assert len(units) >= 40
    assert {u.level for u in units} == {"national", "provincial", "prefecture", "county"}
    provinces = {shipped.province_of(u.code) for u in units if u.level != "national"}
    assert len(provinces) >= 5
    assert {"110000", "310000", "440000", "330000", "510000"} <= provinces
    associations = [u for u in units if u.unit_kind == "association"]
    assert len(associations) == 2
    for a in associations:
        assert a.level == "national"
        parent = shipped.unit(a.parent or "")
        assert parent is not None
        assert (parent.unit_kind, parent.level) == ("department", "national")
    assert [u.code for u in units if not u.active] == ["100000-CFDA"]
    without_liaison = [u.code for u in units if u.liaison is None]
    assert 1 <= len(without_liaison) < len(units) // 4


def test_every_non_national_unit_has_a_parent_and_a_code_from_its_region(shipped: Catalog) -> None:
    for unit in shipped.units():
        assert unit.code.startswith(unit.region + "-")
        if unit.level == "national":
            assert unit.region == NATIONAL_REGION
        else:
            assert unit.parent is not None
            assert shipped.unit(unit.parent) is not None


def test_the_tianhe_chain_escalates_to_the_state(shipped: Catalog) -> None:
    chain = ["440106-SAMR"]
    while (parent := shipped.parent_of(chain[-1])) is not None:
        chain.append(parent)
    assert chain == ["440106-SAMR", "440100-SAMR", "440000-SAMR", "100000-SAMR"]
    assert shipped.province_of("440106-SAMR") == "440000"


def test_standards(shipped: Catalog) -> None:
    standards = shipped.standards()
    by_list = Counter(s.list for s in standards if s.status == "in_force")
    assert by_list["red"] >= 5
    assert by_list["black"] >= 10
    assert by_list["key_scrutiny"] >= 10
    assert {s.status for s in standards} == {"draft", "in_force", "repealed"}
    assert [s.code for s in standards if s.status == "draft"] == ["e_commerce-red"]
    assert [s.code for s in standards if s.status == "repealed"] == ["food_drug-black-cfda"]
    restorable = [s for s in standards if s.restorable]
    assert restorable
    assert any(s.min_days_before_restoration == 365 for s in restorable)
    assert any(not s.restorable for s in standards if s.list == "black")
    assert any(not s.public for s in standards)
    for s in standards:
        assert s.default_period_days <= s.max_period_days
        if s.list == "black":
            assert s.max_period_days <= 1095
        if s.list == "key_scrutiny":
            assert s.max_period_days <= 730
    # Every key field can put subjects on a key-scrutiny list (the warning list needs 3 of them).
    key_scrutiny_fields = {s.field for s in standards if s.list == "key_scrutiny" and s.status == "in_force"}
    assert shipped.key_fields() <= key_scrutiny_fields


def test_mous_and_measures(shipped: Catalog) -> None:
    mous = shipped.mous()
    assert len(mous) >= 6
    kinds = Counter(m.measure_kind for mou in mous for m in mou.measures)
    assert kinds["reward"] >= 3
    assert kinds["punishment"] >= 10
    found = shipped.measure("court-black-high-consumption")
    assert found is not None
    mou, measure = found
    assert mou.code == "mou-2016-dishonest-judgment-debtors"
    assert measure.list == "black"
    # Every measure can be applied by at least one active unit.
    active = [u for u in shipped.units() if u.active]
    for mou in mous:
        for m in mou.measures:
            assert any(shipped.unit_implements(u.code, m.code) for u in active), m.code


def test_2027_is_known_from_the_calendar_record(shipped: Catalog) -> None:
    record = shipped.calendar(2027)
    assert record is not None
    calendar = WorkingDayCalendar(shipped.calendars())
    assert calendar.knows(2027)
    assert not calendar.is_working_day(record.holidays[0])
