"""Acceptance: point-in-time answers (`as_of`, `known_at`) agree with an independent oracle over a
generated history with amendments, removals, objections and late-arriving events.

The history is published straight onto the event topics as the designation and objection services
would (whole records, their own times), in an order that is not always the order of those times.
The oracle below knows nothing of versions or of the service's tables: for a moment K it takes the
events recorded by K, lets the first removal end the story (what is recorded after a removal no
longer changes a removed entry), and asks whether the record's validity meets the moment A."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import SHANGHAI
from credit_common.contracts.envelope import new_id
from credit_common.settings import Settings

from tests.support.events import company, person

from .conftest import amended, caught_up, created, objection_opened, objection_resolved, publish, record, removed

pytestmark = pytest.mark.integration

MICRO = timedelta(microseconds=1)
BASE = datetime(2025, 2, 1, 9, 0, tzinfo=SHANGHAI)
QUERIES_PER_SUBJECT = 400


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=SHANGHAI)


@dataclass
class Story:
    """One designation's generated history."""

    designation_id: str
    events: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)  # (time, record after)
    objections: list[tuple[datetime, datetime | None]] = field(default_factory=list)  # (opened, resolved)
    published: list[dict[str, Any]] = field(default_factory=list)  # in publication order

    def known(self, k: datetime | None) -> tuple[dict[str, Any], datetime | None] | None:
        """The record known at `k` (None: everything), and until when objections count."""
        seen = sorted((e for e in self.events if k is None or e[0] <= k), key=lambda e: e[0])
        if not seen:
            return None
        for t, rec in seen:
            if rec["status"] == "removed":
                return rec, t
        return seen[-1][1], k

    def answer(self, a0: datetime, a1: datetime, k: datetime | None) -> tuple[str, str, bool] | None:
        """(facts, effective_to, under_objection) if the entry was on its list in [a0, a1) as
        known at `k`, else None."""
        known = self.known(k)
        if known is None:
            return None
        rec, flag_until = known
        start = midnight(date.fromisoformat(rec["effective_from"]))
        end = midnight(date.fromisoformat(rec["effective_to"]) + timedelta(days=1))
        if rec["status"] == "removed":
            end = min(end, datetime.fromisoformat(rec["removed_at"]))
        end = max(start, end)
        if not (start < a1 and end > a0):
            return None
        return rec["decision"]["facts"], rec["effective_to"], self.objected(flag_until)

    def objected(self, t: datetime | None) -> bool:
        """An objection open at `t` (None: after everything)."""
        return any(
            (t is None or opened <= t) and (resolved is None or (t is not None and resolved > t))
            for opened, resolved in self.objections
        )


def generate(rng: random.Random, subject: dict[str, Any], unit: str) -> list[Story]:
    stories = []
    for _ in range(rng.randint(2, 3)):
        t = BASE + timedelta(days=rng.randint(0, 60), seconds=rng.randint(0, 86_399))
        eff_from = t.date() - timedelta(days=rng.choice([0, 0, 3, 12]))  # sometimes backdated
        eff_to = eff_from + timedelta(days=rng.randint(20, 90))
        rec = record(
            subject,
            list_=rng.choice(["red", "black", "key_scrutiny"]),
            unit=unit,
            public=rng.random() < 0.7,
            effective_from=eff_from,
            effective_to=eff_to,
            facts="v0",
        )
        story = Story(rec["designation_id"])
        story.events.append((t, rec))
        published = [created(rec, t)]
        for k in range(rng.randint(0, 2)):
            t += timedelta(days=rng.randint(1, 6), seconds=rng.randint(1, 3_600))
            changes: dict[str, Any] = {"facts": f"v{k + 1}"}
            new_to = date.fromisoformat(rec["effective_to"]) - timedelta(days=rng.randint(0, 8))
            if rng.random() < 0.5 and new_to >= eff_from:
                changes["effective_to"] = new_to.isoformat()
            rec = {
                **rec,
                "decision": {**rec["decision"], "facts": changes["facts"]},
                "effective_to": changes.get("effective_to", rec["effective_to"]),
            }
            story.events.append((t, rec))
            published.append(amended(rec, t, changes))
        due = midnight(date.fromisoformat(rec["effective_to"]) + timedelta(days=1))
        ending = rng.choice(["none", "revoked", "expired", "expired_after_amendment"])
        if ending.startswith("expired") and t >= due:
            ending = "revoked"
        if ending == "revoked":
            t += timedelta(hours=rng.randint(1, 48))
            gone = removed(rec, t, "revoked")
            story.events.append((t, gone["data"]["record"]))
            published.append(gone)
        elif ending.startswith("expired"):
            if ending == "expired_after_amendment":
                # accepted 20 s after the due time, before the expiry timer ran: published first
                late_at = due + timedelta(seconds=20)
                rec = {**rec, "decision": {**rec["decision"], "facts": "amended after the due time"}}
                story.events.append((late_at, rec))
                published.append(amended(rec, late_at, {"facts": "amended after the due time"}))
            gone = removed(rec, due, "expired")
            story.events.append((due, gone["data"]["record"]))
            published.append(gone)
        # late arrivals: the creation after the first amendment, an amendment after the removal
        if len(published) > 2 and rng.random() < 0.4:
            published[0], published[1] = published[1], published[0]
        if len(published) > 2 and rng.random() < 0.4:
            published.append(published.pop(rng.randrange(1, len(published) - 1)))
        story.published = published
        for _ in range(rng.randint(0, 2)):
            # never at the very time of another event (the order of ties is the order of arrival)
            opened = story.events[0][0] + timedelta(
                hours=rng.randint(1, 400), seconds=rng.randint(0, 59), microseconds=rng.randint(1, 999_999)
            )
            resolved = opened + timedelta(hours=rng.randint(1, 200)) if rng.random() < 0.6 else None
            oid = new_id()
            story.objections.append((opened, resolved))
            story.published.append(objection_opened(rec, oid, opened))
            if resolved is not None:
                story.published.append(objection_resolved(rec, oid, resolved, "rejected"))
        stories.append(story)
    return stories


def moments(stories: list[Story]) -> tuple[list[str | None], list[str | None]]:
    """Query points: every event time and the microsecond before it, validity edges, whole days."""
    times: set[datetime] = set()
    days: set[date] = set()
    for s in stories:
        for t, rec in s.events:
            times |= {t, t - MICRO}
            days |= {t.date(), date.fromisoformat(rec["effective_from"]), date.fromisoformat(rec["effective_to"])}
            for d in (date.fromisoformat(rec["effective_from"]), date.fromisoformat(rec["effective_to"])):
                times |= {midnight(d), midnight(d + timedelta(days=1)), midnight(d + timedelta(days=1)) - MICRO}
            if rec.get("removed_at"):
                times.add(datetime.fromisoformat(rec["removed_at"]) - MICRO)
        for opened, resolved in s.objections:
            times |= {opened, opened - MICRO} | ({resolved, resolved - MICRO} if resolved else set())
    points: list[str | None] = [*(t.isoformat() for t in sorted(times)), *(d.isoformat() for d in sorted(days))]
    return [*points, None], [*points, None]


def window(text: str | None) -> tuple[datetime, datetime]:
    if text is None:
        now = datetime.now(UTC)
        return now, now + MICRO
    if len(text) == 10:
        d = date.fromisoformat(text)
        return midnight(d), midnight(d + timedelta(days=1))
    t = datetime.fromisoformat(text)
    return t, t + MICRO


def instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    if len(text) == 10:
        return midnight(date.fromisoformat(text) + timedelta(days=1)) - MICRO
    return datetime.fromisoformat(text)


async def test_point_in_time_answers_agree_with_an_oracle(
    stack: Settings, http: httpx.AsyncClient, kafka: AIOKafkaProducer
) -> None:
    seed = uuid.uuid4().int
    rng = random.Random(seed)
    unit = f"T-{uuid.uuid4().hex[:10]}"
    cases = []
    for subject in (company(), person(), company("Second Example Co.")):
        stories = generate(rng, subject, unit)
        cases.append((subject, stories))
        for ev in [e for s in stories for e in s.published]:
            await publish(kafka, ev)
    await caught_up(stack)

    checked = 0
    for subject, stories in cases:
        as_ofs, knowns = moments(stories)
        pairs = [(a, k) for a in as_ofs for k in knowns]
        for a, k in [*rng.sample(pairs, min(QUERIES_PER_SUBJECT, len(pairs))), (None, None)]:
            params = {name: v for name, v in (("as_of", a), ("known_at", k)) if v is not None}
            response = await http.get(f"/v1/subjects/{subject['id']}", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            got = {
                e["entry"]["entry_id"]: (
                    e["entry"]["decision"]["facts"],
                    e["entry"]["effective_to"],
                    e["entry"]["under_objection"],
                )
                for e in body["entries"]
            }
            a0, a1 = window(a)
            expected = {s.designation_id: s.answer(a0, a1, instant(k)) for s in stories}
            expected = {d: v for d, v in expected.items() if v is not None}
            assert got == expected, f"as_of={a} known_at={k} (seed {seed})"
            public = (await http.get(f"/v1/public/subjects/{subject['id']}", params=params)).json()
            shown = {e["entry"]["entry_id"] for e in body["entries"] if e["record"]["public"]}
            assert {e["entry"]["entry_id"] for e in public["entries"]} == shown
            checked += 1
    assert checked > 100


async def test_bad_moments_are_refused_as_problems(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/subjects/91110000101623741K", params={"as_of": "last tuesday"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    response = await http.get("/v1/lists/purple")
    assert response.status_code == 404
