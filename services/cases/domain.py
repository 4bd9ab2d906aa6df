"""The enforcement-case and indicator rules of design.md section 4 (Enforcement cases,
Indicators): pure functions over an entry (the designation as its events carry it), the reference
catalogue and dates. No I/O: handlers load, call these, and save what they return."""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from credit_common.clock import local_day
from credit_common.contracts.reference import Measure, MouRecord
from credit_common.contracts.requests import ReportEnforcement
from credit_common.identifiers import mask_resident_id
from credit_common.outcomes import ErrorItem, Rejected
from credit_common.reference.catalog import Catalog

CASE_SHARE_TARGET = 0.10  # cases shared >= 10% of the red and black designations made
MEDIA_CASES_TARGET = 30  # media-reported cases per province per year
NATIONAL = "100000"  # the region (and "province") of national units: counted nationally only
COUNTED_LISTS = ("red", "black")  # the designations the case share is measured against


def province_of_region(region: str) -> str:
    return str(region)[:2] + "0000"


@dataclass(frozen=True, slots=True)
class Entry:
    """A designation as the case rules see it (`record`: the whole record, as its events carry it)."""

    designation_id: str
    subject_id: str
    list: str
    field: str
    standard: str
    unit: str
    province: str
    status: str
    effective_from: date
    effective_to: date
    decided_on: date
    removed_on: date | None
    removal_reason: str | None
    public: bool
    record: dict[str, Any]

    @classmethod
    def of(cls, record: dict[str, Any], at: datetime) -> Entry:
        """The entry of `record`, written by an event at `at` (the removal day when the record
        carries no `removed_at`)."""
        removed = record["status"] == "removed"
        removed_at = record.get("removed_at")
        removed_on = None
        if removed:
            removed_on = local_day(datetime.fromisoformat(removed_at) if removed_at else at)
        return cls(
            designation_id=record["designation_id"],
            subject_id=record["subject"]["id"],
            list=record["list"],
            field=record["field"],
            standard=record["standard"],
            unit=record["unit"],
            province=province_of_region(record["region"]),
            status=record["status"],
            effective_from=date.fromisoformat(record["effective_from"]),
            effective_to=date.fromisoformat(record["effective_to"]),
            decided_on=date.fromisoformat(record["decision"]["decided_on"]),
            removed_on=removed_on,
            removal_reason=record.get("removal_reason") if removed else None,
            public=bool(record.get("public", False)),
            record=record,
        )

    def active_on(self, day: date) -> bool:
        """On its list on `day`: within its effective period and not removed on or before it (an
        entry removed during a day is not counted as active on that day)."""
        if not self.effective_from <= day <= self.effective_to:
            return False
        return self.removed_on is None or day < self.removed_on


def _err(code: str, message: str, field: str | None = None) -> ErrorItem:
    return ErrorItem(code, field, message)


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What an accepted report adds to the entry: the measure, its MOU, the enforcing unit."""

    mou: MouRecord
    measure: Measure
    unit: str
    province: str


def check_report(
    req: ReportEnforcement,
    *,
    unit_code: str | None,
    entry: Entry | None,
    catalog: Catalog,
    objection_open: bool,
    reported_on: date,
) -> CaseFacts:
    """Accept an enforcement report or raise `Rejected` with every rule it breaks:
    - the reporting unit exists and is active;
    - the designation exists and was on its list on `applied_on` (which is not after the day the
      report was sent);
    - the measure exists in an MOU that covers the entry's list and field;
    - the reporting unit implements the measure (one of its authorised fields is among the
      measure's implementing fields);
    - no punishment while an objection is open on the entry;
    - a campaign named covers the entry's field and the unit's region, `applied_on` in its period."""
    errors: list[ErrorItem] = []
    unit = catalog.unit(unit_code) if unit_code else None
    if unit is None:
        errors.append(_err("unknown_unit", f"no unit {unit_code!r} in the reference catalogue", "source"))
    elif not unit.active:
        errors.append(_err("unit_inactive", f"unit {unit.code} is not active", "source"))
    found = catalog.measure(req.measure)
    if found is None:
        errors.append(_err("unknown_measure", f"no measure {req.measure!r} in any MOU", "measure"))
    if entry is None:
        errors.append(_err("unknown_designation", f"no designation {req.designation_id}", "designation_id"))
    if req.applied_on > reported_on:
        errors.append(
            _err(
                "designation_not_active_on_date",
                f"applied_on {req.applied_on} is after the day of the report ({reported_on})",
                "applied_on",
            )
        )
    elif entry is not None and not entry.active_on(req.applied_on):
        why = (
            f"removed on {entry.removed_on} ({entry.removal_reason})"
            if entry.removed_on is not None and entry.removed_on <= req.applied_on
            else f"effective {entry.effective_from} to {entry.effective_to}"
        )
        errors.append(
            _err(
                "designation_not_active_on_date",
                f"{entry.designation_id} was not on its list on {req.applied_on}: {why}",
                "applied_on",
            )
        )
    if found is not None and entry is not None:
        mou, measure = found
        if measure.list != entry.list or entry.field not in mou.fields:
            errors.append(
                _err(
                    "measure_not_applicable",
                    f"measure {measure.code} ({mou.code}) applies to the {measure.list} list in "
                    f"{', '.join(mou.fields)}; {entry.designation_id} is {entry.list} in {entry.field}",
                    "measure",
                )
            )
        if measure.measure_kind == "punishment" and objection_open:
            errors.append(
                _err(
                    "suspended_under_objection",
                    f"an objection is open on {entry.designation_id}: no punishment until it is decided",
                    "designation_id",
                )
            )
    if req.campaign is not None and entry is not None and unit is not None:
        campaign = catalog.campaign(req.campaign)
        # The contract has no code of its own for a campaign refused: `schema_violation`.
        refused: str | None = (
            f"no campaign {req.campaign!r} in the reference catalogue"
            if campaign is None
            else campaign.refusal(field=entry.field, region=unit.region, day=req.applied_on, what="a case")
        )
        if refused is not None:
            errors.append(_err("schema_violation", refused, "campaign"))
    if found is not None and unit is not None and not catalog.unit_implements(unit.code, req.measure):
        errors.append(
            _err(
                "not_implementing_unit",
                f"unit {unit.code} (fields {', '.join(unit.authorised_fields)}) does not implement "
                f"{req.measure} (implemented in {', '.join(found[1].implementing_fields)})",
                "measure",
            )
        )
    if errors:
        raise Rejected(errors)
    assert unit is not None
    assert found is not None
    return CaseFacts(mou=found[0], measure=found[1], unit=unit.code, province=province_of_region(unit.region))


# ---------------------------------------------------------------------------- public view


def public_subject(subject: dict[str, Any]) -> dict[str, Any]:
    """A subject as the public sees it: a natural person's identity number masked."""
    out = dict(subject)
    if out.get("kind") == "natural_person" or out.get("scheme") == "resident_id":
        out["id"] = mask_resident_id(str(out["id"]))
    return out


# ---------------------------------------------------------------------------- indicators


def elapsed_fraction(year: int, today: date) -> float:
    """How much of `year` has passed by the end of `today` (0 before it starts, 1 once it is over)."""
    if today.year < year:
        return 0.0
    if today.year > year:
        return 1.0
    days = 366 if _calendar.isleap(year) else 365
    return (today.timetuple().tm_yday) / days


def count_indicator(code: str, title: str, value: int, target: float, year: int, today: date) -> dict[str, Any]:
    """A yearly count against its target: year-to-date value, projection pro-rated to the whole
    year, and status: `met` once the count reaches the target (a count never falls), else
    `on_track` if the projection reaches it, `at_risk` if not, and `missed` once the year is over."""
    f = elapsed_fraction(year, today)
    projection = round(value / f, 1) if f > 0 else None
    if value >= target:
        status = "met"
    elif f >= 1.0:
        status = "missed"
    elif projection is not None and projection >= target:
        status = "on_track"
    else:
        status = "at_risk"
    return {"code": code, "title": title, "target": target, "value": value, "projection": projection, "status": status}


def ratio_indicator(
    code: str, title: str, numerator: int, denominator: int, target: float, year: int, today: date
) -> dict[str, Any]:
    """A yearly ratio against its target. The pro-rated projection of a ratio of two counts that
    both grow through the year is the year-to-date ratio itself. Status: `met` or `missed` once the
    year is over; before that `on_track` while the ratio reaches the target, else `at_risk` (a
    ratio can still fall, so it is never `met` early). No designations: no value, not reached."""
    f = elapsed_fraction(year, today)
    value = round(numerator / denominator, 4) if denominator else None
    reached = value is not None and value >= target
    status = ("met" if reached else "missed") if f >= 1.0 else ("on_track" if reached else "at_risk")
    return {
        "code": code,
        "title": title,
        "target": target,
        "value": value,
        "projection": value if f > 0 else None,
        "status": status,
        "numerator": numerator,
        "denominator": denominator,
    }


@dataclass(frozen=True, slots=True)
class ScopeCounts:
    """The year's counts for one scope (a province or the nation)."""

    cases: int = 0
    media_cases: int = 0
    designations: int = 0


CASE_SHARE = ("case_share", "Cases shared / red and black designations made")
MEDIA_CASES = ("media_reported_cases", "Cases reported by provincial media platforms")


def in_words(indicator: dict[str, Any], year: int, where: str) -> str:
    """What the figure counts and of what, in words beside the number (the notice words its
    indicators so; a reader should not have to guess the numerator and the denominator)."""
    status = str(indicator["status"]).replace("_", " ")
    if indicator["code"] == CASE_SHARE[0]:
        cases, made = indicator["numerator"], indicator["denominator"]
        head = f"{cases} enforcement cases shared {where} in {year}"
        if not made:
            return f"{head}, and no red or black designation made: no share yet (target at least 10%; {status})"
        return (
            f"{head} ÷ {made} red and black designations made {where} in {year} = {indicator['value']:.1%} "
            f"(target at least 10%; {status})"
        )
    projection = indicator["projection"]
    projected = "" if projection is None else f", {projection:g} projected for the whole year"
    return (
        f"{indicator['value']} enforcement cases {where} reported by provincial media platforms in {year}"
        f"{projected} (target {indicator['target']:g} a year; {status})"
    )


def indicators(scope: str, province: str | None, counts: ScopeCounts, year: int, today: date) -> dict[str, Any]:
    """The indicators of one scope: the case share for every scope; media-reported cases per
    province (its target is a province's)."""
    out = [
        ratio_indicator(*CASE_SHARE, counts.cases, counts.designations, CASE_SHARE_TARGET, year, today),
    ]
    if scope == "province":
        out.append(count_indicator(*MEDIA_CASES, counts.media_cases, MEDIA_CASES_TARGET, year, today))
    where = f"in province {province}" if province else "nationally"
    for indicator in out:
        indicator["in_words"] = in_words(indicator, year, where)
    return {
        "scope": scope,
        "province": province,
        "cases": counts.cases,
        "media_reported_cases": counts.media_cases,
        "red_black_designations": counts.designations,
        "indicators": out,
    }


# ---------------------------------------------------------------------------- progress


def fields_without_designations(catalog: Catalog, designated: set[str], today: date) -> list[dict[str, Any]]:
    """Fields covered by an MOU signed by `today` in which no designation was made yet."""
    mous: dict[str, list[str]] = {}
    for mou in catalog.mous():
        if mou.signed_on <= today:
            for f in mou.fields:
                mous.setdefault(f, []).append(mou.code)
    out = []
    for code in sorted(set(mous) - designated):
        field = catalog.field(code)
        out.append({"field": code, "name": field.name if field else None, "mous": sorted(mous[code])})
    return out


def units_without_liaison(catalog: Catalog) -> list[dict[str, Any]]:
    """Active units that named no liaison (nobody downloads the lists for them)."""
    return [
        {"unit": u.code, "name": u.name, "level": u.level, "region": u.region}
        for u in sorted(catalog.units(), key=lambda u: u.code)
        if u.active and u.liaison is None
    ]
