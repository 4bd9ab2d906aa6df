"""The demo's traffic, generated offline with a fixed seed: every request fits the contract's models
except the deliberately malformed ones, and the platform itself (the five services' own handlers
over their in-memory stores, wired by topic) accepts what the generator sends."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from credit_common.clock import SHANGHAI
from credit_common.contracts.envelope import CONTENT_TYPE, CloudEvent
from credit_common.contracts.registry import REGISTRY, model_for, topic_for
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files
from credit_demo.malformed import MALFORMED
from credit_demo.model import Message
from credit_demo.platform import InMemoryPlatform
from credit_demo.traffic import Traffic
from pydantic import ValidationError

CATALOG = Catalog.of(load_files([Path(__file__).resolve().parents[3] / "deploy" / "catalog"]))
START = datetime(2026, 11, 25, 9, 30, tzinfo=SHANGHAI)
RATE = 200.0  # per second, as `make demo --rate 200`
N = 6000
# The historical import (contracts.md, Additions) is a bulk path of its own, sent by
# `credit-import`, not by the steady demo mix.
REQUEST_TYPES = {name for name, row in REGISTRY.items() if row.kind == "request"} - {"credit.designation.import"}
# The rules a designation breaks by itself, whatever else was designated before (the catalogue's).
CATALOGUE_RULES = {
    "unknown_unit",
    "unit_inactive",
    "unknown_standard",
    "standard_not_in_force",
    "list_mismatch",
    "field_not_authorised",
    "level_too_low",
    "invalid_identifier",
    "invalid_checksum",
    "invalid_period",
    "period_too_long",
}


def generate(seed: int, n: int = N) -> list[Message]:
    traffic = Traffic(CATALOG, seed=seed)
    return [traffic.next(START + timedelta(seconds=i / RATE)) for i in range(n)]


@pytest.fixture(scope="module")
def messages() -> list[Message]:
    return generate(seed=20261125)


@pytest.fixture(scope="module")
def requests(messages: list[Message]) -> list[CloudEvent]:
    return [CloudEvent.model_validate_json(m.value) for m in messages if m.kind != MALFORMED]


@pytest.fixture(scope="module")
async def platform(requests: list[CloudEvent]) -> InMemoryPlatform:
    p = InMemoryPlatform(CATALOG, START)
    for event in requests:
        await p.handle(event)
    return p


def test_every_request_fits_the_contract_on_its_topic_keyed_by_its_subject(messages: list[Message]) -> None:
    checked = 0
    for m in messages:
        if m.kind == MALFORMED:
            continue
        assert m.headers == [("content-type", CONTENT_TYPE.encode())]
        event = CloudEvent.model_validate_json(m.value)
        assert event.type == m.kind
        assert event.type in REQUEST_TYPES
        assert event.id == m.id
        assert m.topic == topic_for(event.type)
        model_for(event.type).model_validate(event.data)  # raises ValidationError on any misfit
        assert event.time.utcoffset() is not None
        assert event.subject is not None
        assert m.key == event.subject.encode()
        subject = event.data.get("subject")
        if subject is not None:
            assert subject["id"] == event.subject
        assert event.source == "portal" or (event.source_unit and CATALOG.unit(event.source_unit) is not None)
        checked += 1
    assert checked > 0.98 * len(messages)


def test_ids_are_unique_uuid7(messages: list[Message]) -> None:
    ids = [m.id for m in messages]
    assert len(set(ids)) == len(ids)
    assert all(i[14] == "7" for i in ids)


def test_every_request_type_is_in_the_mix(messages: list[Message]) -> None:
    sent = Counter(m.kind for m in messages)
    assert set(sent) == REQUEST_TYPES | {MALFORMED}
    assert sent["credit.designation.designate"] > 0.3 * N
    for kind in REQUEST_TYPES:
        assert sent[kind] >= 50, (kind, sent)


def test_about_half_a_percent_is_malformed_and_none_of_it_parses(messages: list[Message]) -> None:
    malformed = [m for m in messages if m.kind == MALFORMED]
    assert 0.002 * N <= len(malformed) <= 0.01 * N
    not_json = missing_field = 0
    for m in malformed:
        try:
            raw = json.loads(m.value)
        except ValueError:
            not_json += 1
            continue
        event = CloudEvent.model_validate(raw)  # the envelope is fine; its data is not
        with pytest.raises(ValidationError):
            model_for(event.type).model_validate(event.data)
        assert m.topic == topic_for(event.type)
        missing_field += 1
    assert not_json > 0
    assert missing_field > 0


def test_designations_break_no_rule_of_the_catalogue(platform: InMemoryPlatform) -> None:
    broken = {code: n for (type_, code), n in platform.rejected.items() if type_.endswith("designate")}
    assert not broken.keys() & CATALOGUE_RULES, broken
    assert platform.accepted["credit.designation.designate"] > 0.3 * N


def test_the_platform_accepts_what_the_generator_sends(platform: InMemoryPlatform, requests: list[CloudEvent]) -> None:
    rejected = sum(platform.rejected.values())
    assert sum(platform.accepted.values()) + rejected >= len(requests)
    assert rejected == 0, platform.rejected.most_common(10)  # in order, in memory: nothing races
    for kind in REQUEST_TYPES:
        assert platform.accepted[kind] >= 50, (kind, platform.accepted)


def test_designations_come_from_many_units_under_many_standards_for_companies_and_people(
    requests: list[CloudEvent],
) -> None:
    designations = [e for e in requests if e.type == "credit.designation.designate"]
    units = {e.source for e in designations}
    standards = {e.data["standard"] for e in designations}
    kinds = Counter(e.data["subject"]["kind"] for e in designations)
    lists = Counter(e.data["list"] for e in designations)
    assert len(units) >= 40
    assert len(standards) >= 30
    assert kinds["legal_person"] > kinds["natural_person"] > kinds["other_org"] > 0
    assert min(lists.values()) > 0.15 * len(designations)


def test_subjects_are_reused_across_operations(requests: list[CloudEvent]) -> None:
    per_subject = Counter(e.subject for e in requests)
    designated_twice = Counter(e.subject for e in requests if e.type == "credit.designation.designate")
    assert sum(1 for n in per_subject.values() if n >= 3) > 200
    assert sum(1 for n in designated_twice.values() if n >= 2) > 100


def test_some_subjects_reach_the_warning_list(platform: InMemoryPlatform) -> None:
    listed = [w for w in platform.warning_store.warnings.values() if w.status == "listed"]
    assert len(listed) >= 3


def test_removals_amendments_and_decisions_are_as_the_contract_says(requests: list[CloudEvent]) -> None:
    designated = {e.id: e for e in requests if e.type == "credit.designation.designate"}
    kinds: Counter[str] = Counter()
    for e in requests:
        if e.type == "credit.designation.remove":
            assert e.data["reason"] == "revoked"
            assert e.source == designated[e.data["designation_id"]].source  # the designating unit
        elif e.type == "credit.designation.amend":
            kinds.update(list(e.data["changes"]))
            assert e.source == designated[e.data["designation_id"]].source
        elif e.type == "credit.objection.file" and e.source == "portal":
            assert e.data["objector"] == {**e.data["objector"], "kind": "subject", "id": e.subject}
    assert kinds["facts"] > 0
    assert kinds["effective_to"] > 0
    sources = Counter(e.source == "portal" for e in requests if e.type == "credit.objection.file")
    assert sources[True] > sources[False] > 0


def test_enforcement_reports_include_typical_cases_and_media_reports(requests: list[CloudEvent]) -> None:
    reports = [e.data for e in requests if e.type == "credit.enforcement.report"]
    assert sum(r["typical"] for r in reports) > 0.03 * len(reports)
    assert sum(bool(r["media"]) for r in reports) > 0.05 * len(reports)
    levels = {m["level"] for r in reports for m in r["media"]}
    assert levels == {"national", "provincial", "local"}


def test_designations_and_cases_name_the_campaigns_that_cover_them(requests: list[CloudEvent]) -> None:
    """The sample catalogue's campaigns (taxation nationwide; food and drug in Guangdong): what
    they cover names them about half the time, and nothing else does (the platform accepts it all,
    above)."""
    named = [e.data for e in requests if e.data.get("campaign")]
    kinds = {e.type for e in requests if e.data.get("campaign")}
    assert kinds == {"credit.designation.designate", "credit.enforcement.report"}
    assert {d["campaign"] for d in named} <= {c.code for c in CATALOG.campaigns()}
    designations = [e.data for e in requests if e.type == "credit.designation.designate"]
    taxation = [d for d in designations if d["standard"].startswith("taxation-")]
    share = sum(bool(d.get("campaign")) for d in taxation) / len(taxation)
    assert 0.35 < share < 0.65, share


def test_conduct_reports_include_serious_ones_about_key_scrutiny_entries(
    requests: list[CloudEvent], platform: InMemoryPlatform
) -> None:
    records = platform.designation_store.designations.values()
    on_key_scrutiny = {(r["subject"]["id"], r["field"]) for r in records if r["list"] == "key_scrutiny"}
    serious = [e for e in requests if e.type == "credit.conduct.report" and e.data["serious"]]
    assert len(serious) >= 50
    assert sum((e.subject, e.data["field"]) in on_key_scrutiny for e in serious) > 0.8 * len(serious)
    transfers = [e for e in requests if e.type == "credit.designation.designate" and "transfer_from" in e.data]
    assert transfers


def test_the_same_seed_gives_the_same_traffic_and_another_seed_other_traffic() -> None:
    first, again, other = generate(7, 500), generate(7, 500), generate(8, 500)
    assert [m.value for m in first] == [m.value for m in again]
    assert [m.value for m in first] != [m.value for m in other]
