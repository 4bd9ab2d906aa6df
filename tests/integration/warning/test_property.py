"""A property-based test of the warning list through the real broker and database.

Hypothesis draws a random sequence of key-scrutiny designations, revocations, expiries,
amendments and key-field changes for a few fresh subjects over a few test-only fields. Each step
is published as the platform would publish it (designation events, reference records); once the
service has read it, the warning events it published and its HTTP view must match a simple oracle
that recomputes the listing from scratch after every step. Nothing is shrunk (each example runs
against real infrastructure); a failure prints the steps so far."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import SHANGHAI
from credit_common.settings import Settings
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from tests.support.collector import Collector
from tests.support.events import company, created, person, publish, removed
from tests.support.processes import ServiceProcess

from .conftest import (
    ScratchFields,
    amended,
    caught_up,
    new_field_code,
    record,
    warning_events,
)

pytestmark = pytest.mark.integration

THRESHOLD = 3
STEP_KINDS = ["designate", "designate", "designate", "revoke", "expire", "amend", "toggle", "toggle"]

Expected = tuple[Any, ...]  # ("listed"|"updated", fields, designation_ids, since) or ("cleared", remaining)


@dataclass
class Oracle:
    """The rule, recomputed from scratch: a subject is listed while its active entries cover
    THRESHOLD or more distinct key fields; every change of that is one event."""

    key: dict[str, bool]
    entries: dict[str, dict[str, str]] = field(default_factory=dict)  # subject -> designation id -> field
    standing: dict[str, tuple[list[str], list[str], str] | None] = field(default_factory=dict)
    events: dict[str, list[Expected]] = field(default_factory=dict)

    def judge(self, subject_id: str, day: date) -> None:
        keyed = {d: f for d, f in self.entries.get(subject_id, {}).items() if self.key[f]}
        fields = sorted(set(keyed.values()))
        now = (fields, sorted(keyed)) if len(fields) >= THRESHOLD else None
        was = self.standing.get(subject_id)
        out = self.events.setdefault(subject_id, [])
        if was is None and now is not None:
            self.standing[subject_id] = (*now, day.isoformat())
            out.append(("listed", *now, day.isoformat()))
        elif was is not None and now is None:
            self.standing[subject_id] = None
            out.append(("cleared", fields))
        elif was is not None and now is not None and (was[0], was[1]) != now:
            self.standing[subject_id] = (*now, was[2])
            out.append(("updated", *now, was[2]))


def observed(collector: Collector, subject_id: str) -> list[Expected]:
    out: list[Expected] = []
    for e in warning_events(collector, subject_id):
        d = e["data"]
        assert d["subject"]["id"] == subject_id
        kind = e["type"].rsplit(".", 1)[-1]
        out.append(
            (kind, d["remaining_fields"])
            if kind == "cleared"
            else (kind, d["fields"], d["designation_ids"], d["since"])
        )
    return out


def day_of(at: datetime) -> date:
    return at.astimezone(SHANGHAI).date()


async def check(oracle: Oracle, subjects: list[str], collector: Collector, http: httpx.AsyncClient) -> None:
    """The events so far and the HTTP view match the oracle (events may still be in the relay)."""
    for sid in subjects:
        expected = oracle.events.get(sid, [])
        deadline = asyncio.get_running_loop().time() + 30
        while len(observed(collector, sid)) < len(expected):
            assert asyncio.get_running_loop().time() < deadline, (sid, observed(collector, sid), expected)
            await asyncio.sleep(0.1)
        assert observed(collector, sid) == expected, sid
        response = await http.get(f"/v1/warnings/{sid}")
        standing = oracle.standing.get(sid)
        if not expected:
            assert response.status_code == 404, response.text
            continue
        body = response.json()
        if standing is None:
            assert body["status"] == "cleared"
            assert body["remaining_fields"] == expected[-1][1]
        else:
            assert body["status"] == "listed"
            assert (body["fields"], body["designation_ids"], body["since"]) == standing
            assert sorted(e["designation_id"] for e in body["entries"]) == standing[1]


@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(data=st.data())
async def test_warning_list_follows_random_histories(
    stack: Settings,
    warning: ServiceProcess,
    kafka: AIOKafkaProducer,
    collector: Collector,
    http: httpx.AsyncClient,
    data: st.DataObject,
) -> None:
    scratch = ScratchFields(stack.kafka_bootstrap_servers)
    codes = [new_field_code() for _ in range(4)]
    not_key = data.draw(st.sampled_from(codes), label="the field not key at first")
    oracle = Oracle(key={code: code != not_key for code in codes})
    subjects = [company(), person()]
    by_id = {s["id"]: s for s in subjects}
    first = subjects[0]["id"]
    records: dict[str, dict[str, Any]] = {}  # active entries, by designation id

    async def designate(n: int, sid: str, code: str, now: datetime) -> None:
        rec = record(by_id[sid], code)
        records[rec["designation_id"]] = rec
        oracle.entries.setdefault(sid, {})[rec["designation_id"]] = code
        await publish(kafka, created(rec, now))
        oracle.judge(sid, day_of(now))
        note(f"{n}: designate {sid} in {code}")

    try:
        for code, key in oracle.key.items():
            await scratch.publish(code, key)
        await caught_up(stack)
        # A prologue that lists the first subject (the three key fields), then anything goes.
        prologue = data.draw(st.permutations([c for c in codes if c != not_key]), label="prologue fields")
        steps = data.draw(st.integers(min_value=8, max_value=11), label="steps")
        for n in range(THRESHOLD + steps):
            now = datetime.now(UTC)
            if n < THRESHOLD:
                await designate(n, first, prologue[n], now)
                kind = "prologue"
            else:
                kind = data.draw(st.sampled_from(STEP_KINDS), label=f"step {n}")
            if kind in ("revoke", "expire", "amend") and not records:
                kind = "designate"
            if kind == "designate":
                sid = data.draw(st.sampled_from(sorted(by_id)), label="subject")
                await designate(n, sid, data.draw(st.sampled_from(codes), label="field"), now)
            elif kind in ("revoke", "expire"):
                designation_id = data.draw(st.sampled_from(sorted(records)), label="entry")
                rec = records.pop(designation_id)
                sid = rec["subject"]["id"]
                del oracle.entries[sid][designation_id]
                await publish(kafka, removed(rec, "revoked" if kind == "revoke" else "expired", now))
                oracle.judge(sid, day_of(now))
                note(f"{n}: {kind} {designation_id} ({sid} in {rec['field']})")
            elif kind == "amend":
                designation_id = data.draw(st.sampled_from(sorted(records)), label="entry")
                rec = records[designation_id]
                rec["decision"] = {**rec["decision"], "facts": f"Corrected at step {n}."}
                await publish(kafka, amended(rec, now))
                oracle.judge(rec["subject"]["id"], day_of(now))
                note(f"{n}: amend {designation_id}")
            elif kind == "toggle":
                code = data.draw(st.sampled_from(codes), label="field")
                oracle.key[code] = not oracle.key[code]
                await scratch.publish(code, oracle.key[code])
                for sid in sorted(oracle.entries):
                    if code in oracle.entries[sid].values():
                        oracle.judge(sid, day_of(now))
                note(f"{n}: {code} key_field -> {oracle.key[code]}")
            await caught_up(stack)
            await check(oracle, sorted(by_id), collector, http)
        await asyncio.sleep(1.5)  # anything published late and not expected shows now
        await check(oracle, sorted(by_id), collector, http)
        kinds = [e[0] for v in oracle.events.values() for e in v]
        print(
            f"{THRESHOLD + steps} steps: {', '.join(f'{kinds.count(k)} {k}' for k in ('listed', 'updated', 'cleared'))}"
        )
    finally:
        await scratch.tombstone()
