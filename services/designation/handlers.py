"""Load, decide, save, emit. The designation consumer handles a batch set-wise: one read loads
every designation and active entry the batch touches, the rules run message by message in order
against that in-memory state, and one statement writes the changes with the events and answers
(outbox) and the request ledger.

Most batches take the consumer's optimistic path: the read is made without a lock, together with
the inbox check, and the write statement records the inbox rows too and re-reads the same rows,
locked, failing if any changed in between; then, and for batches with a reference record (a
repealed standard reads that standard's entries as it goes), the batch runs in a transaction that
reads under lock (`credit_common.messaging.consumer`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from credit_common.clock import SHANGHAI, local_day, local_today, start_of_local_day
from credit_common.contracts import events as ev
from credit_common.contracts import types as T
from credit_common.contracts.events import DesignationRecord
from credit_common.contracts.requests import (
    AmendDesignation,
    Designate,
    ImportDesignations,
    ImportEntry,
    RemoveDesignation,
)
from credit_common.db.outbox import write_outbox
from credit_common.deps import HandlerDeps
from credit_common.identifiers import normalise
from credit_common.messaging import topics
from credit_common.messaging.apply import ReadPlan
from credit_common.messaging.bus import Handlers
from credit_common.messaging.unit_of_work import Answer, Context, Incoming
from credit_common.outcomes import Accepted, ErrorItem, Rejected, derived_id
from credit_common.reference.catalog import Catalog
from credit_common.security.signing import principal_of
from credit_common.service import Runtime
from credit_common.telemetry.metrics import MS_BUCKETS
from prometheus_client import Counter, Histogram

from . import domain, emit, imports
from .store import READ_FOR_BATCH, BatchWrite, DesignationStore, Store, record_of

log = logging.getLogger(__name__)

EVENT_TYPES = (T.DESIGNATION_CREATED, T.DESIGNATION_AMENDED, T.DESIGNATION_REMOVED)
#: What the subject is told (`credit.subject.notices.v1`, read by the portal, which delivers it).
NOTICE_TYPES = (T.NOTICE_DESIGNATED, T.NOTICE_REMOVED)


@dataclass
class BatchState:
    """The designations a batch touches, as they stand after each message."""

    records: dict[str, DesignationRecord] = field(default_factory=dict)
    by_subject: dict[str, set[str]] = field(default_factory=dict)
    created: dict[str, datetime] = field(default_factory=dict)  # new in this batch: id -> created_at
    changed: dict[str, datetime] = field(default_factory=dict)  # existing, changed: id -> updated_at
    audit: list[tuple[Any, ...]] = field(default_factory=list)  # revocation and amendment decisions
    signatures: list[tuple[Any, ...]] = field(default_factory=list)  # accepted requests as signed
    _docs: dict[str, tuple[DesignationRecord, dict[str, Any]]] = field(default_factory=dict)

    def doc(self, record: DesignationRecord) -> dict[str, Any]:
        """The record as JSON, made once per version (emitted and stored alike)."""
        cached = self._docs.get(record.designation_id)
        if cached is not None and cached[0] is record:
            return cached[1]
        doc = emit.record_json(record)
        self._docs[record.designation_id] = (record, doc)
        return doc

    def accepted(self, inc: Incoming, designation_id: str) -> None:
        """Keep an accepted request as it was signed (request_signatures): who, with which key,
        when received, and the bytes the signature covers."""
        ev = inc.event
        if inc.signed is None or inc.received_at is None or not ev.signaturekid or not ev.signature:
            return  # not a verified request (a handler test driving the table without the bus)
        principal = principal_of(ev.source) or ev.source
        signed = inc.signed.decode()
        self.signatures.append(
            (ev.id, designation_id, principal, ev.signaturekid, ev.signature, inc.received_at, signed)
        )

    def lookup(self, designation_id: str) -> DesignationRecord | None:
        return self.records.get(designation_id)

    def active_of(self, subject_id: str) -> Iterable[DesignationRecord]:
        records = (self.records[i] for i in self.by_subject.get(subject_id, ()))
        return [r for r in records if r.status == "active"]

    def loaded(self, record: DesignationRecord) -> None:
        """A record as the database has it (no change to save)."""
        if record.designation_id not in self.records:
            self.records[record.designation_id] = record
            self.by_subject.setdefault(record.subject.id, set()).add(record.designation_id)

    def add(self, record: DesignationRecord, at: datetime) -> None:
        self.records[record.designation_id] = record
        self.by_subject.setdefault(record.subject.id, set()).add(record.designation_id)
        self.created[record.designation_id] = at

    def put(self, record: DesignationRecord, at: datetime) -> None:
        self.records[record.designation_id] = record
        if record.designation_id not in self.created:
            self.changed[record.designation_id] = at

    def new_rows(self) -> list[tuple[DesignationRecord, dict[str, Any], datetime, datetime]]:
        """The designations this batch created, as they stand at its end: (record, its JSON,
        created_at, updated_at). Those are written by `flush_batch` with the outbox and answers."""
        return [
            (self.records[i], self.doc(self.records[i]), at, self.changed.get(i, at)) for i, at in self.created.items()
        ]

    read: tuple[list[str], list[str], list[str]] | None = None  # optimistic path: what the rules read

    def write(self, ctx: Context) -> BatchWrite:
        """Everything the batch writes, with the consumer's outbox rows and answers."""
        changed = [i for i in self.changed if i not in self.created]
        return BatchWrite(
            new=self.new_rows(),
            changed=[(self.records[i], self.doc(self.records[i]), self.changed[i]) for i in changed],
            audit=self.audit,
            signatures=self.signatures,
            outbox=ctx.outbox,
            answers=_ledger_rows(ctx.answers),
            inbox=ctx.inbox,
            read=self.read,
        )


def batch_keys(items: Sequence[Incoming]) -> tuple[list[str], list[str]]:
    """The designations a batch names and the subjects it designates: what its rules read."""
    designation_ids: set[str] = set()
    subject_ids: set[str] = set()
    for inc in items:
        d = inc.data
        if isinstance(d, Designate):
            subject_ids.add(_subject_key(d))
            designation_ids.add(inc.event.id)  # the id it would name: taken already?
            if d.transfer_from:
                designation_ids.add(d.transfer_from)
        elif isinstance(d, RemoveDesignation | AmendDesignation | ev.ObjectionResolved | ev.RestorationResolved):
            designation_ids.add(d.designation_id)
        elif isinstance(d, ImportDesignations) and inc.unit:
            for entry in d.entries:
                designation_ids.add(imports.import_id(inc.unit, entry.ref))
                subject_ids.add(_subject_key(entry))
    return sorted(designation_ids), sorted(subject_ids)


def read_plan(items: Sequence[Incoming]) -> ReadPlan | None:
    """The optimistic path's read of a batch; a batch with a reference record goes the locking way."""
    if any(inc.topic == topics.REFERENCE for inc in items):
        return None
    return READ_FOR_BATCH, batch_keys(items)


def _subject_key(data: Designate | ImportEntry) -> str:
    try:
        return normalise(data.subject.scheme, data.subject.id)
    except Exception:
        return data.subject.id


class DesignationHandlers:
    """The handlers of the designation service, bound to its runtime (catalogue, clock, metrics)."""

    def __init__(self, runtime: HandlerDeps, store_for: Callable[[Context], Store] | None = None) -> None:
        self.rt = runtime
        # The batch's store: the table through the batch's connection, or one given (in memory).
        self.store_for: Callable[[Context], Store] = store_for or (lambda ctx: DesignationStore(ctx.conn))
        self.expiry_lateness = Histogram(
            "credit_expiry_lateness_seconds",
            "Time from the start of the day after effective_to (Asia/Shanghai) to the removal.",
            buckets=[*MS_BUCKETS, 30, 60, 120, 300],
            registry=runtime.registry,
        )
        self.imported = Counter(
            "credit_imported_entries_total",
            "Historical entries imported (credit.designation.import).",
            registry=runtime.registry,
        )

    @property
    def catalog(self) -> Catalog:
        return self.rt.reference.catalog

    def _removed(self, ctx: Context, removal: domain.Removal, **kw: Any) -> None:
        emit.removed(ctx, removal, self.rt.name, **kw)

    def _keep(self, ctx: Context, state: BatchState, result: domain.Designated, at: datetime, *, notify: bool) -> None:
        """Store a new designation and the removals it causes, and announce them (and, for a
        decision taken now rather than one imported from the past, tell the subject)."""
        state.add(result.record, at)
        doc = state.doc(result.record)
        emit.created(ctx, result.record, doc)
        if notify:
            emit.designated_notice(ctx, result.record, doc, self.catalog.standard(result.record.standard))
        for removal in result.removals:
            state.put(removal.record, at)
            self._removed(ctx, removal, doc=state.doc(removal.record))

    # ------------------------------------------------------------------ the batch

    def bus(self) -> Handlers[BatchState]:
        """The request consumer's handlers by contract model."""
        return Handlers(
            {
                Designate: self.designate,
                RemoveDesignation: self.revoke,
                AmendDesignation: self.amend,
                ImportDesignations: self.import_entries,
                ev.ObjectionResolved: self.objection_resolved,
                ev.RestorationResolved: self.restoration_resolved,
                ev.ReferenceUpserted: self.reference,
            },
            load=self.load,
            save=self.save,
        )

    async def load(self, items: Sequence[Incoming], ctx: Context) -> BatchState:
        """Every designation and active entry the batch touches: from the optimistic path's read
        (without a lock; the write checks it still holds), or read under lock."""
        state = BatchState()
        ids, subjects = batch_keys(items)
        if ctx.snapshot is not None:
            docs, versions = ctx.snapshot
            for doc in docs:
                state.loaded(record_of(doc))
            state.read = (ids, subjects, list(versions))
        else:
            for record in await self.store_for(ctx).load_for_batch(ids, subjects):
                state.loaded(record)
        return state

    @staticmethod
    async def save(state: BatchState, ctx: Context) -> None:
        ctx.pending = state  # written by flush_batch, with the outbox and the answers

    def designate(self, inc: Incoming, ctx: Context, state: BatchState) -> Accepted:
        at = inc.at
        result = domain.designate(
            inc.data,
            designation_id=inc.event.id,
            unit_code=inc.unit,
            catalog=self.catalog,
            today=at.astimezone(SHANGHAI).date(),
            at=at,
            active_of_subject=state.active_of,
            lookup=state.lookup,
        )
        self._keep(ctx, state, result, at, notify=True)
        state.accepted(inc, result.record.designation_id)
        return Accepted(result.record.designation_id)

    def revoke(self, inc: Incoming, ctx: Context, state: BatchState) -> Accepted:
        at = inc.at
        removal = domain.revoke(inc.data, unit_code=inc.unit, catalog=self.catalog, at=at, lookup=state.lookup)
        state.put(removal.record, at)
        state.audit.append(
            (
                inc.event.id,
                removal.record.designation_id,
                "revoke",
                inc.unit,
                inc.data.decision.model_dump(mode="json"),
                None,
                at,
            )
        )
        self._removed(ctx, removal)
        state.accepted(inc, removal.record.designation_id)
        return Accepted(removal.record.designation_id)

    def amend(self, inc: Incoming, ctx: Context, state: BatchState) -> Accepted:
        at = inc.at
        amended = domain.amend(
            inc.data,
            unit_code=inc.unit,
            catalog=self.catalog,
            lookup=state.lookup,
            today=at.astimezone(SHANGHAI).date(),
        )
        state.put(amended.record, at)
        state.audit.append(
            (inc.event.id, amended.record.designation_id, "amend", inc.unit, amended.changes, inc.data.reason, at)
        )
        emit.amended(ctx, amended.record, amended.changes, inc.data.reason)
        state.accepted(inc, amended.record.designation_id)
        return Accepted(amended.record.designation_id)

    def import_entries(self, inc: Incoming, ctx: Context, state: BatchState) -> Accepted:
        """A unit's historical entries (`imports`): each imported or refused on its own, in order
        (an entry meets the ones before it in the message as it would meet stored ones), answered
        once with the count and the refusals. Every imported entry is announced like a
        designation: active ones reach every list and timer, ended ones the history."""
        problem = imports.unit_problem(self.catalog, inc.unit)
        if problem is not None:
            raise Rejected(problem)
        assert inc.unit is not None
        at = inc.at
        today = local_day(at)
        imported = 0
        refused: list[dict[str, Any]] = []
        for entry in inc.data.entries:
            try:
                result = imports.import_entry(
                    entry,
                    designation_id=imports.import_id(inc.unit, entry.ref),
                    unit_code=inc.unit,
                    catalog=self.catalog,
                    today=today,
                    at=at,
                    active_of_subject=state.active_of,
                    lookup=state.lookup,
                )
            except Rejected as exc:
                refused.append({"ref": entry.ref, "errors": [e.as_dict() for e in exc.errors]})
                continue
            imported += 1
            self._keep(ctx, state, result, at, notify=False)
        state.accepted(inc, inc.event.id)
        ctx.after_commit(lambda: self.imported.inc(imported))
        return Accepted(inc.event.id, detail={"imported": imported, "refused": refused})

    def objection_resolved(self, inc: Incoming, ctx: Context, state: BatchState) -> None:
        d = inc.data
        at = inc.at
        if str(d.outcome) == "upheld":
            upheld = domain.remove_for(state.lookup(d.designation_id), "objection_upheld", at, d.objection_id)
            if upheld is not None:
                state.put(upheld.record, at)
                self._removed(ctx, upheld, doc=state.doc(upheld.record))

    def restoration_resolved(self, inc: Incoming, ctx: Context, state: BatchState) -> None:
        self._restoration(inc, ctx, state, inc.at)

    async def reference(self, inc: Incoming, ctx: Context, state: BatchState) -> None:
        await self._reference(inc, ctx, state, self.store_for(ctx), inc.at)

    def _restoration(self, inc: Incoming, ctx: Context, state: BatchState, at: datetime) -> None:
        d = inc.data
        if str(d.outcome) != "approved":
            return
        record = state.lookup(d.designation_id)
        if record is None or record.status != "active":
            return
        why_not = domain.restoration_allowed(record, self.catalog.standard(record.standard), d.decided_on)
        if why_not is not None:
            # The deciding unit is told on the feedback topic, answering its decide request.
            request_id = inc.event.causationid or d.application_id
            rejected = ev.RequestRejected.model_validate(
                {
                    "request_id": request_id,
                    "request_type": T.RESTORATION_DECIDE,
                    "errors": [ErrorItem("restoration_not_allowed", "outcome", why_not).as_dict()],
                }
            )
            ctx.publish_event(
                rejected, key=d.unit, id=derived_id(inc.event.id, self.rt.name, "restoration_not_allowed")
            )
            ctx.after_commit(lambda: self.rt.observer.rejected("restoration_not_allowed"))
            return
        removal = domain.remove_for(record, "restored", at, d.application_id)
        if removal is not None:
            state.put(removal.record, at)
            self._removed(ctx, removal, doc=state.doc(removal.record))

    async def _reference(self, inc: Incoming, ctx: Context, state: BatchState, store: Store, at: datetime) -> None:
        record = inc.data.root if hasattr(inc.data, "root") else inc.data
        if getattr(record, "kind", None) != "standard" or record.status != "repealed":
            return
        assert ctx.snapshot is None, "reference records take the locking path (read_plan)"
        for existing in await store.load_active_of_standard(record.code):
            state.loaded(existing)
        for entry in [r for r in state.records.values() if r.standard == record.code and r.status == "active"]:
            removal = domain.remove_for(entry, "standard_repealed", at, None)
            if removal is not None:
                state.put(removal.record, at)
                self._removed(ctx, removal, doc=state.doc(removal.record))

    # ------------------------------------------------------------------ expiry timer

    async def expire_due(self, runtime: Runtime, limit: int = 500) -> int:
        """Remove (`expired`) every active entry whose last day is over, Asia/Shanghai, by the
        platform clock. Each removal is stamped with its due time (the start of the day after
        `effective_to`) and a derived id, so it is the same event whoever emits it, whenever."""
        total = 0
        today = local_today(runtime.clock)
        while True:
            async with runtime.db.acquire() as conn, conn.transaction():
                store = DesignationStore(conn)
                due = await store.claim_expired(today, limit)
                if not due:
                    return total
                ctx = Context(conn=conn, clock=runtime.clock, service=runtime.name)
                now = runtime.clock.now()
                updates = []
                for record in due:
                    due_at = start_of_local_day(record.effective_to + timedelta(days=1))
                    expired = domain.remove_for(record, "expired", due_at, None)
                    assert expired is not None
                    removal = expired
                    doc = emit.record_json(removal.record)
                    updates.append((removal.record, doc, due_at))
                    self._removed(
                        ctx,
                        removal,
                        at=due_at,
                        id=derived_id(record.designation_id, runtime.name, "expired"),
                        doc=doc,
                    )
                    self.expiry_lateness.observe(max(0.0, (now - due_at).total_seconds()))
                await store.update(updates)
                await write_outbox(conn, ctx.outbox)
            total += len(due)


# ---------------------------------------------------------------------- request ledger


def _ledger_rows(answers: Sequence[Answer]) -> list[tuple[Any, ...]]:
    return [
        (
            a.request_id,
            a.request_type,
            a.unit,
            "accepted" if a.accepted else "rejected",
            a.result_id,
            a.errors,
            "platform/designation",
            a.time,
        )
        for a in answers
    ]


async def flush_batch(conn: Any, ctx: Context, store: Store | None = None) -> None:
    """The request consumer's writes, in one statement: what the batch's handlers left in
    `ctx.pending` (none when the batch held only dead letters and rejections), its outbox rows, its
    answers in the ledger and, on the optimistic path, its inbox rows and the check of what it read."""
    state = ctx.pending if isinstance(ctx.pending, BatchState) else BatchState()
    await (store or DesignationStore(conn)).write_batch(state.write(ctx))
