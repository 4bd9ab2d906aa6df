"""The case rules and the indicator arithmetic, without I/O, over the shipped sample catalogue."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from credit_common.contracts.requests import ReportEnforcement
from credit_common.outcomes import Rejected
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files

from services.cases import domain
from tests.support.subjects import new_resident_id, new_uscc

CATALOG = Catalog.of(load_files([Path(__file__).resolve().parents[3] / "deploy" / "catalog"]))


def entry(list_: str = "black", field: str = "taxation", **changes: Any) -> domain.Entry:
    record = {
        "designation_id": "d-1",
        "list": list_,
        "field": field,
        "standard": f"{field}-{list_}",
        "subject": {"kind": "legal_person", "scheme": "uscc", "id": new_uscc(), "name": "Example Co."},
        "unit": "110108-SAT",
        "region": "110108",
        "decision": {"document_no": "D-1", "decided_on": "2026-01-05", "facts": "Facts."},
        "effective_from": "2026-01-05",
        "effective_to": "2027-01-04",
        "public": True,
        "status": "active",
        **changes,
    }
    return domain.Entry.of(record, datetime(2026, 1, 5, 4, 0, tzinfo=UTC))


def req(measure: str = "tax-black-customs-inspection", applied_on: date = date(2026, 3, 1)) -> ReportEnforcement:
    return ReportEnforcement.model_validate(
        {
            "designation_id": "d-1",
            "measure": measure,
            "applied_on": applied_on.isoformat(),
            "outcome": "Applied.",
            "description": "Applied.",
            "typical": False,
            "media": [],
        }
    )


def check(
    r: ReportEnforcement, e: domain.Entry | None, unit: str | None = "440000-GAC", objection_open: bool = False
) -> domain.CaseFacts:
    return domain.check_report(
        r, unit_code=unit, entry=e, catalog=CATALOG, objection_open=objection_open, reported_on=date(2026, 6, 1)
    )


def codes(r: ReportEnforcement, e: domain.Entry | None, **kw: Any) -> list[str]:
    with pytest.raises(Rejected) as exc:
        check(r, e, **kw)
    return sorted(err.code for err in exc.value.errors)


def test_an_accepted_report_names_its_mou_and_the_reporting_units_province() -> None:
    facts = check(req(), entry())
    assert facts.mou.code == "mou-2014-major-tax-violations"
    assert facts.measure.measure_kind == "punishment"
    assert (facts.unit, facts.province) == ("440000-GAC", "440000")


def test_each_rule_has_its_code() -> None:
    assert codes(req(), entry(), unit=None) == ["unknown_unit"]
    assert codes(req(), entry(), unit="100000-CFDA") == ["not_implementing_unit", "unit_inactive"]
    assert codes(req(), None) == ["unknown_designation"]
    assert codes(req("no-such"), entry()) == ["unknown_measure"]
    assert codes(req("tax-red-green-channel"), entry(), unit="110108-SAT") == ["measure_not_applicable"]
    assert codes(req("court-black-high-consumption"), entry(), unit="440000-MOT") == ["measure_not_applicable"]
    assert codes(req(), entry(), unit="110108-SAT") == ["not_implementing_unit"]
    assert codes(req(), entry(), objection_open=True) == ["suspended_under_objection"]
    assert codes(req(applied_on=date(2026, 1, 4)), entry()) == ["designation_not_active_on_date"]
    assert codes(req(applied_on=date(2026, 6, 2)), entry()) == ["designation_not_active_on_date"]  # after the report


def test_rewards_are_not_suspended_by_an_objection() -> None:
    red = entry("red", unit="110000-SAT", region="110000")
    assert check(req("tax-red-green-channel"), red, unit="110105-SAMR", objection_open=True).measure.code == (
        "tax-red-green-channel"
    )


def test_an_entry_is_active_from_its_start_to_its_end_and_not_on_the_day_it_was_removed() -> None:
    e = entry()
    assert not e.active_on(date(2026, 1, 4))
    assert e.active_on(date(2026, 1, 5))
    assert e.active_on(date(2027, 1, 4))
    assert not e.active_on(date(2027, 1, 5))
    # Removed at 01:00 on 1 March, Shanghai time (17:00 UTC the day before).
    gone = entry(status="removed", removal_reason="revoked", removed_at="2026-02-28T17:00:00+00:00")
    assert gone.removed_on == date(2026, 3, 1)
    assert gone.active_on(date(2026, 2, 28))
    assert not gone.active_on(date(2026, 3, 1))


def test_elapsed_fraction_of_a_year() -> None:
    assert domain.elapsed_fraction(2026, date(2025, 12, 31)) == 0.0
    assert domain.elapsed_fraction(2026, date(2026, 1, 1)) == 1 / 365
    assert domain.elapsed_fraction(2028, date(2028, 12, 31)) == 1.0  # leap year: 366/366
    assert domain.elapsed_fraction(2026, date(2027, 1, 1)) == 1.0


def test_count_indicator_statuses() -> None:
    mid = date(2026, 7, 2)  # 183/365 of the year
    f = 183 / 365

    def status(value: int, today: date = mid) -> str:
        return str(domain.count_indicator("x", "x", value, 30, 2026, today)["status"])

    assert status(30) == "met"
    assert status(15) == "at_risk"  # projects to 15 / (183/365) = 29.9
    assert domain.count_indicator("x", "x", 15, 30, 2026, mid)["projection"] == round(15 / f, 1)


def test_count_indicator_projection_decides_between_on_track_and_at_risk() -> None:
    mid = date(2026, 7, 2)
    assert domain.count_indicator("x", "x", 16, 30, 2026, mid)["status"] == "on_track"  # 31.9 projected
    assert domain.count_indicator("x", "x", 14, 30, 2026, mid)["status"] == "at_risk"  # 27.9 projected
    assert domain.count_indicator("x", "x", 29, 30, 2026, date(2027, 1, 1))["status"] == "missed"
    assert domain.count_indicator("x", "x", 0, 30, 2030, mid)["projection"] is None  # not begun


def test_ratio_indicator_statuses() -> None:
    mid = date(2026, 7, 2)
    assert domain.ratio_indicator("r", "r", 1, 10, 0.1, 2026, mid)["status"] == "on_track"
    assert domain.ratio_indicator("r", "r", 1, 11, 0.1, 2026, mid)["status"] == "at_risk"
    assert domain.ratio_indicator("r", "r", 1, 10, 0.1, 2025, mid)["status"] == "met"
    assert domain.ratio_indicator("r", "r", 0, 10, 0.1, 2025, mid)["status"] == "missed"
    none = domain.ratio_indicator("r", "r", 3, 0, 0.1, 2026, mid)
    assert (none["value"], none["status"]) == (None, "at_risk")


def test_public_subject_masks_natural_persons_only() -> None:
    rid = new_resident_id()
    masked = domain.public_subject({"kind": "natural_person", "scheme": "resident_id", "id": rid, "name": "Li"})
    assert masked["id"] == rid[:6] + "********" + rid[-4:]
    code = new_uscc()
    assert domain.public_subject({"kind": "legal_person", "scheme": "uscc", "id": code})["id"] == code


def test_progress_lists_fields_with_a_signed_mou_and_no_designation_and_units_without_liaison() -> None:
    everything = {f.code for f in CATALOG.fields()}
    assert domain.fields_without_designations(CATALOG, everything, date(2026, 1, 1)) == []
    missing = domain.fields_without_designations(CATALOG, everything - {"food_drug"}, date(2026, 1, 1))
    assert [m["field"] for m in missing] == ["food_drug"]
    assert missing[0]["mous"] == ["mou-2016-food-drug-safety"]
    # Before the MOU was signed, the field is not expected to designate yet.
    assert domain.fields_without_designations(CATALOG, everything - {"food_drug"}, date(2015, 1, 1)) == []
    units = {u["unit"] for u in domain.units_without_liaison(CATALOG)}
    assert "440106-SPC" in units
    assert "100000-CFDA" not in units  # inactive


def test_each_indicator_states_its_numerator_and_denominator_in_words() -> None:
    counts = domain.ScopeCounts(cases=5, media_cases=12, designations=40)
    scope = domain.indicators("province", "440000", counts, 2026, date(2026, 7, 2))
    share, media = scope["indicators"]
    assert share["in_words"] == (
        "5 enforcement cases shared in province 440000 in 2026 ÷ 40 red and black designations made in "
        "province 440000 in 2026 = 12.5% (target at least 10%; on track)"
    )
    assert media["in_words"].startswith("12 enforcement cases in province 440000 reported by provincial media")
    assert "target 30 a year" in media["in_words"]
    none = domain.indicators("national", None, domain.ScopeCounts(cases=1), 2026, date(2026, 7, 2))
    assert "no red or black designation made" in none["indicators"][0]["in_words"]
