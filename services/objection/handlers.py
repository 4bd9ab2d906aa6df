"""Load, decide, save, emit. The objection consumer handles a batch set-wise: it loads (locked) the
designations, objections and applications the batch touches and every item still pending on those
designations, runs the rules message by message in order against that in-memory state, and writes
what changed; events go through the outbox in the same transaction.

Every event takes its id from the event that caused it (`Context.publish` derives it) and its time
from that event too, so a replay re-emits the very same events; the overdue timer stamps its events
with the due time and ids derived from the item."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from credit_common.clock import local_day, local_today
from credit_common.contracts import events as ev
from credit_common.contracts import types as T
from credit_common.contracts.requests import ApplyRestoration, DecideObjection, DecideRestoration, FileObjection
from credit_common.db.outbox import write_outbox
from credit_common.deps import HandlerDeps
from credit_common.messaging.bus import Handlers
from credit_common.messaging.unit_of_work import Context, Incoming
from credit_common.outcomes import Accepted, derived_id, id_taken
from credit_common.reference.catalog import Catalog
from credit_common.service import Runtime

from . import domain
from .store import ApplicationRow, Item, ObjectionRow, ObjectionStore, Store

log = logging.getLogger(__name__)

# What this service publishes (AsyncAPI).
EVENT_TYPES = (
    T.OBJECTION_OPENED,
    T.OBJECTION_OVERDUE,
    T.OBJECTION_RESOLVED,
    T.RESTORATION_OPENED,
    T.RESTORATION_OVERDUE,
    T.RESTORATION_RESOLVED,
)
INBOX_TYPES = (T.INBOX_OBJECTION, T.INBOX_RESTORATION, T.INBOX_ESCALATION)
#: What the subject is told of each decision (`credit.subject.notices.v1`, for the portal).
NOTICE_TYPES = (T.NOTICE_OBJECTION_RESOLVED, T.NOTICE_RESTORATION_RESOLVED)


@dataclass
class BatchState:
    """What a batch touches, as it stands after each message, and what changed."""

    entries: dict[str, domain.Entry]
    objections: dict[str, ObjectionRow]
    applications: dict[str, ApplicationRow]
    changed_entries: dict[str, datetime] = field(default_factory=dict)
    changed_objections: set[str] = field(default_factory=set)
    changed_applications: set[str] = field(default_factory=set)
    measures: list[tuple[Any, ...]] = field(default_factory=list)

    def put_entry(self, entry: domain.Entry, at: datetime) -> None:
        self.entries[entry.designation_id] = entry
        self.changed_entries[entry.designation_id] = at

    def put_objection(self, row: ObjectionRow) -> None:
        self.objections[row.objection_id] = row
        self.changed_objections.add(row.objection_id)

    def put_application(self, row: ApplicationRow) -> None:
        self.applications[row.application_id] = row
        self.changed_applications.add(row.application_id)

    def open_objection_of(self, designation_id: str, objector_key: str) -> bool:
        return any(
            o.designation_id == designation_id and o.objector_key == objector_key and o.status in domain.PENDING
            for o in self.objections.values()
        )

    def rejected_evidence_of(self, designation_id: str, objector_key: str) -> set[str] | None:
        """The evidence of the objector's rejected objections on the entry (None: none rejected)."""
        rejected = [
            o
            for o in self.objections.values()
            if o.designation_id == designation_id and o.objector_key == objector_key and o.outcome == "rejected"
        ]
        return {e for o in rejected for e in o.evidence} if rejected else None

    def close_pending(self, designation_id: str, reason: str, at: datetime, by: str) -> None:
        """The entry left its list: items still waiting on it are closed (nothing left to decide)."""
        items: list[Item] = [*self.objections.values(), *self.applications.values()]
        for item in sorted(items, key=lambda i: i.item_id):
            if getattr(item, "designation_id", None) == designation_id and item.status in domain.PENDING:
                item.status, item.closed_at, item.closed_reason, item.closed_by = "closed", at, reason, by
                if isinstance(item, ObjectionRow):
                    self.put_objection(item)
                elif isinstance(item, ApplicationRow):
                    self.put_application(item)

    async def save(self, store: Store) -> None:
        await store.save_entries([(self.entries[i], at) for i, at in sorted(self.changed_entries.items())])
        await store.save_objections([self.objections[i] for i in sorted(self.changed_objections)])
        await store.save_applications([self.applications[i] for i in sorted(self.changed_applications)])
        await store.save_measures(self.measures)


class ObjectionHandlers:
    """The handlers of the objection service, bound to its runtime (catalogue, calendar, clock)."""

    def __init__(
        self,
        runtime: HandlerDeps,
        *,
        objection_days: int = domain.OBJECTION_DUE_WORKING_DAYS,
        restoration_days: int = domain.RESTORATION_DUE_WORKING_DAYS,
        notify_days: int = domain.RESTORATION_NOTIFY_WORKING_DAYS,
        store_for: Callable[[Context], Store] | None = None,
    ) -> None:
        self.rt = runtime
        # The batch's store: the tables through the batch's connection, or one given (in memory).
        self.store_for: Callable[[Context], Store] = store_for or (lambda ctx: ObjectionStore(ctx.conn))
        self.objection_days = objection_days
        self.restoration_days = restoration_days
        self.notify_days = notify_days

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
                FileObjection: self.file,
                DecideObjection: self.decide_objection,
                ApplyRestoration: self.apply,
                DecideRestoration: self.decide_restoration,
            },
            load=self.load,
            save=self.save,
        )

    async def load(self, items: Sequence[Incoming], ctx: Context) -> BatchState:
        """The designations, objections and applications the batch touches (locked), and every
        item still pending on those designations."""
        designation_ids: set[str] = set()
        objection_ids: set[str] = set()
        application_ids: set[str] = set()
        for inc in items:
            d = inc.data
            if isinstance(d, ev.DesignationCreated | ev.DesignationAmended | ev.DesignationRemoved):
                designation_ids.add(d.record.designation_id)
            elif isinstance(d, FileObjection | ApplyRestoration):
                designation_ids.add(d.designation_id)
                # the id it would name: taken already?
                (objection_ids if isinstance(d, FileObjection) else application_ids).add(inc.event.id)
            elif isinstance(d, DecideObjection):
                objection_ids.add(d.objection_id)
            elif isinstance(d, DecideRestoration):
                application_ids.add(d.application_id)
        loaded = await self.store_for(ctx).load(designation_ids, objection_ids, application_ids)
        return BatchState(
            entries={e.designation_id: e for e in loaded.entries},
            objections={o.objection_id: o for o in loaded.objections},
            applications={a.application_id: a for a in loaded.applications},
        )

    async def save(self, state: BatchState, ctx: Context) -> None:
        await state.save(self.store_for(ctx))

    # ------------------------------------------------------------------ designation events

    def designation(self, inc: Incoming, ctx: Context, state: BatchState) -> None:
        doc = inc.data.record.model_dump(mode="json", exclude_none=True)
        entry = domain.Entry.of(doc)
        at = inc.at
        state.put_entry(entry, at)
        if entry.status != "active":
            reason = str(doc.get("removal_reason") or getattr(inc.data, "reason", None) or "removed")
            state.close_pending(entry.designation_id, reason, at, inc.event.id)

    # ------------------------------------------------------------------ objections

    def file(self, inc: Incoming, ctx: Context, state: BatchState) -> Accepted:
        req: FileObjection = inc.data
        if inc.event.id in state.objections:
            raise id_taken(inc.event.id, "an objection")
        entry = state.entries.get(req.designation_id)
        filing = domain.file_objection(
            req,
            entry=entry,
            catalog=self.catalog,
            has_open=lambda key: state.open_objection_of(req.designation_id, key),
            filed_day=local_day(inc.at),
            calendar=self.rt.reference.calendar,
            working_days=self.objection_days,
            sender_unit=inc.unit,
            rejected_evidence=lambda key: state.rejected_evidence_of(req.designation_id, key),
        )
        assert entry is not None
        objection_id = inc.event.id
        opened = ev.ObjectionOpened.model_validate(
            {
                "objection_id": objection_id,
                "designation_id": entry.designation_id,
                "unit": entry.unit,
                "objector": filing.objector,
                "grounds": req.grounds,
                "due_on": filing.due_on,
            }
        )
        ctx.publish_event(opened, key=entry.subject_id, subject=entry.subject_id)
        ctx.publish_event(
            ev.InboxObjection.model_validate(
                {"objection": opened, "designation": entry.record, "evidence": list(req.evidence)}
            ),
            key=entry.unit,
            subject=entry.subject_id,
        )
        state.put_objection(
            ObjectionRow(
                objection_id=objection_id,
                designation_id=entry.designation_id,
                subject_id=entry.subject_id,
                unit=entry.unit,
                objector_key=filing.objector_key,
                objector=filing.objector,
                grounds=req.grounds,
                evidence=list(req.evidence),
                due_on=filing.due_on,
                record=entry.record,
                filed_by=inc.event.source,
                filed_at=inc.at,
            )
        )
        return Accepted(objection_id)

    def decide_objection(self, inc: Incoming, ctx: Context, state: BatchState) -> Accepted:
        req: DecideObjection = inc.data
        row = state.objections.get(req.objection_id)
        domain.check_decider(
            self._pending(row.objection_id, row) if row else None,
            item_id=req.objection_id,
            decider=inc.unit,
            unknown_code="unknown_objection",
            id_field="objection_id",
            what="objection",
        )
        assert row is not None
        self._resolve(row, inc, str(req.outcome), req.reasoning, req.decided_on)
        state.put_objection(row)
        resolved = ev.ObjectionResolved.model_validate(self._resolved_data("objection_id", row, inc.unit))
        ctx.publish_event(resolved, key=row.subject_id, subject=row.subject_id)
        self._notify(ctx, ev.NoticeObjectionResolved, row)
        return Accepted(row.objection_id)

    def _pending(self, item_id: str, row: ObjectionRow | ApplicationRow) -> domain.Pending:
        """The item as a decision sees it, with the units above its designating unit it climbed."""
        chain: list[str] = []
        unit: str | None = row.unit
        while row.escalated_to is not None and unit is not None and unit != row.escalated_to:
            unit = self.catalog.parent_of(unit)
            if unit is None or unit in chain:
                break
            chain.append(unit)
        return domain.Pending(item_id, row.unit, row.status, row.escalated_to, tuple(chain))

    @staticmethod
    def _notify(
        ctx: Context,
        model: type[ev.NoticeObjectionResolved] | type[ev.NoticeRestorationResolved],
        row: ObjectionRow | ApplicationRow,
    ) -> None:
        """Tell the entry's subject the outcome and the reasoning, whoever filed the item: a
        unit's objection decides about the subject's entry too."""
        notice = model.model_validate(
            {"subject": row.record["subject"], "id": row.item_id, "outcome": row.outcome, "reasoning": row.reasoning}
        )
        ctx.publish_event(notice, key=row.subject_id, subject=row.subject_id)

    @staticmethod
    def _resolve(row: Item, inc: Incoming, outcome: str, reasoning: str, decided_on: date) -> None:
        row.status, row.outcome, row.reasoning = "resolved", outcome, reasoning
        row.decided_on, row.decided_by, row.resolved_at = decided_on, inc.unit, inc.at

    @staticmethod
    def _resolved_data(id_name: str, row: ObjectionRow | ApplicationRow, decided_by: str | None) -> dict[str, Any]:
        assert row.decided_on is not None
        return {
            id_name: row.item_id,
            "designation_id": row.designation_id,
            "unit": row.unit,
            "outcome": row.outcome,
            "reasoning": row.reasoning,
            "decided_on": row.decided_on,
            "decided_by": decided_by,
        }

    # ------------------------------------------------------------------ credit restoration

    def apply(self, inc: Incoming, ctx: Context, state: BatchState) -> Accepted:
        req: ApplyRestoration = inc.data
        if inc.event.id in state.applications:
            raise id_taken(inc.event.id, "an application")
        entry = state.entries.get(req.designation_id)
        applied_on = local_day(inc.at)
        application = domain.apply_restoration(
            req,
            entry=entry,
            standard=self.catalog.standard(entry.standard) if entry else None,
            applied_on=applied_on,
            calendar=self.rt.reference.calendar,
            due_working_days=self.restoration_days,
            notify_working_days=self.notify_days,
        )
        assert entry is not None
        application_id = inc.event.id
        opened = ev.RestorationOpened(
            application_id=application_id,
            designation_id=entry.designation_id,
            unit=entry.unit,
            due_on=application.due_on,
            notify_by=application.notify_by,
        )
        applicant = req.applicant.model_dump(mode="json", exclude_none=True)
        applicant["id"] = entry.subject_id
        measures = [m.model_dump(mode="json", exclude_none=True) for m in req.measures]
        ctx.publish_event(opened, key=entry.subject_id, subject=entry.subject_id)
        inbox = ev.InboxRestoration.model_validate(
            {
                "restoration": opened,
                "designation": entry.record,
                "applicant": applicant,
                "measures": measures,
                "evidence": list(req.evidence),
            }
        )
        ctx.publish_event(inbox, key=entry.unit, subject=entry.subject_id)
        state.put_application(
            ApplicationRow(
                application_id=application_id,
                designation_id=entry.designation_id,
                subject_id=entry.subject_id,
                unit=entry.unit,
                applicant=applicant,
                measures=measures,
                evidence=list(req.evidence),
                applied_on=applied_on,
                due_on=application.due_on,
                notify_by=application.notify_by,
                record=entry.record,
                filed_by=inc.event.source,
                filed_at=inc.at,
            )
        )
        for m in domain.measure_rows(req, entry):
            state.measures.append(
                (
                    application_id,
                    m.position,
                    entry.designation_id,
                    entry.subject_id,
                    entry.list,
                    entry.unit,
                    entry.province,
                    m.kind,
                    m.detail,
                    m.completed_on,
                    m.hours,
                    m.legal_representative,
                    m.legal_rep_training,
                    inc.at,
                )
            )
        return Accepted(application_id)

    def decide_restoration(self, inc: Incoming, ctx: Context, state: BatchState) -> Accepted:
        req: DecideRestoration = inc.data
        row = state.applications.get(req.application_id)
        domain.check_decider(
            self._pending(row.application_id, row) if row else None,
            item_id=req.application_id,
            decider=inc.unit,
            unknown_code="unknown_application",
            id_field="application_id",
            what="application",
        )
        assert row is not None
        if req.outcome == "approved":
            # Approve only what the designation service can carry out, so the request has one answer.
            entry = state.entries.get(row.designation_id)
            domain.check_approval(entry, self.catalog.standard(entry.standard) if entry else None, req.decided_on)
        self._resolve(row, inc, str(req.outcome), req.reasoning, req.decided_on)
        state.put_application(row)
        resolved = ev.RestorationResolved.model_validate(self._resolved_data("application_id", row, inc.unit))
        ctx.publish_event(resolved, key=row.subject_id, subject=row.subject_id)
        self._notify(ctx, ev.NoticeRestorationResolved, row)
        return Accepted(row.application_id)

    # ------------------------------------------------------------------ overdue timer

    async def overdue_due(self, runtime: Runtime, limit: int = 500) -> int:
        """Make every open objection and application whose due day is over (Asia/Shanghai, by the
        platform clock) overdue, escalated to the designating unit's parent. Each event is stamped
        with the due time and has an id derived from the item: the same event whoever emits it,
        whenever."""
        total = 0
        today = local_today(runtime.clock)
        while True:
            async with runtime.db.acquire() as conn, conn.transaction():
                store = ObjectionStore(conn)
                objections = await store.claim_overdue_objections(today, limit)
                applications = await store.claim_overdue_applications(today, limit)
                if not objections and not applications:
                    return total
                ctx = Context(conn=conn, clock=runtime.clock, service=runtime.name)
                for o in objections:
                    self._overdue(ctx, o, "objection", "objection_id", ev.ObjectionOverdue)
                for a in applications:
                    self._overdue(ctx, a, "restoration", "application_id", ev.RestorationOverdue)
                await store.save_objections(objections)
                await store.save_applications(applications)
                await write_outbox(conn, ctx.outbox)
            total += len(objections) + len(applications)

    def _overdue(
        self,
        ctx: Context,
        row: ObjectionRow | ApplicationRow,
        kind: str,
        id_name: str,
        model: type[ev.ObjectionOverdue] | type[ev.RestorationOverdue],
    ) -> None:
        """One step up the chain: an open item past its due day goes to the designating unit's
        parent; an overdue one whose unit above let its own time pass goes one level further, up
        to the national unit (then nobody is above, and it stays there, on every dashboard)."""
        first = row.status == "open"
        missed = row.due_on if first else row.escalation_due_on
        assert missed is not None
        at = domain.overdue_at(missed)
        parent = self.catalog.parent_of(row.unit if first else (row.escalated_to or row.unit))
        row.status, row.overdue_at = "overdue", row.overdue_at or at
        row.escalations += 1
        if parent is not None:
            row.escalated_to = parent
        # The unit above has its own time, as the designating unit had: the same working days
        # (an application's applicant is also owed an answer by notify_by, which caps it).
        days = self.objection_days if kind == "objection" else self.restoration_days
        due = self.rt.reference.calendar.add_working_days(missed + timedelta(days=1), days) if parent else None
        if due is not None and isinstance(row, ApplicationRow) and row.notify_by > missed:
            due = min(due, row.notify_by)
        row.escalation_due_on = due if parent is not None and self.catalog.parent_of(parent) is not None else None
        overdue = model.model_validate(
            {
                id_name: row.item_id,
                "designation_id": row.designation_id,
                "unit": row.unit,
                "due_on": missed,
                "escalated_to": parent,
            }
        )
        name = self.rt.name
        type_ = T.OBJECTION_OVERDUE if model is ev.ObjectionOverdue else T.RESTORATION_OVERDUE
        step = () if first else (row.escalations,)  # the first step keeps the ids it always had
        ctx.publish_event(
            overdue, key=row.subject_id, subject=row.subject_id, time=at, id=derived_id(row.item_id, name, type_, *step)
        )
        if parent is None:
            return
        escalation = ev.InboxEscalation.model_validate(
            {
                "kind": kind,
                "item_id": row.item_id,
                "unit": row.unit,
                "escalated_to": parent,
                "due_on": missed,
                "designation": row.record,
            }
        )
        ctx.publish_event(
            escalation,
            key=parent,
            subject=row.subject_id,
            time=at,
            id=derived_id(row.item_id, name, T.INBOX_ESCALATION, *step),
        )
