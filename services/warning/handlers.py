"""Load, decide, save, emit. The warning consumer handles a batch set-wise: it locks the subjects
the batch touches, loads their active key-scrutiny entries, warning standing and pending transfer
recommendations in a few queries, runs the rules message by message in order against that
in-memory state, and writes what changed; events go through the outbox in the same transaction.

Every event takes its id from the event that caused it (`derived_id`) and its time from that
event too, so a replay re-emits the very same events; the overdue timer stamps its events with
the due time and ids derived from the recommendation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from credit_common.clock import local_day, local_today
from credit_common.contracts import events as ev
from credit_common.contracts import types as T
from credit_common.contracts.events import DesignationRecord
from credit_common.contracts.reference import FieldRecord
from credit_common.contracts.registry import model_for
from credit_common.contracts.requests import ReportConduct
from credit_common.db.outbox import write_outbox
from credit_common.deps import HandlerDeps
from credit_common.identifiers import normalise
from credit_common.messaging import topics
from credit_common.messaging.bus import Handlers
from credit_common.messaging.unit_of_work import Context, Incoming
from credit_common.outcomes import Accepted, derived_id, id_taken
from credit_common.reference.catalog import Catalog
from credit_common.service import Runtime

from . import domain
from .store import EntryRow, RecommendationRow, Store, WarningRow, WarningStore

log = logging.getLogger(__name__)

DesignationEvent = ev.DesignationCreated | ev.DesignationAmended | ev.DesignationRemoved
THRESHOLD = "warning_threshold"  # the config row of the threshold the state was judged under


# What the consumer may pass over unparsed: designation events that are about neither a
# key-scrutiny entry nor a transfer (most of that topic: red and black designations).
_DESIGNATION_SOURCE = b'"source":"platform/designation"'


def not_ours(record: Any) -> bool:
    """A cheap test on the bytes: a designation event of another list, without `transfer_from`.
    (A miss only costs a parse; anything not from the designation service is parsed, so garbage
    still reaches the dead-letter topic.)"""
    value = record.value
    return (
        record.topic == topics.DESIGNATION_EVENTS
        and value is not None
        and _DESIGNATION_SOURCE in value
        and b"key_scrutiny" not in value
        and b"transfer_from" not in value
    )


def _subject_of_report(req: ReportConduct) -> str | None:
    try:
        return normalise(req.subject.scheme, req.subject.id)
    except Exception:
        return None


@dataclass
class BatchState:
    """What a batch touches, as it stands after each message, and what changed."""

    entries: dict[str, EntryRow]
    warnings: dict[str, WarningRow]
    pending: dict[str, RecommendationRow]  # open or overdue, by recommendation id
    key_fields: dict[str, bool]
    catalog: Catalog
    by_subject: dict[str, set[str]] = field(default_factory=dict)
    entry_upserts: dict[str, datetime] = field(default_factory=dict)
    entry_deletes: set[str] = field(default_factory=set)
    changed_warnings: set[str] = field(default_factory=set)
    changed_recommendations: dict[str, RecommendationRow] = field(default_factory=dict)
    changed_key_fields: dict[str, tuple[str, bool, datetime]] = field(default_factory=dict)
    reports: list[tuple[Any, ...]] = field(default_factory=list)
    report_ids: set[str] = field(default_factory=set)  # the ids naming a conduct report already (so far)

    def __post_init__(self) -> None:
        for e in self.entries.values():
            self.by_subject.setdefault(e.subject_id, set()).add(e.designation_id)

    def is_key(self, code: str) -> bool:
        """This consumer's own reading of the reference topic; the process's reference cache for a
        field it has not read yet (only at the very first start)."""
        known = self.key_fields.get(code)
        if known is not None:
            return known
        f = self.catalog.field(code)
        return bool(f is not None and f.key_field)

    def entries_of(self, subject_id: str) -> list[domain.Entry]:
        out = []
        for i in sorted(self.by_subject.get(subject_id, ())):
            row = self.entries[i]
            start, end = row.record.get("effective_from"), row.record.get("effective_to")
            out.append(
                domain.Entry(
                    i,
                    row.field,
                    row.unit,
                    date.fromisoformat(start) if start else None,
                    date.fromisoformat(end) if end else None,
                )
            )
        return out

    def subjects_in_field(self, code: str) -> list[str]:
        return sorted({e.subject_id for e in self.entries.values() if e.field == code})

    def put_entry(self, entry: EntryRow, at: datetime) -> None:
        self.entries[entry.designation_id] = entry
        self.by_subject.setdefault(entry.subject_id, set()).add(entry.designation_id)
        self.entry_upserts[entry.designation_id] = at
        self.entry_deletes.discard(entry.designation_id)

    def drop_entry(self, designation_id: str) -> None:
        gone = self.entries.pop(designation_id, None)
        if gone is not None:
            self.by_subject.get(gone.subject_id, set()).discard(designation_id)
        self.entry_upserts.pop(designation_id, None)
        self.entry_deletes.add(designation_id)

    def has_pending(self, designation_id: str) -> bool:
        return any(r.designation_id == designation_id for r in self.pending.values())

    def put_recommendation(self, rec: RecommendationRow) -> None:
        if rec.status == "closed":
            self.pending.pop(rec.recommendation_id, None)
        else:
            self.pending[rec.recommendation_id] = rec
        self.changed_recommendations[rec.recommendation_id] = rec

    def close(self, designation_id: str, reason: str, at: datetime, by: str) -> None:
        """Close every pending recommendation about `designation_id` (transferred or removed)."""
        for rec in sorted(self.pending.values(), key=lambda r: r.recommendation_id):
            if rec.designation_id == designation_id:
                rec.status, rec.closed_at, rec.closed_reason, rec.closed_by = "closed", at, reason, by
                self.put_recommendation(rec)

    async def save(self, store: Store) -> None:
        await store.save_key_fields(list(self.changed_key_fields.values()))
        upserts = [self.entries[i] for i in sorted(self.entry_upserts)]
        await store.save_entries(upserts, self.entry_upserts, sorted(self.entry_deletes))
        await store.save_warnings([self.warnings[s] for s in sorted(self.changed_warnings)])
        await store.save_recommendations(
            [self.changed_recommendations[i] for i in sorted(self.changed_recommendations)]
        )
        await store.save_reports(self.reports)


class WarningHandlers:
    """The handlers of the warning service, bound to its runtime (catalogue, calendar, clock)."""

    def __init__(
        self,
        runtime: HandlerDeps,
        *,
        threshold: int,
        due_working_days: int,
        store_for: Callable[[Context], Store] | None = None,
    ) -> None:
        self.rt = runtime
        # The batch's store: the tables through the batch's connection, or one given (in memory).
        self.store_for: Callable[[Context], Store] = store_for or (lambda ctx: WarningStore(ctx.conn))
        self.threshold = threshold
        self.due_working_days = due_working_days

    @property
    def catalog(self) -> Catalog:
        return self.rt.reference.catalog

    # ------------------------------------------------------------------ the batch

    def bus(self) -> Handlers[BatchState]:
        """The consumer's handlers by contract model."""
        return Handlers(
            {
                ev.DesignationCreated: self.designation,
                ev.DesignationAmended: self.designation,
                ev.DesignationRemoved: self.designation,
                ReportConduct: self.report,
                ev.ReferenceUpserted: self.reference,
            },
            load=self.load,
            save=self.save,
        )

    async def load(self, items: Sequence[Incoming], ctx: Context) -> BatchState:
        """Lock the subjects the batch touches and load their entries, standing and pending
        recommendations (a key-field change: every subject with an entry in that field)."""
        store = self.store_for(ctx)
        subjects: set[str] = set()
        designation_ids: set[str] = set()
        fields: set[str] = set()
        for inc in items:
            d = inc.data
            if isinstance(d, DesignationEvent):
                record: DesignationRecord = d.record
                subjects.add(record.subject.id)
                if record.transfer_from:
                    designation_ids.add(record.transfer_from)
            elif isinstance(d, ReportConduct):
                sid = _subject_of_report(d)
                if sid:
                    subjects.add(sid)
            elif isinstance(d, ev.ReferenceUpserted) and isinstance(d.root, FieldRecord):
                fields.add(d.root.code)
        await store.lock_key_fields(exclusive=bool(fields))
        subjects.update(await store.subjects_with_fields(fields))
        ordered = sorted(subjects)
        await store.lock_subjects(ordered)
        return BatchState(
            entries={e.designation_id: e for e in await store.entries_of(ordered)},
            warnings={w.subject_id: w for w in await store.warnings_of(ordered)},
            pending={
                r.recommendation_id: r for r in await store.pending_recommendations(ordered, sorted(designation_ids))
            },
            key_fields=await store.key_fields(),
            catalog=self.catalog,
            # The report ids the batch's reports would name: taken already?
            report_ids=await store.reports_named([i.event.id for i in items if isinstance(i.data, ReportConduct)]),
        )

    async def save(self, state: BatchState, ctx: Context) -> None:
        await state.save(self.store_for(ctx))

    def reference(self, inc: Incoming, ctx: Context, state: BatchState) -> None:
        ref = inc.data.root
        if isinstance(ref, FieldRecord):
            self._field(ref, inc, ctx, state)

    # ------------------------------------------------------------------ designation events

    def designation(self, inc: Incoming, ctx: Context, state: BatchState) -> None:
        record: DesignationRecord = inc.data.record
        at = inc.at
        if isinstance(inc.data, ev.DesignationCreated) and record.list == "black" and record.transfer_from:
            state.close(record.transfer_from, "transferred", at, record.designation_id)
        if record.list != "key_scrutiny":
            return
        subject = record.subject.model_dump(mode="json", exclude_none=True)
        if record.status == "active" and not isinstance(inc.data, ev.DesignationRemoved):
            doc = record.model_dump(mode="json", exclude_none=True)
            state.put_entry(EntryRow(record.designation_id, record.subject.id, record.field, record.unit, doc), at)
        else:
            state.drop_entry(record.designation_id)
            state.close(record.designation_id, str(record.removal_reason or "removed"), at, inc.event.id)
        self._evaluate(ctx, state, record.subject.id, at, subject)

    def _field(self, ref: FieldRecord, inc: Incoming, ctx: Context, state: BatchState) -> None:
        """A field record: when its key-ness changes (or is first read), re-judge every subject
        with an entry in it."""
        before = state.key_fields.get(ref.code)
        state.key_fields[ref.code] = ref.key_field
        state.changed_key_fields[ref.code] = (ref.code, ref.key_field, inc.at)
        if before is not None and before == ref.key_field:
            return
        for subject_id in state.subjects_in_field(ref.code):
            self._evaluate(ctx, state, subject_id, inc.at, None)

    def _evaluate(
        self,
        ctx: Context,
        state: BatchState,
        subject_id: str,
        at: datetime,
        subject: dict[str, Any] | None,
        cause: str | None = None,
    ) -> None:
        """Judge the subject again and emit what changed. The event's id derives from the event
        being handled, or (outside a consumer batch) from `cause` and the subject."""
        row = state.warnings.get(subject_id)
        before = None
        if row is not None and row.status == "listed":
            before = domain.Standing(domain.Listing(tuple(row.fields), tuple(row.designation_ids)), row.since)
        change = domain.evaluate(before, state.entries_of(subject_id), state.is_key, self.threshold, local_day(at))
        if change is None:
            return
        if subject is None:
            subject = row.subject if row is not None else self._subject_from_entries(state, subject_id)
        listing = change.after.listing
        if listing is None:
            data: dict[str, Any] = {"subject": subject, "remaining_fields": list(change.remaining_fields)}
        else:
            assert change.after.since is not None
            data = {
                "subject": subject,
                "fields": list(listing.fields),
                "designation_ids": list(listing.designation_ids),
                "since": change.after.since.isoformat(),
            }
        event_id = ctx.publish_event(
            model_for(change.type).model_validate(data),
            key=subject_id,
            type_=change.type,
            subject=subject_id,
            time=at,
            id=derived_id(f"{cause}|{subject_id}", self.rt.name, change.type) if cause else None,
        )
        state.warnings[subject_id] = WarningRow(
            subject_id=subject_id,
            subject=subject,
            status="cleared" if listing is None else "listed",
            fields=list(listing.fields) if listing else list(change.remaining_fields),
            designation_ids=list(listing.designation_ids) if listing else [],
            since=change.after.since if listing else (row.since if row else None),
            listed_at=at if change.type == domain.LISTED else (row.listed_at if row else None),
            cleared_at=at if listing is None else None,
            updated_at=at,
            last_event_id=event_id,
        )
        state.changed_warnings.add(subject_id)

    @staticmethod
    def _subject_from_entries(state: BatchState, subject_id: str) -> dict[str, Any]:
        for designation_id in sorted(state.by_subject.get(subject_id, ())):
            return dict(state.entries[designation_id].record["subject"])
        return {"kind": "legal_person", "scheme": "other", "id": subject_id, "name": subject_id}  # unreachable

    # ------------------------------------------------------------------ conduct reports

    def report(self, inc: Incoming, ctx: Context, state: BatchState) -> Accepted:
        req: ReportConduct = inc.data
        if inc.event.id in state.report_ids:
            raise id_taken(inc.event.id, "a conduct report")
        subject_id = domain.validate_report(req, unit_code=inc.unit, catalog=self.catalog)
        at = inc.at
        report_id = inc.event.id
        state.report_ids.add(report_id)
        state.reports.append(
            (
                report_id,
                subject_id,
                req.field,
                inc.unit,
                req.serious,
                req.occurred_on,
                req.model_dump(mode="json", exclude_none=True),
                at,
            )
        )
        recommendations = domain.recommend(
            report_id=report_id,
            field=req.field,
            serious=req.serious,
            occurred_on=req.occurred_on,
            entries=state.entries_of(subject_id),
            pending=state.has_pending,
            report_day=local_day(at),
            calendar=self.rt.reference.calendar,
            working_days=self.due_working_days,
        )
        for r in recommendations:
            entry = state.entries[r.designation_id]
            transfer = ev.TransferRecommended.model_validate(
                {
                    "recommendation_id": r.recommendation_id,
                    "subject": entry.record["subject"],
                    "designation_id": r.designation_id,
                    "unit": r.unit,
                    "conduct_report_id": report_id,
                    "due_on": r.due_on,
                }
            )
            ctx.publish_event(transfer, key=subject_id, subject=subject_id)
            ctx.publish_event(
                ev.InboxTransfer.model_validate({"transfer": transfer, "designation": entry.record}),
                key=r.unit,
                subject=subject_id,
            )
            state.put_recommendation(
                RecommendationRow(
                    recommendation_id=r.recommendation_id,
                    subject_id=subject_id,
                    designation_id=r.designation_id,
                    unit=r.unit,
                    field=r.field,
                    conduct_report_id=report_id,
                    status="open",
                    due_on=r.due_on,
                    escalated_to=None,
                    record=entry.record,
                    created_at=at,
                )
            )
        return Accepted(report_id)

    # ------------------------------------------------------------------ configuration

    async def rejudge_on_threshold_change(self, pool: Any, clock: Any, service: str) -> int:
        """At start: when the configured threshold differs from the one the stored state was
        judged under, judge every subject again (one transaction, holding the key-field lock
        exclusively, so no batch and no other starting instance judges meanwhile). Returns how
        many warning events that made. The events are stamped with the clock (no event caused
        them) and their ids derive from the change of configuration."""
        async with pool.acquire() as conn, conn.transaction():
            store = WarningStore(conn)
            await store.lock_key_fields(exclusive=True)
            stored = await store.get_config(THRESHOLD)
            previous = int(stored) if stored is not None else domain.DEFAULT_THRESHOLD
            now = clock.now()
            if stored == str(self.threshold):
                return 0
            await store.set_config(THRESHOLD, str(self.threshold), now)
            if previous == self.threshold:
                return 0
            log.warning(
                "warning threshold changed from %d to %d: judging every subject again", previous, self.threshold
            )
            subjects = await store.judged_subjects()
            state = BatchState(
                entries={e.designation_id: e for e in await store.entries_of(subjects)},
                warnings={w.subject_id: w for w in await store.warnings_of(subjects)},
                pending={},
                key_fields=await store.key_fields(),
                catalog=self.catalog,
            )
            ctx = Context(conn=conn, clock=clock, service=service)
            cause = f"config:{THRESHOLD}:{previous}->{self.threshold}@{now.isoformat()}"
            for subject_id in subjects:
                self._evaluate(ctx, state, subject_id, now, None, cause)
            await state.save(store)
            await write_outbox(conn, ctx.outbox)
        return len(ctx.outbox)

    # ------------------------------------------------------------------ overdue timer

    async def overdue_due(self, runtime: Runtime, limit: int = 500) -> int:
        """Make every open recommendation whose due day is over (Asia/Shanghai, by the platform
        clock) overdue: `credit.transfer.overdue`, and the escalation to the designating unit's
        parent. Each is stamped with its due time and a derived id: the same event whoever emits
        it, whenever."""
        total = 0
        today = local_today(runtime.clock)
        while True:
            async with runtime.db.acquire() as conn, conn.transaction():
                store = WarningStore(conn)
                due = await store.claim_overdue(today, limit)
                if not due:
                    return total
                ctx = Context(conn=conn, clock=runtime.clock, service=runtime.name)
                for rec in due:
                    at = domain.overdue_at(rec.due_on)
                    parent = self.catalog.parent_of(rec.unit)
                    rec.status, rec.escalated_to, rec.overdue_at = "overdue", parent, at
                    overdue = ev.TransferOverdue(
                        recommendation_id=rec.recommendation_id,
                        designation_id=rec.designation_id,
                        unit=rec.unit,
                        escalated_to=parent,
                        due_on=rec.due_on,
                    )
                    ctx.publish_event(
                        overdue,
                        key=rec.subject_id,
                        subject=rec.subject_id,
                        time=at,
                        id=derived_id(rec.recommendation_id, runtime.name, T.TRANSFER_OVERDUE),
                    )
                    if parent is not None:
                        escalation = ev.InboxEscalation.model_validate(
                            {
                                "kind": "transfer",
                                "item_id": rec.recommendation_id,
                                "unit": rec.unit,
                                "escalated_to": parent,
                                "due_on": rec.due_on,
                                "designation": rec.record,
                            }
                        )
                        ctx.publish_event(
                            escalation,
                            key=parent,
                            subject=rec.subject_id,
                            time=at,
                            id=derived_id(rec.recommendation_id, runtime.name, T.INBOX_ESCALATION),
                        )
                await store.save_recommendations(due)
                await write_outbox(conn, ctx.outbox)
            total += len(due)
