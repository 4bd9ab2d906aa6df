"""What the demo's traffic believes the platform holds, and who may do what: the generator's
model, which `credit_demo.traffic.Traffic` builds its requests from and updates as it sends them.

Built from the reference catalogue (which unit may designate under which standard, which units
implement which measures, who reports conduct in which field) and from the requests sent so far
(subjects, active designations, open objections and applications). Pure: no I/O and no clock.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from credit_common.clock import SHANGHAI
from credit_common.contracts.common import level_at_least
from credit_common.contracts.reference import Measure, StandardRecord, UnitRecord
from credit_common.contracts.registry import topic_for
from credit_common.json import dumps
from credit_common.reference.catalog import Catalog

from credit_demo import malformed, subjects, texts
from credit_demo.model import Entry, Message, Pair, Pool, Subject, uuid7

WARNING_FIELDS = 3  # key fields that put a subject on the warning list (design.md 4)
SUBJECT_POOL = 50_000  # subjects kept for reuse (the oldest are forgotten)


class Book:
    """The catalogue's authorities, and the subjects, designations and open cases sent so far."""

    def __init__(self, catalog: Catalog, rng: random.Random, settle: timedelta) -> None:
        self.catalog = catalog
        self.rng = rng
        self.settle = settle
        units = [u for u in catalog.units() if u.active]
        standards = [s for s in catalog.standards() if s.status == "in_force"]
        self.key_fields = catalog.key_fields()
        # Who may designate under what: the unit is authorised for the field and at the level.
        self._pairs: dict[tuple[str, str], list[Pair]] = {}  # (kind of subject, list)
        self._pairs_of: dict[tuple[str, str], list[Pair]] = {}  # (field, list)
        for std in standards:
            for unit in units:
                if std.field in unit.authorised_fields and level_at_least(unit.level, std.min_level):
                    self._pairs_of.setdefault((std.field, std.list), []).append((unit, std))
                    for kind in ("legal_person", "natural_person", "other_org"):
                        if subjects.fits(kind, std.field):
                            self._pairs.setdefault((kind, std.list), []).append((unit, std))
        self._serial_fields = sorted(f for f in self.key_fields if (f, "key_scrutiny") in self._pairs_of)
        # Enforcement: the measures of MOUs covering a list and field, with the units implementing each.
        self._measures: dict[tuple[str, str], list[tuple[Measure, list[UnitRecord]]]] = {}
        for mou in catalog.mous():
            for m in mou.measures:
                implementing = [u for u in units if not set(u.authorised_fields).isdisjoint(m.implementing_fields)]
                if implementing:
                    for f in mou.fields:
                        self._measures.setdefault((m.list, f), []).append((m, implementing))
        self._reporters = {f.code: [u for u in units if f.code in u.authorised_fields] for f in catalog.fields()}
        self._units = units

        self._subjects: list[Subject] = []  # for reuse: a ring of the latest SUBJECT_POOL
        self._subjects_next = 0
        self._serials: list[Subject] = []
        self._active: Pool[Entry] = Pool()
        self._key_scrutiny: Pool[Entry] = Pool()
        self._restorable: Pool[Entry] = Pool()
        self._objections: deque[tuple[str, Entry, datetime]] = deque()
        self._applications: deque[tuple[str, Entry, datetime]] = deque()
        self._transfers: deque[tuple[Entry, datetime]] = deque()
        self._doc_seq: Counter[tuple[str, str]] = Counter()

    # --- what the model knows ------------------------------------------------------------------

    def active_entries(self) -> list[Entry]:
        """Every designation the demo believes active."""
        return list(self._active)

    def warning_subjects(self) -> list[Subject]:
        """Subjects the demo believes on key-scrutiny lists in enough key fields for the warning list."""
        found = {id(e.subject): e.subject for e in self._key_scrutiny}
        return [s for s in found.values() if len(s.key_scrutiny_fields(self.key_fields)) >= WARNING_FIELDS]

    # --- subjects, entries and messages ---------------------------------------------------------

    def _new_subject(self, kind: str, field_: str, unit: UnitRecord) -> Subject:
        province = None if unit.region == "100000" else unit.region[:2] + "0000"
        if kind == "natural_person":
            data = subjects.person(self.rng, province)
        elif kind == "other_org":
            data = subjects.organisation(self.rng, province)
        else:
            data = subjects.company(self.rng, field_, province)
        subject = Subject(data)
        if len(self._subjects) < SUBJECT_POOL:
            self._subjects.append(subject)
        else:  # forget the oldest
            self._subjects[self._subjects_next] = subject
            self._subjects_next = (self._subjects_next + 1) % SUBJECT_POOL
        return subject

    def _target(self, now: datetime) -> Entry | None:
        """An active entry old enough to act on, with no open objection or application."""
        return self._pick(self._active, now, lambda e: not e.busy)

    def _pick(self, pool: Pool[Entry], now: datetime, accept: Callable[[Entry], bool]) -> Entry | None:
        """A usable entry of `pool` that `accept`s, from a few random tries (None: none found)."""
        for _ in range(6):
            entry = pool.choice(self.rng)
            if entry is None:
                return None
            if self._usable(entry, now) and accept(entry):
                return entry
        return None

    def _usable(self, entry: Entry, now: datetime) -> bool:
        """Active, applied by the services by now (`settle`), and not expired."""
        if entry.active and entry.effective_to < today_of(now):
            self._retire(entry)  # expired
        return entry.active and entry.sent_at <= now - self.settle

    def _retire(self, entry: Entry) -> None:
        """The entry leaves its list; the platform closes its open objection or application."""
        entry.active = False
        entry.objection = entry.application = None
        if entry.subject.entries.get(entry.standard.code) is entry:
            del entry.subject.entries[entry.standard.code]
        for pool in (self._active, self._key_scrutiny, self._restorable):
            pool.discard(entry.designation_id)

    def _facts(self, std: StandardRecord) -> str:
        templates = texts.RED_FACTS if std.list == "red" else texts.PUNISHABLE_FACTS.get(std.field, texts.CONDUCT)
        return texts.fill(self.rng, self.rng.choice(templates))

    def _document_no(self, unit: UnitRecord, kind: str, today: date) -> str:
        key = (unit.code, kind)
        if key not in self._doc_seq:
            self._doc_seq[key] = self.rng.randint(1, 300)
        self._doc_seq[key] += 1
        return texts.document_no(unit.code, kind, today.year, self._doc_seq[key])

    def _uuid7(self, now: datetime) -> str:
        return uuid7(self.rng, now)

    def _event(
        self, type_: str, source: str, subject_id: str, data: dict[str, Any], now: datetime, *, id: str | None = None
    ) -> Message:
        eid = id or self._uuid7(now)
        event = malformed.envelope(eid, type_, source, subject_id, data, now)
        return Message(type_, topic_for(type_), subject_id.encode(), dumps(event), eid)


def today_of(now: datetime) -> date:
    """The platform's day (Asia/Shanghai) at `now`."""
    return now.astimezone(SHANGHAI).date()
