"""The one table of every message type of the contract: its topic, its data model and its kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, RootModel

from credit_common.contracts import events as ev
from credit_common.contracts import requests as rq
from credit_common.contracts import types as T
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
        _row(T.DESIGNATION_DESIGNATE, TOPIC_DESIGNATION_REQUESTS, rq.Designate, "request"),
        _row(T.DESIGNATION_REMOVE, TOPIC_DESIGNATION_REQUESTS, rq.RemoveDesignation, "request"),
        _row(T.DESIGNATION_AMEND, TOPIC_DESIGNATION_REQUESTS, rq.AmendDesignation, "request"),
        _row(T.DESIGNATION_IMPORT, TOPIC_DESIGNATION_REQUESTS, rq.ImportDesignations, "request"),
        _row(T.OBJECTION_FILE, TOPIC_OBJECTION_REQUESTS, rq.FileObjection, "request"),
        _row(T.OBJECTION_DECIDE, TOPIC_OBJECTION_REQUESTS, rq.DecideObjection, "request"),
        _row(T.RESTORATION_APPLY, TOPIC_OBJECTION_REQUESTS, rq.ApplyRestoration, "request"),
        _row(T.RESTORATION_DECIDE, TOPIC_OBJECTION_REQUESTS, rq.DecideRestoration, "request"),
        _row(T.CONDUCT_REPORT, TOPIC_CONDUCT_REPORTS, rq.ReportConduct, "request"),
        _row(T.ENFORCEMENT_REPORT, TOPIC_ENFORCEMENT_ACTIONS, rq.ReportEnforcement, "request"),
        # events
        _row(T.DESIGNATION_CREATED, TOPIC_DESIGNATION_EVENTS, ev.DesignationCreated, "event"),
        _row(T.DESIGNATION_AMENDED, TOPIC_DESIGNATION_EVENTS, ev.DesignationAmended, "event"),
        _row(T.DESIGNATION_REMOVED, TOPIC_DESIGNATION_EVENTS, ev.DesignationRemoved, "event"),
        _row(T.OBJECTION_OPENED, TOPIC_OBJECTION_EVENTS, ev.ObjectionOpened, "event"),
        _row(T.OBJECTION_OVERDUE, TOPIC_OBJECTION_EVENTS, ev.ObjectionOverdue, "event"),
        _row(T.OBJECTION_RESOLVED, TOPIC_OBJECTION_EVENTS, ev.ObjectionResolved, "event"),
        _row(T.RESTORATION_OPENED, TOPIC_OBJECTION_EVENTS, ev.RestorationOpened, "event"),
        _row(T.RESTORATION_OVERDUE, TOPIC_OBJECTION_EVENTS, ev.RestorationOverdue, "event"),
        _row(T.RESTORATION_RESOLVED, TOPIC_OBJECTION_EVENTS, ev.RestorationResolved, "event"),
        _row(T.WARNING_LISTED, TOPIC_WARNING_EVENTS, ev.WarningListed, "event"),
        _row(T.WARNING_UPDATED, TOPIC_WARNING_EVENTS, ev.WarningUpdated, "event"),
        _row(T.WARNING_CLEARED, TOPIC_WARNING_EVENTS, ev.WarningCleared, "event"),
        _row(T.TRANSFER_RECOMMENDED, TOPIC_WARNING_EVENTS, ev.TransferRecommended, "event"),
        _row(T.TRANSFER_OVERDUE, TOPIC_WARNING_EVENTS, ev.TransferOverdue, "event"),
        _row(T.CASE_RECORDED, TOPIC_CASES_EVENTS, ev.CaseRecorded, "event"),
        _row(T.INBOX_OBJECTION, TOPIC_UNIT_INBOX, ev.InboxObjection, "event"),
        _row(T.INBOX_RESTORATION, TOPIC_UNIT_INBOX, ev.InboxRestoration, "event"),
        _row(T.INBOX_TRANSFER, TOPIC_UNIT_INBOX, ev.InboxTransfer, "event"),
        _row(T.INBOX_ESCALATION, TOPIC_UNIT_INBOX, ev.InboxEscalation, "event"),
        _row(T.NOTICE_DESIGNATED, TOPIC_SUBJECT_NOTICES, ev.NoticeDesignated, "event"),
        _row(T.NOTICE_REMOVED, TOPIC_SUBJECT_NOTICES, ev.NoticeRemoved, "event"),
        _row(T.NOTICE_OBJECTION_RESOLVED, TOPIC_SUBJECT_NOTICES, ev.NoticeObjectionResolved, "event"),
        _row(T.NOTICE_RESTORATION_RESOLVED, TOPIC_SUBJECT_NOTICES, ev.NoticeRestorationResolved, "event"),
        _row(T.LIST_ENTRY_ADDED, _LISTS, ev.ListChange, "event"),
        _row(T.LIST_ENTRY_UPDATED, _LISTS, ev.ListChange, "event"),
        _row(T.LIST_ENTRY_REMOVED, _LISTS, ev.ListChange, "event"),
        _row(T.REQUEST_ACCEPTED, TOPIC_FEEDBACK, ev.RequestAccepted, "event"),
        _row(T.REQUEST_REJECTED, TOPIC_FEEDBACK, ev.RequestRejected, "event"),
        _row(T.DEADLETTER_RECORDED, TOPIC_DEADLETTER, ev.DeadLetterRecorded, "event"),
        # reference data
        _row(T.REFERENCE_UPSERTED, TOPIC_REFERENCE, ev.ReferenceUpserted, "reference"),
    )
}


_TYPES_OF_MODEL: dict[type[BaseModel], list[str]] = {}
for _name, _row_of in REGISTRY.items():
    _TYPES_OF_MODEL.setdefault(_row_of.model, []).append(_name)


def types_of(model: type[BaseModel]) -> list[str]:
    """Every type whose data is `model`, in registry order (list changes: three; most: one)."""
    return list(_TYPES_OF_MODEL.get(model, ()))


def type_of(model: type[BaseModel]) -> str:
    """The one type whose data is `model`; ValueError when there is none or several (say which)."""
    names = _TYPES_OF_MODEL.get(model, [])
    if len(names) != 1:
        raise ValueError(f"{model.__name__} is the data of {len(names)} types: name the type")
    return names[0]


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
