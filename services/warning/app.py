"""The warning service: wiring only (consumer, timer, HTTP routes). Rules live in domain.py,
load-decide-save in handlers.py, SQL in store.py."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from credit_common.contracts import types as T
from credit_common.http.cursors import decode_cursor, encode_cursor
from credit_common.http.problems import Problem
from credit_common.identifiers import normalise
from credit_common.messaging import topics
from credit_common.service import ConsumerSpec, Runtime, ServiceDefinition, TimerSpec, run
from credit_common.settings import Settings
from fastapi import FastAPI, Query
from pydantic import Field

from . import domain, store
from .dashboard import panels
from .handlers import WarningHandlers, not_ours

NAME = "warning"
DEFAULT_PAGE = 100
MAX_PAGE = 1000


class WarningSettings(Settings):
    """The shared settings and the warning service's own (read once, at wiring)."""

    credit_warning_threshold: int = Field(
        default=domain.DEFAULT_THRESHOLD, ge=1, description="distinct key fields that put a subject on the list"
    )
    credit_transfer_due_working_days: int = Field(default=domain.DEFAULT_DUE_WORKING_DAYS, ge=1, le=365)


class WarningStatus(StrEnum):
    LISTED = "listed"
    CLEARED = "cleared"


class TransferStatus(StrEnum):
    OPEN = "open"
    OVERDUE = "overdue"
    CLOSED = "closed"


def consumers(rt: Runtime) -> Sequence[ConsumerSpec]:
    settings = WarningSettings()
    handlers = WarningHandlers(
        rt, threshold=settings.credit_warning_threshold, due_working_days=settings.credit_transfer_due_working_days
    )
    rt.extras["handlers"] = handlers
    bus = handlers.bus()
    return [
        ConsumerSpec(
            name="",
            # The reference topic in the group too (not only the process's cache): a key field
            # changing is then an event with an id and a time, handled in order like any other.
            topics=[topics.DESIGNATION_EVENTS, topics.CONDUCT_REPORTS, topics.REFERENCE],
            batch_handler=bus,
            request_types=bus.request_types,
            request_topics=[topics.CONDUCT_REPORTS],
            skip=not_ours,
        )
    ]


async def rejudge(rt: Runtime) -> None:
    await rt.extras["handlers"].rejudge_on_threshold_change(rt.db, rt.clock, rt.name)


async def overdue(rt: Runtime) -> None:
    await rt.extras["handlers"].overdue_due(rt)


def _decode_cursor(cursor: str | None, scope: dict[str, Any]) -> str:
    """The id to continue after ("" for the first page)."""
    return str(decode_cursor(cursor, scope)["after"]) if cursor else ""


def _warning_doc(row: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "subject": row["subject"],
        "status": row["status"],
        "since": row["since"],
        "listed_at": row["listed_at"],
        "updated_at": row["updated_at"],
    }
    if row["status"] == "listed":
        doc |= {"fields": row["fields"], "designation_ids": row["designation_ids"]}
    else:
        doc |= {"remaining_fields": row["fields"], "cleared_at": row["cleared_at"]}
    return doc


def _transfer_doc(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "recommendation_id": row["recommendation_id"],
        "status": row["status"],
        "subject": row["record"]["subject"],
        "designation_id": row["designation_id"],
        "field": row["field"],
        "unit": row["unit"],
        "conduct_report_id": row["conduct_report_id"],
        "due_on": row["due_on"],
        "recommended_at": row["created_at"],
        "escalated_to": row["escalated_to"],
        "overdue_at": row["overdue_at"],
        "closed_at": row["closed_at"],
        "closed_reason": row["closed_reason"],
        "closed_by": row["closed_by"],
    }


def routes(app: FastAPI, rt: Runtime) -> None:
    @app.get("/v1/warnings", summary="The Big Data Warning List (or those who left it), a page at a time")
    async def list_warnings(
        status: WarningStatus = WarningStatus.LISTED,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        scope = {"status": str(status)}
        after = _decode_cursor(cursor, scope)
        rows = await store.list_warnings(rt.db, str(status), after, limit)
        next_cursor = encode_cursor({**scope, "after": rows[-1]["subject_id"]}) if len(rows) >= limit else None
        return {"warnings": [_warning_doc(r) for r in rows], "next_cursor": next_cursor}

    @app.get(
        "/v1/warnings/{subject_id}",
        summary="A subject's place on the warning list, with the key-scrutiny entries that caused it",
    )
    async def get_warning(subject_id: str) -> dict[str, Any]:
        sid = normalise("other", subject_id)
        row, entries = await store.get_warning(rt.db, sid)
        if row is None:
            raise Problem(404, "Not on the warning list", f"{sid} has never been on the warning list")
        doc = _warning_doc(row)
        causing = set(row["designation_ids"]) if row["status"] == "listed" else set()
        doc["entries"] = [e for e in entries if e["designation_id"] in causing]
        doc["other_key_scrutiny_entries"] = [e for e in entries if e["designation_id"] not in causing]
        return doc

    @app.get("/v1/transfers", summary="Transfer recommendations (key scrutiny to black), a page at a time")
    async def list_transfers(
        status: TransferStatus | None = None,
        subject: Annotated[str | None, Query(max_length=64, description="only this subject's")] = None,
        unit: Annotated[str | None, Query(max_length=64, description="only those to this unit")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        sid = normalise("other", subject) if subject else None
        scope = {"status": str(status) if status else None, "subject": sid, "unit": unit}
        after = _decode_cursor(cursor, scope)
        rows = await store.list_recommendations(rt.db, scope["status"], sid, unit, after, limit)
        next_cursor = encode_cursor({**scope, "after": rows[-1]["recommendation_id"]}) if len(rows) >= limit else None
        return {"transfers": [_transfer_doc(r) for r in rows], "next_cursor": next_cursor}

    @app.get("/v1/stats", summary="Subjects per warning status, recommendations per status, active entries")
    async def get_stats() -> dict[str, Any]:
        return {"counts": await store.counts(rt.db)}


definition = ServiceDefinition(
    name=NAME,
    title="Warning service",
    description=(
        "The Big Data Warning List (subjects on key-scrutiny lists in 3 or more key fields) and the "
        "recommendations to transfer key-scrutiny entries to the black list after serious conduct, "
        "with their working-day deadlines and escalations."
    ),
    migrations=Path(__file__).parent / "migrations",
    consumers=consumers,
    timers=[TimerSpec("transfer-overdue", 5.0, overdue)],
    on_start=rejudge,
    routes=routes,
    dashboard=panels,
    publishes={
        topics.WARNING_EVENTS: [
            T.WARNING_LISTED,
            T.WARNING_UPDATED,
            T.WARNING_CLEARED,
            T.TRANSFER_RECOMMENDED,
            T.TRANSFER_OVERDUE,
        ],
        topics.UNIT_INBOX: [T.INBOX_TRANSFER, T.INBOX_ESCALATION],
    },
)


def main() -> None:
    run(definition)


if __name__ == "__main__":
    main()
