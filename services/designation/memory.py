"""The designation store in memory: what the handlers' unit tests and the demo run them over. It
keeps the designations as the table keeps them (their JSON), the decision audit and the request
ledger, and hands out records read back from that JSON, as the database would."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from credit_common.contracts.events import DesignationRecord

from .store import BatchWrite, record_of


class MemoryStore:
    """The designation service's tables in memory, shared by every batch (`store_for` returns it)."""

    def __init__(self) -> None:
        self.designations: dict[str, dict[str, Any]] = {}
        self._of_subject: dict[str, set[str]] = {}  # the subject index the table has
        self.audit: list[tuple[Any, ...]] = []
        self.signatures: list[tuple[Any, ...]] = []
        self.ledger: dict[tuple[str, str], tuple[Any, ...]] = {}  # (unit, request id): a request's key

    def record(self, designation_id: str) -> DesignationRecord:
        return record_of(self.designations[designation_id])

    async def load_for_batch(
        self, designation_ids: Iterable[str], subject_ids: Iterable[str]
    ) -> list[DesignationRecord]:
        found = {i for i in designation_ids if i in self.designations}
        for subject_id in subject_ids:
            found.update(i for i in self._of_subject.get(subject_id, ()) if self.designations[i]["status"] == "active")
        return [record_of(self.designations[i]) for i in sorted(found)]

    async def load_active_of_standard(self, standard: str) -> list[DesignationRecord]:
        return [
            record_of(doc)
            for _, doc in sorted(self.designations.items())
            if doc["standard"] == standard and doc["status"] == "active"
        ]

    async def write_batch(self, batch: BatchWrite) -> None:
        for record, doc, _created, _updated in batch.new:
            if record.designation_id in self.designations:
                raise ValueError(f"designation {record.designation_id} inserted twice")  # the primary key
            self.designations[record.designation_id] = doc
            self._of_subject.setdefault(record.subject.id, set()).add(record.designation_id)
        for record, doc, _at in batch.changed:
            self.designations[record.designation_id] = doc
        for row in batch.audit:  # (request id, designation, kind, unit, ...): keyed (unit, request id)
            if not any((a[3], a[0]) == (row[3], row[0]) for a in self.audit):
                self.audit.append(row)
        for row in batch.signatures:  # (request id, designation, principal, ...): keyed (principal, request id)
            if not any((s[2], s[0]) == (row[2], row[0]) for s in self.signatures):
                self.signatures.append(row)
        for answer in batch.answers:  # (request id, type, unit, status, ...)
            self.ledger.setdefault((answer[2], answer[0]), answer)
