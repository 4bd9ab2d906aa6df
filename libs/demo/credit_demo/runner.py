"""`credit-demo` (`make demo`): send the demo's traffic to a running platform at a steady rate, then
wait until every service's consumer groups have caught up and report what happened.

    python -m credit_demo --rate 200 --minutes 10 [--seed N] [--no-wait] [--dry-run | --offline]

Kafka comes from the settings (`KAFKA_BOOTSTRAP_SERVERS`), the clock from `CREDIT_NOW` (as the
services have it), the reference catalogue from `credit.reference.v1` unless `--catalog` names
the YAML files. The services' processes are found by their pid files (`deploy/services.sh`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import psutil
import structlog
import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from credit_common.clock import Clock, clock_from
from credit_common.contracts import types as T
from credit_common.json import loads
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.messaging.lag import GroupLag
from credit_common.messaging.producer import make_producer
from credit_common.messaging.sender import ReliableSender
from credit_common.reference.cache import ReferenceCache
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import CatalogError, load_files
from credit_common.security.credentials import Signers
from credit_common.settings import SERVICE_PORTS, get_settings
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from credit_demo.history import UNIT, import_history
from credit_demo.malformed import MALFORMED
from credit_demo.model import Message
from credit_demo.offline import dry_run, offline_run
from credit_demo.options import Options
from credit_demo.traffic import Traffic

#: Every service's consumer groups and the topics each reads (as in services/<name>/app.py; a
#: unit test keeps the two in step). Lag is counted over these.
CONSUMER_GROUPS: dict[str, tuple[str, ...]] = {
    "designation": (topics.DESIGNATION_REQUESTS, topics.OBJECTION_EVENTS, topics.REFERENCE),
    "designation.feedback": (topics.FEEDBACK,),
    "sharing": (topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.WARNING_EVENTS),
    "warning": (topics.DESIGNATION_EVENTS, topics.CONDUCT_REPORTS, topics.REFERENCE),
    "objection": (topics.DESIGNATION_EVENTS, topics.OBJECTION_REQUESTS),
    "cases": (topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.ENFORCEMENT_ACTIONS),
}
MB = 1_000_000


def deployed_groups() -> dict[str, tuple[str, ...]]:
    """CONSUMER_GROUPS as the deployment the settings name (`CREDIT_INSTANCE`) calls them."""
    settings = get_settings()
    return {settings.group_of(group): group_topics for group, group_topics in CONSUMER_GROUPS.items()}


RSS_LIMIT_MB = 300  # the demo's acceptance: no service above it
console = Console(stderr=True)


# ------------------------------------------------------------------------ the services' processes


@dataclass
class Rss:
    """The services' resident memory, from their pid files: the latest sample and the peak."""

    run_dir: Path
    now: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    _procs: dict[int, psutil.Process] = field(default_factory=dict)

    def sample(self) -> None:
        for name in SERVICE_PORTS:
            try:
                pid = int((self.run_dir / f"{name}.pid").read_text().strip())
                proc = self._procs.setdefault(pid, psutil.Process(pid))
                rss = proc.memory_info().rss
            except (OSError, ValueError, psutil.Error):
                self.now.pop(name, None)
                continue
            self.pids[name] = pid
            self.now[name] = rss
            self.peak[name] = max(rss, self.peak.get(name, 0))

    def max_mb(self) -> float:
        return max(self.peak.values(), default=0) / MB


async def ready_services() -> dict[str, bool]:
    """Which services answer `GET /health/ready` with 200 on their default ports."""

    async def ready(client: httpx.AsyncClient, port: int) -> bool:
        try:
            return (await client.get(f"http://127.0.0.1:{port}/health/ready")).status_code == 200
        except httpx.HTTPError:
            return False

    async with httpx.AsyncClient(timeout=3.0) as client:
        found = await asyncio.gather(*(ready(client, port) for port in SERVICE_PORTS.values()))
    return dict(zip(SERVICE_PORTS, found, strict=True))


async def _wait_ready(timeout: float) -> list[str]:
    """Wait (bounded) until every service is ready; the names of those that are not."""
    deadline = time.monotonic() + timeout
    with console.status("waiting for the services' /health/ready") as status:
        while True:
            missing = [name for name, ok in (await ready_services()).items() if not ok]
            if not missing or time.monotonic() >= deadline:
                return missing
            status.update(f"waiting for {', '.join(missing)} to be ready")
            await asyncio.sleep(1.0)


# ------------------------------------------------------------------------ answers


class Answers:
    """The platform's answers to the demo's requests (`credit.feedback.v1`) and the dead letters
    recorded meanwhile, read from where the topics ended when the demo started."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(
            **kafka_options(bootstrap), client_id="credit-demo-answers", enable_auto_commit=False
        )
        self._expected: dict[str, str] = {}  # request id -> kind
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.codes: Counter[tuple[str, str]] = Counter()
        self.dead_letters = 0
        self._task: asyncio.Task[None] | None = None
        self._tps: list[TopicPartition] = []

    async def start(self) -> None:
        await self._consumer.start()
        for topic in (topics.FEEDBACK, topics.DEADLETTER):
            parts = self._consumer.partitions_for_topic(topic)
            if not parts:
                await self._consumer._client.force_metadata_update()
                parts = self._consumer.partitions_for_topic(topic) or set()
            self._tps.extend(TopicPartition(topic, p) for p in sorted(parts))
        self._consumer.assign(self._tps)
        await self._consumer.seek_to_end(*self._tps)
        for tp in self._tps:
            await self._consumer.position(tp)  # fixed now: answers to earlier traffic are not ours
        self._task = asyncio.create_task(self._run(), name="demo-answers")

    def expect(self, msg: Message) -> None:
        self._expected[msg.id] = msg.kind

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == topics.DEADLETTER:
                        self.dead_letters += 1
                    elif record.value is not None:
                        self._answer(record.value)

    def _answer(self, value: bytes) -> None:
        try:
            event = loads(value)
            data = event["data"]
            kind = self._expected.pop(data["request_id"], None)
        except (ValueError, KeyError, TypeError):
            return
        if kind is None:
            return
        if event["type"] == T.REQUEST_ACCEPTED:
            self.accepted[kind] += 1
        else:
            self.rejected[kind] += 1
            for error in data.get("errors", []):
                self.codes[(kind, str(error.get("code")))] += 1

    async def caught_up(self, timeout: float) -> None:
        """Wait (bounded) until everything on the two topics so far is read."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ends = await self._consumer.end_offsets(self._tps)
            positions = {tp: await self._consumer.position(tp) for tp in ends}
            if all(positions[tp] >= end for tp, end in ends.items()):
                return
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


# ------------------------------------------------------------------------ the run


@dataclass
class Sent:
    count: int = 0
    acked: int = 0
    failed: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


async def load_catalog(bootstrap: str, paths: Path | None) -> Catalog:
    """The catalogue the services use (from the topic), or the YAML files at `paths`."""
    if paths is not None:
        return Catalog.of(load_files([paths]))
    cache = ReferenceCache(bootstrap, client_id="credit-demo-reference")
    await cache.start(wait=True, timeout=60.0)
    try:
        return cache.catalog
    finally:
        await cache.stop()


async def run(opts: Options) -> int:
    settings = get_settings()
    bootstrap = settings.kafka_bootstrap_servers
    clock = clock_from(settings.credit_now)
    catalog = await load_catalog(bootstrap, opts.catalog)
    if not catalog.units() or not catalog.standards():
        console.print("[red]No reference catalogue on credit.reference.v1[/]: run `make catalog` first.")
        return 2
    missing = await _wait_ready(opts.ready_timeout)
    if missing:
        console.print(f"[yellow]Not ready: {', '.join(missing)}[/] (start the platform: `make up`); sending anyway.")
    traffic = Traffic(catalog, seed=opts.seed, malformed=opts.malformed, settle=timedelta(seconds=opts.settle))
    console.print(
        f"[bold]Demo traffic[/] to {bootstrap}: {opts.total:,} requests at {opts.rate:g}/s for "
        f"{opts.minutes:g} min, seed {opts.seed} (--seed {opts.seed} gives the same subjects and mix)"
    )
    console.print(f"[bold]Historical import[/] ({UNIT}): {await import_history(settings, opts.run_dir)}")
    rss = Rss(opts.run_dir)
    lag = GroupLag(bootstrap, client_id="credit-demo-lag")
    answers = Answers(bootstrap)
    # Every request is sent until the broker has it, over an outage too (a fresh producer after a
    # fatal error): a broker restart during the demo delays requests, it does not lose them.
    producer = ReliableSender(lambda: make_producer(bootstrap, "credit-demo"))
    await lag.start()
    await answers.start()
    await producer.start()
    try:
        sent = await _send(opts, traffic, clock, producer, answers, lag, rss)
        _print_sent(traffic, sent)
        drained = await _drain(opts, lag, rss, sent) if opts.wait else None
        await answers.caught_up(timeout=15.0 if opts.wait else 2.0)
        rss.sample()
        _print_answers(traffic, answers)
        _print_rss(rss)
    finally:
        await producer.stop()
        await answers.stop()
        await lag.stop()
    return 1 if opts.wait and drained is None else 0


async def _send(
    opts: Options,
    traffic: Traffic,
    clock: Clock,
    producer: ReliableSender,
    answers: Answers,
    lag: GroupLag,
    rss: Rss,
) -> Sent:
    """Send `opts.total` messages at `opts.rate` per second; the first Ctrl-C stops early."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
    sent = Sent()
    signers = Signers()  # each request signed by its unit's key, as a department's system does

    def delivered(fut: asyncio.Task[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            sent.failed += 1
        else:
            sent.acked += 1

    lags: dict[str, int] = {}

    async def watch() -> None:  # lag and memory on the progress line
        while True:
            rss.sample()
            with contextlib.suppress(Exception):
                lags.update(await lag.total(deployed_groups()))
            await asyncio.sleep(3.0)

    watcher = asyncio.create_task(watch())
    progress = Progress(
        TextColumn("[bold]demo[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>6.1f}/s"),
        TextColumn("lag {task.fields[lag]:>6,}"),
        TextColumn("max RSS {task.fields[rss]:>4.0f} MB"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    start = loop.time()
    try:
        with progress:
            task = progress.add_task("demo", total=opts.total, rate=0.0, lag=0, rss=0.0)
            while sent.count < opts.total and not stop.is_set():
                due = min(opts.total, int((loop.time() - start) * opts.rate) + 1)
                while sent.count < due:
                    msg = traffic.next(clock.now())
                    answers.expect(msg)
                    value = signers.sign_bytes(msg.value) if msg.topic in topics.REQUEST_TOPICS else msg.value
                    producer.send_soon(msg.topic, value, key=msg.key, headers=msg.headers, done=delivered)
                    sent.count += 1
                elapsed = loop.time() - start
                progress.update(
                    task,
                    completed=sent.count,
                    rate=sent.count / elapsed if elapsed else 0.0,
                    lag=sum(lags.values()),
                    rss=rss.max_mb(),
                )
                next_at = start + sent.count / opts.rate
                await asyncio.sleep(min(0.1, max(0.0, next_at - loop.time())))
            await producer.flush()
            sent.seconds = loop.time() - start
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
    if stop.is_set():
        console.print(f"[yellow]Stopped early[/] after {sent.count:,} requests.")
    return sent


async def _drain(opts: Options, lag: GroupLag, rss: Rss, sent: Sent) -> float | None:
    """Seconds from the last send until every consumer group had no lag (twice in a row, a second
    apart: a relay may still be publishing what a group just committed), or None at the timeout."""
    start = time.monotonic()
    first_zero: float | None = None
    lags: dict[str, int] = {}
    with console.status("waiting for the consumer groups to catch up") as status:
        while time.monotonic() - start < opts.wait_timeout:
            lags = await lag.total(deployed_groups())
            rss.sample()
            behind = {g: n for g, n in lags.items() if n}
            if not behind:
                if first_zero is not None:
                    break
                first_zero = time.monotonic() - start
            else:
                first_zero = None
                status.update("waiting for " + ", ".join(f"{g} ({n:,} behind)" for g, n in behind.items()))
            await asyncio.sleep(1.0)
    if first_zero is None:
        still = ", ".join(f"{g} {n:,}" for g, n in lags.items() if n)
        console.print(f"[red]Consumer lag not zero after {opts.wait_timeout:.0f} s[/]: {still}")
        return None
    console.print(f"Every consumer group caught up [bold]{first_zero:.1f} s[/] after the last request.")
    return first_zero


# ------------------------------------------------------------------------ the report


def _print_sent(traffic: Traffic, sent: Sent) -> None:
    table = Table(title="Sent", title_justify="left")
    table.add_column("type")
    table.add_column("sent", justify="right")
    for kind, n in sorted(traffic.sent.items(), key=lambda kv: -kv[1]):
        table.add_row(kind, f"{n:,}")
    console.print(table)
    console.print(
        f"{sent.count:,} requests in {sent.seconds:.1f} s: [bold]{sent.rate:.1f}/s[/] "
        f"({sent.acked:,} acknowledged, {sent.failed:,} failed)"
    )
    console.print(
        f"As the demo counts them: {len(traffic.active_entries()):,} designations active, "
        f"{len(traffic.warning_subjects()):,} subjects on key-scrutiny lists in 3 or more key fields."
    )


def _print_answers(traffic: Traffic, answers: Answers) -> None:
    table = Table(title="Answers on credit.feedback.v1", title_justify="left")
    for col in ("type", "accepted", "rejected", "no answer yet"):
        table.add_column(col, justify="left" if col == "type" else "right")
    for kind, n in sorted(traffic.sent.items(), key=lambda kv: -kv[1]):
        ok, no = answers.accepted[kind], answers.rejected[kind]
        table.add_row(kind, f"{ok:,}", f"{no:,}", f"{n - ok - no:,}")
    console.print(table)
    if answers.codes:
        top = ", ".join(f"{kind.rsplit('.', 1)[-1]}: {code} ×{n}" for (kind, code), n in answers.codes.most_common(8))
        console.print(f"Most frequent rejections: {top}")
    console.print(
        f"Dead letters recorded meanwhile: {answers.dead_letters:,} (the {MALFORMED} messages that are not JSON)"
    )


def _print_rss(rss: Rss) -> None:
    if not rss.pids:
        console.print(f"No service processes found in {rss.run_dir} (pid files of deploy/services.sh).")
        return
    table = Table(title="Services' memory (RSS)", title_justify="left")
    for col in ("service", "pid", "now MB", "peak MB"):
        table.add_column(col, justify="left" if col == "service" else "right")
    for name, pid in rss.pids.items():
        peak = rss.peak.get(name, 0) / MB
        style = "red" if peak > RSS_LIMIT_MB else ""
        now = rss.now.get(name)
        table.add_row(
            name, str(pid), f"{now / MB:.0f}" if now else "gone", f"[{style}]{peak:.0f}[/]" if style else f"{peak:.0f}"
        )
    console.print(table)


# ------------------------------------------------------------------------ the command


app = typer.Typer(
    name="credit-demo",
    help="Send realistic traffic from many departments to the running platform (make demo).",
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def demo(
    rate: Annotated[float, typer.Option(min=0.1, help="Requests per second.")] = 50.0,
    minutes: Annotated[float, typer.Option(min=0.01, help="How long to send.")] = 2.0,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: a new one, printed).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until every consumer group has caught up.")] = True,
    wait_timeout: Annotated[float, typer.Option(help="Seconds to wait for the consumer groups.")] = 300.0,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for the services to be ready.")] = 120.0,
    settle: Annotated[float, typer.Option(help="Seconds before a new designation is acted on.")] = 5.0,
    malformed: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of malformed messages.")] = 0.005,
    catalog: Annotated[
        Path | None, typer.Option(help="Catalogue YAML directory (default: read credit.reference.v1).")
    ] = None,
    run_dir: Annotated[Path, typer.Option(help="Where deploy/services.sh keeps the pid files.")] = Path(".local/run"),
    dry: Annotated[bool, typer.Option("--dry-run", help="Print the messages as JSON lines; send nothing.")] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Run the traffic through the services' own handlers in memory.")
    ] = False,
) -> None:
    opts = Options(
        rate=rate,
        minutes=minutes,
        seed=seed if seed is not None else random.SystemRandom().randrange(1_000_000),
        wait=wait,
        wait_timeout=wait_timeout,
        ready_timeout=ready_timeout,
        settle=settle,
        malformed=malformed,
        catalog=catalog,
        run_dir=run_dir,
    )
    if dry or offline:
        (offline_run if offline else dry_run)(opts)
        return
    try:
        code = asyncio.run(run(opts))
    except CatalogError as exc:
        console.print(str(exc))
        code = 2
    raise typer.Exit(code)


def main() -> None:
    # The reference cache's progress lines would run into the progress bar: warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    app()
