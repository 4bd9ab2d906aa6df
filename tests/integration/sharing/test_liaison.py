"""Acceptance: a liaison that takes a snapshot while changes keep arriving, then follows
`GET /v1/changes?after=snapshot_seq`, ends with exactly the final state: no gap, no duplicate.

The main test runs two sharing instances in one consumer group and a designation process of our
own; designations, supersessions, transfers, revocations and objections (opened, rejected, upheld)
arrive concurrently while three liaisons (one per designated list) page through their snapshot a
few entries at a time and then follow the changes. A second test pins down the paging rule on its
own: every page of a snapshot is as of the first page's seq."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.contracts.envelope import new_id
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import company, person, poll
from tests.support.processes import ServiceProcess

from .conftest import (
    DESIGNATION_PORT,
    SECOND_SHARING_PORT,
    amended,
    caught_up,
    created,
    designate,
    objection_opened,
    objection_resolved,
    publish,
    record,
    removed,
    revoke,
    send_request,
)

pytestmark = pytest.mark.integration

REGION = "510000"  # Sichuan: the units below, and no other test's
PROVINCIAL = "510000-MEM"
COUNTY = "510104-MEM"
SUBJECTS = 36
PAGE = 3


class Liaison:
    """A department's liaison keeping a copy of one list (narrowed to a region): a paged snapshot,
    then the changes after its seq, applied strictly (an `entry_added` for an entry it already has,
    or an update or removal of one it has not, is a gap or a duplicate and fails the test)."""

    def __init__(self, http: httpx.AsyncClient, list_: str, params: dict[str, Any]) -> None:
        self.http = http
        self.list = list_
        self.params = params
        self.state: dict[str, dict[str, Any]] = {}
        self.snapshot_seq = 0
        self.pos = 0
        self.applied: list[int] = []
        self.pages = 0

    async def snapshot(self, pause: float) -> None:
        cursor: str | None = None
        first: int | None = None
        while True:
            params = {**self.params, "limit": PAGE, **({"cursor": cursor} if cursor else {})}
            response = await self.http.get(f"/v1/lists/{self.list}", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            first = body["snapshot_seq"] if first is None else first
            assert body["snapshot_seq"] == first, "every page is as of the first page's seq"
            for entry in body["entries"]:
                assert entry["entry_id"] not in self.state, f"{entry['entry_id']} on two pages"
                self.state[entry["entry_id"]] = entry
            self.pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
            await asyncio.sleep(pause)  # changes keep arriving between pages
        assert first is not None
        self.snapshot_seq = self.pos = first

    def apply(self, change: dict[str, Any]) -> None:
        assert change["seq"] > self.pos, f"seq {change['seq']} after {self.pos}"
        assert change["list"] == self.list
        entry_id = change["entry"]["entry_id"]
        if change["type"] == "credit.list.entry_added":
            assert entry_id not in self.state, f"duplicate: {entry_id} added again at seq {change['seq']}"
            self.state[entry_id] = change["entry"]
        elif change["type"] == "credit.list.entry_updated":
            assert entry_id in self.state, f"gap: update of unknown {entry_id} at seq {change['seq']}"
            self.state[entry_id] = change["entry"]
        else:
            assert change["type"] == "credit.list.entry_removed", change
            assert entry_id in self.state, f"gap: removal of unknown {entry_id} at seq {change['seq']}"
            del self.state[entry_id]
        self.pos = change["seq"]
        self.applied.append(change["seq"])

    async def follow(self, until: int | None = None, limit: int = 50) -> None:
        """Apply the changes after `pos`: up to `until` exactly, or (None) what there is now."""
        while until is None or self.pos < until:
            params = {**self.params, "after": self.pos, "list": self.list, "limit": limit}
            response = await self.http.get("/v1/changes", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            for change in body["changes"]:
                if until is not None and change["seq"] > until:
                    self.pos = until
                    return
                self.apply(change)
            if len(body["changes"]) < limit:
                # every matching change up to last_seq was in this page
                self.pos = max(self.pos, body["last_seq"] if until is None else min(body["last_seq"], until))
                if until is None:
                    return

    async def follow_live(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.follow()
            await asyncio.sleep(0.1)


async def snapshot_entries(http: httpx.AsyncClient, list_: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The whole snapshot (big pages): its seq and entries by id."""
    entries: dict[str, Any] = {}
    cursor: str | None = None
    seq: int | None = None
    while True:
        response = await http.get(
            f"/v1/lists/{list_}", params={**params, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        seq = body["snapshot_seq"] if seq is None else seq
        entries.update({e["entry_id"]: e for e in body["entries"]})
        cursor = body["next_cursor"]
        if cursor is None:
            assert seq is not None
            return seq, entries


class Workload:
    """Departments and the objection service acting on fresh subjects, concurrently, through a
    real designation process; remembers what it did."""

    def __init__(self, kafka: AIOKafkaProducer, collector: Collector, rng: random.Random) -> None:
        self.kafka = kafka
        self.collector = collector
        self.rng = rng
        self.designations: dict[str, dict[str, Any]] = {}  # id -> {list, unit, subject}
        self.open_objections: dict[str, set[str]] = defaultdict(set)

    async def request(self, req: dict[str, Any]) -> dict[str, Any]:
        rid = await send_request(self.kafka, req)
        return await self.collector.answer(rid, timeout=90)

    async def designate(self, list_: str, subject: dict[str, Any], unit: str, **extra: Any) -> str | None:
        req = designate(list_, f"work_safety-{list_}", subject, unit=unit, **extra)
        answer = await self.request(req)
        if answer["type"] != "credit.request.accepted":
            return None
        self.designations[req["id"]] = {"list": list_, "unit": unit, "subject": subject}
        return str(req["id"])

    async def pause(self) -> None:
        await asyncio.sleep(self.rng.uniform(0.0, 0.4))

    async def subject_story(self, i: int) -> None:
        rng = self.rng
        await asyncio.sleep(rng.uniform(0.0, 6.0))
        subject = person(f"Zhao Lei {i}") if i % 3 == 0 else company(f"Sichuan Works {i} Co., Ltd.")
        red = await self.designate("red", subject, PROVINCIAL)
        assert red is not None
        await self.pause()
        active = [red]
        if rng.random() < 0.7:
            ks = await self.designate("key_scrutiny", subject, COUNTY)  # supersedes the red entry
            assert ks is not None
            active = [ks]
            await self.pause()
            if rng.random() < 0.4:
                black = await self.designate("black", subject, COUNTY, transfer_from=ks)
                assert black is not None
                active = [black]
            elif rng.random() < 0.5:
                black = await self.designate("black", subject, COUNTY)
                assert black is not None
                active.append(black)
            await self.pause()
        target = rng.choice(active)
        rec = {"designation_id": target, "unit": self.designations[target]["unit"], "subject": subject}
        if rng.random() < 0.6:
            objection = new_id()
            await publish(self.kafka, objection_opened(rec, objection, datetime.now(UTC)))
            self.open_objections[target].add(objection)
            await self.pause()
            if rng.random() < 0.6:
                outcome = rng.choice(["rejected", "upheld", "partially_upheld"])
                await publish(self.kafka, objection_resolved(rec, objection, datetime.now(UTC), outcome))
                self.open_objections[target].discard(objection)
                if outcome == "upheld":  # the designation service removes the entry
                    await self.collector.wait_for(
                        topics.DESIGNATION_EVENTS,
                        lambda e: (
                            e["type"] == "credit.designation.removed" and e["data"].get("related_id") == objection
                        ),
                        timeout=90,
                    )
                    active.remove(target)
                await self.pause()
        if active and rng.random() < 0.3:
            gone = rng.choice(active)
            answer = await self.request(revoke(gone, unit=self.designations[gone]["unit"], subject=subject["id"]))
            assert answer["type"] == "credit.request.accepted", answer

    def expected(self, list_: str) -> dict[str, bool]:
        """Our designations on `list_` that are active now (by the designation events), each with
        whether an objection is open on it."""
        last: dict[str, dict[str, Any]] = {}
        for e in self.collector.events[topics.DESIGNATION_EVENTS]:
            rec = e["data"]["record"]
            if rec["designation_id"] in self.designations:
                last[rec["designation_id"]] = rec
        return {
            did: bool(self.open_objections.get(did))
            for did, rec in last.items()
            if rec["list"] == list_ and rec["status"] == "active"
        }


def consumed(metrics_text: str, topic: str) -> float:
    pattern = re.compile(r'^credit_messages_consumed_total\{[^}]*topic="' + re.escape(topic) + r'"[^}]*\} (\S+)$')
    return sum(float(m.group(1)) for line in metrics_text.splitlines() if (m := pattern.match(line)))


async def all_changes(http: httpx.AsyncClient, after: int, until: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    pos = after
    while pos < until:
        body = (await http.get("/v1/changes", params={"after": pos, "limit": 1000})).json()
        out.extend(c for c in body["changes"] if c["seq"] <= until)
        pos = body["last_seq"]
    return out


async def test_snapshot_then_changes_reaches_exactly_the_final_state(
    stack: Settings, sharing: ServiceProcess, kafka: AIOKafkaProducer, lists: Collector
) -> None:
    second = sharing.sibling(SECOND_SHARING_PORT)
    designation = sharing.peer("designation", DESIGNATION_PORT)
    await asyncio.gather(second.start(), designation.start())
    try:
        async with sharing.client() as a, second.client() as b:
            consumed_before = consumed((await a.get("/metrics")).text, topics.DESIGNATION_EVENTS)
            seed = uuid.uuid4().int
            workload = Workload(kafka, lists, random.Random(seed))
            params = {"region": REGION}
            # Liaisons read from either instance: both serve the one database.
            liaisons = [Liaison(a, "red", params), Liaison(b, "black", params), Liaison(a, "key_scrutiny", params)]
            # A base of entries no story touches, so each list has several pages when its liaison
            # snapshots it: waiting to catch a busy list above a size made the test depend on
            # timing (a list's final size is random and can be one page).
            units = {"red": PROVINCIAL, "black": COUNTY, "key_scrutiny": COUNTY}
            base = [
                workload.designate(list_, company(f"Sichuan Base {list_} {i} Co., Ltd."), unit)
                for list_, unit in units.items()
                for i in range(2 * PAGE + 1)
            ]
            assert all(await asyncio.gather(*base)), "a base designation was refused"
            stories = asyncio.gather(*(workload.subject_story(i) for i in range(SUBJECTS)))

            async def snapshot_when_busy(liaison: Liaison) -> None:
                # Start once the list has a few pages, while the departments are still at work.
                async def pages() -> bool:
                    if stories.done():
                        stories.result()  # a story that failed fails the test with its own error
                        return True  # all done: snapshot what there is
                    body = (await liaison.http.get(f"/v1/lists/{liaison.list}", params=params)).json()
                    return len(body["entries"]) > 2 * PAGE

                try:
                    await poll(pages, timeout=180)  # a fresh designation deployment warms up under load
                except AssertionError as exc:
                    logs = "\n".join(p.troubles() for p in (designation, sharing, second))
                    raise AssertionError(f"{liaison.list}: {exc}\n{logs}") from exc
                await liaison.snapshot(pause=0.15)

            await asyncio.gather(*(snapshot_when_busy(liaison) for liaison in liaisons))
            stop = asyncio.Event()
            following = asyncio.gather(*(liaison.follow_live(stop) for liaison in liaisons))
            await stories
            await caught_up(stack)
            stop.set()
            await following

            for liaison in liaisons:
                final_seq, final = await snapshot_entries(b, liaison.list, params)
                await liaison.follow(until=final_seq)
                assert liaison.state == final, f"{liaison.list}: the liaison's copy differs (seed {seed})"
                ours = {k: v["under_objection"] for k, v in final.items() if k in workload.designations}
                assert ours == workload.expected(liaison.list), f"{liaison.list}: wrong final state (seed {seed})"
                assert liaison.pages > 1, "the snapshot took several pages"
                assert liaison.applied, "changes arrived after the snapshot"

            # No gap, no duplicate in the feed itself: after the earliest snapshot, every seq once.
            start = min(liaison.snapshot_seq for liaison in liaisons)
            end = max(liaison.pos for liaison in liaisons)
            feed = await all_changes(a, start, end)
            assert [c["seq"] for c in feed] == list(range(start + 1, end + 1))

            # The internal topic carries the same changes, in seq order per subject.
            by_seq = {c["seq"]: c for c in feed if c["entry"]["entry_id"] in workload.designations}

            def ours_on_topic(e: dict[str, Any]) -> bool:
                return e["data"]["entry"]["entry_id"] in workload.designations and start < e["data"]["seq"] <= end

            await lists.wait_for(topics.LISTS_CHANGES, ours_on_topic, count=len(by_seq), timeout=60)
            published: dict[int, dict[str, Any]] = {}
            per_key: dict[str, list[int]] = defaultdict(list)
            for e in lists.where(topics.LISTS_CHANGES, ours_on_topic):
                seq = e["data"]["seq"]
                assert published.setdefault(seq, e)["id"] == e["id"], f"two events with seq {seq}"
                per_key[e["_key"]].append(seq)
            assert set(published) == set(by_seq)
            for seq, e in published.items():
                assert e["type"] == by_seq[seq]["type"]
                assert e["id"] == by_seq[seq]["id"]
                assert e["data"]["entry"] == by_seq[seq]["entry"]
            for key, seqs in per_key.items():
                assert seqs == sorted(seqs), f"changes of {key} out of order on the topic"

            # Both instances of the group did part of the work.
            assert consumed((await b.get("/metrics")).text, topics.DESIGNATION_EVENTS) > 0
            assert consumed((await a.get("/metrics")).text, topics.DESIGNATION_EVENTS) > consumed_before
    finally:
        await asyncio.gather(designation.stop(), second.stop())


async def test_every_page_of_a_snapshot_is_as_of_its_first_page(
    stack: Settings, http: httpx.AsyncClient, kafka: AIOKafkaProducer
) -> None:
    unit = f"T-{uuid.uuid4().hex[:10]}"
    at = datetime.now(UTC) - timedelta(hours=1)
    records = sorted(
        (record(company(f"Paging {i} Co."), unit=unit, designation_id=new_id()) for i in range(4)),
        key=lambda r: r["designation_id"],
    )
    for rec in records:
        await publish(kafka, created(rec, at))
    params = {"unit": unit}

    async def listed() -> Any:
        body = (await http.get("/v1/lists/black", params=params)).json()
        return body if len(body["entries"]) == 4 else None

    await poll(listed)
    page1 = (await http.get("/v1/lists/black", params={**params, "limit": 2})).json()
    seq = page1["snapshot_seq"]
    assert [e["entry_id"] for e in page1["entries"]] == [r["designation_id"] for r in records[:2]]

    # After page 1: the last entry leaves, the third is amended, a new one arrives, the first is
    # objected to.
    first, _, third, last = records
    newcomer = record(company("Newcomer Co."), unit=unit, designation_id=new_id())
    amended_third = {**third, "decision": {**third["decision"], "facts": "Amended facts."}}
    await publish(kafka, removed(last, at + timedelta(minutes=1)))
    await publish(kafka, amended(amended_third, at + timedelta(minutes=2), {"facts": "Amended facts."}))
    await publish(kafka, created(newcomer, at + timedelta(minutes=3)))
    await publish(kafka, objection_opened(first, new_id(), at + timedelta(minutes=4)))

    async def four_changes() -> Any:
        body = (await http.get("/v1/changes", params={**params, "after": seq})).json()
        return body["changes"] if len(body["changes"]) == 4 else None

    changes = await poll(four_changes)
    # Four subjects, four partitions: their changes come in any order between subjects.
    assert {c["entry"]["entry_id"]: c["type"].rsplit(".", 1)[1] for c in changes} == {
        last["designation_id"]: "entry_removed",
        third["designation_id"]: "entry_updated",
        newcomer["designation_id"]: "entry_added",
        first["designation_id"]: "entry_updated",
    }
    assert [c["seq"] for c in changes] == sorted(c["seq"] for c in changes)

    state = {e["entry_id"]: e for e in page1["entries"]}
    cursor = page1["next_cursor"]
    while cursor:
        page = (await http.get("/v1/lists/black", params={**params, "limit": 2, "cursor": cursor})).json()
        assert page["snapshot_seq"] == seq
        state.update({e["entry_id"]: e for e in page["entries"]})
        cursor = page["next_cursor"]
    # as of seq: the removed entry still there, the third one not yet amended, no newcomer
    assert list(state) == [r["designation_id"] for r in records]
    assert state[third["designation_id"]]["decision"]["facts"] == third["decision"]["facts"]

    for change in changes:
        entry = change["entry"]
        if change["type"].endswith("removed"):
            del state[entry["entry_id"]]
        else:
            state[entry["entry_id"]] = entry
    now = (await http.get("/v1/lists/black", params=params)).json()
    assert state == {e["entry_id"]: e for e in now["entries"]}
    assert state[first["designation_id"]]["under_objection"] is True

    # A cursor is for its own list and filters only.
    response = await http.get("/v1/lists/red", params={**params, "cursor": page1["next_cursor"]})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
