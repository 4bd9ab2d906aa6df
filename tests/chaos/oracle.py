"""The oracle: what the platform published, read from its topics from the run's first offset,
held against what the load sent (Jepsen-style: the history is checked, not sampled).

Exactly once is judged by event id. An outbox relay that dies between the broker's ack and the
delete of its rows publishes them again with the same ids (at least once on the wire, as the
contract says; every inbox drops the repeat), so a record whose id was seen before is a copy,
counted in the notes, not a duplicate. A duplicate is the same fact under two ids: two answers
to one request, two created events for one designation, one entry added twice, one seq used
twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from credit_common.contracts import types as T
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.settings import get_settings

log = logging.getLogger(__name__)
READ = (topics.FEEDBACK, topics.DESIGNATION_EVENTS, topics.LISTS_CHANGES, topics.LISTS_PUBLIC, topics.DEADLETTER)


@dataclass
class Verdict:
    requests: int = 0
    lost: int = 0
    duplicated: int = 0
    unanswered: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, what: str, lost: int = 0, duplicated: int = 0) -> None:
        self.lost += lost
        self.duplicated += duplicated
        if lost or duplicated:
            self.notes.append(f"{what}: lost {lost} duplicated {duplicated}")


class Oracle:
    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(
            **kafka_options(bootstrap), client_id="credit-chaos-oracle", enable_auto_commit=False
        )
        self._tps: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None
        self._seen: set[str] = set()
        self.copies = 0
        self.dead_letters = 0
        self.unreadable: list[str] = []  # records on the platform's topics the oracle could not read
        self.dead: set[tuple[str, int, int]] = set()  # positions of the messages dead-lettered
        self.answers: dict[str, set[str]] = defaultdict(set)  # request id -> answer event ids
        self.accepted: dict[str, str] = {}  # request id -> result id
        self.created: dict[str, set[str]] = defaultdict(set)  # designation id -> created event ids
        self.public: dict[str, bool] = {}  # designation id -> on the public feed
        self.seqs: dict[str, dict[int, set[str]]] = {
            topics.LISTS_CHANGES: defaultdict(set),
            topics.LISTS_PUBLIC: defaultdict(set),
        }
        self.added: dict[str, dict[str, set[int]]] = {
            topics.LISTS_CHANGES: defaultdict(set),
            topics.LISTS_PUBLIC: defaultdict(set),
        }
        self._reported: set[str] = set()  # global findings already charged to a fault

    async def start(self) -> None:
        await self._consumer.start()
        for topic in READ:
            parts = self._consumer.partitions_for_topic(topic)
            if not parts:
                await self._consumer._client.force_metadata_update()
                parts = self._consumer.partitions_for_topic(topic) or set()
            self._tps.extend(TopicPartition(topic, p) for p in sorted(parts))
        self._consumer.assign(self._tps)
        await self._consumer.seek_to_beginning(*self._tps)
        self._task = asyncio.create_task(self._run(), name="chaos-oracle")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away: the consumer reconnects on the next call
                log.warning("oracle read failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            for tp, records in batches.items():
                for record in records:
                    try:
                        self._take(tp.topic, record.value)
                    except Exception as exc:  # a record the oracle cannot read is a finding, not its end
                        self.unreadable.append(
                            f"{tp.topic}:{tp.partition}:{record.offset}: {type(exc).__name__}: {exc}"
                        )
                        log.warning("oracle cannot read %s", self.unreadable[-1])

    def _take(self, topic: str, value: bytes | None) -> None:
        if value is None:
            return
        ev: dict[str, Any] = orjson.loads(value)
        if topic == topics.DEADLETTER:
            self.dead_letters += 1
            data = ev.get("data") or {}
            self.dead.add((str(data.get("topic")), int(data.get("partition", -1)), int(data.get("offset", -1))))
            return
        event_id = ev["id"]
        if event_id in self._seen:
            self.copies += 1
            return
        self._seen.add(event_id)
        data = ev.get("data") or {}
        kind = ev.get("type")
        if topic == topics.FEEDBACK:
            if kind in (T.REQUEST_ACCEPTED, T.REQUEST_REJECTED) and "request_id" in data:
                self.answers[data["request_id"]].add(event_id)
                if kind == T.REQUEST_ACCEPTED:
                    self.accepted[data["request_id"]] = data["result_id"]
        elif topic == topics.DESIGNATION_EVENTS:
            if kind == T.DESIGNATION_CREATED:
                record = data["record"]
                self.created[record["designation_id"]].add(event_id)
                self.public[record["designation_id"]] = bool(record.get("public"))
        else:
            self.seqs[topic][int(data["seq"])].add(event_id)
            if kind == T.LIST_ENTRY_ADDED:
                self.added[topic][data["entry"]["entry_id"]].add(int(data["seq"]))

    async def caught_up(self) -> bool:
        """Everything on the topics so far has been read."""
        if self._task is not None and self._task.done():
            raise AssertionError(f"the oracle's reader stopped: {self._task.exception()!r}")
        try:
            ends = await self._consumer.end_offsets(self._tps)
            for tp, end in ends.items():
                if await self._consumer.position(tp) < end:
                    return False
            return True
        except Exception:
            return False

    # ------------------------------------------------------------------ the verdict

    def judge(self, sent: dict[str, str], sharing_schema: str, db_seqs: tuple[int, int]) -> Verdict:
        """The verdict on the requests `sent` under one fault (id -> type), and on the feeds as a
        whole (a finding there is charged to the first fault after which it shows)."""
        v = Verdict(requests=len(sent))
        v.unanswered = sum(1 for rid in sent if not self.answers.get(rid))
        if v.unanswered:
            missing = [rid for rid in sent if not self.answers.get(rid)][:3]
            v.notes.append(f"unanswered e.g. {', '.join(missing)}")
        v.add("answers", duplicated=sum(1 for rid in sent if len(self.answers.get(rid, ())) > 1))
        designated = [
            self.accepted[rid] for rid, kind in sent.items() if kind == T.DESIGNATION_DESIGNATE and rid in self.accepted
        ]
        v.add(
            "created events",
            lost=sum(1 for d in designated if not self.created.get(d)),
            duplicated=sum(1 for d in designated if len(self.created.get(d, ())) > 1),
        )
        for topic, name in ((topics.LISTS_CHANGES, "list changes"), (topics.LISTS_PUBLIC, "public feed")):
            expected = [
                d for d in designated if self.created.get(d) and (topic == topics.LISTS_CHANGES or self.public.get(d))
            ]
            added = self.added[topic]
            v.add(
                f"{name} entries",
                lost=sum(1 for d in expected if not added.get(d)),
                duplicated=sum(1 for d in expected if len(added.get(d, ())) > 1),
            )
        self._judge_feeds(v, db_seqs)
        if self.unreadable:
            v.notes.append(f"{len(self.unreadable)} records the oracle could not read, e.g. {self.unreadable[0]}")
        v.notes.insert(0, f"designations {len(designated)}")
        return v

    def _judge_feeds(self, v: Verdict, db_seqs: tuple[int, int]) -> None:
        changes = self.seqs[topics.LISTS_CHANGES]
        public = self.seqs[topics.LISTS_PUBLIC]
        top = max(changes, default=0)
        findings = {
            **{f"gap {s}": "lost" for s in range(1, top + 1) if s not in changes},
            **{f"seq {s} twice": "duplicated" for s, ids in changes.items() if len(ids) > 1},
            **{f"public seq {s} twice": "duplicated" for s, ids in public.items() if len(ids) > 1},
            **{f"public seq {s} not a change": "duplicated" for s in public if s not in changes},
        }
        db_count, db_max = db_seqs
        if db_max > top:  # committed by sharing, not (yet) on the topic after recovery
            findings.update({f"seq {s} committed, not published": "lost" for s in range(top + 1, db_max + 1)})
        if db_count != db_max:
            findings[f"changes table holds {db_count} rows for seqs 1..{db_max}"] = "lost"
        fresh = {k: kind for k, kind in findings.items() if k not in self._reported}
        self._reported.update(fresh)
        lost = sum(1 for kind in fresh.values() if kind == "lost")
        v.add("feed seqs", lost=lost, duplicated=len(fresh) - lost)
        if fresh:
            v.notes.append("; ".join(list(fresh)[:5]))
        v.notes.append(f"seqs 1..{top}")


async def sharing_seqs(schema: str) -> tuple[int, int]:
    """(rows, highest seq) of sharing's changes table."""
    conn = await asyncpg.connect(get_settings().database_url, timeout=5)
    try:
        row = await conn.fetchrow(f'SELECT count(*) AS n, coalesce(max(seq), 0) AS top FROM "{schema}".changes')
        return int(row["n"]), int(row["top"])
    finally:
        await conn.close()


def judge_fuzz(
    oracle: Oracle, sent: list[tuple[str, str | None, tuple[str, int, int]]]
) -> tuple[int, int, Counter[str]]:
    """(unaccounted, duplicated, unaccounted by kind) of hostile messages sent as (kind, id,
    position): each must be dead-lettered at its position or answered by its id (an id sent k
    times with other bodies needs k outcomes: the first answer and a `duplicate_id` for each
    other)."""
    by_id: dict[str, list[tuple[str, tuple[str, int, int]]]] = defaultdict(list)
    missing: Counter[str] = Counter()
    duplicated = 0
    for kind, rid, pos in sent:
        if rid is None:
            if pos not in oracle.dead:
                missing[kind] += 1
        else:
            by_id[rid].append((kind, pos))
    for rid, sends in by_id.items():
        to_answer = [kind for kind, pos in sends if pos not in oracle.dead]
        answers = len(oracle.answers.get(rid, ()))
        for kind in to_answer[answers:]:
            missing[kind] += 1
        duplicated += max(0, answers - len(sends))
    return sum(missing.values()), duplicated, missing
