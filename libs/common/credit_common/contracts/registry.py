"""The one table of every message type of the contract: its topic, its data model and its kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, RootModel

from credit_common.contracts import events as ev
from credit_common.contracts import requests as rq
from credit_common.contracts.envelope import CloudEvent
from credit_common.messaging.topics import (
    CASES_EVENTS as TOPIC_CASES_EVENTS,
)
from credit_common.messaging.topics import (
    CONDUCT_REPORTS as TOPIC_CONDUCT_REPORTS,
)
from credit_common.messaging.topics import (
    DEADLETTER as TOPIC_DEADLETTER,
)
from credit_common.messaging.topics import (
    DESIGNATION_EVENTS as TOPIC_DESIGNATION_EVENTS,
)
from credit_common.messaging.topics import (
    DESIGNATION_REQUESTS as TOPIC_DESIGNATION_REQUESTS,
)
from credit_common.messaging.topics import (
    ENFORCEMENT_ACTIONS as TOPIC_ENFORCEMENT_ACTIONS,
)
from credit_common.messaging.topics import (
    FEEDBACK as TOPIC_FEEDBACK,
)
from credit_common.messaging.topics import (
    LISTS_CHANGES as TOPIC_LISTS_CHANGES,
)
from credit_common.messaging.topics import (
    LISTS_PUBLIC as TOPIC_LISTS_PUBLIC,
)
from credit_common.messaging.topics import (
    OBJECTION_EVENTS as TOPIC_OBJECTION_EVENTS,
)
from credit_common.messaging.topics import (
    OBJECTION_REQUESTS as TOPIC_OBJECTION_REQUESTS,
)

# Topic names are declared once, with their partitions and retention, in messaging.topics.
from credit_common.messaging.topics import (
    REFERENCE as TOPIC_REFERENCE,
)
from credit_common.messaging.topics import (
    SUBJECT_NOTICES as TOPIC_SUBJECT_NOTICES,
)
from credit_common.messaging.topics import (
    UNIT_INBOX as TOPIC_UNIT_INBOX,
)
from credit_common.messaging.topics import (
    WARNING_EVENTS as TOPIC_WARNING_EVENTS,
)

ALL_TOPICS: tuple[str, ...] = (
    TOPIC_REFERENCE,
    TOPIC_DESIGNATION_REQUESTS,
    TOPIC_DESIGNATION_EVENTS,
    TOPIC_OBJECTION_REQUESTS,
    TOPIC_OBJECTION_EVENTS,
    TOPIC_CONDUCT_REPORTS,
    TOPIC_WARNING_EVENTS,
    TOPIC_ENFORCEMENT_ACTIONS,
    TOPIC_CASES_EVENTS,
    TOPIC_LISTS_CHANGES,
    TOPIC_LISTS_PUBLIC,
    TOPIC_UNIT_INBOX,
    TOPIC_SUBJECT_NOTICES,
    TOPIC_FEEDBACK,
    TOPIC_DEADLETTER,
)

MessageKind = Literal["request", "event", "reference"]


@dataclass(frozen=True)
class MessageType:
    """One row of the registry: `name` is the CloudEvents `type`; `topics[0]` is where it is
    published (list changes also go, in their public view, to `credit.lists.public.v1`)."""

    name: str
    topics: tuple[str, ...]
    model: type[BaseModel]
    kind: MessageKind

    @property
    def topic(self) -> str:
        return self.topics[0]


class UnknownMessageType(KeyError):
    """A `type` the contract does not define."""


def _row(type_: str, topic: str | tuple[str, ...], model: type[BaseModel], kind: MessageKind) -> MessageType:
    return MessageType(type_, topic if isinstance(topic, tuple) else (topic,), model, kind)


_LISTS = (TOPIC_LISTS_CHANGES, TOPIC_LISTS_PUBLIC)

REGISTRY: dict[str, MessageType] = {
    row.name: row
    for row in (
        # requests
        _row("credit.designation.designate", TOPIC_DESIGNATION_REQUESTS, rq.Designate, "request"),
        _row("credit.designation.remove", TOPIC_DESIGNATION_REQUESTS, rq.RemoveDesignation, "request"),
        _row("credit.designation.amend", TOPIC_DESIGNATION_REQUESTS, rq.AmendDesignation, "request"),
        _row("credit.designation.import", TOPIC_DESIGNATION_REQUESTS, rq.ImportDesignations, "request"),
        _row("credit.objection.file", TOPIC_OBJECTION_REQUESTS, rq.FileObjection, "request"),
        _row("credit.objection.decide", TOPIC_OBJECTION_REQUESTS, rq.DecideObjection, "request"),
        _row("credit.restoration.apply", TOPIC_OBJECTION_REQUESTS, rq.ApplyRestoration, "request"),
        _row("credit.restoration.decide", TOPIC_OBJECTION_REQUESTS, rq.DecideRestoration, "request"),
        _row("credit.conduct.report", TOPIC_CONDUCT_REPORTS, rq.ReportConduct, "request"),
        _row("credit.enforcement.report", TOPIC_ENFORCEMENT_ACTIONS, rq.ReportEnforcement, "request"),
        # events
        _row("credit.designation.created", TOPIC_DESIGNATION_EVENTS, ev.DesignationCreated, "event"),
        _row("credit.designation.amended", TOPIC_DESIGNATION_EVENTS, ev.DesignationAmended, "event"),
        _row("credit.designation.removed", TOPIC_DESIGNATION_EVENTS, ev.DesignationRemoved, "event"),
        _row("credit.objection.opened", TOPIC_OBJECTION_EVENTS, ev.ObjectionOpened, "event"),
        _row("credit.objection.overdue", TOPIC_OBJECTION_EVENTS, ev.ObjectionOverdue, "event"),
        _row("credit.objection.resolved", TOPIC_OBJECTION_EVENTS, ev.ObjectionResolved, "event"),
        _row("credit.restoration.opened", TOPIC_OBJECTION_EVENTS, ev.RestorationOpened, "event"),
        _row("credit.restoration.overdue", TOPIC_OBJECTION_EVENTS, ev.RestorationOverdue, "event"),
        _row("credit.restoration.resolved", TOPIC_OBJECTION_EVENTS, ev.RestorationResolved, "event"),
        _row("credit.warning.listed", TOPIC_WARNING_EVENTS, ev.WarningListed, "event"),
        _row("credit.warning.updated", TOPIC_WARNING_EVENTS, ev.WarningUpdated, "event"),
        _row("credit.warning.cleared", TOPIC_WARNING_EVENTS, ev.WarningCleared, "event"),
        _row("credit.transfer.recommended", TOPIC_WARNING_EVENTS, ev.TransferRecommended, "event"),
        _row("credit.transfer.overdue", TOPIC_WARNING_EVENTS, ev.TransferOverdue, "event"),
        _row("credit.case.recorded", TOPIC_CASES_EVENTS, ev.CaseRecorded, "event"),
        _row("credit.inbox.objection", TOPIC_UNIT_INBOX, ev.InboxObjection, "event"),
        _row("credit.inbox.restoration", TOPIC_UNIT_INBOX, ev.InboxRestoration, "event"),
        _row("credit.inbox.transfer", TOPIC_UNIT_INBOX, ev.InboxTransfer, "event"),
        _row("credit.inbox.escalation", TOPIC_UNIT_INBOX, ev.InboxEscalation, "event"),
        _row("credit.notice.designated", TOPIC_SUBJECT_NOTICES, ev.NoticeDesignated, "event"),
        _row("credit.notice.removed", TOPIC_SUBJECT_NOTICES, ev.NoticeRemoved, "event"),
        _row("credit.notice.objection_resolved", TOPIC_SUBJECT_NOTICES, ev.NoticeObjectionResolved, "event"),
        _row("credit.notice.restoration_resolved", TOPIC_SUBJECT_NOTICES, ev.NoticeRestorationResolved, "event"),
        _row("credit.list.entry_added", _LISTS, ev.ListChange, "event"),
        _row("credit.list.entry_updated", _LISTS, ev.ListChange, "event"),
        _row("credit.list.entry_removed", _LISTS, ev.ListChange, "event"),
        _row("credit.request.accepted", TOPIC_FEEDBACK, ev.RequestAccepted, "event"),
        _row("credit.request.rejected", TOPIC_FEEDBACK, ev.RequestRejected, "event"),
        _row("credit.deadletter.recorded", TOPIC_DEADLETTER, ev.DeadLetterRecorded, "event"),
        # reference data
        _row("credit.reference.upserted", TOPIC_REFERENCE, ev.ReferenceUpserted, "reference"),
    )
}


def message_type(type_: str) -> MessageType:
    """The registry row of `type_`; raises UnknownMessageType."""
    try:
        return REGISTRY[type_]
    except KeyError:
        raise UnknownMessageType(type_) from None


def model_for(type_: str) -> type[BaseModel]:
    """The model of the `data` of events of `type_`; raises UnknownMessageType."""
    return message_type(type_).model


def topic_for(type_: str) -> str:
    """The topic events of `type_` are published on (list changes: the internal one)."""
    return message_type(type_).topic


def types_on(topic: str) -> list[str]:
    """Every type that may appear on `topic`, in registry order."""
    return [row.name for row in REGISTRY.values() if topic in row.topics]


def parse_data(event: CloudEvent) -> BaseModel:
    """Validate `event.data` against the model of its type (pydantic ValidationError if it does
    not fit; UnknownMessageType for a type the contract does not define). For a reference upsert
    the record itself (FieldRecord, UnitRecord, ...) is returned, not its root wrapper."""
    parsed = model_for(event.type).model_validate(event.data)
    if isinstance(parsed, RootModel):
        root: BaseModel = parsed.root
        return root
    return parsed
