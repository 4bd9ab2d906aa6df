"""The sample import files hold the same entries, each one the platform would import for the
sample unit: the standard's field is the unit's, the unit's level is enough, the period within
the standard's maximum and the statutory one, the identifier valid. Active, ended and removed
entries, red, black and key-scrutiny, all among them."""

from __future__ import annotations

from datetime import date, timedelta

from credit_common.contracts.common import level_at_least
from credit_common.identifiers import check_identifier
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files

from tests.unit.imports.samples import CSV, JSONL, ROOT, UNIT, sample_entries

CATALOG = Catalog.of(load_files([ROOT / "deploy" / "catalog"]))
STATUTORY_MAX_DAYS = {"black": 1095, "key_scrutiny": 730}
TODAY = date(2026, 12, 5)


def test_every_entry_is_one_the_unit_may_import() -> None:
    unit = CATALOG.unit(UNIT)
    assert unit is not None
    assert unit.active
    for entry in sample_entries():
        std = CATALOG.standard(entry["standard"])
        assert std is not None, entry["ref"]
        assert std.status == "in_force"
        assert std.list == entry["list"]
        assert std.field in unit.authorised_fields
        assert level_at_least(unit.level, std.min_level)
        start, end = date.fromisoformat(entry["effective_from"]), date.fromisoformat(entry["effective_to"])
        days = (end - start).days + 1
        assert days <= min(std.max_period_days, STATUTORY_MAX_DAYS.get(std.list, std.max_period_days)), entry["ref"]
        decided = date.fromisoformat(entry["decision"]["decided_on"])
        assert date(2018, 1, 1) <= decided <= start <= end
        subject = entry["subject"]
        assert check_identifier(subject["scheme"], subject["kind"], subject["id"], False).ok
        if "removed_on" in entry:
            assert start <= date.fromisoformat(entry["removed_on"]) <= end + timedelta(days=1)


def test_the_samples_cover_each_kind_of_entry() -> None:
    entries = sample_entries()
    assert {e["list"] for e in entries} == {"red", "black", "key_scrutiny"}
    active = [e for e in entries if "removed_on" not in e and date.fromisoformat(e["effective_to"]) >= TODAY]
    ended = [e for e in entries if "removed_on" not in e and date.fromisoformat(e["effective_to"]) < TODAY]
    removed = [e for e in entries if e.get("removal_reason") == "revoked"]
    assert {e["list"] for e in active} == {"red", "black", "key_scrutiny"}
    assert all(date.fromisoformat(e["effective_to"]).year >= 2027 for e in active)
    assert ended
    assert removed
    assert len({e["subject"]["id"] for e in entries}) == len(entries)  # no entry meets another


def test_both_layouts_hold_the_same_rows() -> None:
    assert len(CSV.read_text(encoding="utf-8").splitlines()) == len(JSONL.read_text(encoding="utf-8").splitlines()) + 1
