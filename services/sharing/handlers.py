"""Load, decide, save, emit. One batch of designation, objection and warning events at a time:
lock the entries it touches, load their inputs and current versions, then per event (in order)
add its input, rebuild the entry's versions and compare the new current version with the old one;
finally take the seqs of the changes, and write inputs, history, entries, changes and the outbox
in the consumer's one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from credit_common.contracts.events import (
    DesignationAmended,
    DesignationCreated,
    DesignationRemoved,
    ObjectionOpened,
    ObjectionResolved,
    WarningCleared,
    WarningListed,
    WarningUpdated,
)
from credit_common.deps import HandlerDeps
from credit_common.messaging import topics
from credit_common.messaging.bus import Handlers
from credit_common.messaging.unit_of_work import Context, Incoming
from credit_common.outcomes import derived_id

from . import domain
from .domain import Change, Input, Version
from .store import ChangeRow, SharingStore, Store

log = logging.getLogger(__name__)

PUBLIC_ID = "public"
# New inputs sort after every stored one of the same time (stored arrivals come from a sequence).
_NEW_ARRIVAL = 1 << 62


@dataclass(frozen=True, slots=True)
class Target:
    """What an event is about: an entry (designation id), or a subject's warning-list entry."""

    lock_key: str
    entry_id: str | None = None
    warning_subject: str | None = None


def target_of(inc: Incoming) -> Target | None:
    data = inc.data
    if isinstance(data, DesignationCreated | DesignationAmended | DesignationRemoved):
        return Target(data.record.designation_id, entry_id=data.record.designation_id)
    if isinstance(data, ObjectionOpened | ObjectionResolved):
        return Target(data.designation_id, entry_id=data.designation_id)
    if isinstance(data, WarningListed | WarningCleared):
        return Target(f"warning:{data.subject.id}", warning_subject=data.subject.id)
    return None  # restoration, overdue, transfer events: nothing of the list changes


def input_of(inc: Incoming, entry_id: str, arrival: int) -> Input:
    data = inc.data
    at = inc.at.astimezone(UTC)
    if isinstance(data, DesignationCreated | DesignationAmended | DesignationRemoved):
        reason = str(data.reason) if isinstance(data, DesignationRemoved) else None
        doc = data.record.model_dump(mode="json", exclude_none=True)
        return Input(inc.event.id, entry_id, domain.RECORD, at, arrival, doc, reason)
    if isinstance(data, ObjectionOpened):
        return Input(inc.event.id, entry_id, domain.OBJECTION_OPENED, at, arrival, {"objection_id": data.objection_id})
    if isinstance(data, ObjectionResolved):
        doc = {"objection_id": data.objection_id, "outcome": str(data.outcome)}
        return Input(inc.event.id, entry_id, domain.OBJECTION_RESOLVED, at, arrival, doc)
    if isinstance(data, WarningListed):
        return Input(inc.event.id, entry_id, domain.WARNING, at, arrival, data.model_dump(mode="json"))
    assert isinstance(data, WarningCleared)
    doc = data.model_dump(mode="json")
    return Input(inc.event.id, entry_id, domain.WARNING_CLEARED, at, arrival, doc, domain.WARNING_CLEARED_REASON)


@dataclass
class BatchState:
    """The entries a batch touches: their inputs, versions and current versions as they stand."""

    inputs: dict[str, list[Input]]
    current: dict[str, Version]
    open_warning: dict[str, str | None]
    versions: dict[str, list[Version]] = field(default_factory=dict)
    new_inputs: list[Input] = field(default_factory=list)
    changes: list[tuple[Incoming, Change]] = field(default_factory=list)
    loaded_seq: dict[str, int | None] = field(default_factory=dict)  # each entry's last seq before

    def apply(self, inc: Incoming, target: Target) -> None:
        entry_id = self._entry_for(inc, target)
        if entry_id is None:
            return
        inp = input_of(inc, entry_id, _NEW_ARRIVAL + len(self.new_inputs))
        self.new_inputs.append(inp)
        self.inputs.setdefault(entry_id, []).append(inp)
        versions = domain.build_versions(self.inputs[entry_id])
        self.versions[entry_id] = versions
        new = versions[-1] if versions else None
        change = domain.change_between(self.current.get(entry_id), new, inp.kind)
        if new is not None:
            self.current[entry_id] = new
        if change is not None:
            self.changes.append((inc, change))

    def _entry_for(self, inc: Incoming, target: Target) -> str | None:
        if target.entry_id is not None:
            return target.entry_id
        # A subject's stay on the warning list is one entry, named after the event that listed it
        # (as a designation is named after its request); a later listing is a new entry.
        subject = target.warning_subject
        assert subject is not None
        open_id = self.open_warning.get(subject)
        if isinstance(inc.data, WarningCleared):
            self.open_warning[subject] = None
            return open_id  # None: not on the warning list, nothing to clear
        if open_id is None:
            open_id = inc.event.id
            self.open_warning[subject] = open_id
        return open_id


def imported(inc: Incoming) -> bool:
    """Whether an entry came in by a historical import: the contract names a new designation
    after its request (`id`), an imported one after its unit's `ref`, so its created event's
    cause is not its own id. Its delay from decision to publication here is not a publication
    delay (it was published, elsewhere, when it was decided)."""
    data = inc.data
    return (
        isinstance(data, DesignationCreated)
        and inc.event.causationid is not None
        and inc.event.causationid != data.record.designation_id
    )


class SharingHandlers:
    """The sharing consumer, bound to its runtime."""

    def __init__(self, runtime: HandlerDeps, store_for: Callable[[Context], Store] | None = None) -> None:
        self.rt = runtime
        # The batch's store: the tables through the batch's connection, or one given (in memory).
        self.store_for: Callable[[Context], Store] = store_for or (lambda ctx: SharingStore(ctx.conn))

    def bus(self) -> Handlers[BatchState]:
        """The consumer's handlers by contract model: every list-relevant event is one input of
        its entry; the batch's changes are numbered and published when it is saved."""
        return Handlers(
            {
                DesignationCreated: self.apply,
                DesignationAmended: self.apply,
                DesignationRemoved: self.apply,
                ObjectionOpened: self.apply,
                ObjectionResolved: self.apply,
                WarningListed: self.apply,
                WarningUpdated: self.apply,
                WarningCleared: self.apply,
            },
            load=self.load,
            save=self.save,
            # Applying emits nothing: each change is published in its own handling scope at save.
            scoped=False,
        )

    async def load(self, items: Sequence[Incoming], ctx: Context) -> BatchState:
        """Lock the entries the batch touches and load their inputs and current versions."""
        store = self.store_for(ctx)
        work = [t for t in map(target_of, items) if t is not None]
        if not work:
            return BatchState({}, {}, {})
        await store.lock({t.lock_key for t in work})
        subjects = sorted({t.warning_subject for t in work if t.warning_subject is not None})
        open_warning: dict[str, str | None] = dict(await store.open_warnings(subjects))
        entry_ids = sorted(
            {t.entry_id for t in work if t.entry_id is not None} | {e for e in open_warning.values() if e is not None}
        )
        loaded = await store.load_entries(entry_ids)
        current = {entry_id: version for entry_id, (version, _) in loaded.items()}
        state = BatchState(await store.load_inputs(entry_ids), current, open_warning)
        state.loaded_seq = {entry_id: seq for entry_id, (_, seq) in loaded.items()}
        return state

    @staticmethod
    def apply(inc: Incoming, ctx: Context, state: BatchState) -> None:
        target = target_of(inc)
        if target is not None:
            state.apply(inc, target)

    async def save(self, state: BatchState, ctx: Context) -> None:
        if not state.new_inputs:
            return
        store = self.store_for(ctx)
        await store.insert_inputs(state.new_inputs)
        await store.replace_history(state.versions)
        rows = await self._publish(ctx, store, state.changes)
        last_seq = dict(state.loaded_seq)
        last_seq.update((r.change.version.entry_id, r.seq) for r in rows)
        await store.replace_entries([(state.current[e], last_seq.get(e)) for e in state.versions if e in state.current])
        await store.insert_changes(rows)

    async def _publish(self, ctx: Context, store: Store, changes: list[tuple[Incoming, Change]]) -> list[ChangeRow]:
        """Number the batch's changes (the last thing before commit: the counter's row lock orders
        committing batches) and put them on both list-change topics through the outbox."""
        if not changes:
            return []
        first = await store.allocate(len(changes))
        published_at = ctx.clock.now()  # publication delay: decided_on to this, per change
        rows: list[ChangeRow] = []
        for n, (inc, change) in enumerate(changes):
            seq = first + n
            version = change.version
            event_id = derived_id(inc.event.id, self.rt.name, f"{change.type}|{version.entry_id}")
            # What the feeds carry is what the changes table keeps (GET /v1/changes answers the
            # same documents). They are built from validated records in the contract's own form,
            # not validated again here: that was two fifths of the projection's CPU (profiled).
            # tests/unit/sharing/test_change_documents.py holds every kind of change to the model.
            data = change.data(seq, published_at)
            public = change.public_data(seq, published_at)
            rows.append(ChangeRow(seq, event_id, change, inc.event.id, data, public, published_at, imported(inc)))
            with ctx.handling(inc):
                ctx.publish(
                    topics.LISTS_CHANGES,
                    version.subject_id,
                    change.type,
                    data,
                    subject=version.subject_id,
                    time=version.recorded_at,
                    id=event_id,
                )
                if public is not None:
                    key = domain.public_key(version.subject_id, version.entry["subject"])
                    ctx.publish(
                        topics.LISTS_PUBLIC,
                        key,
                        change.type,
                        public,
                        subject=key,
                        time=version.recorded_at,
                        id=derived_id(event_id, self.rt.name, PUBLIC_ID),
                    )
        return rows


def change_item(row: Any, *, public: bool) -> dict[str, Any]:
    """A change as GET /v1/changes lists it: its type and event id, then its data."""
    if public:
        doc = domain.public_change(row["data"], public=row["public"])
        assert doc is not None  # the query keeps only changes the public topic got
        return {"type": row["type"], "id": derived_id(row["event_id"], "sharing", PUBLIC_ID), **doc}
    return {"type": row["type"], "id": row["event_id"], **row["data"]}
