"""The warning store in memory: what the handlers' unit tests and the demo run them over. It keeps
what the tables keep and hands out copies, as a database would (a handler's change reaches it only
by being saved)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .store import EntryRow, RecommendationRow, WarningRow


class MemoryStore:
    """The warning service's tables in memory, shared by every batch (`store_for` returns it)."""

    def __init__(self) -> None:
        self.entries: dict[str, EntryRow] = {}
        self._of_subject: dict[str, set[str]] = {}  # the indexes the table has
        self._in_field: dict[str, set[str]] = {}
        self.warnings: dict[str, WarningRow] = {}
        self.recommendations: dict[str, RecommendationRow] = {}
        self.key_field: dict[str, bool] = {}
        self.reports: dict[str, tuple[Any, ...]] = {}

    async def lock_key_fields(self, *, exclusive: bool) -> None:
        return None  # one batch at a time in memory

    async def lock_subjects(self, subject_ids: Iterable[str]) -> None:
        return None

    async def subjects_with_fields(self, fields: Iterable[str]) -> list[str]:
        return sorted({self.entries[i].subject_id for f in set(fields) for i in self._in_field.get(f, ())})

    async def key_fields(self) -> dict[str, bool]:
        return dict(self.key_field)

    async def entries_of(self, subject_ids: Sequence[str]) -> list[EntryRow]:
        ids = sorted({i for s in set(subject_ids) for i in self._of_subject.get(s, ())})
        return [copy.deepcopy(self.entries[i]) for i in ids]

    async def warnings_of(self, subject_ids: Sequence[str]) -> list[WarningRow]:
        return [copy.deepcopy(self.warnings[s]) for s in subject_ids if s in self.warnings]

    async def pending_recommendations(
        self, subject_ids: Sequence[str], designation_ids: Sequence[str]
    ) -> list[RecommendationRow]:
        subjects, designations = set(subject_ids), set(designation_ids)
        return [
            copy.deepcopy(r)
            for _, r in sorted(self.recommendations.items())
            if r.status != "closed" and (r.subject_id in subjects or r.designation_id in designations)
        ]

    async def save_key_fields(self, rows: Sequence[tuple[str, bool, datetime]]) -> None:
        for code, key_field, _at in rows:
            self.key_field[code] = key_field

    async def save_entries(self, upserts: Sequence[EntryRow], at: dict[str, datetime], deletes: Sequence[str]) -> None:
        for designation_id in deletes:
            self._unindex(designation_id)
        for e in upserts:
            self._unindex(e.designation_id)
            self.entries[e.designation_id] = copy.deepcopy(e)
            self._of_subject.setdefault(e.subject_id, set()).add(e.designation_id)
            self._in_field.setdefault(e.field, set()).add(e.designation_id)

    def _unindex(self, designation_id: str) -> None:
        gone = self.entries.pop(designation_id, None)
        if gone is not None:
            self._of_subject[gone.subject_id].discard(designation_id)
            self._in_field[gone.field].discard(designation_id)

    async def save_warnings(self, rows: Sequence[WarningRow]) -> None:
        for w in rows:
            self.warnings[w.subject_id] = copy.deepcopy(w)

    async def save_recommendations(self, rows: Sequence[RecommendationRow]) -> None:
        for r in rows:
            self.recommendations[r.recommendation_id] = copy.deepcopy(r)

    async def reports_named(self, report_ids: Sequence[str]) -> set[str]:
        return {i for i in report_ids if i in self.reports}

    async def save_reports(self, rows: Sequence[tuple[Any, ...]]) -> None:
        for row in rows:
            if row[0] in self.reports:
                raise ValueError(f"report {row[0]} recorded twice")  # the table's primary key
            self.reports[row[0]] = row
