"""The composition root every service uses: settings, clock, logging and tracing, the service's own
schema and role, migrations, the pool, the reference cache, the outbox relay, the consumers, the
timers, and the HTTP app (health, metrics, OpenAPI, AsyncAPI, the operator dashboard, the
service's routes).

A service describes itself with a `ServiceDefinition`; `build_app(definition)` gives its ASGI app
and `run(definition)` serves it. Tests call the same functions with other settings."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from starlette.types import ASGIApp

from credit_common.clock import Clock, clock_from
from credit_common.contracts import types as T
from credit_common.contracts.registry import REGISTRY
from credit_common.db import pool as dbpool
from credit_common.db.migrations import MigrationError, migrate, pending
from credit_common.db.outbox import OutboxRelay
from credit_common.db.provision import migration_sources
from credit_common.db.prune import prune_inbox
from credit_common.db.roles import require_runtime_role
from credit_common.http.app import create_http_app, mount_asyncapi
from credit_common.http.auth import Authenticator, AuthMiddleware
from credit_common.http.dashboard import Dashboard, mount_dashboard
from credit_common.http.guard import HostileInputMiddleware
from credit_common.http.health import HealthChecks
from credit_common.http.panels import Panel
from credit_common.messaging import topics
from credit_common.messaging.apply import AnswersHook, BatchHandler, FlushHook, Handler, Optimistic
from credit_common.messaging.asyncapi import build_asyncapi
from credit_common.messaging.bus import Handlers
from credit_common.messaging.consumer import KafkaConsumerWrapper
from credit_common.messaging.producer import make_producer
from credit_common.reference.cache import ReferenceCache
from credit_common.security.signing import Verifier
from credit_common.security.tokens import TokenVerifier
from credit_common.settings import SERVICE_PORTS, Settings, get_settings
from credit_common.tasks import unasked_cancellation
from credit_common.telemetry.logging import configure_logging
from credit_common.telemetry.metrics import ServiceMetrics
from credit_common.telemetry.observe import MetricsObserver, time_garbage_collector, tune_garbage_collector
from credit_common.telemetry.tracing import configure_tracing

log = logging.getLogger(__name__)


@dataclass
class ConsumerSpec:
    """One consumer group of a service: its topics and how each message type is handled."""

    name: str
    topics: Sequence[str]
    handlers: Mapping[str, Handler] | None = None
    batch_handler: BatchHandler | None = None
    request_types: Sequence[str] = ()
    request_topics: Sequence[str] = ()
    on_answers: AnswersHook | None = None  # the service's own request ledger, same transaction
    flush: FlushHook | None = None  # writes the outbox and answers itself (see KafkaConsumerWrapper)
    skip: Callable[[Any], bool] | None = None  # records to pass over unparsed (cheap pre-filter)
    optimistic: Optimistic | None = None  # plans a batch's reads for the optimistic path (with flush)


@dataclass
class TimerSpec:
    """A periodic task (expiry, deadlines): runs in every instance; claims rows with SKIP LOCKED."""

    name: str
    interval_s: float
    tick: Callable[[Runtime], Awaitable[Any]]
    first_after_s: float = 0.0  # the first tick this long after the start (0: at once)


DashboardHook = Callable[["Runtime"], Awaitable[Sequence[Panel]]]
"""The service's own panels on its operator dashboard (see `credit_common.http.panels`)."""


@dataclass
class ServiceDefinition:
    name: str
    title: str
    description: str
    migrations: Path | None = None
    consumers: Callable[[Runtime], Sequence[ConsumerSpec]] = lambda rt: ()
    timers: Sequence[TimerSpec] = ()
    routes: Callable[[FastAPI, Runtime], None] = lambda app, rt: None
    publishes: Mapping[str, Sequence[str]] = field(default_factory=dict)  # topic -> types (AsyncAPI)
    on_start: Callable[[Runtime], Awaitable[None]] | None = None
    # The domain panels of the operator dashboard (GET /); see credit_common.http.dashboard.
    dashboard: DashboardHook | None = None


async def _stop_quietly(producer: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), 10.0)


async def _prune_inbox(rt: Runtime) -> None:
    """Every service's inbox, pruned after its topics' retention (db/prune.py)."""
    await prune_inbox(rt.pool)


def _model_for(type_: str) -> type[BaseModel] | None:
    row = REGISTRY.get(type_)
    return row.model if row is not None else None


class Runtime:
    """Everything a running service holds; handlers reach it through closures made at wiring."""

    def __init__(self, definition: ServiceDefinition, settings: Settings, clock: Clock | None = None) -> None:
        self.definition = definition
        self.name = definition.name
        self.settings = settings
        self.clock: Clock = clock or clock_from(settings.credit_now)
        self.registry = CollectorRegistry()
        self.metrics = ServiceMetrics(definition.name, self.registry)
        self._gc_callback: Callable[[str, dict[str, int]], None] | None = None
        self.observer = MetricsObserver(self.metrics)
        self.health = HealthChecks(self.registry)
        self.reference = ReferenceCache(settings.kafka_bootstrap_servers, client_id=f"{self.name}-reference")
        # Requests are verified against the `key` records of the catalogue this process follows.
        self.verifier = Verifier(lambda kid: self.reference.catalog.key(kid))
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self.consumers: list[KafkaConsumerWrapper] = []
        self._producer: Any = None
        self._retiring: set[asyncio.Task[None]] = set()  # producers replaced after a fatal error, stopping
        self._timer_tasks: list[asyncio.Task[None]] = []
        self.started_at = time.time()
        self.timer_state: dict[str, dict[str, Any]] = {}
        self.extras: dict[str, Any] = {}  # what a service's wiring keeps (its handlers, ...)
        self.consumer_specs: list[ConsumerSpec] = list(definition.consumers(self))
        hook = definition.dashboard
        self.dashboard = Dashboard(self, panels=(lambda: hook(self)) if hook is not None else None)

    @property
    def title(self) -> str:
        return self.definition.title

    @property
    def timers(self) -> Sequence[TimerSpec]:
        return self.definition.timers

    @property
    def producer(self) -> Any:
        """The started idempotent producer (the relay's), for an HTTP ingress to publish with."""
        assert self._producer is not None, "the runtime is not started"
        return self._producer

    async def _renew_producer(self) -> Any:
        """A fresh started producer in place of a broken one (the relay's and the HTTP ingress's:
        `producer` answers the new one from now on); the old one is stopped in the background."""
        fresh = make_producer(self.settings.kafka_bootstrap_servers, f"{self.name}-relay", linger_ms=0)
        try:
            await asyncio.wait_for(fresh.start(), 30.0)
        except BaseException:
            with contextlib.suppress(Exception):
                await fresh.stop()
            raise
        old, self._producer = self._producer, fresh
        if old is not None:
            task = asyncio.create_task(_stop_quietly(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        return fresh

    @property
    def db(self) -> asyncpg.Pool:
        assert self.pool is not None, "the runtime is not started"
        return self.pool

    async def start(self) -> None:
        s = self.settings
        schema = s.schema_of(self.name)
        # The topics are the stack's (`make topics`, as admin): a service's principal may read and
        # write its own topics, never create one (contracts.md, Security).
        sources = migration_sources(self.definition.migrations)
        if s.credit_db_owner_url:  # migrations at start, as the schema's owner (never as admin)
            conn = await dbpool.connect(s.credit_db_owner_url, schema=schema, application_name=f"{self.name}-migrate")
            try:
                applied = await migrate(conn, schema, sources)
                if applied:
                    log.info("migrations applied: %s", ", ".join(applied))
            finally:
                await conn.close()
        # The service works as its runtime role (DATABASE_URL): rows of its own tables, nothing else.
        dsn = s.database_url
        conn = await dbpool.connect(dsn, schema=schema, application_name=f"{self.name}-check")
        try:
            await require_runtime_role(conn, schema)
            missing = await pending(conn, schema, sources)
            if missing:
                raise MigrationError(
                    f"{schema} lacks migrations {', '.join(missing)}: run `credit-migrate {self.name}` "
                    "(as admin) or give CREDIT_DB_OWNER_URL"
                )
        finally:
            await conn.close()
        self.pool = await dbpool.create_pool(
            dsn, schema=schema, application_name=self.name, max_size=s.credit_db_pool_max
        )
        await self.reference.start(wait=True, timeout=120.0)
        # No linger: the relay hands the producer a whole claimed batch at once, so waiting for
        # more would only add latency to every event.
        self._producer = make_producer(s.kafka_bootstrap_servers, f"{self.name}-relay", linger_ms=0)
        await self._producer.start()
        self.relay = OutboxRelay(
            self.pool,
            self._producer,
            schema,
            batch_max=s.credit_relay_batch_max,
            observer=self.observer,
            connect=lambda: dbpool.connect(
                dsn, schema=schema, application_name=f"{self.name}-relay", lease_s=s.credit_relay_lease_s
            ),
            renew=self._renew_producer,
            lease_s=s.credit_relay_lease_s,
        )
        self.relay.start()
        if self.definition.on_start is not None:
            await self.definition.on_start(self)
            self.relay.wake()  # whatever it wrote to the outbox (a re-judgement) goes out now
        self.dashboard.start()  # before the consumers: its first sample is the zero of every rate
        for spec in self.consumer_specs:
            wrapper = KafkaConsumerWrapper(
                service=self.name,
                group_id=s.group_of(f"{self.name}.{spec.name}" if spec.name else self.name),
                topics=spec.topics,
                bootstrap=s.kafka_bootstrap_servers,
                pool=self.pool,
                clock=self.clock,
                handlers=spec.handlers,
                batch_handler=spec.batch_handler,
                request_types=spec.request_types,
                request_topics=spec.request_topics,
                model_for=_model_for,
                observer=self.observer,
                on_committed=self.relay.wake,
                on_answers=spec.on_answers,
                flush=spec.flush,
                skip=spec.skip,
                optimistic=spec.optimistic,
                verifier=self.verifier,
                batch_max=s.credit_consumer_batch_max,
                batch_timeout_ms=s.credit_consumer_batch_timeout_ms,
                session_timeout_ms=s.credit_kafka_session_timeout_ms,
                max_poll_interval_ms=s.credit_kafka_max_poll_interval_ms,
            )
            await wrapper.start()
            self.consumers.append(wrapper)
        for timer in (
            *self.definition.timers,
            TimerSpec("prune", s.credit_prune_interval_s, _prune_inbox, s.credit_prune_interval_s),
        ):
            self._timer_tasks.append(asyncio.create_task(self._run_timer(timer), name=f"timer-{timer.name}"))
        self._register_checks()
        tune_garbage_collector()
        self._gc_callback = time_garbage_collector(self.metrics)
        log.info("service %s started", self.name)

    def _register_checks(self) -> None:
        async def kafka() -> None:
            await self._producer.client.fetch_all_metadata()

        async def postgres() -> None:
            await self.db.fetchval("SELECT 1")

        async def reference() -> None:
            if not self.reference.ready.is_set():
                raise RuntimeError("reference catalogue not loaded yet")
            if not self.reference.running:  # a dead follower would keep serving a stale catalogue
                raise RuntimeError("reference catalogue follower stopped: the catalogue is no longer followed")

        async def consumers() -> None:
            for c in self.consumers:
                if c._task is None or c._task.done():
                    raise RuntimeError(f"consumer {c.group_id} is not running")
                if not c.healthy:
                    raise RuntimeError(f"consumer {c.group_id}: {c.last_error}")
                # A normal batch takes well under a second; aiokafka's max.poll.interval is 300 s.
                if c.stalled_for() > self.settings.credit_consumer_stall_s:
                    stalled = f"no fetch for {c.stalled_for():.0f}s (stuck in a batch or out of its group)"
                    raise RuntimeError(f"consumer {c.group_id}: {stalled}")
                if c.parked:
                    raise RuntimeError(
                        f"consumer {c.group_id}: {len(c.parked)} message(s) parked (last {c.parked[-1]}): see the log"
                    )

        async def relay() -> None:
            if self.relay is not None and self.relay.last_error:
                raise RuntimeError(f"outbox relay: {self.relay.last_error}")
            if self.relay is not None:
                await self.relay.pending()
                parked = await self.relay.parked_rows()
                if parked:
                    raise RuntimeError(f"outbox relay: {parked} row(s) too large to publish, in outbox_parked")

        async def timers() -> None:
            failing = {name: st["last_error"] for name, st in self.timer_state.items() if st["last_error"]}
            if failing:
                raise RuntimeError("; ".join(f"timer {name}: {error}" for name, error in sorted(failing.items())))

        self.health.add("kafka", kafka)
        self.health.add("postgres", postgres)
        self.health.add("reference", reference)
        self.health.add("consumers", consumers)
        self.health.add("outbox_relay", relay)
        self.health.add("timers", timers)

    async def _run_timer(self, timer: TimerSpec) -> None:
        state = self.timer_state.setdefault(timer.name, {"runs": 0, "last_error": None, "last_run": None})
        await asyncio.sleep(timer.first_after_s)
        while True:
            try:
                await timer.tick(self)
                state["runs"] += 1
                state["last_error"] = None
                state["last_run"] = self.clock.now().isoformat()
                if self.relay is not None:
                    self.relay.wake()
            except (Exception, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError) and not unasked_cancellation(exc):
                    raise
                state["last_error"] = f"{type(exc).__name__}: {exc}"
                log.exception("timer %s failed", timer.name)
            await asyncio.sleep(timer.interval_s)

    async def stop(self) -> None:
        if self._gc_callback in gc.callbacks:
            gc.callbacks.remove(self._gc_callback)
        await self.dashboard.stop()
        for t in self._timer_tasks:
            t.cancel()
        for t in self._timer_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for c in self.consumers:
            await c.stop()
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.relay.drain(), 10.0)
            await self.relay.stop()
        if self._producer is not None:
            await self._producer.stop()
        await self.reference.stop()
        if self.pool is not None:
            await self.pool.close()
        log.info("service %s stopped", self.name)


def build_app(definition: ServiceDefinition, settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The service's ASGI app: its lifespan starts and stops the runtime."""
    settings = settings or get_settings()
    configure_logging(definition.name, settings.log_level)
    configure_tracing(definition.name, settings.otel_exporter_otlp_endpoint, settings.credit_trace_sample_ratio)
    runtime = Runtime(definition, settings, clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = create_http_app(
        definition.name,
        definition.title,
        definition.description,
        runtime.health,
        runtime.registry,
        lifespan=lifespan,
        authenticator=Authenticator(TokenVerifier.from_settings(settings)),
    )
    app.state.runtime = runtime
    # ASGI layers served in front of the whole FastAPI app (outermost first), for the rare hot
    # path that must not pay for FastAPI's middleware and telemetry on every request.
    app.state.front = []
    definition.routes(app, runtime)
    consumes: dict[str, list[str]] = {}
    for spec in runtime.consumer_specs:
        if isinstance(spec.batch_handler, Handlers):  # what the table handles, topic by topic
            handled = spec.batch_handler.types
        else:
            handled = list(spec.request_types) or list((spec.handlers or {}).keys())
        for topic in spec.topics:
            types = [t for t in handled if t not in REGISTRY or topic in REGISTRY[t].topics]
            consumes.setdefault(topic, []).extend(t for t in types if t not in consumes.get(topic, []))
    # Every service answers requests and dead-letters what it cannot parse.
    publishes = {
        **definition.publishes,
        topics.FEEDBACK: [T.REQUEST_ACCEPTED, T.REQUEST_REJECTED],
        topics.DEADLETTER: [T.DEADLETTER_RECORDED],
    }
    html, doc = build_asyncapi(definition.name, definition.title, settings.kafka_bootstrap_servers, consumes, publishes)
    mount_asyncapi(app, html, doc)
    mount_dashboard(app, runtime.dashboard)
    return app


def served(app: FastAPI) -> ASGIApp:
    """What the server runs: `app` behind the layers its routes put in `app.state.front`, and
    those behind the app's authorisation (the same check, made once: a fast path serves nobody
    the app would have refused)."""
    asgi: ASGIApp = app
    layers = getattr(app.state, "front", [])
    for layer in reversed(layers):
        asgi = layer(asgi)
    authenticator = getattr(app.state, "authenticator", None)
    if layers and authenticator is not None:
        asgi = AuthMiddleware(asgi, authenticator)
    if layers:
        asgi = HostileInputMiddleware(asgi)  # the fast path refuses what the app would refuse
    return asgi


def run(definition: ServiceDefinition) -> None:
    """Serve the service on its port (`CREDIT_HTTP_PORT`, else the contract's default)."""
    import uvicorn

    settings = get_settings()
    port = settings.credit_http_port or SERVICE_PORTS.get(definition.name, 8100)
    app = build_app(definition, settings)
    uvicorn.run(served(app), host=settings.credit_http_host, port=port, log_config=None, access_log=False)
