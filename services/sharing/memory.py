"""The sharing store in memory: what the handlers' unit tests and the demo run them over. It keeps
what the tables keep (inputs, history, current entries, numbered changes) as the handlers see it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from .domain import ACTIVE, Input, Version
from .store import ChangeRow


class MemoryStore:
    """The sharing service's tables in memory, shared by every batch (`store_for` returns it)."""

    def __init__(self) -> None:
        self.inputs: dict[str, list[Input]] = {}
        self.history: dict[str, list[Version]] = {}
        self.entries: dict[str, tuple[Version, int | None]] = {}
        self.changes: list[ChangeRow] = []
        self._open_warning: dict[str, str] = {}  # subject -> its active warning-list entry
        self.last_seq = 0
        self._arrival = 0

    async def lock(self, keys: Iterable[str]) -> None:
        return None  # one batch at a time in memory

    async def load_inputs(self, entry_ids: Sequence[str]) -> dict[str, list[Input]]:
        return {i: list(self.inputs.get(i, ())) for i in entry_ids}

    async def load_entries(self, entry_ids: Sequence[str]) -> dict[str, tuple[Version, int | None]]:
        # As the entries table keeps them: without the record and the cause of the version.
        return {
            i: (dataclasses.replace(self.entries[i][0], record={}, cause=""), self.entries[i][1])
            for i in entry_ids
            if i in self.entries
        }

    async def open_warnings(self, subject_ids: Sequence[str]) -> dict[str, str]:
        return {s: self._open_warning[s] for s in subject_ids if s in self._open_warning}

    async def allocate(self, n: int) -> int:
        first = self.last_seq + 1
        self.last_seq += n
        return first

    async def insert_inputs(self, inputs: Sequence[Input]) -> None:
        for i in inputs:
            self._arrival += 1  # stored arrivals come from a sequence, in insertion order
            self.inputs.setdefault(i.entry_id, []).append(dataclasses.replace(i, arrival=self._arrival))

    async def replace_history(self, versions: dict[str, list[Version]]) -> None:
        for entry_id, vs in versions.items():
            self.history[entry_id] = list(vs)

    async def replace_entries(self, current: Sequence[tuple[Version, int | None]]) -> None:
        for version, seq in current:
            self.entries[version.entry_id] = (version, seq)
            if version.list == "warning":
                if version.status == ACTIVE:
                    self._open_warning[version.subject_id] = version.entry_id
                elif self._open_warning.get(version.subject_id) == version.entry_id:
                    del self._open_warning[version.subject_id]

    async def insert_changes(self, rows: Sequence[ChangeRow]) -> None:
        self.changes.extend(rows)
