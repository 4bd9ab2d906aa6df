"""A broker and a platform in memory, for `run_import` without Kafka: the feedback topic's
partitions, a consumer without a group, an idempotent producer, and a designation service that
answers each import batch once (a repeat with the same bytes is dropped, with other bytes refused
`duplicate_id`), at once or when the test lets it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import TopicPartition
from credit_common.contracts import types as T
from credit_common.contracts.envelope import MAX_MESSAGE_BYTES
from credit_common.messaging import topics
from credit_common.security.signing import Signer, Verifier


@dataclass
class Record:
    key: bytes | None
    value: bytes | None


def answer(kind: str, **data: Any) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": f"answer-{data['request_id']}",
            "source": "platform/designation",
            "type": kind,
            "time": datetime.now(UTC).isoformat(),
            "data": {"request_type": T.DESIGNATION_IMPORT, **data},
        }
    )


@dataclass
class Platform:
    """The designation service as an import sees it. `running` False: requests wait unanswered
    (landed, not processed yet) until `process()`."""

    broker: Broker
    signer: Signer
    running: bool = True
    reject: dict[int, dict[str, Any]] = field(default_factory=dict)  # batch number -> the error
    seen: dict[str, bytes] = field(default_factory=dict)
    queued: list[Record] = field(default_factory=list)
    retries: int = 0  # repeats with the same bytes: dropped, not answered

    def receive(self, record: Record) -> None:
        self.queued.append(record)
        if self.running:
            self.process()

    def process(self) -> None:
        queued, self.queued = self.queued, []
        for record in queued:
            self._handle(record)

    def _handle(self, record: Record) -> None:
        assert record.value is not None
        assert len(record.value) < MAX_MESSAGE_BYTES
        event = orjson.loads(record.value)
        assert event["type"] == T.DESIGNATION_IMPORT
        assert record.key == event["source"].removeprefix("unit/").encode()
        verifier = Verifier({self.signer.kid: self.signer.record(datetime(2000, 1, 1, tzinfo=UTC))}.get)
        assert verifier.check(event, datetime.now(UTC)) is None
        request_id = event["id"]
        if request_id in self.seen:
            if self.seen[request_id] == record.value:
                self.retries += 1
                return
            error = {"code": "duplicate_id", "field": "id", "message": "another request had this id"}
            self._answer(record.key, answer(T.REQUEST_REJECTED, request_id=request_id, errors=[error]))
            return
        self.seen[request_id] = record.value
        number = int(request_id.rsplit("-", 1)[1])
        if number in self.reject:
            value = answer(T.REQUEST_REJECTED, request_id=request_id, errors=[self.reject[number]])
            self._answer(record.key, value)
            return
        entries = event["data"]["entries"]
        refused = [
            {"ref": e["ref"], "errors": [{"code": "invalid_checksum", "field": "subject.id", "message": "check"}]}
            for e in entries
            if e["ref"].startswith("bad")
        ]
        value = answer(
            T.REQUEST_ACCEPTED,
            request_id=request_id,
            result_id=request_id,
            imported=len(entries) - len(refused),
            refused=refused,
        )
        self._answer(record.key, value)

    def _answer(self, key: bytes | None, value: bytes) -> None:
        self.broker.feedback[self.broker.partition_of(key)].append(Record(key, value))


class Broker:
    def __init__(self, signer: Signer, partitions: int = 3) -> None:
        self.feedback: dict[int, list[Record]] = {p: [] for p in range(partitions)}
        self.platform = Platform(self, signer)
        self.requests: list[Record] = []

    def partition_of(self, key: bytes | None) -> int:
        return sum(key or b"") % len(self.feedback)

    def noise(self, n: int) -> None:
        """Other units' answers, on every partition."""
        for i in range(n):
            unit = f"11010{i % 10}-SAT".encode()
            value = answer(T.REQUEST_ACCEPTED, request_id=f"0193d1c2-0000-7000-8000-{i:012d}", result_id="x")
            self.feedback[self.partition_of(unit)].append(Record(unit, value))

    def consumer(self, **_options: Any) -> FakeConsumer:
        return FakeConsumer(self)

    def producer(self, _settings: Any) -> FakeProducer:
        return FakeProducer(self)


class _Client:
    async def force_metadata_update(self) -> bool:
        return True


class FakeConsumer:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.positions: dict[TopicPartition, int] = {}
        self._client = _Client()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def topics(self) -> set[str]:
        return {topics.FEEDBACK, topics.DESIGNATION_REQUESTS}

    def partitions_for_topic(self, topic: str) -> set[int]:
        assert topic == topics.FEEDBACK
        return set(self.broker.feedback)

    def assign(self, tps: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(tps, 0)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.broker.feedback[tp.partition]) for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.positions[tp] = 0

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        found: dict[TopicPartition, list[Record]] = {}
        for tp, at in self.positions.items():
            records = self.broker.feedback[tp.partition][at:]
            if records:
                found[tp] = records
                self.positions[tp] = at + len(records)
        if not found:
            await asyncio.sleep(0.01)
        return found


class FakeProducer:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(
        self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Any = None
    ) -> asyncio.Future[None]:
        assert topic == topics.DESIGNATION_REQUESTS
        assert headers == [("content-type", b"application/cloudevents+json")]
        record = Record(key, value)
        self.broker.requests.append(record)
        self.broker.platform.receive(record)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done
