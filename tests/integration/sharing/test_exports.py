"""Exports: the internal CSV (rendered by PostgreSQL's COPY) holds exactly what the Python
rendering of the same entries holds, quoting included; every export names the seq it is
consistent with; a filter narrows it."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.sharing import csv_format
from tests.support.events import company, person, poll

from .conftest import created, publish, record

pytestmark = pytest.mark.integration


async def test_internal_csv_equals_the_python_rendering_of_the_same_entries(
    http: httpx.AsyncClient, kafka: AIOKafkaProducer
) -> None:
    unit = f"T-{uuid.uuid4().hex[:10]}"
    at = datetime.now(UTC)
    tricky = [
        record(company('Quote "and" Comma, Co.'), unit=unit, facts="Line one.\nLine two, with a comma."),
        record(person("Zhao, Lei"), unit=unit, facts='He said "no"; then left.'),
        record(company("Plain Co."), unit=unit),
        # Formula injection: each of these would be a formula in a spreadsheet (contracts.md).
        record(company('=HYPERLINK("http://evil.example","Click")'), unit=unit, facts="+1 then -1"),
        record(person("@SUM(A1)"), unit=unit, facts="\tTabbed\r\nfacts"),
    ]
    other = record(company("Elsewhere Co."), unit=f"T-{uuid.uuid4().hex[:10]}")
    for rec in [*tricky, other]:
        await publish(kafka, created(rec, at))

    async def listed() -> Any:
        response = await http.get("/v1/export/black.jsonl", params={"unit": unit})
        lines = response.text.splitlines()
        return response if len(lines) == len(tricky) else None

    jsonl = await poll(listed)
    entries = [orjson.loads(line) for line in jsonl.text.splitlines()]
    response = await http.get("/v1/export/black.csv", params={"unit": unit})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert int(response.headers["x-snapshot-seq"]) >= int(jsonl.headers["x-snapshot-seq"])
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == csv_format.CSV_COLUMNS
    assert rows[1:] == [csv_format.csv_row(e) for e in entries]
    assert {r[0] for r in rows[1:]} == {r["designation_id"] for r in tricky}
    assert other["designation_id"] not in response.text
    cells = [cell for row in rows[1:] for cell in row]
    assert not [cell for cell in cells if cell.startswith(csv_format.FORMULA_STARTS)], "a cell a spreadsheet runs"
    assert '\'=HYPERLINK("http://evil.example","Click")' in cells

    public = await http.get("/v1/public/export/black.csv", params={"unit": unit})
    public_rows = list(csv.reader(io.StringIO(public.text)))
    assert tuple(public_rows[0]) == csv_format.PUBLIC_CSV_COLUMNS
    assert len(public_rows) == len(rows)
    public_cells = [cell for row in public_rows[1:] for cell in row]
    assert not [cell for cell in public_cells if cell.startswith(csv_format.FORMULA_STARTS)]
