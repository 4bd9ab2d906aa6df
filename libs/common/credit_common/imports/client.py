"""Sending an import and reading its answers: the library entry point `run_import`, which
`credit-import` wraps and the tests and benchmarks call in-process.

The flow, the same on a first run and on a resumed one:
1. The state file of this file and unit is read, or made: the feedback topic's end offsets are
   taken before anything is sent (`feedback_from`), with the `time` every message will carry.
2. The feedback topic is read from `feedback_from` up to where it ends now, with no consumer
   group (nothing to commit, no group ACL needed): the answers to batches an earlier run sent.
3. The file is read again in order; each batch already answered is settled from its answer,
   every other one is sent (the same id, time and signature as before: a batch that landed is a
   silent retry, and its answer, on the topic once the platform has processed it, is found).
   At most `window` batches wait for their answers at a time, so only their entries are in memory.
4. The run waits for the answers still missing, or until `timeout`: the state stays, and running
   the same command again resumes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from credit_common.clock import SHANGHAI, clock_from
from credit_common.contracts import types as T
from credit_common.contracts.envelope import CONTENT_TYPE
from credit_common.contracts.requests import IMPORT_BATCH_MAX
from credit_common.imports.batches import Batch, batches, import_prefix
from credit_common.imports.files import Line, count_entries, file_digest, read_lines
from credit_common.imports.results import Answer, ImportSummary, Refusal, parse_answer, settle
from credit_common.imports.state import ImportState, load_state, save_state, state_path
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.messaging.sender import ReliableSender
from credit_common.security.signing import Signer
from credit_common.settings import Settings

#: Batches sent and not answered yet, at most: enough to keep the platform busy (a batch takes
#: it well under a second), few enough that their entries are all an import holds in memory.
WINDOW = 32
_POLL_S = 0.5


def envelope(batch: Batch, unit: str, time: str) -> dict[str, Any]:
    """The request of one batch, unsigned. Nothing in it but the batch, the unit and the import's
    `time` (from its state file): the same batch is always the same request."""
    return {
        "specversion": "1.0",
        "id": batch.id,
        "source": f"unit/{unit}",
        "type": T.DESIGNATION_IMPORT,
        "time": time,
        "datacontenttype": "application/json",
        "data": {"entries": batch.entries},
    }


def signed_message(batch: Batch, unit: str, time: str, signer: Signer) -> bytes:
    """The record value of one batch: its envelope signed (Ed25519 is deterministic: the same
    batch gives the same bytes, which is what makes sending it again a silent retry)."""
    return orjson.dumps(signer.sign(envelope(batch, unit, time)))


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:>7,.0f}/s" if task.speed else "      -/s")


class _Bar:
    """The progress bar (entries answered or refused of all entries read), or nothing."""

    def __init__(self, total: int, enabled: bool, console: Console | None) -> None:
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]import[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                _Rate(),
                TextColumn("imported [green]{task.fields[imported]:,}[/]"),
                TextColumn("refused [red]{task.fields[refused]:,}[/]"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console or Console(stderr=True),
            )
            self._task = self._progress.add_task("import", total=total, imported=0, refused=0)
            self._progress.start()

    def advance(self, entries: int, summary: ImportSummary) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=entries, imported=summary.imported, refused=len(summary.refused))

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


class _Run:
    """One run's bookkeeping: the batches waiting for their answers, the answers that came before
    their batch was read again from the file (a resumed run), and the summary."""

    def __init__(self, summary: ImportSummary, prefix: str, bar: _Bar, stop: asyncio.Event) -> None:
        self.summary = summary
        self.prefix = prefix
        self.bar = bar
        self.stop = stop
        self.pending: dict[str, Batch] = {}
        self.early: dict[str, Answer] = {}
        self.answered: set[str] = set()
        self.changed = asyncio.Event()
        self.failure: BaseException | None = None

    def answer(self, value: bytes | None) -> None:
        found = parse_answer(value, self.prefix)
        if found is None or found.request_id in self.answered:
            return  # the first answer counts (the platform answers once; a copy changes nothing)
        self.answered.add(found.request_id)
        batch = self.pending.pop(found.request_id, None)
        if batch is None:
            self.early[found.request_id] = found
        else:
            self.settle(batch, found)
        self.changed.set()

    def settle(self, batch: Batch, answer: Answer) -> None:
        settled = settle(batch, answer)
        self.summary.imported += settled.imported
        self.summary.refused.extend(settled.refusals)
        self.summary.answered_batches += 1
        self.bar.advance(len(batch.entries), self.summary)

    def refuse(self, line: Line) -> None:
        self.summary.refused.append(Refusal.of_line(line))
        self.bar.advance(1, self.summary)

    async def read_answers(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                fetched = await consumer.getmany(timeout_ms=int(_POLL_S * 1000), max_records=5000)
                for records in fetched.values():
                    for record in records:
                        self.answer(record.value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the main loop raises it: an import never waits on a dead reader
            self.failure = exc
            self.changed.set()

    async def until(self, done: Callable[[], bool], deadline: float | None) -> bool:
        """Wait until `done()`; False when the deadline passed or the run was stopped first."""
        loop = asyncio.get_running_loop()
        while not done():
            if self.failure is not None:
                raise self.failure
            if self.stop.is_set() or (deadline is not None and loop.time() >= deadline):
                return False
            self.changed.clear()
            wait = _POLL_S if deadline is None else max(0.0, min(_POLL_S, deadline - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), wait)
        return True


def _producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **kafka_options(settings=settings),
        client_id="credit-import",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_request_size=topics.MAX_RECORD_BYTES,
        request_timeout_ms=30_000,
    )


async def _feedback_partitions(consumer: AIOKafkaConsumer) -> list[TopicPartition]:
    if topics.FEEDBACK not in await consumer.topics():
        raise LookupError(f"no topic {topics.FEEDBACK} on the broker: is the platform up?")
    ids = consumer.partitions_for_topic(topics.FEEDBACK)
    if not ids:
        await consumer._client.force_metadata_update()
        ids = consumer.partitions_for_topic(topics.FEEDBACK) or set()
    return [TopicPartition(topics.FEEDBACK, p) for p in sorted(ids)]


async def _caught_up(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def _bounded(awaitable: Any, run: _Run, deadline: float | None) -> bool:
    """Await it within the deadline; False when it did not finish in time or the run was stopped
    (a producer waiting for a broker that is away waits for ever otherwise)."""
    task = asyncio.ensure_future(awaitable)
    stopped = asyncio.ensure_future(run.stop.wait())
    timeout = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
    try:
        await asyncio.wait({task, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


async def run_import(
    path: Path,
    unit: str,
    *,
    settings: Settings,
    signer: Signer,
    state_dir: Path,
    batch_size: int = IMPORT_BATCH_MAX,
    timeout: float | None = None,
    progress: bool = True,
    window: int = WINDOW,
    stop: asyncio.Event | None = None,
    console: Console | None = None,
) -> ImportSummary:
    """Import the file at `path` as `unit`: send what is not answered yet, wait for the answers
    (at most `timeout` seconds; `stop` set ends the run early too) and return the summary.
    `settings` give the Kafka connection (the unit's credentials), `signer` the unit's key. A
    run with the same file and unit resumes the import its state file in `state_dir` records
    (with the batch size recorded there: another one would give other batches under the same ids)."""
    path = Path(path)
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    digest = file_digest(path)
    prefix = import_prefix(digest, unit)
    where = state_path(state_dir, digest, unit)
    state = load_state(where, digest, unit)
    total = count_entries(path)  # the file's own faults (its kind, a CSV header) before connecting
    summary = ImportSummary(
        file=path,
        unit=unit,
        state_file=where,
        resumed=state is not None,
        batch_size=state.batch_size if state is not None else batch_size,
    )
    consumer = AIOKafkaConsumer(
        **kafka_options(settings=settings),
        client_id="credit-import",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # an offset the topic's retention removed: what is left
    )
    await consumer.start()
    sender: ReliableSender | None = None
    bar = _Bar(total, progress, console)
    run = _Run(summary, prefix, bar, stop or asyncio.Event())
    reader: asyncio.Task[None] | None = None
    try:
        tps = await _feedback_partitions(consumer)
        consumer.assign(tps)
        if state is None:
            ends = await consumer.end_offsets(tps)
            started = clock_from(settings.credit_now).now().astimezone(SHANGHAI).replace(microsecond=0)
            state = ImportState(
                file=str(path.resolve()),
                digest=digest,
                unit=unit,
                batch_size=batch_size,
                started_at=started.isoformat(),
                feedback_from={tp.partition: offset for tp, offset in ends.items()},
            )
            save_state(state, where)
        for tp in tps:
            if tp.partition in state.feedback_from:
                consumer.seek(tp, state.feedback_from[tp.partition])
            else:  # a partition added since the import began: all of it is newer
                await consumer.seek_to_beginning(tp)
        reader = asyncio.create_task(run.read_answers(consumer), name="credit-import-answers")
        ends = await consumer.end_offsets(tps)
        caught_up = await _until_caught_up(run, consumer, ends, deadline)
        sender = ReliableSender(lambda: _producer(settings))
        if caught_up and await _bounded(sender.start(), run, deadline):
            summary.complete = await _send(run, path, state, signer, sender, window, deadline)
    finally:
        bar.stop()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if sender is not None:
            await sender.stop()
        await consumer.stop()
    return summary


async def _until_caught_up(
    run: _Run, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], deadline: float | None
) -> bool:
    """Read the feedback topic up to `ends` (answers to what earlier runs sent) before sending."""
    loop = asyncio.get_running_loop()
    while not await _caught_up(consumer, ends):
        if run.failure is not None:
            raise run.failure
        if run.stop.is_set() or (deadline is not None and loop.time() >= deadline):
            return False
        await asyncio.sleep(0.1)
    return True


async def _send(
    run: _Run,
    path: Path,
    state: ImportState,
    signer: Signer,
    sender: ReliableSender,
    window: int,
    deadline: float | None,
) -> bool:
    """Settle or send every batch of the file, then wait for the answers; True when every batch
    is answered."""
    summary = run.summary
    key = state.unit.encode()
    headers = [("content-type", CONTENT_TYPE.encode())]

    def counted() -> Iterator[Line]:
        for line in read_lines(path):
            summary.read += 1
            if line.errors or line.entry is None:
                run.refuse(line)
            else:
                summary.sendable += 1
                yield line

    for batch in batches(counted(), prefix=run.prefix, batch_size=state.batch_size):
        summary.messages += 1
        answer = run.early.pop(batch.id, None)
        if answer is not None:
            run.settle(batch, answer)
            continue
        if not await run.until(lambda: len(run.pending) < window, deadline):
            return False
        run.pending[batch.id] = batch
        sender.send_soon(
            topics.DESIGNATION_REQUESTS,
            signed_message(batch, state.unit, state.started_at, signer),
            key=key,
            headers=headers,
        )
        await asyncio.sleep(0)  # the answers' reader and the sends run between batches
    if not await _bounded(sender.flush(), run, deadline):
        return False
    return await run.until(lambda: not run.pending, deadline)
