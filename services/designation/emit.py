"""What the designation service publishes, built from the record as a validated
`DesignationRecord` made it (dumped once per version, for the event and the row alike):
`credit.designation.*` on the events topic, and what the subject is told on
`credit.subject.notices.v1` (its designation with its rights, each removal)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from credit_common.contracts import types as T
from credit_common.contracts.events import DesignationRecord
from credit_common.contracts.reference import StandardRecord
from credit_common.messaging import topics
from credit_common.messaging.unit_of_work import Context
from credit_common.outcomes import derived_id

from . import domain


def record_json(record: DesignationRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude_none=True)


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def created(ctx: Context, record: DesignationRecord, doc: dict[str, Any] | None = None) -> None:
    subject_id = record.subject.id
    data = {"record": doc if doc is not None else record_json(record)}
    ctx.publish(topics.DESIGNATION_EVENTS, subject_id, T.DESIGNATION_CREATED, data, subject=subject_id)


def amended(ctx: Context, record: DesignationRecord, changes: dict[str, Any], reason: str) -> None:
    subject_id = record.subject.id
    data = {"record": record_json(record), "changes": changes, "reason": reason}
    ctx.publish(topics.DESIGNATION_EVENTS, subject_id, T.DESIGNATION_AMENDED, data, subject=subject_id)


def designated_notice(ctx: Context, record: DesignationRecord, doc: dict[str, Any], std: StandardRecord | None) -> None:
    """Tell the subject it was designated: on which list, by whom, under which standard, until
    when, and its rights (object now; apply for restoration from a date where it may)."""
    ctx.publish(
        topics.SUBJECT_NOTICES,
        record.subject.id,
        T.NOTICE_DESIGNATED,
        {
            "subject": doc["subject"],
            "designation_id": record.designation_id,
            "list": doc["list"],
            "standard": record.standard,
            "unit": record.unit,
            "effective_from": doc["effective_from"],
            "effective_to": doc["effective_to"],
            "rights": {"objection": True, "restoration_from": _iso(domain.restoration_from(record, std))},
        },
        subject=record.subject.id,
    )


def removed(
    ctx: Context,
    removal: domain.Removal,
    service: str,
    *,
    at: datetime | None = None,
    id: str | None = None,
    doc: dict[str, Any] | None = None,
) -> None:
    """`credit.designation.removed`, and the subject's notice of it. The subject is told of every
    removal, whatever caused it; a timer's removal has no causing message, so its notice takes an
    id derived from the removal's (the same notice whoever emits it, whenever)."""
    record = doc if doc is not None else record_json(removal.record)
    data: dict[str, Any] = {"record": record, "reason": removal.reason}
    if removal.related_id:
        data["related_id"] = removal.related_id
    subject_id = removal.record.subject.id
    event_id = ctx.publish(
        topics.DESIGNATION_EVENTS, subject_id, T.DESIGNATION_REMOVED, data, subject=subject_id, time=at, id=id
    )
    ctx.publish(
        topics.SUBJECT_NOTICES,
        subject_id,
        T.NOTICE_REMOVED,
        {"subject": record["subject"], "designation_id": removal.record.designation_id, "reason": removal.reason},
        subject=subject_id,
        time=at,
        id=derived_id(event_id, service, T.NOTICE_REMOVED) if id is not None else None,
    )
