"""The designation service: wiring only (consumers, timer, HTTP routes). Rules live in domain.py,
load-decide-save in handlers.py, SQL in store.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from credit_common.contracts import binary
from credit_common.contracts.envelope import CONTENT_TYPE, MAX_MESSAGE_BYTES, CloudEvent, nul_field
from credit_common.contracts.registry import REGISTRY
from credit_common.db.prune import RETAINED, prune_ledger
from credit_common.http import openapi
from credit_common.http.auth import SCOPE_INTERNAL, principal_of, require_owner
from credit_common.http.problems import Problem
from credit_common.identifiers import normalise
from credit_common.messaging import topics
from credit_common.outcomes import is_platform_id
from credit_common.service import ConsumerSpec, Runtime, ServiceDefinition, TimerSpec, run
from credit_common.telemetry.tracing import inject_headers
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from . import store
from .dashboard import panels
from .handlers import EVENT_TYPES, NOTICE_TYPES, DesignationHandlers, flush_batch, read_plan
from .ledger import feedback_bus, own_answer

NAME = "designation"
# The HTTP ingress takes every request type of the contract and publishes it to its topic.
INGRESS: dict[str, list[str]] = {}
for _row in REGISTRY.values():
    if _row.kind == "request":
        INGRESS.setdefault(_row.topic, []).append(_row.name)


def consumers(rt: Runtime) -> Sequence[ConsumerSpec]:
    handlers = DesignationHandlers(rt)
    rt.extras["handlers"] = handlers
    bus = handlers.bus()
    return [
        ConsumerSpec(
            name="",
            topics=[topics.DESIGNATION_REQUESTS, topics.OBJECTION_EVENTS, topics.REFERENCE],
            batch_handler=bus,
            request_types=bus.request_types,
            request_topics=[topics.DESIGNATION_REQUESTS],
            flush=flush_batch,
            optimistic=read_plan,
        ),
        # Other services' answers, for GET /v1/requests/{id}: its own consumer group, so a burst
        # of feedback never delays designations (this service's own answers are recorded as made).
        ConsumerSpec(name="feedback", topics=[topics.FEEDBACK], batch_handler=feedback_bus(), skip=own_answer),
    ]


async def expire(rt: Runtime) -> None:
    await rt.extras["handlers"].expire_due(rt)


#: The request ledger keeps an answer as long as the feedback topic does.
LEDGER_RETENTION = RETAINED[topics.FEEDBACK]


async def prune_requests(rt: Runtime) -> None:
    await prune_ledger(rt.pool, LEDGER_RETENTION)


def _one_request(request: Request, request_id: str, unit: str | None, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The ledger row GET /v1/requests/{id} answers with, of the rows under that id (one per unit
    that used it)."""
    principal = principal_of(request)
    if principal is not None and not principal.has(SCOPE_INTERNAL):
        require_owner(request, principal.unit)  # a token of no unit reads no requests
        unit = principal.unit  # a unit's token: its own request under this id, nobody else's
    if unit is not None:
        rows = [r for r in rows if r["unit"] == unit]
    if not rows:
        raise Problem(404, "Unknown request", f"no request {request_id} has been received or answered")
    if len(rows) > 1:
        units = ", ".join(str(r["unit"]) for r in rows)
        raise Problem(409, "Ambiguous request id", f"units {units} each sent a request {request_id}: add ?unit=")
    return rows[0]


def _subject_key(event: CloudEvent) -> str | None:
    if event.subject:
        return event.subject
    data = event.data if isinstance(event.data, dict) else {}
    subject = data.get("subject")
    if isinstance(subject, dict) and isinstance(subject.get("id"), str):
        try:
            return normalise(str(subject.get("scheme", "other")), subject["id"])
        except Exception:
            return subject["id"]
    for key in ("designation_id", "objection_id", "application_id"):
        if isinstance(data.get(key), str):
            return data[key]
    return None


def _errors(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    return [
        {
            "code": "schema_violation",
            "field": prefix + ".".join(str(x) for x in e["loc"]),
            "message": e["msg"],
        }
        for e in exc.errors(include_url=False)[:50]
    ]


def _binary_envelope(headers: Sequence[tuple[bytes, bytes]], body: bytes) -> dict[str, Any]:
    """The envelope of a binary-mode request (CloudEvents HTTP binding), or the 400/413 problem a
    structured body with the same fault would get."""
    rebuilt = binary.from_http(headers, body)
    if rebuilt.size > MAX_MESSAGE_BYTES:
        raise Problem(
            413,
            "Request too large",
            f"{rebuilt.size} bytes of headers and body are over the {MAX_MESSAGE_BYTES} a request may have",
            errors=[{"code": "too_large", "field": None, "message": f"at most {MAX_MESSAGE_BYTES} bytes"}],
        )
    if rebuilt.problem is not None:
        raise Problem(400, "Malformed request", rebuilt.problem.message, errors=[rebuilt.problem.as_dict()])
    return rebuilt.doc


def routes(app: FastAPI, rt: Runtime) -> None:
    # The body: one of the request envelopes the platform takes over HTTP, each with its data.
    body_schema, components = openapi.request_body(sorted(t for types in INGRESS.values() for t in types))
    app.state.openapi_components = {**getattr(app.state, "openapi_components", {}), **components}

    @app.post(
        "/v1/requests",
        status_code=202,
        summary="Submit a request (a CloudEvent) for departments that cannot speak Kafka",
        description=(
            "Structured mode: the whole envelope as the body (`Content-Type: application/cloudevents+json`). "
            "Binary mode (CloudEvents HTTP binding): the attributes in `ce-` headers, percent-encoded, the data "
            "as the body and its `Content-Type` the `datacontenttype`; signed like the structured envelope the "
            "headers and body stand for."
        ),
        responses={
            400: {"description": "malformed envelope or data (problem details)"},
            401: {"description": "unsigned, or signed by no valid key of its source (problem details)"},
            413: {"description": "over 512 KiB (problem details)"},
        },
        # The body is read raw below, so that a body that is not even JSON is a 400 problem like
        # any other malformed request (a declared Body parameter made FastAPI answer 422 first).
        openapi_extra={"requestBody": {"required": True, "content": {CONTENT_TYPE: {"schema": body_schema}}}},
    )
    async def submit(request: Request) -> JSONResponse:
        raw = await request.body()
        if binary.http_binary(request.headers):
            # Binary mode: the envelope rebuilt from the `ce-` headers and the body, published in
            # structured mode. Its signature covers the RFC 8785 form, which serialising the same
            # document again does not change.
            doc = _binary_envelope(request.headers.raw, raw)
            value = orjson.dumps(doc)
        else:
            doc = None
            value = raw  # as signed: a re-serialised envelope would no longer verify
        try:
            event = CloudEvent.model_validate(doc) if doc is not None else CloudEvent.model_validate_json(raw)
        except ValidationError as exc:
            raise Problem(400, "Malformed request", "the body is not a valid CloudEvent", errors=_errors(exc)) from exc
        where = nul_field(value)
        if where is not None:  # accepted, it would fail in the handler and never be answered
            raise Problem(
                400,
                "Malformed request",
                "a NUL character cannot be stored",
                errors=[{"code": "schema_violation", "field": where or None, "message": "NUL character"}],
            )
        if is_platform_id(event.id):  # refused on Kafka too: a sender may not claim a derived id
            raise Problem(
                400,
                "Malformed request",
                "a version-5 UUID is an id the platform derives; use UUIDv7",
                errors=[{"code": "schema_violation", "field": "id", "message": "an id the platform derives"}],
            )
        row = REGISTRY.get(event.type)
        if row is None or row.kind != "request":
            raise Problem(
                400,
                "Unknown request type",
                f"{event.type!r} is not a request type of the contract",
                errors=[{"code": "schema_violation", "field": "type", "message": "unknown request type"}],
            )
        try:
            row.model.model_validate(event.data)
        except ValidationError as exc:
            raise Problem(
                400, "Malformed request", f"data does not match {event.type}", errors=_errors(exc, "data.")
            ) from exc
        if event.source_unit is None and event.source != "portal":
            raise Problem(
                400,
                "Unknown source",
                "source must be unit/<unit code> or portal",
                errors=[{"code": "schema_violation", "field": "source", "message": "unit/<code> or portal"}],
            )
        refusal = rt.verifier.check(doc if doc is not None else orjson.loads(raw), rt.clock.now())
        if refusal is not None:  # the signature is this endpoint's authentication
            raise Problem(
                401,
                "Request not authenticated",
                refusal.message,
                errors=[{"code": refusal.code, "field": refusal.field, "message": refusal.message}],
            )
        key = _subject_key(event)
        if event.subject is None and isinstance(event.data, dict) and isinstance(event.data.get("designation_id"), str):
            # Key a remove/amend by its entry's subject, so it stays in order with that subject's others.
            known = await store.get_designation(rt.db, event.data["designation_id"])
            if known is not None:
                key = known["subject"]["id"]
        headers = inject_headers([("content-type", CONTENT_TYPE.encode())])
        try:
            await rt.producer.send_and_wait(row.topic, value, key=key.encode() if key else None, headers=headers)
        except Exception as exc:
            raise Problem(503, "Broker unavailable", f"could not publish the request: {type(exc).__name__}") from exc
        await store.record_pending(rt.db, event.id, event.type, event.source_unit or event.source, rt.clock.now())
        return JSONResponse(
            {
                "id": event.id,
                "status": "pending",
                "topic": row.topic,
                "links": {"self": f"/v1/requests/{event.id}"},
            },
            status_code=202,
            headers={"Location": f"/v1/requests/{event.id}"},
        )

    @app.get(
        "/v1/requests/{request_id}",
        summary="A request's answer: pending, accepted or rejected",
        responses={409: {"description": "several units sent a request under this id: name one with ?unit="}},
    )
    async def get_request(request_id: str, request: Request, unit: str | None = None) -> dict[str, Any]:
        """A request is known by its source and id: a unit's token reads its own request under
        `request_id`; an internal token names the unit (`?unit=`) when several units used it."""
        row = _one_request(request, request_id, unit, await store.get_requests(rt.db, request_id))
        return {
            "id": row["request_id"],
            "type": row["request_type"],
            "unit": row["unit"],
            "status": row["status"],
            "result_id": row["result_id"],
            "errors": row["errors"] or [],
            "answered_by": row["answered_by"],
            "received_at": row["received_at"],
            "answered_at": row["answered_at"],
        }

    @app.get("/v1/designations/{designation_id}", summary="A designation's current record")
    async def get_designation(designation_id: str, request: Request) -> dict[str, Any]:
        record = await store.get_designation(rt.db, designation_id)
        if record is None:
            raise Problem(404, "Unknown designation", f"no designation {designation_id}")
        require_owner(request, record.get("unit"))  # a unit's token: its own designations only
        return {
            **record,
            "later_decisions": await store.decisions_of(rt.db, designation_id),
            # Each accepted request about it as signed: `credit-keys verify` re-checks one from this alone.
            "signatures": await store.signatures_of(rt.db, designation_id),
        }


definition = ServiceDefinition(
    name=NAME,
    title="Designation service",
    description=(
        "Designates credit subjects onto the red, black and key-scrutiny lists under the unified "
        "standards, and removes, amends, transfers and expires them."
    ),
    migrations=Path(__file__).parent / "migrations",
    consumers=consumers,
    timers=[TimerSpec("expiry", 5.0, expire), TimerSpec("prune-ledger", 3600.0, prune_requests, 3600.0)],
    routes=routes,
    dashboard=panels,
    publishes={
        topics.DESIGNATION_EVENTS: list(EVENT_TYPES),
        topics.SUBJECT_NOTICES: list(NOTICE_TYPES),
        **INGRESS,
    },
)


def main() -> None:
    run(definition)


if __name__ == "__main__":
    main()
