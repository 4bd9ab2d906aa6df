"""The objection service: wiring only (consumer, timer, HTTP routes). Rules live in domain.py,
load-decide-save in handlers.py, SQL in store.py."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from credit_common.http.auth import require_owner
from credit_common.http.cursors import decode_cursor, encode_cursor
from credit_common.http.problems import Problem
from credit_common.messaging import topics
from credit_common.service import ConsumerSpec, Runtime, ServiceDefinition, TimerSpec, run
from credit_common.settings import Settings
from fastapi import FastAPI, Query, Request
from pydantic import Field

from . import domain, store
from .dashboard import panels
from .handlers import EVENT_TYPES, INBOX_TYPES, NOTICE_TYPES, ObjectionHandlers

NAME = "objection"
DEFAULT_PAGE = 100
MAX_PAGE = 1000


class ObjectionSettings(Settings):
    """The shared settings and the objection service's own (read once, at wiring)."""

    credit_objection_due_working_days: int = Field(default=domain.OBJECTION_DUE_WORKING_DAYS, ge=1, le=365)
    credit_restoration_due_working_days: int = Field(default=domain.RESTORATION_DUE_WORKING_DAYS, ge=1, le=365)
    credit_restoration_notify_working_days: int = Field(default=domain.RESTORATION_NOTIFY_WORKING_DAYS, ge=1, le=365)


class ItemStatus(StrEnum):
    OPEN = "open"
    OVERDUE = "overdue"
    RESOLVED = "resolved"
    CLOSED = "closed"


def consumers(rt: Runtime) -> Sequence[ConsumerSpec]:
    settings = ObjectionSettings()
    handlers = ObjectionHandlers(
        rt,
        objection_days=settings.credit_objection_due_working_days,
        restoration_days=settings.credit_restoration_due_working_days,
        notify_days=settings.credit_restoration_notify_working_days,
    )
    rt.extras["handlers"] = handlers
    bus = handlers.bus()
    return [
        ConsumerSpec(
            name="",
            # Units' parents and standards come from the process's reference cache (rt.reference).
            topics=[topics.DESIGNATION_EVENTS, topics.OBJECTION_REQUESTS],
            batch_handler=bus,
            request_types=bus.request_types,
            request_topics=[topics.OBJECTION_REQUESTS],
        )
    ]


async def overdue(rt: Runtime) -> None:
    await rt.extras["handlers"].overdue_due(rt)


def _decode_cursor(cursor: str | None, scope: dict[str, Any]) -> str:
    """The id to continue after ("" for the first page)."""
    return str(decode_cursor(cursor, scope)["after"]) if cursor else ""


_LIFE = (
    "status",
    "due_on",
    "escalated_to",
    "escalations",
    "escalation_due_on",
    "overdue_at",
    "outcome",
    "reasoning",
    "decided_on",
    "decided_by",
    "resolved_at",
    "closed_at",
    "closed_reason",
    "closed_by",
)


def _objection_doc(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "objection_id": row["objection_id"],
        "designation_id": row["designation_id"],
        "subject": row["record"]["subject"],
        "unit": row["unit"],
        "objector": row["objector"],
        "grounds": row["grounds"],
        "evidence": row["evidence"],
        "filed_by": row["filed_by"],
        "filed_at": row["filed_at"],
        **{k: row[k] for k in _LIFE},
        "designation": row["record"],
    }


def _restoration_doc(row: dict[str, Any], measures: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "application_id": row["application_id"],
        "designation_id": row["designation_id"],
        "subject": row["record"]["subject"],
        "unit": row["unit"],
        "applicant": row["applicant"],
        "measures": [
            {
                "kind": m["kind"],
                "detail": m["detail"],
                "completed_on": m["completed_on"],
                "hours": m["hours"],
                "legal_representative_training": m["legal_rep_training"],
                "legal_representative": m["legal_representative"],
            }
            for m in measures
        ],
        "evidence": row["evidence"],
        "applied_on": row["applied_on"],
        "notify_by": row["notify_by"],
        "filed_by": row["filed_by"],
        "filed_at": row["filed_at"],
        **{k: row[k] for k in _LIFE},
        "designation": row["record"],
    }


def _inbox_doc(row: dict[str, Any], unit: str) -> dict[str, Any]:
    doc = {
        "kind": row["kind"],
        "item_id": row["item_id"],
        "designation_id": row["designation_id"],
        "subject": row["record"]["subject"],
        "list": row["record"]["list"],
        "unit": row["unit"],
        # Why it is in this unit's inbox: routed to it as the designating unit, or escalated to it.
        "role": "designating_unit" if row["unit"] == unit else "escalated",
        "status": row["status"],
        "due_on": row["due_on"],
        "escalated_to": row["escalated_to"],
        "received_at": row["filed_at"],
        "overdue_at": row["overdue_at"],
        "outcome": row["outcome"],
        "decided_on": row["decided_on"],
        "decided_by": row["decided_by"],
        "closed_reason": row["closed_reason"],
    }
    if row["kind"] == "restoration":
        doc["notify_by"] = row["notify_by"]
    return doc


def routes(app: FastAPI, rt: Runtime) -> None:
    @app.get("/v1/objections/{objection_id}", summary="An objection: who objects, to what, its deadline and outcome")
    async def get_objection(objection_id: str) -> dict[str, Any]:
        row = await store.get_objection(rt.db, objection_id)
        if row is None:
            raise Problem(404, "Unknown objection", f"no objection {objection_id}")
        return _objection_doc(row)

    @app.get(
        "/v1/restorations/{application_id}",
        summary="A credit-restoration application: its measures, deadlines and outcome",
    )
    async def get_restoration(application_id: str) -> dict[str, Any]:
        row, measures = await store.get_application(rt.db, application_id)
        if row is None:
            raise Problem(404, "Unknown application", f"no restoration application {application_id}")
        return _restoration_doc(row, measures)

    @app.get(
        "/v1/units/{code}/inbox",
        summary="Objections and restoration applications a unit must decide (its own and those escalated to it)",
    )
    async def get_inbox(
        request: Request,
        code: str,
        status: ItemStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        require_owner(request, code)  # a unit's token: its own inbox only
        if rt.reference.catalog.unit(code) is None:
            raise Problem(404, "Unknown unit", f"no unit {code!r} in the reference catalogue")
        scope = {"unit": code, "status": str(status) if status else None}
        after = _decode_cursor(cursor, scope)
        rows = await store.inbox(rt.db, code, scope["status"], after, limit)
        next_cursor = encode_cursor({**scope, "after": rows[-1]["item_id"]}) if len(rows) >= limit else None
        return {"unit": code, "items": [_inbox_doc(r, code) for r in rows], "next_cursor": next_cursor}

    @app.get(
        "/v1/restoration-measures",
        summary="Restoration measures counted per province, designating unit and kind",
    )
    async def get_measure_counts(
        province: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
        unit: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        rows = await store.measure_counts(rt.db, province, unit)
        return {"counts": rows}

    @app.get("/v1/stats", summary="Objections, applications and known designations per status")
    async def get_stats() -> dict[str, Any]:
        return {"counts": await store.counts(rt.db)}


definition = ServiceDefinition(
    name=NAME,
    title="Objection service",
    description=(
        "Objections to designations and credit-restoration applications: routed to the designating "
        "unit with working-day deadlines, escalated to its parent when overdue, decided, and announced "
        "so that the entry is flagged, removed or kept."
    ),
    migrations=Path(__file__).parent / "migrations",
    consumers=consumers,
    timers=[TimerSpec("objection-overdue", 5.0, overdue)],
    routes=routes,
    dashboard=panels,
    publishes={
        topics.OBJECTION_EVENTS: list(EVENT_TYPES),
        topics.UNIT_INBOX: list(INBOX_TYPES),
        topics.SUBJECT_NOTICES: list(NOTICE_TYPES),
    },
)


def main() -> None:
    run(definition)


if __name__ == "__main__":
    main()
