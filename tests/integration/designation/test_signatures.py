"""Signed requests against the real service (contracts.md, Security): every refusal code, over
Kafka (answered `credit.request.rejected` on the feedback topic) and over POST /v1/requests (401
problem details, nothing published), and a key rotated while requests keep coming."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.contracts.envelope import CONTENT_TYPE
from credit_common.contracts.reference import KeyRecord
from credit_common.db import pool as dbpool
from credit_common.messaging.connection import kafka_options
from credit_common.reference.cli import publish_records
from credit_common.security.signing import Signer
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.database import runtime_dsn
from tests.support.processes import ServiceProcess
from tests.support.signing import sign

from .conftest import SCHEMA, Departments, company, designate, send

pytestmark = pytest.mark.integration

UNIT = "110108-SAT"
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def fresh_key(tag: str) -> Signer:
    return Signer.generate(f"it-{tag}-{datetime.now(UTC):%H%M%S%f}", f"unit:{UNIT}")


class Keys:
    """Keys of unit 110108-SAT in every state, published once; `probe` (valid, published last)
    tells when the service's catalogue has them all."""

    def __init__(self) -> None:
        self.expired = fresh_key("expired")
        self.revoked = fresh_key("revoked")
        self.future = fresh_key("future")
        self.probe = fresh_key("probe")
        self.unpublished = fresh_key("unpublished")
        self.records: list[KeyRecord] = [
            self.expired.record(LONG_AGO, LONG_AGO + timedelta(days=30)),
            self.revoked.record(LONG_AGO).model_copy(update={"revoked_at": datetime.now(UTC) - timedelta(hours=1)}),
            self.future.record(datetime.now(UTC) + timedelta(days=365)),
            self.probe.record(LONG_AGO),
        ]


@pytest.fixture(scope="module")
async def keys(stack: Settings, designation: ServiceProcess, raw_kafka: AIOKafkaProducer, collector: Collector) -> Keys:
    """The test keys, published and known to the running service (which this fixture needs: run
    alone, the module once waited for an answer from a service no test had started)."""
    made = Keys()
    await publish_records(list(made.records), stack.kafka_bootstrap_servers)
    # The reference topic is one ordered partition: the probe (published last) known means all are.
    await until_accepted(raw_kafka, collector, made.probe)
    return made


def request() -> dict[str, Any]:
    return designate("black", "taxation-black", company(), unit=UNIT)


def without(event: dict[str, Any], *attrs: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in attrs}


def cases(keys: Keys) -> dict[str, tuple[dict[str, Any], str]]:
    """Each wrong way to sign, and the code it earns."""
    other_unit = designate("black", "taxation-black", company(), unit="110000-SAT")
    tampered = sign(request())
    tampered["data"]["list"] = "red"
    tampered["data"]["standard"] = "taxation-red"
    return {
        "unsigned": (request(), "unsigned"),
        "no_signature": (without(sign(request()), "signature"), "unsigned"),
        "another_units_key": (sign(other_unit) | {"source": f"unit/{UNIT}"}, "unknown_key"),
        "signed_as_another_unit": (keys.probe.sign(other_unit), "unknown_key"),
        "unknown_key": (keys.unpublished.sign(request()), "unknown_key"),
        "expired_key": (keys.expired.sign(request()), "key_not_valid"),
        "revoked_key": (keys.revoked.sign(request()), "key_not_valid"),
        "key_not_yet_valid": (keys.future.sign(request()), "key_not_valid"),
        "changed_after_signing": (tampered, "bad_signature"),
        "garbled_signature": (sign(request()) | {"signature": "AAAA"}, "bad_signature"),
    }


CASES = [
    "unsigned",
    "no_signature",
    "another_units_key",
    "signed_as_another_unit",
    "unknown_key",
    "expired_key",
    "revoked_key",
    "key_not_yet_valid",
    "changed_after_signing",
    "garbled_signature",
]


@pytest.fixture(scope="module")
async def raw_kafka(stack: Settings) -> AsyncIterator[AIOKafkaProducer]:
    """A producer that sends exactly what it is given (the suite's own signs requests)."""
    p = AIOKafkaProducer(**kafka_options(stack.kafka_bootstrap_servers), enable_idempotence=True)
    await p.start()
    yield p
    await p.stop()


@pytest.mark.parametrize("case", CASES)
async def test_over_kafka_each_wrong_signature_is_rejected_with_its_code(
    keys: Keys, raw_kafka: AIOKafkaProducer, collector: Collector, case: str
) -> None:
    event, code = cases(keys)[case]
    rid = await send(raw_kafka, event)
    answer = await collector.answer(rid)
    assert answer["type"] == "credit.request.rejected", answer
    assert [e["code"] for e in answer["data"]["errors"]] == [code]
    assert answer["_key"] == event["source"].removeprefix("unit/")  # told to the unit it claims to be
    created = [
        e
        for e in collector.events["credit.designation.events.v1"]
        if (e.get("data") or {}).get("record", {}).get("designation_id") == rid
    ]
    assert created == []


@pytest.mark.parametrize("case", CASES)
async def test_over_http_each_wrong_signature_is_a_401_and_nothing_is_published(
    keys: Keys, http: httpx.AsyncClient, collector: Collector, case: str
) -> None:
    event, code = cases(keys)[case]
    response = await http.post("/v1/requests", content=orjson.dumps(event), headers={"content-type": CONTENT_TYPE})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["code"] for e in response.json()["errors"]] == [code]
    assert (await http.get(f"/v1/requests/{event['id']}")).status_code == 404  # never recorded as pending


async def test_a_good_signature_over_http_is_accepted(
    keys: Keys, http: httpx.AsyncClient, collector: Collector
) -> None:
    event = keys.probe.sign(request())
    response = await http.post("/v1/requests", content=orjson.dumps(event), headers={"content-type": CONTENT_TYPE})
    assert response.status_code == 202, response.text
    assert (await collector.answer(event["id"]))["type"] == "credit.request.accepted"


async def test_a_key_rotated_under_load_loses_no_request(
    stack: Settings, keys: Keys, raw_kafka: AIOKafkaProducer, collector: Collector
) -> None:
    """A unit rotates its key the way the contract allows, with requests coming all the while:
    publish the new key beside the old, move to it once it is accepted, then revoke the old one.
    Every request is answered; the new key's are all accepted; the old key's are accepted until
    the revocation reaches the catalogue and refused `key_not_valid` from then on."""
    old, new = fresh_key("old"), fresh_key("new")
    await publish_records([old.record(LONG_AGO)], stack.kafka_bootstrap_servers)
    await until_accepted(raw_kafka, collector, old)

    sent: list[tuple[str, str]] = []
    current = old
    stop = asyncio.Event()

    async def load() -> None:  # about 200 requests a second, each signed by the current key
        while not stop.is_set():
            for _ in range(10):
                sent.append((await send(raw_kafka, current.sign(request())), current.kid))
            await asyncio.sleep(0.05)

    loader = asyncio.create_task(load())
    try:
        await asyncio.sleep(1.0)
        await publish_records([new.record(LONG_AGO)], stack.kafka_bootstrap_servers)
        await until_accepted(raw_kafka, collector, new)
        current = new
        await asyncio.sleep(1.0)
        revoked = old.record(LONG_AGO).model_copy(update={"revoked_at": datetime.now(UTC)})
        await publish_records([revoked], stack.kafka_bootstrap_servers)
        refused = await until_refused(raw_kafka, collector, old)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await loader

    answers = [(kid, await collector.answer(rid, timeout=60)) for rid, kid in sent]
    assert len(answers) == len(sent) > 100
    old_answers = [a for kid, a in answers if kid == old.kid]
    new_answers = [a for kid, a in answers if kid == new.kid]
    assert old_answers
    assert new_answers
    assert all(a["type"] == "credit.request.accepted" for a in old_answers)  # all sent before the revocation
    assert all(a["type"] == "credit.request.accepted" for a in new_answers)
    assert [e["code"] for e in refused["data"]["errors"]] == ["key_not_valid"]


async def until_accepted(kafka: AIOKafkaProducer, collector: Collector, key: Signer) -> None:
    """Send requests signed by `key` until one is accepted (its record reached the catalogue)."""
    deadline = asyncio.get_running_loop().time() + 60
    while (await collector.answer(await send(kafka, key.sign(request()))))["type"] != "credit.request.accepted":
        assert asyncio.get_running_loop().time() < deadline, f"{key.kid} never accepted"
        await asyncio.sleep(0.2)


async def until_refused(kafka: AIOKafkaProducer, collector: Collector, key: Signer) -> dict[str, Any]:
    """Send requests signed by `key` until one is refused; that answer."""
    deadline = asyncio.get_running_loop().time() + 60
    while (answer := await collector.answer(await send(kafka, key.sign(request()))))["type"] != (
        "credit.request.rejected"
    ):
        assert asyncio.get_running_loop().time() < deadline, f"{key.kid} never refused"
        await asyncio.sleep(0.2)
    return answer


async def test_the_record_keeps_each_accepted_request_as_signed_and_credit_keys_verifies_it(
    stack: Settings, departments: Departments, tmp_path: Path
) -> None:
    record = await departments.designated(request())
    response = await departments.http.get(f"/v1/designations/{record['designation_id']}")
    (kept,) = response.json()["signatures"]
    assert kept["request_id"] == record["designation_id"]
    assert kept["principal"] == f"unit:{UNIT}"
    assert kept["signaturekid"] == kept["request"]["signaturekid"]
    assert kept["signature"] == kept["request"]["signature"]
    assert datetime.fromisoformat(kept["received_at"]) <= datetime.now(UTC)

    saved = tmp_path / "record.json"
    saved.write_bytes(response.content)
    ok = await credit_keys(stack, "verify", str(saved))
    assert ok.returncode == 0, ok.stderr
    assert f"verified: {record['designation_id']}" in ok.stdout

    forged = response.json()
    forged["signatures"][0]["request"]["data"]["decision"]["facts"] = "Something else."
    saved.write_bytes(orjson.dumps(forged))
    refused = await credit_keys(stack, "verify", str(saved))
    assert refused.returncode == 1
    assert "bad_signature" in refused.stderr


async def test_the_runtime_role_cannot_change_or_delete_what_was_signed(
    stack: Settings, departments: Departments
) -> None:
    record = await departments.designated(request())
    dsn = runtime_dsn(stack.database_url, SCHEMA)
    conn = await dbpool.connect(dsn, schema=SCHEMA)
    try:
        for statement in (
            "UPDATE request_signatures SET signature = 'x' WHERE designation_id = $1",
            "DELETE FROM request_signatures WHERE designation_id = $1",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement, record["designation_id"])
        for statement in ("TRUNCATE request_signatures", "ALTER TABLE request_signatures DISABLE TRIGGER ALL"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):  # not the table's owner
                await conn.execute(statement)
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM request_signatures WHERE designation_id = $1", record["designation_id"]
            )
            == 1
        )
    finally:
        await conn.close()


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def credit_keys(stack: Settings, *args: str) -> Ran:
    """`credit-keys` as an operator runs it, against the test stack."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers}
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "credit-keys"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return Ran(proc.returncode or 0, out.decode(), err.decode())


async def test_an_unproven_message_does_not_take_the_answer_id_of_the_real_request(
    keys: Keys, raw_kafka: AIOKafkaProducer, collector: Collector
) -> None:
    """Someone sends an unsigned request under an id, then the unit its real request: both are
    answered, under two event ids. The refusal's id derived from the request id, so the real
    answer carried the same event id and every consumer of the feedback topic (the ledger
    included) dropped it as a repeat (found by the chaos fuzz)."""
    real = keys.probe.sign(request())
    forged = {k: v for k, v in real.items() if k not in ("signature", "signaturekid")}
    forged["data"] = {**real["data"], "list": "red", "standard": "taxation-red"}
    await send(raw_kafka, forged)
    first = await collector.answer(real["id"])
    assert [e["code"] for e in first["data"]["errors"]] == ["unsigned"]
    await send(raw_kafka, real)

    def ours(e: dict[str, Any]) -> bool:
        return e["data"].get("request_id") == real["id"]

    answers = await collector.wait_for("credit.feedback.v1", ours, count=2)
    assert answers[1]["type"] == "credit.request.accepted", answers[1]
    assert answers[0]["id"] != answers[1]["id"]


async def test_a_request_may_not_claim_an_id_the_platform_derives(
    keys: Keys, raw_kafka: AIOKafkaProducer, http: httpx.AsyncClient, collector: Collector
) -> None:
    """A signed request under a version-5 UUID (the form of every id the platform derives) is
    refused over Kafka (answered, by position) and over HTTP (400), and nothing is designated."""
    from credit_common.outcomes import derived_id

    event = request() | {"id": derived_id(request()["id"], "objection", "credit.objection.resolved")}
    signed = keys.probe.sign(event)
    response = await http.post("/v1/requests", content=orjson.dumps(signed), headers={"content-type": CONTENT_TYPE})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == "id"
    await send(raw_kafka, signed)
    answer = await collector.answer(event["id"])
    assert answer["type"] == "credit.request.rejected"
    assert (answer["data"]["errors"][0]["code"], answer["data"]["errors"][0]["field"]) == ("schema_violation", "id")
    assert not [
        e
        for e in collector.events["credit.designation.events.v1"]
        if (e.get("data") or {}).get("record", {}).get("designation_id") == event["id"]
    ]
