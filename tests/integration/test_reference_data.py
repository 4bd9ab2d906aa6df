"""Reference data against the real broker: the shipped catalogue published to a compacted topic
and rebuilt by a `ReferenceCache`, the CLI refusing a bad catalogue without sending anything, the
cache following updates and tombstones, idempotent re-publishing, and a garbage value skipped."""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from credit_common.contracts.reference import (
    ReferenceRecord,
    StandardRecord,
    UnitRecord,
    reference_key,
)
from credit_common.messaging.connection import kafka_options
from credit_common.messaging.topics import TopicSpec, ensure_topics
from credit_common.reference.cache import ReferenceCache
from credit_common.reference.cli import publish_records
from credit_common.reference.loader import load_files
from credit_common.settings import Settings

from .conftest import TopicReader

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "deploy" / "catalog"


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll `predicate` until it holds, failing with `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def shipped() -> list[ReferenceRecord]:
    return load_files([CATALOG])


@pytest.fixture
async def reference_topic(stack: Settings) -> str:
    """A fresh compacted one-partition topic, like `credit.reference.v1`."""
    name = f"test.reference.{uuid.uuid4().hex[:10]}.v1"
    await ensure_topics(stack.kafka_bootstrap_servers, [TopicSpec(name, partitions=1, compact=True)])
    return name


@pytest.fixture
async def cache_factory(stack: Settings) -> AsyncIterator[Callable[..., Awaitable[ReferenceCache]]]:
    started: list[ReferenceCache] = []

    async def start(topic: str, *, timeout: float = 60.0) -> ReferenceCache:
        cache = ReferenceCache(
            stack.kafka_bootstrap_servers,
            topic=topic,
            client_id=f"test-reference-{uuid.uuid4().hex[:8]}",
            poll_timeout_ms=100,
        )
        started.append(cache)
        await cache.start(wait=True, timeout=timeout)
        return cache

    yield start
    for cache in started:
        await cache.stop()


async def offsets(bootstrap: str, topic: str) -> tuple[int, int]:
    """(beginning, end) offsets of partition 0 of `topic`, as the broker reports them."""
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        begin = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        return begin, end
    finally:
        await consumer.stop()


async def run_cli(*args: str, timeout: float = 180.0) -> tuple[int, str]:
    """Run `credit-reference ARGS` as a process from the project's environment, as `make catalog`
    does (`uv run` there; a newcomer need not have uv on PATH: `make deps` may have put it in
    ~/.local/bin); returns (exit status, stdout + stderr)."""
    cli = Path(sys.executable).parent / "credit-reference"
    assert cli.is_file(), f"{cli} is missing: the suite runs in the project's environment (make test)"
    proc = await asyncio.create_subprocess_exec(
        str(cli),
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


# --- 1. publish, then a cache started afterwards catches up -------------------------------------


async def test_a_cache_started_after_publishing_holds_exactly_the_catalogue(
    stack: Settings,
    shipped: list[ReferenceRecord],
    reference_topic: str,
    cache_factory: Callable[..., Awaitable[ReferenceCache]],
) -> None:
    report = await publish_records(shipped, stack.kafka_bootstrap_servers, topic=reference_topic)
    assert (report.sent, report.unchanged, report.deleted) == (len(shipped), 0, 0)
    assert await offsets(stack.kafka_bootstrap_servers, reference_topic) == (0, len(shipped))

    cache = await cache_factory(reference_topic)
    assert cache.ready.is_set()
    assert cache.running
    assert cache.skipped == 0
    assert cache.applied == len(shipped)

    # Exactly the published records: same keys, equal values, same counts by kind.
    expected = {reference_key(r): r for r in shipped}
    assert cache.catalog.records() == expected
    assert len(cache.catalog) == len(shipped)
    by_kind = Counter(r.kind for r in cache.catalog.records().values())
    assert by_kind == Counter(r.kind for r in shipped)
    assert by_kind == {"field": 14, "unit": 64, "standard": 39, "mou": 8, "calendar": 1, "campaign": 2}

    catalog = cache.catalog
    # A unit's parent: an authorised association escalates to the department that authorised it.
    assert catalog.parent_of("100000-NMPA") == "100000-SAMR"
    unit = catalog.unit("100000-NMPA")
    assert isinstance(unit, UnitRecord)
    assert unit.parent == "100000-SAMR"
    # Key fields count toward the warning list; the others do not.
    taxation = catalog.field("taxation")
    assert taxation is not None
    assert taxation.key_field
    assert "taxation" in catalog.key_fields()
    assert "e_commerce" not in catalog.key_fields()
    # A measure resolves to the MOU that carries it.
    found = catalog.measure("tax-black-procurement-ban")
    assert found is not None
    mou, measure = found
    assert mou.code == "mou-2014-major-tax-violations"
    assert measure.list == "black"
    standard = catalog.standard("taxation-black")
    assert isinstance(standard, StandardRecord)
    assert (standard.list, standard.max_period_days, standard.status) == ("black", 1095, "in_force")

    # The 2027 calendar (not in chinese-calendar) comes from the catalogue's record.
    calendar = cache.calendar
    assert calendar.knows(2027)
    assert not calendar.is_working_day(date(2027, 2, 8))  # Monday in the Spring Festival
    assert calendar.is_working_day(date(2027, 2, 20))  # Saturday made a working day
    assert calendar.is_working_day(date(2027, 2, 15))  # an ordinary Monday
    assert not calendar.is_working_day(date(2027, 2, 21))  # an ordinary Sunday
    # 10 working days from Thu 30 Sep 2027: the National Day week is off, Sat 9 Oct works.
    assert calendar.add_working_days(date(2027, 9, 30), 10) == date(2027, 10, 20)


# --- 2. the CLI refuses a bad catalogue and sends nothing ----------------------------------------


async def test_the_cli_refuses_a_bad_catalogue_and_publishes_nothing(
    stack: Settings, reference_topic: str, tmp_path: Path, reader: Callable[[str], TopicReader]
) -> None:
    bad = tmp_path / "catalog"
    shutil.copytree(CATALOG, bad)
    standards = bad / "standards.yaml"
    lines = standards.read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("- code: taxation-black\n")
    offset = next(i for i in range(start, len(lines)) if lines[i].startswith("  max_period_days:"))
    assert lines[offset] == "  max_period_days: 1095\n"
    lines[offset] = "  max_period_days: 2000\n"
    standards.write_text("".join(lines), encoding="utf-8")
    bad_line = offset + 1  # 1-based

    status, output = await run_cli(
        "publish", str(bad), "--bootstrap-servers", stack.kafka_bootstrap_servers, "--topic", reference_topic
    )
    assert status != 0, output
    assert f"{standards}:{bad_line}: standard taxation-black:" in output, output
    assert "a black standard allows at most 1095 days (got max_period_days 2000)" in output, output
    assert "the catalogue was refused" in output, output
    assert "Published" not in output, output

    # Nothing on the target topic: the broker's end offset is still 0, and a reader finds nothing.
    assert await offsets(stack.kafka_bootstrap_servers, reference_topic) == (0, 0)
    async with reader(reference_topic) as r:
        for _ in range(5):  # each poll waits up to 200 ms for records that must not come
            assert await r.poll() == []

    # The same command with the shipped catalogue does reach that topic (so the check above looked
    # where the CLI writes): the option works and a valid catalogue is published whole.
    status, output = await run_cli(
        "publish",
        str(CATALOG),
        "--bootstrap-servers",
        stack.kafka_bootstrap_servers,
        "--topic",
        reference_topic,
    )
    assert status == 0, output
    total = len(load_files([CATALOG]))
    assert f"Published {total} records to {reference_topic}" in output, output
    assert await offsets(stack.kafka_bootstrap_servers, reference_topic) == (0, total)


# --- 3. the cache follows updates and tombstones -------------------------------------------------


async def test_a_running_cache_follows_updates_and_tombstones(
    stack: Settings,
    shipped: list[ReferenceRecord],
    reference_topic: str,
    cache_factory: Callable[..., Awaitable[ReferenceCache]],
) -> None:
    bootstrap = stack.kafka_bootstrap_servers
    await publish_records(shipped, bootstrap, topic=reference_topic)
    cache = await cache_factory(reference_topic)
    assert len(cache.catalog) == len(shipped)

    heard: list[tuple[str, ReferenceRecord | None]] = []

    async def listener(key: str, record: ReferenceRecord | None) -> None:
        heard.append((key, record))

    cache.add_listener(listener)

    old = cache.catalog.standard("taxation-black")
    assert isinstance(old, StandardRecord)
    assert old.status == "in_force"
    repealed = old.model_copy(update={"status": "repealed", "version": old.version + 1})
    gone = cache.catalog.unit("440106-SPC")
    assert gone is not None, "the sample catalogue has the Tianhe District People's Court"

    # An update through the publisher (only the changed record goes out) ...
    others = [r for r in shipped if reference_key(r) != "standard:taxation-black"]
    report = await publish_records([*others, repealed], bootstrap, topic=reference_topic)
    assert (report.sent, report.unchanged) == (1, len(shipped) - 1)
    # ... and a tombstone, as compaction keeps it: the key with a null value.
    producer = AIOKafkaProducer(**kafka_options(bootstrap), enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(reference_topic, value=None, key=b"unit:440106-SPC")
    finally:
        await producer.stop()

    await eventually(
        lambda: (
            cache.catalog.unit("440106-SPC") is None
            and getattr(cache.catalog.standard("taxation-black"), "status", None) == "repealed"
        ),
        "the cache to show the repeal and the deletion",
    )
    now = cache.catalog.standard("taxation-black")
    assert now == repealed
    assert now is not None
    assert now.version == old.version + 1
    assert cache.catalog.parent_of("440106-SPC") is None
    assert len(cache.catalog) == len(shipped) - 1
    await eventually(lambda: len(heard) >= 2, "the listener to hear both changes")
    assert heard == [("standard:taxation-black", repealed), ("unit:440106-SPC", None)]
    assert cache.skipped == 0

    # A cache started now rebuilds the same view from the topic (the tombstone deletes there too).
    fresh = await cache_factory(reference_topic)
    assert fresh.catalog.records() == cache.catalog.records()


# --- 4. re-publishing is idempotent; a garbage value is skipped ----------------------------------


async def test_republishing_sends_nothing_and_a_garbage_value_does_not_stop_the_cache(
    stack: Settings,
    shipped: list[ReferenceRecord],
    reference_topic: str,
    cache_factory: Callable[..., Awaitable[ReferenceCache]],
) -> None:
    bootstrap = stack.kafka_bootstrap_servers
    first = await publish_records(shipped, bootstrap, topic=reference_topic)
    assert first.sent == len(shipped)

    again = await publish_records(load_files([CATALOG]), bootstrap, topic=reference_topic)
    assert (again.sent, again.unchanged, again.deleted) == (0, len(shipped), 0)
    pruned = await publish_records(shipped, bootstrap, topic=reference_topic, prune=True)
    assert (pruned.sent, pruned.unchanged, pruned.deleted) == (0, len(shipped), 0)
    # Nothing at all was written by the second and third runs.
    assert await offsets(bootstrap, reference_topic) == (0, len(shipped))

    # Garbage under a proper key, and a value that is JSON but not a reference event.
    producer = AIOKafkaProducer(**kafka_options(bootstrap), enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(reference_topic, value=b"\xff\x00not json{", key=b"standard:garbage")
        await producer.send_and_wait(reference_topic, value=b'{"hello": "world"}', key=b"field:hello")
    finally:
        await producer.stop()
    assert await offsets(bootstrap, reference_topic) == (0, len(shipped) + 2)

    cache = await cache_factory(reference_topic)
    assert cache.ready.is_set()
    assert cache.running
    assert cache.skipped == 2
    assert cache.applied == len(shipped)
    assert cache.catalog.records() == {reference_key(r): r for r in shipped}
    assert cache.catalog.standard("garbage") is None
    assert cache.catalog.field("hello") is None

    # It keeps following after the garbage: a record published now still arrives.
    extra = StandardRecord.model_validate(
        {
            **shipped_standard(shipped, "taxation-red").model_dump(),
            "code": f"taxation-red-test-{uuid.uuid4().hex[:6]}",
        }
    )
    report = await publish_records([*shipped, extra], bootstrap, topic=reference_topic)
    assert (report.sent, report.unchanged) == (1, len(shipped))
    await eventually(lambda: cache.catalog.standard(extra.code) == extra, "the new standard in the cache")
    assert cache.running


def shipped_standard(records: list[ReferenceRecord], code: str) -> StandardRecord:
    for r in records:
        if isinstance(r, StandardRecord) and r.code == code:
            return r
    raise AssertionError(f"no standard {code} in the shipped catalogue")
