"""Load, decide, save, emit. The cases consumer handles a batch set-wise: it loads the designations
the batch names and the objections open on them, runs the rules message by message in order
against that in-memory state, and writes what changed (cases by COPY, tallies by one upsert);
`credit.case.recorded` goes through the outbox in the same transaction.

Every event takes its id from the report that caused it (`Context.publish` derives it) and its
time from that report, so a replay re-emits the very same events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from credit_common.contracts import events as ev
from credit_common.contracts.requests import ReportEnforcement
from credit_common.deps import HandlerDeps
from credit_common.messaging.bus import Handlers
from credit_common.messaging.unit_of_work import Context, Incoming
from credit_common.outcomes import Accepted, id_taken
from credit_common.reference.catalog import Catalog

from . import domain
from .store import CasesStore, Store

# (objection_id, designation_id, status, opened_at, closed_at, outcome)
ObjectionRow = tuple[str, str, str, datetime | None, datetime | None, str | None]


@dataclass
class BatchState:
    """What a batch touches, as it stands after each message, and what it writes."""

    entries: dict[str, domain.Entry]
    open_objections: dict[str, set[str]]  # designation id -> ids of its open objections
    changed_entries: dict[str, datetime] = field(default_factory=dict)
    designations_made: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    objections: dict[str, ObjectionRow] = field(default_factory=dict)
    removed: dict[str, datetime] = field(default_factory=dict)
    cases: list[tuple[Any, ...]] = field(default_factory=list)
    case_ids: set[str] = field(default_factory=set)  # the ids naming a case already (so far)

    async def save(self, store: Store) -> None:
        await store.save_entries([(self.entries[i], at) for i, at in sorted(self.changed_entries.items())])
        await store.add_designations_made(self.designations_made)
        # Objections open in the database on an entry that left its list close with it; those the
        # batch itself wrote carry their final status already.
        for designation_id, at in sorted(self.removed.items()):
            await store.close_objections_of([designation_id], at)
        await store.save_objections([self.objections[i] for i in sorted(self.objections)])
        await store.add_cases(self.cases)


class CasesHandlers:
    """The handlers of the cases service, bound to its runtime (catalogue)."""

    def __init__(self, runtime: HandlerDeps, store_for: Callable[[Context], Store] | None = None) -> None:
        self.rt = runtime
        # The batch's store: the tables through the batch's connection, or one given (in memory).
        self.store_for: Callable[[Context], Store] = store_for or (lambda ctx: CasesStore(ctx.conn))

    @property
    def catalog(self) -> Catalog:
        return self.rt.reference.catalog

    def bus(self) -> Handlers[BatchState]:
        """The consumer's handlers by contract model."""
        return Handlers(
            {
                ev.DesignationCreated: self.designation,
                ev.DesignationAmended: self.designation,
                ev.DesignationRemoved: self.designation,
                ev.ObjectionOpened: self.objection,
                ev.ObjectionOverdue: self.objection,
                ev.ObjectionResolved: self.objection,
                ReportEnforcement: self.report,
            },
            load=self.load,
            save=self.save,
        )

    async def load(self, items: Sequence[Incoming], ctx: Context) -> BatchState:
        """The designations the batch names, with the objections open on them."""
        ids: set[str] = set()
        for inc in items:
            d = inc.data
            if isinstance(d, ev.DesignationCreated | ev.DesignationAmended | ev.DesignationRemoved):
                ids.add(d.record.designation_id)
            elif isinstance(d, ReportEnforcement | ev.ObjectionOpened | ev.ObjectionOverdue | ev.ObjectionResolved):
                ids.add(d.designation_id)
        store = self.store_for(ctx)
        loaded = await store.load(ids)
        # The case ids the reports would name (a report's id is its case's): taken already?
        named = await store.cases_named([inc.event.id for inc in items if isinstance(inc.data, ReportEnforcement)])
        return BatchState(entries=loaded.entries, open_objections=loaded.open_objections, case_ids=named)

    async def save(self, state: BatchState, ctx: Context) -> None:
        await state.save(self.store_for(ctx))

    # ------------------------------------------------------------------ designation events

    def designation(self, inc: Incoming, ctx: Context, state: BatchState) -> None:
        doc = inc.data.record.model_dump(mode="json", exclude_none=True)
        at = inc.at
        entry = domain.Entry.of(doc, at)
        known = entry.designation_id in state.entries
        state.entries[entry.designation_id] = entry
        state.changed_entries[entry.designation_id] = at
        if isinstance(inc.data, ev.DesignationCreated) and not known:
            # Counted once, in the year of its decision, for the designating unit's province.
            state.designations_made[(entry.decided_on.year, entry.province, entry.list)] += 1
        if entry.status != "active":
            state.removed[entry.designation_id] = at
            for objection_id in sorted(state.open_objections.pop(entry.designation_id, set())):
                self._put_objection(state, objection_id, entry.designation_id, "closed", None, at, "entry_removed")

    # ------------------------------------------------------------------ objection events

    def objection(self, inc: Incoming, ctx: Context, state: BatchState) -> None:
        d = inc.data
        at = inc.at
        oid, did = d.objection_id, d.designation_id
        entry = state.entries.get(did)
        still_listed = entry is None or entry.status == "active"
        if isinstance(d, ev.ObjectionResolved):
            state.open_objections.get(did, set()).discard(oid)
            self._put_objection(state, oid, did, "closed", None, at, str(d.outcome))
        elif still_listed:  # opened, or overdue (still open, escalated)
            state.open_objections.setdefault(did, set()).add(oid)
            opened_at = at if isinstance(d, ev.ObjectionOpened) else None
            self._put_objection(state, oid, did, "open", opened_at, None, None)
        else:  # announced after its entry left the list: nothing left to suspend
            self._put_objection(state, oid, did, "closed", None, at, "entry_removed")

    @staticmethod
    def _put_objection(
        state: BatchState,
        oid: str,
        did: str,
        status: str,
        opened_at: datetime | None,
        closed_at: datetime | None,
        outcome: str | None,
    ) -> None:
        previous = state.objections.get(oid)
        if previous is not None and opened_at is None:
            opened_at = previous[3]
        state.objections[oid] = (oid, did, status, opened_at, closed_at, outcome)

    # ------------------------------------------------------------------ enforcement reports

    def report(self, inc: Incoming, ctx: Context, state: BatchState) -> Accepted:
        req: ReportEnforcement = inc.data
        if inc.event.id in state.case_ids:
            raise id_taken(inc.event.id, "a case")
        entry = state.entries.get(req.designation_id)
        facts = domain.check_report(
            req,
            unit_code=inc.unit,
            entry=entry,
            catalog=self.catalog,
            objection_open=bool(state.open_objections.get(req.designation_id)),
            reported_on=domain.local_day(inc.at),
        )
        assert entry is not None
        case_id = inc.event.id
        state.case_ids.add(case_id)
        subject = entry.record["subject"]
        media = [m.model_dump(mode="json", exclude_none=True) for m in req.media]
        kind = facts.measure.measure_kind
        ctx.publish_event(
            ev.CaseRecorded(
                case_id=case_id,
                designation_id=entry.designation_id,
                subject=subject,
                list=entry.list,
                field=entry.field,
                measure=facts.measure.code,
                measure_kind=kind,
                unit=facts.unit,
                province=facts.province,
                applied_on=req.applied_on,
                typical=req.typical,
                media_reported=bool(media),
            ),
            key=entry.subject_id,
            subject=entry.subject_id,
        )
        state.cases.append(
            (
                case_id,
                entry.designation_id,
                entry.subject_id,
                subject,
                entry.list,
                entry.field,
                entry.standard,
                entry.public,
                facts.mou.code,
                facts.measure.code,
                kind,
                facts.unit,
                facts.province,
                req.applied_on,
                req.outcome,
                req.description,
                req.typical,
                media,
                bool(media),
                inc.event.source,
                inc.at,
                req.campaign,
            )
        )
        return Accepted(case_id)
