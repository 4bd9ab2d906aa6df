"""The sharing service: wiring only (consumer, HTTP routes). Rules live in domain.py,
load-decide-save in handlers.py, SQL in store.py, streamed downloads in exports.py.

Every read has an internal form (`/v1/...`, the full record, for authorised liaisons) and a public
one (`/v1/public/...`): only entries of public standards, through `domain.public_view`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import orjson
from credit_common.http.cursors import decode_cursor, encode_cursor
from credit_common.http.problems import Problem
from credit_common.http.responses import JsonResponse
from credit_common.identifiers import normalise
from credit_common.messaging import topics
from credit_common.service import ConsumerSpec, Runtime, ServiceDefinition, run
from fastapi import FastAPI, Query, Request

from . import directory, domain, public, publication, queries, store
from .dashboard import panels
from .exports import ListExport
from .fastpath import SubjectLookups
from .handlers import SharingHandlers, change_item
from .store import Filters

NAME = "sharing"
DEFAULT_PAGE = 1000
MAX_PAGE = 10_000
#: A seq is a PostgreSQL bigint: `after` beyond it was a 500 ("out of range", found by schemathesis).
MAX_SEQ = 2**63 - 1
EXPORTS_AT_ONCE = 3

FieldQ = Annotated[str | None, Query(max_length=64, description="only entries of this field")]
UnitQ = Annotated[str | None, Query(max_length=64, description="only entries of this designating unit")]
RegionQ = Annotated[
    str | None,
    Query(pattern=r"^\d{6}$", description="GB/T 2260 code: a province or prefecture covers the units under it"),
]


def consumers(rt: Runtime) -> Sequence[ConsumerSpec]:
    handlers = SharingHandlers(rt)
    rt.extras["handlers"] = handlers
    bus = handlers.bus()
    return [
        ConsumerSpec(
            name="",
            topics=[topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.WARNING_EVENTS],
            batch_handler=bus,
        )
    ]


def _list_name(list_name: str) -> str:
    if list_name not in domain.LISTS:
        raise Problem(404, "Unknown list", f"the lists are {', '.join(domain.LISTS)}")
    return list_name


def _filters(field: str | None, unit: str | None, region: str | None, public: bool) -> Filters:
    return Filters(field=field, unit=unit, region_prefix=queries.region_prefix(region), public_only=public)


def _decode_cursor(cursor: str, scope: dict[str, Any]) -> tuple[int, str]:
    """The snapshot seq and the entry id to continue after."""
    doc = decode_cursor(cursor, scope, fields=("seq", "after"))
    try:
        return int(doc["seq"]), str(doc["after"])
    except (TypeError, ValueError) as exc:
        raise Problem(400, "Bad cursor", "the cursor is not one this service gave out") from exc


def routes(app: FastAPI, rt: Runtime) -> None:
    export_slots = asyncio.Semaphore(EXPORTS_AT_ONCE)
    public.routes(app, rt)  # search, standards, memorandums
    publication.routes(app, rt)  # publication delay, public statistics
    directory.routes(app, rt)  # liaisons, downloads

    async def subject(subject_id: str, as_of: str | None, known_at: str | None, public: bool) -> dict[str, Any]:
        try:
            window = queries.as_of_window(as_of, rt.clock.now())
            known = queries.known_at_instant(known_at)
        except ValueError as exc:
            raise Problem(400, "Bad time", "as_of and known_at are dates (2026-11-25) or RFC 3339 times") from exc
        sid = normalise("other", subject_id)
        rows = await store.subject_at(rt.db, sid, window.start, window.end, known, public)
        entries = []
        for r in rows:
            item: dict[str, Any] = {"list": r["list"]}
            if public:
                item["entry"] = domain.public_view(orjson.loads(r["entry"]), public=r["public"])
                if item["entry"] is None:
                    continue
            else:  # the stored documents' JSON as it is, not decoded to be encoded again
                item |= {"status": r["status"], "removal_reason": r["reason"], "entry": orjson.Fragment(r["entry"])}
                item["record"] = None if r["record"] is None else orjson.Fragment(r["record"])
            item |= {
                "valid_from": r["valid_from"],
                "valid_to": r["valid_to"],
                "recorded_at": r["recorded_at"],
                "superseded_at": r["superseded_at"],
            }
            entries.append(item)
        doc: dict[str, Any] = {"as_of": {"from": window.start, "to": window.end}, "known_at": known}
        if not public:  # the public answer never repeats the identity number it was asked about
            doc = {"subject_id": sid, **doc}
        return {**doc, "entries": entries}

    # The hot lookups skip FastAPI's stack on their plain, successful path (fastpath.py): a layer
    # in front of the whole app, so not even its outer middleware and telemetry run for them.
    histogram = app.state.metrics.http_request_seconds
    app.state.front.append(lambda inner: SubjectLookups(inner, subject, histogram))

    async def snapshot(
        list_name: str,
        field: str | None,
        unit: str | None,
        region: str | None,
        limit: int,
        cursor: str | None,
        public: bool,
        request: Request,
    ) -> dict[str, Any]:
        list_ = _list_name(list_name)
        filters = _filters(field, unit, region, public)
        scope = {"list": list_, "field": field, "unit": unit, "region": region, "public": public}
        seq, after = _decode_cursor(cursor, scope) if cursor else (None, "")
        snapshot_seq, rows = await store.snapshot_page(rt.db, list_, filters, seq, after, limit)
        if cursor is None:  # a snapshot taken (its later pages are the same snapshot)
            await directory.record(
                rt.db,
                at=rt.clock.now(),
                principal=directory.who(request.scope),
                kind="snapshot",
                list_=list_,
                filters=filters,
                snapshot_seq=snapshot_seq,
            )
        entries = []
        for r in rows:
            entry = domain.public_view(r["entry"], public=r["public"]) if public else r["entry"]
            if entry is not None:
                entries.append(entry)
        next_cursor = (
            encode_cursor({**scope, "seq": snapshot_seq, "after": rows[-1]["entry_id"]}) if len(rows) >= limit else None
        )
        return {"list": list_, "snapshot_seq": snapshot_seq, "entries": entries, "next_cursor": next_cursor}

    async def changes(
        after: int,
        list_name: str | None,
        field: str | None,
        unit: str | None,
        region: str | None,
        limit: int,
        public: bool,
    ) -> dict[str, Any]:
        list_ = _list_name(list_name) if list_name is not None else None
        last_seq, rows = await store.changes_page(rt.db, list_, _filters(field, unit, region, public), after, limit)
        return {"changes": [change_item(r, public=public) for r in rows], "last_seq": last_seq}

    # ---------------------------------------------------------------- internal (authorised liaisons)

    @app.get(
        "/v1/subjects/{subject_id}",
        response_class=JsonResponse,
        summary="Every entry of a subject on every list at a moment, as known then",
    )
    async def get_subject(subject_id: str, as_of: str | None = None, known_at: str | None = None) -> JsonResponse:
        return JsonResponse(await subject(subject_id, as_of, known_at, public=False))

    @app.get(
        "/v1/lists/{list_name}",
        response_class=JsonResponse,
        summary="A page of a list's snapshot, consistent with its snapshot_seq",
    )
    async def get_list(
        request: Request,
        list_name: str,
        field: FieldQ = None,
        unit: UnitQ = None,
        region: RegionQ = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> JsonResponse:
        return JsonResponse(await snapshot(list_name, field, unit, region, limit, cursor, False, request))

    @app.get(
        "/v1/changes",
        response_class=JsonResponse,
        summary="Changes after a seq, in seq order, with the seq to ask after next",
    )
    async def get_changes(
        after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
        list_name: Annotated[str | None, Query(alias="list")] = None,
        field: FieldQ = None,
        unit: UnitQ = None,
        region: RegionQ = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> JsonResponse:
        return JsonResponse(await changes(after, list_name, field, unit, region, limit, public=False))

    @app.get("/v1/export/{list_name}.jsonl", summary="The whole list, one entry a line (streamed)")
    async def export_jsonl(list_name: str, field: FieldQ = None, unit: UnitQ = None, region: RegionQ = None) -> Any:
        filters = _filters(field, unit, region, False)
        return ListExport(rt.db, export_slots, _list_name(list_name), filters, "jsonl", rt.clock.now)

    @app.get("/v1/export/{list_name}.csv", summary="The whole list as CSV (streamed)")
    async def export_csv(list_name: str, field: FieldQ = None, unit: UnitQ = None, region: RegionQ = None) -> Any:
        filters = _filters(field, unit, region, False)
        return ListExport(rt.db, export_slots, _list_name(list_name), filters, "csv", rt.clock.now)

    # ---------------------------------------------------------------- public (the portal)

    @app.get(
        "/v1/public/subjects/{subject_id}",
        response_class=JsonResponse,
        summary="Public: a subject's entries at a moment, masked",
    )
    async def get_public_subject(
        subject_id: str, as_of: str | None = None, known_at: str | None = None
    ) -> JsonResponse:
        return JsonResponse(await subject(subject_id, as_of, known_at, public=True))

    @app.get(
        "/v1/public/lists/{list_name}",
        response_class=JsonResponse,
        summary="Public: a page of a list's public snapshot",
    )
    async def get_public_list(
        request: Request,
        list_name: str,
        field: FieldQ = None,
        unit: UnitQ = None,
        region: RegionQ = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> JsonResponse:
        return JsonResponse(await snapshot(list_name, field, unit, region, limit, cursor, True, request))

    @app.get("/v1/public/changes", response_class=JsonResponse, summary="Public: changes of public entries after a seq")
    async def get_public_changes(
        after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
        list_name: Annotated[str | None, Query(alias="list")] = None,
        field: FieldQ = None,
        unit: UnitQ = None,
        region: RegionQ = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> JsonResponse:
        return JsonResponse(await changes(after, list_name, field, unit, region, limit, public=True))

    @app.get("/v1/public/export/{list_name}.jsonl", summary="Public: the whole public list, one entry a line")
    async def public_export_jsonl(
        list_name: str, field: FieldQ = None, unit: UnitQ = None, region: RegionQ = None
    ) -> Any:
        filters = _filters(field, unit, region, True)
        return ListExport(rt.db, export_slots, _list_name(list_name), filters, "jsonl", rt.clock.now)

    @app.get("/v1/public/export/{list_name}.csv", summary="Public: the whole public list as CSV")
    async def public_export_csv(
        list_name: str, field: FieldQ = None, unit: UnitQ = None, region: RegionQ = None
    ) -> Any:
        filters = _filters(field, unit, region, True)
        return ListExport(rt.db, export_slots, _list_name(list_name), filters, "csv", rt.clock.now)

    @app.get("/v1/stats", response_class=JsonResponse, summary="Entries per list and status, and the last seq")
    async def get_stats() -> JsonResponse:
        return JsonResponse({"entries": await store.counts(rt.db), "last_seq": await store.last_seq(rt.db)})


definition = ServiceDefinition(
    name=NAME,
    title="Sharing service",
    description=(
        "The shared lists (red, black, key scrutiny, warning): the current view and the full history "
        "of every entry, the list-change topics, liaison snapshots, incremental downloads and exports, "
        "point-in-time queries, and the public view with personal data masked."
    ),
    migrations=Path(__file__).parent / "migrations",
    consumers=consumers,
    routes=routes,
    dashboard=panels,
    publishes={
        topics.LISTS_CHANGES: list(domain.CHANGE_TYPES),
        topics.LISTS_PUBLIC: list(domain.CHANGE_TYPES),
    },
)


def main() -> None:
    run(definition)


if __name__ == "__main__":
    main()
