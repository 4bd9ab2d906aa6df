"""The objection store in memory: what the handlers' unit tests and the demo run them over. It
keeps what the tables keep and hands out copies, as a database would."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .domain import PENDING, Entry
from .store import ApplicationRow, Loaded, ObjectionRow


class MemoryStore:
    """The objection service's tables in memory, shared by every batch (`store_for` returns it)."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.objections: dict[str, ObjectionRow] = {}
        self.applications: dict[str, ApplicationRow] = {}
        self.measures: dict[tuple[str, int], tuple[Any, ...]] = {}
        self._items_of: dict[str, set[str]] = {}  # designation -> its objection and application ids

    async def load(
        self, designation_ids: Iterable[str], objection_ids: Iterable[str], application_ids: Iterable[str]
    ) -> Loaded:
        oids, aids = set(objection_ids), set(application_ids)
        dids = set(designation_ids)
        dids.update(self.objections[o].designation_id for o in oids if o in self.objections)
        dids.update(self.applications[a].designation_id for a in aids if a in self.applications)
        out = Loaded()
        if not dids:
            return out  # the named items do not exist
        out.entries = [copy.deepcopy(self.entries[d]) for d in sorted(dids) if d in self.entries]
        on = {i for d in dids for i in self._items_of.get(d, ())}
        out.objections = [
            copy.deepcopy(self.objections[i])
            for i in sorted((oids | on) & self.objections.keys())
            if i in oids or self.objections[i].status in PENDING or self.objections[i].outcome == "rejected"
        ]
        out.applications = [
            copy.deepcopy(self.applications[i])
            for i in sorted((aids | on) & self.applications.keys())
            if i in aids or self.applications[i].status in PENDING
        ]
        return out

    async def save_entries(self, rows: Sequence[tuple[Entry, datetime]]) -> None:
        for entry, _at in rows:
            self.entries[entry.designation_id] = copy.deepcopy(entry)

    async def save_objections(self, rows: Sequence[ObjectionRow]) -> None:
        for row in rows:
            self.objections[row.objection_id] = copy.deepcopy(row)
            self._items_of.setdefault(row.designation_id, set()).add(row.objection_id)

    async def save_applications(self, rows: Sequence[ApplicationRow]) -> None:
        for row in rows:
            self.applications[row.application_id] = copy.deepcopy(row)
            self._items_of.setdefault(row.designation_id, set()).add(row.application_id)

    async def save_measures(self, rows: Sequence[tuple[Any, ...]]) -> None:
        for row in rows:
            if (row[0], row[1]) in self.measures:
                raise ValueError(f"measure {row[0]}#{row[1]} recorded twice")  # the table's primary key
            self.measures[(row[0], row[1])] = row
