"""The warning service as a real process (port 18103), and helpers to feed it as the platform does:
designation events as the designation service publishes them (source `platform/designation`, the
whole record), conduct reports as departments send them, test-only fields on the reference topic;
and what it publishes, read back from its topics (warning events, unit inbox, feedback)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.contracts.envelope import new_id
from credit_common.contracts.reference import FieldRecord
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.reference.cli import publish_records
from credit_common.settings import Settings, get_settings

from tests.support.collector import Collector
from tests.support.events import event, publish
from tests.support.kafka_admin import wait_caught_up
from tests.support.processes import ServiceProcess, deployment, new_instance
from tests.support.signing import SigningProducer

pytestmark = pytest.mark.integration

WARNING_PORT = 18103
DESIGNATION_PORT = 18123
INSTANCE = new_instance()  # this suite's deployment: its own schema and consumer groups
GROUP = deployment(INSTANCE).group_of("warning")
SCHEMA = deployment(INSTANCE).schema_of("warning")
INPUTS = [topics.DESIGNATION_EVENTS, topics.CONDUCT_REPORTS, topics.REFERENCE]
OUTPUTS = [topics.WARNING_EVENTS, topics.UNIT_INBOX]


@pytest.fixture(scope="package")
async def warning(stack: Settings) -> AsyncIterator[ServiceProcess]:
    svc = ServiceProcess("warning", WARNING_PORT, instance=INSTANCE)
    await svc.start()
    await caught_up(stack, timeout=600)  # tests start from a service that has read everything
    yield svc
    await svc.stop()
    await svc.discard()


@pytest.fixture(scope="package")
async def kafka(stack: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = SigningProducer(**kafka_options(stack.kafka_bootstrap_servers), enable_idempotence=True)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture(scope="package")
async def collector(stack: Settings) -> AsyncIterator[Collector]:
    """What the warning service publishes (and answers), from now on."""
    c = Collector(stack.kafka_bootstrap_servers, [*OUTPUTS, topics.FEEDBACK, topics.DESIGNATION_EVENTS])
    await c.start()
    yield c
    await c.stop()


@pytest.fixture(scope="package")
async def http(warning: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with warning.client() as c:
        yield c


async def caught_up(stack: Settings, timeout: float = 120.0) -> None:
    """Every input published so far is applied (group `warning` has no lag)."""
    await wait_caught_up(stack.kafka_bootstrap_servers, GROUP, INPUTS, timeout=timeout)


# ------------------------------------------------------------------------------- subjects


# ------------------------------------------------------------------- designation events, direct


def record(
    subject: dict[str, Any],
    field: str,
    *,
    list_: str = "key_scrutiny",
    designation_id: str | None = None,
    unit: str = "110108-SAT",
    effective_from: date = date(2026, 1, 5),
    effective_to: date = date(2027, 1, 4),
    **extra: Any,
) -> dict[str, Any]:
    """A whole designation record, as designation events carry it."""
    return {
        "designation_id": designation_id or new_id(),
        "list": list_,
        "field": field,
        "standard": f"{field}-{list_}",
        "standard_version": 1,
        "subject": subject,
        "unit": unit,
        "unit_level": "county",
        "region": "110108",
        "decision": {
            "document_no": f"DOC-{uuid.uuid4().hex[:8]}",
            "decided_on": effective_from.isoformat(),
            "facts": "Facts established by the investigation.",
        },
        "effective_from": effective_from.isoformat(),
        "effective_to": effective_to.isoformat(),
        "public": True,
        "status": "active",
        **extra,
    }


def amended(rec: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    data = {"record": rec, "changes": {"facts": rec["decision"]["facts"]}, "reason": "Correction."}
    return event("platform/designation", "credit.designation.amended", data, subject=rec["subject"]["id"], at=at)


# ------------------------------------------------------------------------------- conduct reports


def conduct_report(
    subject: dict[str, Any],
    field: str,
    *,
    unit: str = "110000-SAT",
    serious: bool = True,
    at: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    at = at or datetime.now(UTC)
    data = {
        "subject": subject,
        "field": field,
        "serious": serious,
        "occurred_on": (at.date() - timedelta(days=3)).isoformat(),
        "document_no": f"CR-{uuid.uuid4().hex[:8]}",
        "description": "Serious untrustworthy conduct established by an inspection.",
        **extra,
    }
    return event(f"unit/{unit}", "credit.conduct.report", data, subject=str(subject.get("id", "")).upper(), at=at)


async def report(kafka: AIOKafkaProducer, collector: Collector, ev: dict[str, Any]) -> dict[str, Any]:
    """Send a conduct report; returns its one answer from the feedback topic. Designation events
    and reports come on two topics, in no order between them: the service first reads every
    designation event published so far, as a report about a known entry arrives in life."""
    await wait_caught_up(get_settings().kafka_bootstrap_servers, GROUP, [topics.DESIGNATION_EVENTS], timeout=300)
    await publish(kafka, ev, topics.CONDUCT_REPORTS)
    answer = await collector.answer(ev["id"], timeout=60)
    assert answer["source"] == "platform/warning"
    assert answer["data"]["request_type"] == ev["type"]
    assert answer["_key"] == ev["source"].removeprefix("unit/")
    return answer


# ------------------------------------------------------------------------------- what it publishes


def warning_events(collector: Collector, subject_id: str) -> list[dict[str, Any]]:
    """Every warning-list event about `subject_id`, in the order published."""
    return collector.where(
        topics.WARNING_EVENTS,
        lambda e: e["type"].startswith("credit.warning.") and e["subject"] == subject_id,
    )


async def wait_warning_events(collector: Collector, subject_id: str, count: int, timeout: float = 30.0) -> list[dict]:
    return await collector.wait_for(
        topics.WARNING_EVENTS,
        lambda e: e["type"].startswith("credit.warning.") and e["subject"] == subject_id,
        count=count,
        timeout=timeout,
    )


# ------------------------------------------------------------------------------- test-only fields


class ScratchFields:
    """Fields of this test run only, on the real reference topic; tombstoned at the end."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.codes: list[str] = []

    async def publish(self, code: str, key_field: bool) -> None:
        if code not in self.codes:
            self.codes.append(code)
        record = FieldRecord(code=code, name=f"Integration-test field {code}", key_field=key_field)
        await publish_records([record], self.bootstrap, force=True)

    async def tombstone(self) -> None:
        producer = AIOKafkaProducer(**kafka_options(self.bootstrap), enable_idempotence=True)
        await producer.start()
        try:
            for code in self.codes:
                await producer.send_and_wait(topics.REFERENCE, None, key=f"field:{code}".encode())
        finally:
            await producer.stop()


def new_field_code() -> str:
    return f"wt_{uuid.uuid4().hex[:10]}"
