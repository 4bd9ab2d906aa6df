"""The service runtime (composition root) against the real broker and database: a toy service
starts its schema, migrations, reference cache, relay and consumer; its health endpoint tells the
truth; metrics, OpenAPI and AsyncAPI are served; a request flows in and its answer flows out."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.contracts.envelope import new_event
from credit_common.db.provision import prepare
from credit_common.db.roles import drop_service_schema
from credit_common.messaging import topics
from credit_common.messaging.unit_of_work import Context, Incoming
from credit_common.outcomes import Accepted, reject
from credit_common.service import ConsumerSpec, Runtime, ServiceDefinition, TimerSpec, build_app
from credit_common.settings import Settings
from fastapi import FastAPI

from tests.support.database import OWNER_SECRET, RUNTIME_SECRET
from tests.support.signing import sign
from tests.support.tokens import auth_headers

from .conftest import FIXTURES, TopicReader

pytestmark = pytest.mark.integration


def toy_definition(name: str, requests_topic: str) -> ServiceDefinition:
    async def create(msg: Incoming, ctx: Context) -> Accepted:
        if msg.data and msg.data.get("hold"):  # a handler stuck in one message (until released)
            await holds.setdefault(name, asyncio.Event()).wait()
        unit = msg.unit or ""
        catalog = runtime_of[name].reference.catalog
        if catalog.unit(unit) is None:
            raise reject("unknown_unit", f"no unit {unit!r} in the catalogue", "source")
        await ctx.conn.execute("INSERT INTO things (thing_id, unit, name) VALUES ($1, $2, $3)", msg.event.id, unit, "x")
        return Accepted(msg.event.id)

    def consumers(rt: Runtime) -> Sequence[ConsumerSpec]:
        runtime_of[name] = rt
        return [
            ConsumerSpec(
                name="requests",
                topics=[requests_topic],
                handlers={"test.thing.create": create},
                request_types=["test.thing.create"],
                request_topics=[requests_topic],
            )
        ]

    def routes(app: FastAPI, rt: Runtime) -> None:
        @app.get("/v1/things/{thing_id}")
        async def get_thing(thing_id: str) -> dict[str, str]:
            row = await rt.db.fetchrow("SELECT thing_id, unit FROM things WHERE thing_id = $1", thing_id)
            if row is None:
                from credit_common.http.problems import Problem

                raise Problem(404, "Not Found", f"no thing {thing_id}")
            return dict(row)

    async def tick(rt: Runtime) -> None:
        if failing_timers.get(name):
            raise RuntimeError("the timer's query failed")

    return ServiceDefinition(
        name=name,
        timers=[TimerSpec("toy-timer", 0.2, tick)],
        title="Toy",
        description="A toy service for testing the runtime",
        migrations=FIXTURES / "toy_migrations",
        consumers=consumers,
        routes=routes,
        publishes={topics.FEEDBACK: ["credit.request.accepted", "credit.request.rejected"]},
    )


runtime_of: dict[str, Runtime] = {}
holds: dict[str, asyncio.Event] = {}
failing_timers: dict[str, bool] = {}


@pytest.fixture
async def toy_app(
    stack: Settings, topic_factory: Callable, admin: asyncpg.Connection
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, str]]:
    name = f"toy_{uuid.uuid4().hex[:8]}"
    requests_topic = await topic_factory("toyreq")
    definition = toy_definition(name, requests_topic)
    # As the stack does: roles and migrations first; the runtime works as the runtime role.
    db = await prepare(
        stack.database_url, name, definition.migrations, password=RUNTIME_SECRET, owner_password=OWNER_SECRET
    )
    # A short stall limit, so a test of a stuck consumer need not wait the production minute.
    app = build_app(definition, stack.model_copy(update={"database_url": db.url, "credit_consumer_stall_s": 3.0}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://toy", headers=auth_headers()) as client:
            try:
                yield app, client, requests_topic
            finally:
                holds.setdefault(name, asyncio.Event()).set()  # a held handler lets the shutdown go on
    await drop_service_schema(admin, name)


async def test_runtime_serves_health_metrics_docs_and_processes_requests(
    toy_app: tuple[FastAPI, httpx.AsyncClient, str], producer: AIOKafkaProducer, reader: Callable
) -> None:
    app, client, requests_topic = toy_app
    rt: Runtime = app.state.runtime

    live = await client.get("/health/live")
    assert live.status_code == 200
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) == {"kafka", "postgres", "reference", "consumers", "outbox_relay", "timers"}
    assert len(rt.reference.catalog.units()) >= 40, "the runtime waited for the catalogue"

    good_id, bad_id = f"toy-good-{uuid.uuid4().hex[:8]}", f"toy-bad-{uuid.uuid4().hex[:8]}"
    async with reader(topics.FEEDBACK) as r:
        await r.skip_to_end()
        for rid, unit in ((good_id, "100000-SAT"), (bad_id, "999999-NOPE")):
            ev = new_event("test.thing.create", f"unit/{unit}", {}, time=datetime.now(UTC), id=rid, subject="S")
            signed = sign(ev.model_dump(mode="json", exclude_none=True))  # as its unit sends it
            await producer.send_and_wait(requests_topic, orjson.dumps(signed), key=b"S")
        recs = await r.wait_for(
            lambda rs: {good_id, bad_id} <= {orjson.loads(x.value)["data"]["request_id"] for x in rs}
        )
    answers = {
        orjson.loads(x.value)["data"]["request_id"]: orjson.loads(x.value)
        for x in recs
        if orjson.loads(x.value)["data"]["request_id"] in (good_id, bad_id)
    }
    assert answers[good_id]["type"] == "credit.request.accepted"
    assert answers[bad_id]["data"]["errors"][0]["code"] == "unknown_unit"
    thing = await client.get(f"/v1/things/{good_id}")
    assert thing.json() == {"thing_id": good_id, "unit": "100000-SAT"}
    missing = await client.get("/v1/things/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")

    metrics = (await client.get("/metrics")).text
    consumed = f'credit_messages_consumed_total{{topic="{requests_topic}",type="test.thing.create"}} 2.0'
    assert consumed in metrics
    assert 'credit_rejections_total{code="unknown_unit"} 1.0' in metrics
    assert "credit_processing_seconds_bucket" in metrics
    assert 'credit_up{dependency="postgres"} 1.0' in metrics

    asyncapi = (await client.get("/docs/asyncapi.json")).json()
    assert asyncapi["asyncapi"].startswith("3.")
    assert f"{requests_topic}:consume" in asyncapi["channels"]
    assert (await client.get("/docs/asyncapi")).status_code == 200
    assert (await client.get("/openapi.json")).json()["paths"]["/v1/things/{thing_id}"]


async def test_readiness_tells_the_truth_when_the_database_is_gone(
    toy_app: tuple[FastAPI, httpx.AsyncClient, str],
) -> None:
    app, client, _ = toy_app
    rt: Runtime = app.state.runtime
    assert (await client.get("/health/ready")).status_code == 200
    pool = rt.pool
    assert pool is not None
    await pool.close()  # the database is unreachable for this process from now on
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["checks"]["postgres"]["ok"] is False
    assert body["checks"]["kafka"]["ok"] is True
    assert (await client.get("/health/live")).status_code == 200, "alive, but not ready"
    metrics = (await client.get("/metrics")).text
    assert 'credit_up{dependency="postgres"} 0.0' in metrics
    # Give the runtime a pool again so its shutdown is clean.
    rt.pool = await asyncpg.create_pool(rt.settings.database_url, min_size=1, max_size=1)
    await asyncio.sleep(0)


async def ready_failure(client: httpx.AsyncClient, check: str, timeout: float = 15.0) -> str:
    """Poll readiness until `check` fails; its error."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        ready = await client.get("/health/ready")
        body = ready.json()
        if ready.status_code == 503 and body["checks"][check]["ok"] is False:
            return str(body["checks"][check].get("error"))
        assert asyncio.get_running_loop().time() < deadline, f"{check} still ok: {body}"
        await asyncio.sleep(0.2)


async def test_readiness_turns_red_for_a_stuck_consumer_and_its_lag_gauge_keeps_moving(
    toy_app: tuple[FastAPI, httpx.AsyncClient, str], producer: AIOKafkaProducer
) -> None:
    """A consumer stuck in one message once kept /health/ready at 200 and its lag gauge at 0."""
    app, client, requests_topic = toy_app
    rt: Runtime = app.state.runtime
    name = rt.name
    assert (await client.get("/health/ready")).status_code == 200
    stuck = new_event("test.thing.create", "unit/100000-SAT", {"hold": True}, time=datetime.now(UTC), subject="S")
    await producer.send_and_wait(
        requests_topic, orjson.dumps(sign(stuck.model_dump(mode="json", exclude_none=True))), key=b"S"
    )
    for _ in range(5):  # behind it on the same partition
        behind = new_event("test.thing.create", "unit/100000-SAT", {}, time=datetime.now(UTC), subject="S")
        await producer.send_and_wait(
            requests_topic, orjson.dumps(sign(behind.model_dump(mode="json", exclude_none=True))), key=b"S"
        )
    error = await ready_failure(client, "consumers")
    assert "no fetch for" in error
    metrics = (await client.get("/metrics")).text
    lag = [line for line in metrics.splitlines() if line.startswith("credit_consumer_lag{") and requests_topic in line]
    assert any(float(line.rsplit(" ", 1)[1]) > 0 for line in lag), lag
    holds[name].set()  # released: it catches up and readiness is green again
    deadline = asyncio.get_running_loop().time() + 15
    while (await client.get("/health/ready")).status_code != 200:
        assert asyncio.get_running_loop().time() < deadline, "not ready again after the release"
        await asyncio.sleep(0.2)


async def test_readiness_turns_red_for_a_failing_timer_and_a_dead_reference_follower(
    toy_app: tuple[FastAPI, httpx.AsyncClient, str],
) -> None:
    app, client, _ = toy_app
    rt: Runtime = app.state.runtime
    assert (await client.get("/health/ready")).status_code == 200
    failing_timers[rt.name] = True
    assert "the timer's query failed" in await ready_failure(client, "timers")
    failing_timers[rt.name] = False
    deadline = asyncio.get_running_loop().time() + 10
    while (await client.get("/health/ready")).status_code != 200:
        assert asyncio.get_running_loop().time() < deadline, "a timer that runs again is not failing"
        await asyncio.sleep(0.2)

    task = rt.reference._task
    assert task is not None
    task.cancel()  # the follower dies; the catalogue it loaded would go stale unseen
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert "follower stopped" in await ready_failure(client, "reference")


__all__ = ["TopicReader"]
