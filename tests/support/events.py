"""Events as the platform's producers write them, for tests that feed a service directly: the
CloudEvent envelope, designation events carrying the whole record (as the designation service
publishes them), a publisher that waits for the broker's ack, and the contract check of what a
service published. (Every suite uses these; the sharing suite keeps its own `created` and `removed`, timed
by argument, and each suite its own `record` with the defaults its tests read.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from credit_common.clock import SHANGHAI
from credit_common.contracts.envelope import CONTENT_TYPE, CloudEvent, new_id
from credit_common.contracts.registry import model_for
from credit_common.messaging import topics

from tests.support.subjects import new_resident_id, new_uscc


def today() -> date:
    return datetime.now(SHANGHAI).date()


def at_noon(day: date) -> datetime:
    """Noon of `day` in Asia/Shanghai: an event time on that local day."""
    return datetime(day.year, day.month, day.day, 12, 0, tzinfo=SHANGHAI)


def company(name: str = "Hebei Example Steel Co., Ltd.") -> dict[str, Any]:
    return {"kind": "legal_person", "scheme": "uscc", "id": new_uscc(), "name": name, "legal_representative": "Li Ming"}


def person(name: str = "Zhao Lei") -> dict[str, Any]:
    return {"kind": "natural_person", "scheme": "resident_id", "id": new_resident_id(), "name": name}


def record(
    subject: dict[str, Any] | None = None,
    *,
    list_: str = "black",
    field: str = "taxation",
    unit: str = "110108-SAT",
    region: str | None = None,
    decided_on: date | None = None,
    effective_from: date | None = None,
    days: int = 1000,
    public: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A whole designation record as designation events carry it (standard `<field>-<list>`,
    region taken from the unit code, decided and effective 800 days ago by default)."""
    start = effective_from or decided_on or today() - timedelta(days=800)
    return {
        "designation_id": new_id(),
        "list": list_,
        "field": field,
        "standard": f"{field}-{list_}",
        "standard_version": 1,
        "subject": subject or company(),
        "unit": unit,
        "unit_level": "county",
        "region": region or unit.split("-")[0],
        "decision": {
            "document_no": f"DOC-{uuid.uuid4().hex[:8]}",
            "decided_on": (decided_on or start).isoformat(),
            "facts": "Facts established by the investigation.",
        },
        "effective_from": start.isoformat(),
        "effective_to": (start + timedelta(days=days)).isoformat(),
        "public": public,
        "status": "active",
        **extra,
    }


def event(
    source: str, type_: str, data: dict[str, Any], *, subject: str, at: datetime | None = None, id: str | None = None
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id or new_id(),
        "source": source,
        "type": type_,
        "time": (at or datetime.now(UTC)).isoformat(),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }


def created(rec: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    return event(
        "platform/designation", "credit.designation.created", {"record": rec}, subject=rec["subject"]["id"], at=at
    )


def removed(rec: dict[str, Any], reason: str = "revoked", at: datetime | None = None, **data: Any) -> dict[str, Any]:
    at = at or datetime.now(UTC)
    gone = {**rec, "status": "removed", "removal_reason": reason, "removed_at": at.isoformat()}
    return event(
        "platform/designation",
        "credit.designation.removed",
        {"record": gone, "reason": reason, **data},
        subject=rec["subject"]["id"],
        at=at,
    )


async def publish(kafka: AIOKafkaProducer, ev: dict[str, Any], topic: str = topics.DESIGNATION_EVENTS) -> str:
    """An event on its topic, keyed by its subject, acknowledged before this returns."""
    key = ev.get("subject") or ev["id"]
    await kafka.send_and_wait(
        topic, orjson.dumps(ev), key=str(key).encode(), headers=[("content-type", CONTENT_TYPE.encode())]
    )
    return str(ev["id"])


async def poll(check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Call `check()` until it returns something truthy; fail at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


def conforming(found: dict[str, Any]) -> dict[str, Any]:
    """`found`, once its envelope and data are checked against the contract's models."""
    CloudEvent.model_validate({k: v for k, v in found.items() if not k.startswith("_")})
    model_for(found["type"]).model_validate(found["data"])
    return found
