"""Who receives the lists, through the real service: the liaison directory (`GET /v1/liaisons`,
from the catalogue) and the record of every export and snapshot download, who took it and when
(`GET /v1/downloads`, the sharing dashboard), internal and public alike."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.settings import Settings

from tests.support.events import company

from .conftest import caught_up, created, publish, record

pytestmark = pytest.mark.integration


async def test_the_liaison_directory_lists_each_active_units_liaison(http: httpx.AsyncClient) -> None:
    everyone = (await http.get("/v1/liaisons")).json()["liaisons"]
    assert everyone
    assert all(set(row["liaison"]) == {"name", "title", "phone"} for row in everyone)
    assert "100000-CFDA" not in {row["unit"] for row in everyone}  # inactive
    guangdong = (await http.get("/v1/liaisons", params={"region": "440000"})).json()["liaisons"]
    assert guangdong
    assert {row["region"][:2] for row in guangdong} == {"44"}
    tax = (await http.get("/v1/liaisons", params={"field": "taxation"})).json()["liaisons"]
    assert all("taxation" in row["fields"] for row in tax)
    async with httpx.AsyncClient(base_url=str(http.base_url)) as anonymous:
        assert (await anonymous.get("/v1/liaisons")).status_code == 401  # internal


async def mine(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    return list((await http.get("/v1/downloads", params={"limit": 1000, **params})).json()["downloads"])


async def test_every_export_and_snapshot_is_recorded_with_who_and_when(
    stack: Settings, http: httpx.AsyncClient, kafka: AIOKafkaProducer
) -> None:
    unit = f"T-{uuid.uuid4().hex[:10]}"
    for i in range(3):
        await publish(kafka, created(record(company(f"Download {i} Co."), unit=unit), datetime.now(UTC)))
    await caught_up(stack)
    before = datetime.now(UTC) - timedelta(seconds=1)

    export = await http.get("/v1/export/black.csv", params={"unit": unit})
    assert export.status_code == 200
    first = await http.get("/v1/lists/black", params={"unit": unit, "limit": 2})
    await http.get("/v1/lists/black", params={"unit": unit, "limit": 2, "cursor": first.json()["next_cursor"]})
    async with httpx.AsyncClient(base_url=str(http.base_url)) as anonymous:
        public = await anonymous.get("/v1/public/export/black.jsonl", params={"unit": unit})
        assert public.status_code == 200

    rows = [d for d in await mine(http) if d["filters"] == {"unit": unit}]
    exported, snapshot, public_export = sorted(rows, key=lambda d: d["download_id"])
    assert exported["principal"] == snapshot["principal"] == "operator:local"
    assert (exported["kind"], exported["format"], exported["public"], exported["outcome"]) == (
        "export",
        "csv",
        False,
        "complete",
    )
    assert exported["bytes"] == len(export.content)
    assert exported["snapshot_seq"] == int(export.headers["x-snapshot-seq"])
    assert datetime.fromisoformat(exported["at"]) >= before
    # one snapshot however many pages it took
    assert (snapshot["kind"], snapshot["snapshot_seq"]) == ("snapshot", first.json()["snapshot_seq"])
    assert public_export["principal"].startswith("anonymous@")
    assert (public_export["public"], public_export["format"], public_export["bytes"]) == (
        True,
        "jsonl",
        len(public.content),
    )
    only = await mine(http, principal="operator:local", kind="snapshot")
    assert {d["kind"] for d in only} == {"snapshot"}

    shown = (await http.get("/dashboard.json")).json()
    (panel,) = [p for p in shown["panels"] if p["key"] == "downloads"]
    assert panel["rows"]
