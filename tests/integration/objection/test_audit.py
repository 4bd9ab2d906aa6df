"""What the objection service accepted is kept as it was signed (contracts.md, Security), by the
bus for every service that answers its requests through it: the principal, key id, signature,
the platform's time of receipt and the signed bytes, in an insert-only table the runtime role can
neither change nor empty; the row alone verifies against the published key (`credit-keys
verify`), and a rejected request leaves no row."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.db import pool as dbpool
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.database import runtime_dsn
from tests.support.processes import ServiceProcess
from tests.support.signing import CREDENTIALS

from .conftest import SCHEMA, accepted, designated, file_objection, record, rejected

pytestmark = pytest.mark.integration


async def test_an_accepted_objection_is_kept_as_signed_and_verifies_from_its_row(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector, tmp_path: Path
) -> None:
    rec = await designated(kafka, stack, record())
    filing = file_objection(rec)
    await accepted(kafka, collector, filing)
    refused = file_objection({**rec, "designation_id": "no-such-designation"})
    assert await rejected(kafka, collector, refused)

    admin = await asyncpg.connect(stack.database_url)
    try:
        rows = await admin.fetch(
            f"SELECT * FROM {SCHEMA}.accepted_requests WHERE request_id = ANY($1::text[])",
            [filing["id"], refused["id"]],
        )
    finally:
        await admin.close()
    assert [r["request_id"] for r in rows] == [filing["id"]], "kept once, and only what was accepted"
    row = rows[0]
    assert row["request_type"] == "credit.objection.file"
    assert row["result_id"] == filing["id"]
    assert row["principal"] == "portal"  # filed through the portal, which signs as itself
    signed_envelope = json.loads(row["signed"])
    assert signed_envelope["id"] == filing["id"]
    assert "signature" not in signed_envelope
    assert row["signaturekid"] == signed_envelope["signaturekid"]

    # The row alone, against the published key, at the platform's time of receipt.
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps({**signed_envelope, "signature": row["signature"]}))
    keys = [str(Path(sys.executable).parent / "credit-keys"), "verify", str(kept)]
    at = ["--at", row["received_at"].isoformat()]
    env = {**os.environ, "CREDIT_CREDENTIALS_DIR": str(CREDENTIALS)}
    ok = await asyncio.to_thread(subprocess.run, [*keys, *at], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "verified" in ok.stdout
    signed_envelope["data"]["grounds"] = "changed after the fact"
    kept.write_text(json.dumps({**signed_envelope, "signature": row["signature"]}))
    changed = await asyncio.to_thread(
        subprocess.run, [*keys, *at], capture_output=True, text=True, env=env, timeout=120
    )
    assert changed.returncode == 1
    assert "bad_signature" in changed.stderr

    # The service's own login cannot rewrite or empty the audit.
    conn = await dbpool.connect(runtime_dsn(stack.database_url, SCHEMA), schema=SCHEMA)
    try:
        for statement in (
            "UPDATE accepted_requests SET signature = 'x' WHERE request_id = $1",
            "DELETE FROM accepted_requests WHERE request_id = $1",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement, filing["id"])
        for statement in ("TRUNCATE accepted_requests", "ALTER TABLE accepted_requests DISABLE TRIGGER ALL"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM accepted_requests WHERE request_id = $1", filing["id"]) == 1
    finally:
        await conn.close()
