"""The in-memory catalogue: lookups, upserts and tombstones as the topic delivers them."""

from __future__ import annotations

from datetime import date

import pytest
from credit_common.contracts.reference import (
    FieldRecord,
    Liaison,
    Measure,
    MouRecord,
    StandardRecord,
    UnitRecord,
    reference_key,
)
from credit_common.reference.catalog import Catalog


def unit(code: str, fields: list[str], parent: str | None = None, level: str = "county") -> UnitRecord:
    return UnitRecord.model_validate(
        {
            "code": code,
            "name": code,
            "level": level,
            "region": code[:6],
            "unit_kind": "department",
            "authorised_fields": fields,
            "parent": parent,
            "liaison": {"name": "Li Na", "title": "Director", "phone": "020-1"},
        }
    )


def mou(code: str, *measures: tuple[str, list[str]]) -> MouRecord:
    return MouRecord(
        code=code,
        title=code,
        signed_on=date(2016, 1, 20),
        fields=["court_enforcement"],
        measures=[
            Measure(
                code=m,
                measure_kind="punishment",
                list="black",
                implementing_fields=f,
                description="d",
                legal_basis="b",
            )
            for m, f in measures
        ],
    )


@pytest.fixture
def catalog() -> Catalog:
    c = Catalog()
    for record in (
        FieldRecord(code="taxation", name="Taxation", key_field=True),
        FieldRecord(code="transport", name="Transport", key_field=False),
        unit("440106-SAMR", ["market_regulation"], parent="440100-SAMR"),
        unit("440106-MOT", ["transport"]),
        mou("mou-court", ("court-high-consumption", ["court_enforcement", "transport"])),
    ):
        c.apply(reference_key(record), record)
    return c


def test_lookups(catalog: Catalog) -> None:
    field = catalog.field("taxation")
    assert field is not None
    assert field.name == "Taxation"
    assert catalog.field("nope") is None
    assert catalog.key_fields() == {"taxation"}
    assert catalog.parent_of("440106-SAMR") == "440100-SAMR"
    assert catalog.parent_of("440106-MOT") is None
    assert catalog.parent_of("nope") is None
    assert catalog.province_of("440106-SAMR") == "440000"
    assert catalog.province_of("nope") is None
    assert [u.code for u in catalog.units()] == ["440106-MOT", "440106-SAMR"]
    assert [f.code for f in catalog.fields()] == ["taxation", "transport"]
    assert catalog.standards() == []
    assert len(catalog) == 5


def test_measures_and_implementing_units(catalog: Catalog) -> None:
    found = catalog.measure("court-high-consumption")
    assert found is not None
    assert found[0].code == "mou-court"
    assert found[1].implementing_fields == ["court_enforcement", "transport"]
    assert catalog.unit_implements("440106-MOT", "court-high-consumption")
    assert not catalog.unit_implements("440106-SAMR", "court-high-consumption")
    assert not catalog.unit_implements("nope", "court-high-consumption")
    assert not catalog.unit_implements("440106-MOT", "nope")


def test_upsert_replaces_and_version_counts_every_apply(catalog: Catalog) -> None:
    before = catalog.version
    catalog.apply("field:transport", FieldRecord(code="transport", name="Transport", key_field=True))
    assert catalog.key_fields() == {"taxation", "transport"}
    catalog.apply("field:unknown", None)  # a tombstone for nothing still counts
    assert catalog.version == before + 2


def test_tombstones_delete(catalog: Catalog) -> None:
    catalog.apply("unit:440106-MOT", None)
    assert catalog.unit("440106-MOT") is None
    assert not catalog.unit_implements("440106-MOT", "court-high-consumption")
    catalog.apply("mou:mou-court", None)
    assert catalog.mou("mou-court") is None
    assert catalog.measure("court-high-consumption") is None
    catalog.apply("future_kind:x", None)  # a kind this version does not know: ignored


def test_an_mou_update_reindexes_its_measures(catalog: Catalog) -> None:
    catalog.apply("mou:mou-court", mou("mou-court", ("court-procurement-ban", ["government_procurement"])))
    assert catalog.measure("court-high-consumption") is None
    assert catalog.measure("court-procurement-ban") is not None


def test_a_record_under_another_key_is_refused(catalog: Catalog) -> None:
    version = catalog.version
    with pytest.raises(ValueError, match="published under the key"):
        catalog.apply("field:customs", FieldRecord(code="taxation", name="Taxation", key_field=True))
    with pytest.raises(ValueError, match="not a reference key"):
        catalog.apply("taxation", None)
    assert catalog.version == version
    assert catalog.field("customs") is None


def test_standard_lookup_whatever_its_status() -> None:
    repealed = StandardRecord(
        code="food_drug-black-cfda",
        field="food_drug",
        list="black",
        title="t",
        legal_basis="b",
        min_level="county",
        default_period_days=730,
        max_period_days=1095,
        restorable=False,
        public=True,
        status="repealed",
        version=1,
    )
    c = Catalog.of([repealed])
    found = c.standard("food_drug-black-cfda")
    assert found is not None
    assert found.status == "repealed"
    assert c.records() == {"standard:food_drug-black-cfda": repealed}


def test_records_are_frozen() -> None:
    liaison = Liaison(name="Li Na", title="Director", phone="020-1")
    with pytest.raises(ValueError, match="frozen"):
        liaison.name = "someone else"  # type: ignore[misc]
