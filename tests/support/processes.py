"""Our services as real processes for integration and end-to-end tests (never mocked).

Each process belongs to a deployment (`CREDIT_INSTANCE`): its schema and consumer groups carry
the deployment's name. A suite's service and the second instance a test starts beside it (a
time traveller, a crash victim) share one; two suites never do, so no test sees another's
processes, rows or partitions. A deployment's consumer groups start at the end of the topics
they read (the reference topic excepted: it is state, read whole), so a service sees what its
tests send and not the history other suites left on the shared topics."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from aiokafka import TopicPartition
from credit_common.db.provision import prepare, service_migrations
from credit_common.db.roles import drop_service_schema
from credit_common.messaging import topics
from credit_common.security.credentials import service_env
from credit_common.service import Runtime
from credit_common.settings import Settings, get_settings

from tests.support.database import OWNER_SECRET, RUNTIME_SECRET
from tests.support.kafka_admin import committed_offsets, end_offsets, group_lag, start_at
from tests.support.tokens import auth_headers

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def new_instance() -> str:
    """A deployment name no other test uses."""
    return f"t{uuid.uuid4().hex[:8]}"


def deployment(instance: str) -> Settings:
    """The settings of deployment `instance` (its `group_of` and `schema_of` name its groups)."""
    return get_settings().model_copy(update={"credit_instance": instance})


def consumer_groups(name: str, settings: Settings) -> dict[str, tuple[str, ...]]:
    """The consumer groups service `name` runs in the deployment of `settings`, and their topics."""
    definition = importlib.import_module(f"services.{name}.app").definition
    return {
        settings.group_of(f"{name}.{spec.name}" if spec.name else name): tuple(spec.topics)
        for spec in Runtime(definition, settings).consumer_specs  # built, not started: no I/O
    }


class ServiceProcess:
    """`python -m services.<name>` on its own port, its JSON log kept in tests/artifacts/."""

    def __init__(self, name: str, port: int, env: dict[str, str] | None = None, *, instance: str | None = None) -> None:
        self.name = name
        self.port = port
        self.env = env or {}
        self.instance = instance or new_instance()
        self.settings = deployment(self.instance)
        # Where each of this deployment's groups began reading (set by the first start): a replay
        # goes back there, not to history other deployments wrote.
        self.start_offsets: dict[str, dict[TopicPartition, int]] = {}
        self.base_url = f"http://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.log_path = ARTIFACTS / f"{name}-{port}.log"
        # Where the process reaches PostgreSQL when not at the server itself (a TCP proxy the
        # fault-injection suite cuts): host:port.
        self.database_via: str | None = None

    @property
    def schema(self) -> str:
        return self.settings.schema_of(self.name)

    def group(self, consumer: str | None = None) -> str:
        """The consumer group of this service (or of its named consumer, `feedback`)."""
        return self.settings.group_of(f"{self.name}.{consumer}" if consumer else self.name)

    def sibling(self, port: int, env: dict[str, str] | None = None) -> ServiceProcess:
        """A second instance of this service in the same deployment (same schema and groups)."""
        return ServiceProcess(self.name, port, env, instance=self.instance)

    def peer(self, name: str, port: int, env: dict[str, str] | None = None) -> ServiceProcess:
        """Another service of the same deployment."""
        return ServiceProcess(name, port, env, instance=self.instance)

    async def discard(self) -> None:
        """Drop the deployment's schema of this service (after every process of it stopped)."""
        admin = await asyncpg.connect(self.settings.database_url)
        try:
            await drop_service_schema(admin, self.schema)
        finally:
            await admin.close()

    async def _begin_groups_at_the_end(self) -> None:
        bootstrap = self.settings.kafka_bootstrap_servers
        for group, group_topics in consumer_groups(self.name, self.settings).items():
            if await committed_offsets(bootstrap, group):
                continue  # an instance of this deployment ran before: carry on from there
            offsets = await end_offsets(bootstrap, [t for t in group_topics if t != topics.REFERENCE])
            await start_at(bootstrap, group, offsets)
            self.start_offsets[group] = offsets

    async def settled(self, timeout: float = 120.0) -> None:
        """Wait until this deployment's service has done all it will do with what was sent so far:
        every group of it has no lag (what it consumed is committed with its effects) and its outbox
        is empty (what those effects emit is acknowledged by the broker, so it is on the topics'
        ends as of now). The marker a test waits for before asserting that something did NOT
        happen; never a fixed sleep."""
        bootstrap = self.settings.kafka_bootstrap_servers
        groups = consumer_groups(self.name, self.settings)
        deadline = asyncio.get_running_loop().time() + timeout
        admin = await asyncpg.connect(self.settings.database_url)
        try:
            while True:
                lag = 0
                for group, group_topics in groups.items():
                    lag += await group_lag(bootstrap, group, [t for t in group_topics if t != topics.REFERENCE])
                pending = await admin.fetchval(f'SELECT count(*) FROM "{self.schema}".outbox')
                if lag == 0 and pending == 0:
                    return
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"{self.name}: lag {lag}, outbox {pending} after {timeout}s")
                await asyncio.sleep(0.1)
        finally:
            await admin.close()

    async def start(self, timeout: float = 90.0) -> ServiceProcess:
        await self._begin_groups_at_the_end()
        # As the stack does: schema, roles and migrations made as admin and owner; the process gets
        # its runtime role's login only.
        db = await prepare(
            self.settings.database_url,
            self.schema,
            service_migrations(self.name),
            password=RUNTIME_SECRET,
            owner_password=OWNER_SECRET,
        )
        url = db.url
        if self.database_via:
            parts = urlsplit(url)
            url = urlunsplit(parts._replace(netloc=f"{parts.netloc.rsplit('@', 1)[0]}@{self.database_via}"))
        env = {
            **service_env(self.name),  # as principal service:<name>, with its own Kafka credentials
            "DATABASE_URL": url,
            "CREDIT_HTTP_PORT": str(self.port),
            "CREDIT_INSTANCE": self.instance,
            **self.env,
        }
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", f"services.{self.name}", env=env, stdout=log, stderr=log
        )
        log.close()
        await self.wait_ready(timeout)
        return self

    async def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while True:
                if self.proc is not None and self.proc.returncode is not None:
                    raise AssertionError(f"{self.name} exited ({self.proc.returncode}); see {self.log_path}")
                try:
                    if (await client.get("/health/ready")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"{self.name} not ready in {timeout}s; see {self.log_path}")
                await asyncio.sleep(0.2)

    async def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: a clean shutdown (finish the batch in hand, drain the outbox)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def kill(self) -> None:
        """kill -9: no shutdown at all."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    def troubles(self, lines: int = 12) -> str:
        """The last warnings and errors of this process's log, for a failing test's message."""
        if not self.log_path.exists():
            return f"{self.name}:{self.port}: no log"
        tail = self.log_path.read_text(errors="replace").splitlines()[-5000:]
        bad = [
            line
            for line in tail
            if ('"level":"warning"' in line or '"level":"error"' in line) and "reference record skipped" not in line
        ]
        return f"{self.name}:{self.port} ({self.log_path.name}):\n" + "\n".join(line[:400] for line in bad[-lines:])

    def client(self) -> httpx.AsyncClient:
        """An HTTP client of this service, as the operator (scopes `internal ops`)."""
        return httpx.AsyncClient(base_url=self.base_url, timeout=10.0, headers=auth_headers())


@contextlib.asynccontextmanager
async def platform_clock_at(svc: ServiceProcess, when: datetime, port: int) -> AsyncIterator[ServiceProcess]:
    """What `svc` receives inside the block it receives while its platform clock reads `when`
    (legal dates are taken at receipt, never from a request's `time`): the running instance
    steps aside for one of the same deployment whose clock (`CREDIT_NOW`) starts at `when`, and
    comes back after it."""
    await svc.stop()
    clerk = svc.sibling(port, env={"CREDIT_NOW": when.isoformat()})
    try:
        await clerk.start()
        yield clerk
    finally:
        await clerk.stop()
        await svc.start()


@contextlib.asynccontextmanager
async def running(procs: dict[str, ServiceProcess]) -> AsyncIterator[dict[str, ServiceProcess]]:
    """The services started together, and afterwards stopped and their deployment discarded
    (schemas and groups), whatever happened inside."""
    try:
        await asyncio.gather(*(p.start(timeout=180) for p in procs.values()))
        yield procs
    finally:
        await asyncio.gather(*(p.stop() for p in procs.values()))
        await asyncio.gather(*(p.discard() for p in procs.values()))
