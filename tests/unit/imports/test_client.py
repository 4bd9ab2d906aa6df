"""`run_import` over a broker and platform in memory: every batch sent and answered, the
platform's refusals and rejections put on their lines, and a run that stopped resumed by the next
without an entry sent twice under another id or counted twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from credit_common.imports import client
from credit_common.imports.batches import import_prefix
from credit_common.imports.files import file_digest
from credit_common.imports.results import ImportSummary
from credit_common.imports.state import load_state
from credit_common.security.signing import Signer
from credit_common.settings import Settings

from tests.unit.imports.fake_kafka import Broker
from tests.unit.imports.samples import UNIT, sample_entries

SIGNER = Signer.generate("unit-110000-SAT-test", f"unit:{UNIT}")


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    broker = Broker(SIGNER)
    broker.noise(20)  # the topic before the import: other units' answers
    monkeypatch.setattr(client, "AIOKafkaConsumer", broker.consumer)
    monkeypatch.setattr(client, "_producer", broker.producer)
    return broker


def entries_file(tmp_path: Path, n: int, *, bad: tuple[int, ...] = (), broken: tuple[int, ...] = ()) -> Path:
    """`n` entries; those at `bad` the platform refuses, those at `broken` break the contract."""
    samples = sample_entries()
    lines = []
    for i in range(n):
        doc: dict[str, Any] = {**samples[i % len(samples)], "ref": f"{'bad' if i in bad else 'r'}-{i:04d}"}
        if i in broken:
            doc["list"] = "grey"
        lines.append(orjson.dumps(doc))
    path = tmp_path / "entries.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


async def run(path: Path, tmp_path: Path, **options: Any) -> ImportSummary:
    return await client.run_import(
        path, UNIT, settings=Settings(), signer=SIGNER, state_dir=tmp_path / "state", progress=False, **options
    )


async def test_every_batch_is_sent_once_and_every_answer_matched(broker: Broker, tmp_path: Path) -> None:
    path = entries_file(tmp_path, 25, bad=(3, 17), broken=(8,))
    ends = {p: len(records) for p, records in broker.feedback.items()}
    summary = await run(path, tmp_path, batch_size=10)
    assert summary.complete
    assert (summary.read, summary.sendable, summary.messages, summary.answered_batches) == (25, 24, 3, 3)
    assert summary.imported == 22
    assert [(r.line, r.ref, r.errors[0]["code"]) for r in summary.sorted_refusals()] == [
        (4, "bad-0003", "invalid_checksum"),
        (9, "r-0008", "schema_violation"),
        (18, "bad-0017", "invalid_checksum"),
    ]
    assert summary.exit_code == 3
    assert len(broker.requests) == 3
    state = load_state(summary.state_file or Path(), file_digest(path), UNIT)
    assert state is not None
    assert state.feedback_from == ends  # where the topic ended before anything was sent
    assert state.batch_size == 10
    first = orjson.loads(broker.requests[0].value or b"")
    assert first["time"] == state.started_at
    assert first["id"] == import_prefix(file_digest(path), UNIT) + "-000001"
    assert first["source"] == f"unit/{UNIT}"


async def test_a_rejected_batch_refuses_all_its_entries(broker: Broker, tmp_path: Path) -> None:
    too_large = {"code": "too_large", "field": None, "message": "over 512 KiB"}
    broker.platform.reject[2] = too_large
    summary = await run(entries_file(tmp_path, 12), tmp_path, batch_size=5)
    assert summary.complete
    assert summary.imported == 7
    assert [(r.line, r.errors) for r in summary.sorted_refusals()] == [(line, [too_large]) for line in range(6, 11)]


async def test_a_run_that_stopped_is_resumed_without_sending_an_answered_batch_again(
    broker: Broker, tmp_path: Path
) -> None:
    path = entries_file(tmp_path, 40, bad=(33,))
    broker.platform.running = False  # the platform is behind: what lands waits
    first = await run(path, tmp_path, batch_size=5, window=3, timeout=0.3)
    assert not first.complete
    assert first.exit_code == 1
    assert len(broker.requests) == 3  # the window: three batches out, none answered
    broker.platform.process()  # their answers are on the topic now
    broker.platform.running = True
    second = await run(path, tmp_path, batch_size=5, window=3)
    assert second.resumed
    assert second.complete
    assert (second.messages, second.answered_batches, second.imported) == (8, 8, 39)
    assert [r.ref for r in second.refused] == ["bad-0033"]
    assert len(broker.requests) == 8  # batches 1 to 3 were answered: not sent again
    assert broker.platform.retries == 0


async def test_a_batch_that_landed_unanswered_is_a_silent_retry_then_answered(broker: Broker, tmp_path: Path) -> None:
    path = entries_file(tmp_path, 20)
    broker.platform.running = False
    assert not (await run(path, tmp_path, batch_size=5, window=2, timeout=0.3)).complete

    async def catch_up_later() -> None:  # the platform processes its backlog while the import resumes
        await asyncio.sleep(0.3)
        broker.platform.running = True
        broker.platform.process()

    later = asyncio.create_task(catch_up_later())
    second = await run(path, tmp_path, batch_size=5, window=2, timeout=10)
    await later
    assert second.complete
    assert second.imported == 20
    assert second.refused == []
    assert broker.platform.retries == 2  # the two batches sent again: the same bytes, dropped
    assert not any(b"duplicate_id" in (r.value or b"") for records in broker.feedback.values() for r in records)


async def test_a_finished_import_run_again_sends_nothing_and_keeps_its_batch_size(
    broker: Broker, tmp_path: Path
) -> None:
    path = entries_file(tmp_path, 12, bad=(0,))
    first = await run(path, tmp_path, batch_size=5)
    again = await run(path, tmp_path, batch_size=1000)
    assert len(broker.requests) == 3
    assert again.batch_size == 5
    assert (again.imported, [r.ref for r in again.refused], again.complete) == (11, ["bad-0000"], True)
    assert (first.imported, first.messages) == (again.imported, again.messages)


async def test_stop_ends_a_run_as_a_timeout_would(broker: Broker, tmp_path: Path) -> None:
    broker.platform.running = False
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, stop.set)
    summary = await run(entries_file(tmp_path, 5), tmp_path, stop=stop)
    assert not summary.complete
    assert summary.state_file is not None
    assert summary.state_file.exists()
