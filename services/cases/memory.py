"""The cases store in memory: what the handlers' unit tests and the demo run them over. It keeps
what the tables keep, as the handlers see it through `store.Store`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .domain import Entry
from .store import CASE_COLUMNS, Loaded, ObjectionRow


class MemoryStore:
    """One service's tables in memory, shared by every batch (`store_for` returns it)."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.objections: dict[str, ObjectionRow] = {}
        self.designations_made: Counter[tuple[int, str, str]] = Counter()
        self.cases: dict[str, dict[str, Any]] = {}

    async def load(self, designation_ids: Iterable[str]) -> Loaded:
        ids = set(designation_ids)
        entries = {i: self.entries[i] for i in ids if i in self.entries}
        open_: dict[str, set[str]] = {}
        for o in self.objections.values():
            if o[1] in ids and o[2] == "open":
                open_.setdefault(o[1], set()).add(o[0])
        return Loaded(entries, open_)

    async def save_entries(self, entries: Sequence[tuple[Entry, datetime]]) -> None:
        for entry, _at in entries:
            self.entries[entry.designation_id] = entry

    async def add_designations_made(self, made: Counter[tuple[int, str, str]]) -> None:
        self.designations_made.update(made)

    async def save_objections(self, rows: Sequence[ObjectionRow]) -> None:
        for row in rows:
            previous = self.objections.get(row[0])
            opened_at = previous[3] if previous is not None and previous[3] is not None else row[3]
            self.objections[row[0]] = (row[0], row[1], row[2], opened_at, row[4], row[5])

    async def close_objections_of(self, designation_ids: Sequence[str], at: datetime) -> None:
        for oid, o in list(self.objections.items()):
            if o[1] in designation_ids and o[2] == "open":
                self.objections[oid] = (o[0], o[1], "closed", o[3], at, o[5] or "entry_removed")

    async def cases_named(self, case_ids: Sequence[str]) -> set[str]:
        return {i for i in case_ids if i in self.cases}

    async def add_cases(self, cases: Sequence[tuple[Any, ...]]) -> None:
        for row in cases:
            case = dict(zip(CASE_COLUMNS, row, strict=True))
            if case["case_id"] in self.cases:
                raise ValueError(f"case {case['case_id']} recorded twice")  # the table's primary key
            self.cases[case["case_id"]] = case
