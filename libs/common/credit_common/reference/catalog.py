"""The reference data as an in-memory view: what every service's cache keeps up to date from
`credit.reference.v1`. Pure: no I/O, no clock; fed one keyed record (or tombstone) at a time."""

from __future__ import annotations

from collections.abc import Mapping

from credit_common.contracts.reference import (
    CalendarRecord,
    CampaignRecord,
    FieldRecord,
    KeyRecord,
    Measure,
    MouRecord,
    ReferenceRecord,
    StandardRecord,
    UnitRecord,
    reference_key,
    split_reference_key,
)


class Catalog:
    """Fields, units, standards, MOUs and calendar years, looked up by code.

    `apply` takes what the topic carries: a key `<kind>:<code>` and the record, or None for a
    tombstone. `version` increases on every apply, so a reader can tell that something changed.
    Records are shared, frozen instances.
    """

    def __init__(self) -> None:
        self.version = 0
        self._fields: dict[str, FieldRecord] = {}
        self._units: dict[str, UnitRecord] = {}
        self._standards: dict[str, StandardRecord] = {}
        self._mous: dict[str, MouRecord] = {}
        self._calendars: dict[str, CalendarRecord] = {}
        self._measures: dict[str, tuple[MouRecord, Measure]] = {}
        self._keys: dict[str, KeyRecord] = {}
        self._campaigns: dict[str, CampaignRecord] = {}

    # --- changes -----------------------------------------------------------------------------

    def apply(self, key: str, record: ReferenceRecord | None) -> None:
        """Upsert `record` under `key`, or delete the record of `key` when `record` is None.

        A record whose own `<kind>:<code>` differs from `key` is refused with ValueError (the
        cache logs and skips it). A tombstone for a kind this version does not know is a no-op.
        """
        kind, code = split_reference_key(key)
        if record is not None and reference_key(record) != key:
            raise ValueError(f"record {reference_key(record)!r} published under the key {key!r}")
        self.version += 1
        if record is None:
            self._delete(kind, code)
            return
        match record:
            case FieldRecord():
                self._fields[code] = record
            case UnitRecord():
                self._units[code] = record
            case StandardRecord():
                self._standards[code] = record
            case MouRecord():
                self._mous[code] = record
                self._index_measures()
            case CalendarRecord():
                self._calendars[code] = record
            case KeyRecord():
                self._keys[code] = record
            case CampaignRecord():
                self._campaigns[code] = record

    def _delete(self, kind: str, code: str) -> None:
        match kind:
            case "field":
                self._fields.pop(code, None)
            case "unit":
                self._units.pop(code, None)
            case "standard":
                self._standards.pop(code, None)
            case "mou":
                if self._mous.pop(code, None) is not None:
                    self._index_measures()
            case "calendar":
                self._calendars.pop(code, None)
            case "key":
                self._keys.pop(code, None)
            case "campaign":
                self._campaigns.pop(code, None)

    def _index_measures(self) -> None:
        # Rebuilt whole on every MOU change: there are few MOUs, and a measure code that two MOUs
        # share (the loader refuses it) then resolves to the one applied last, consistently.
        self._measures = {m.code: (mou, m) for mou in self._mous.values() for m in mou.measures}

    # --- lookups -----------------------------------------------------------------------------

    def field(self, code: str) -> FieldRecord | None:
        """The field `code`, or None."""
        return self._fields.get(code)

    def unit(self, code: str) -> UnitRecord | None:
        """The unit `code` (active or not), or None."""
        return self._units.get(code)

    def standard(self, code: str) -> StandardRecord | None:
        """The standard `code` whatever its status, or None."""
        return self._standards.get(code)

    def mou(self, code: str) -> MouRecord | None:
        """The MOU `code`, or None."""
        return self._mous.get(code)

    def measure(self, code: str) -> tuple[MouRecord, Measure] | None:
        """The measure `code` with the MOU that carries it, or None."""
        return self._measures.get(code)

    def calendar(self, year: int | str) -> CalendarRecord | None:
        """The calendar record of `year`, or None."""
        return self._calendars.get(str(year))

    def key(self, kid: str) -> KeyRecord | None:
        """The signing key `kid` (whatever its validity), or None."""
        return self._keys.get(kid)

    def keys_of(self, principal: str) -> list[KeyRecord]:
        """Every key of `principal`, ordered by key id."""
        return [k for c, k in sorted(self._keys.items()) if k.principal == principal]

    def campaign(self, code: str) -> CampaignRecord | None:
        """The campaign `code`, or None."""
        return self._campaigns.get(code)

    def campaigns(self) -> list[CampaignRecord]:
        """Every campaign, ordered by code."""
        return [self._campaigns[c] for c in sorted(self._campaigns)]

    def key_fields(self) -> set[str]:
        """The codes of the key fields (those that count toward the Big Data Warning List)."""
        return {code for code, f in self._fields.items() if f.key_field}

    def unit_implements(self, unit_code: str, measure_code: str) -> bool:
        """Whether one of the unit's authorised fields is among the measure's implementing fields.

        False for an unknown unit or measure. Whether the unit is active is not considered here.
        """
        unit = self._units.get(unit_code)
        found = self._measures.get(measure_code)
        if unit is None or found is None:
            return False
        return not set(unit.authorised_fields).isdisjoint(found[1].implementing_fields)

    def province_of(self, unit_code: str) -> str | None:
        """The province code of the unit's region (first two digits + `0000`), or None for an
        unknown unit. National units (region `100000`) give `100000`, not a province."""
        unit = self._units.get(unit_code)
        return None if unit is None else unit.region[:2] + "0000"

    def parent_of(self, unit_code: str) -> str | None:
        """The code of the unit's parent (where its overdue items escalate), or None."""
        unit = self._units.get(unit_code)
        return None if unit is None else unit.parent

    def units(self) -> list[UnitRecord]:
        """Every unit, ordered by code."""
        return [self._units[c] for c in sorted(self._units)]

    def fields(self) -> list[FieldRecord]:
        """Every field, ordered by code."""
        return [self._fields[c] for c in sorted(self._fields)]

    def standards(self) -> list[StandardRecord]:
        """Every standard whatever its status, ordered by code."""
        return [self._standards[c] for c in sorted(self._standards)]

    def mous(self) -> list[MouRecord]:
        """Every MOU, ordered by code."""
        return [self._mous[c] for c in sorted(self._mous)]

    def calendars(self) -> list[CalendarRecord]:
        """Every calendar record, ordered by year."""
        return [self._calendars[c] for c in sorted(self._calendars)]

    def records(self) -> dict[str, ReferenceRecord]:
        """Every record by its key `<kind>:<code>` (what a full publish of this catalogue sends)."""
        out: dict[str, ReferenceRecord] = {}
        for table in self._tables():
            for record in table.values():
                out[reference_key(record)] = record
        return out

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables())

    def _tables(self) -> tuple[Mapping[str, ReferenceRecord], ...]:
        return (
            self._fields,
            self._units,
            self._standards,
            self._mous,
            self._calendars,
            self._keys,
            self._campaigns,
        )

    @classmethod
    def of(cls, records: list[ReferenceRecord]) -> Catalog:
        """A catalogue holding `records` (e.g. what the loader returned)."""
        catalog = cls()
        for record in records:
            catalog.apply(reference_key(record), record)
        return catalog
