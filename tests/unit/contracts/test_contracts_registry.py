"""The registry against the contract page: every type, topic and error code, and nothing more."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from credit_common.contracts import events as ev
from credit_common.contracts import registry
from credit_common.contracts.common import ErrorCode
from credit_common.contracts.envelope import CloudEvent
from credit_common.contracts.registry import (
    ALL_TOPICS,
    REGISTRY,
    TOPIC_DESIGNATION_EVENTS,
    TOPIC_DESIGNATION_REQUESTS,
    TOPIC_LISTS_CHANGES,
    TOPIC_LISTS_PUBLIC,
    UnknownMessageType,
    model_for,
    parse_data,
    topic_for,
    types_on,
)

CONTRACTS = Path(__file__).resolve().parents[3] / ".." / "shared" / "contracts.md"
_TOPIC = re.compile(r"\.v\d+$")


@pytest.fixture(scope="module")
def contract() -> str:
    if not CONTRACTS.is_file():
        pytest.skip("shared/contracts.md not beside the repository")
    return CONTRACTS.read_text(encoding="utf-8")


def _backticked_credit_names(text: str) -> set[str]:
    return set(re.findall(r"`(credit\.[a-z_.0-9]+)`", text))


def test_registry_has_every_message_type_of_the_contract(contract: str) -> None:
    types = {name for name in _backticked_credit_names(contract) if not _TOPIC.search(name)}
    assert types == set(REGISTRY)


def test_registry_has_every_topic_of_the_contract(contract: str) -> None:
    topics = {name for name in _backticked_credit_names(contract) if _TOPIC.search(name)}
    assert topics == set(ALL_TOPICS)
    assert len(ALL_TOPICS) == 15
    assert {topic for row in REGISTRY.values() for topic in row.topics} <= set(ALL_TOPICS)


def test_error_codes_are_those_of_the_contract(contract: str) -> None:
    start = contract.index("Error codes are stable strings:")
    listing = contract[start : contract.index("`.", start) + 1]
    codes = re.findall(r"`([a-z_]+)`", listing)
    assert len(codes) == len(set(codes))
    assert set(codes) == ErrorCode.codes()


def test_every_topic_carries_some_type() -> None:
    for topic in ALL_TOPICS:
        assert types_on(topic), topic


def test_lookups() -> None:
    assert topic_for("credit.designation.designate") == TOPIC_DESIGNATION_REQUESTS
    assert topic_for("credit.designation.removed") == TOPIC_DESIGNATION_EVENTS
    assert topic_for("credit.list.entry_added") == TOPIC_LISTS_CHANGES
    assert "credit.list.entry_removed" in types_on(TOPIC_LISTS_PUBLIC)
    assert types_on(TOPIC_DESIGNATION_REQUESTS) == [
        "credit.designation.designate",
        "credit.designation.remove",
        "credit.designation.amend",
        "credit.designation.import",
    ]
    assert model_for("credit.designation.created") is ev.DesignationCreated
    assert types_on("credit.nothing.v1") == []


def test_kinds() -> None:
    kinds = {row.kind for row in REGISTRY.values()}
    assert kinds == {"request", "event", "reference"}
    assert [name for name, row in REGISTRY.items() if row.kind == "reference"] == ["credit.reference.upserted"]
    assert all(
        row.topic.endswith(("requests.v1", "reports.v1", "actions.v1"))
        for row in REGISTRY.values()
        if row.kind == "request"
    )


def test_unknown_types() -> None:
    with pytest.raises(UnknownMessageType):
        model_for("credit.designation.delete")
    with pytest.raises(KeyError):
        topic_for("credit.designation.delete")
    event = CloudEvent(id="x", source="unit/110000-SAT", type="credit.nope", time="2026-11-25T09:30:00+08:00")
    with pytest.raises(UnknownMessageType):
        parse_data(event)
    assert registry.message_type("credit.case.recorded").model is ev.CaseRecorded


def test_every_type_has_one_name_and_models_lead_back_to_their_types() -> None:
    from credit_common.contracts import types as T

    names = {value for key, value in vars(T).items() if key.isupper()}
    assert names == set(REGISTRY)
    assert registry.type_of(ev.CaseRecorded) == T.CASE_RECORDED
    assert registry.types_of(ev.ListChange) == [T.LIST_ENTRY_ADDED, T.LIST_ENTRY_UPDATED, T.LIST_ENTRY_REMOVED]
    with pytest.raises(ValueError, match="name the type"):
        registry.type_of(ev.ListChange)
