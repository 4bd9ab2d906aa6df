"""Batches: file order, at most `batch_size` entries and `max_bytes` of JSON each, refused lines
left out, and ids that depend on the file, the unit and the position alone."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
import pytest
from credit_common.contracts.envelope import MAX_MESSAGE_BYTES
from credit_common.contracts.requests import IMPORT_BATCH_MAX, ImportDesignations
from credit_common.imports.batches import BATCH_BYTES, Batch, batch_id, batches, import_prefix
from credit_common.imports.client import signed_message
from credit_common.imports.files import Line, read_lines
from credit_common.security.signing import Signer

from tests.unit.imports.samples import JSONL

DIGEST = hashlib.sha256(b"a file").hexdigest()
PREFIX = import_prefix(DIGEST, "110000-SAT")


def entry(i: int, facts: str = "Facts.") -> dict[str, Any]:
    return {
        "ref": f"r-{i}",
        "list": "black",
        "standard": "taxation-black",
        "subject": {"kind": "legal_person", "scheme": "uscc", "id": "91110114JLYNHFK2B5", "name": "A Co."},
        "decision": {"document_no": f"D-{i}", "decided_on": "2019-03-11", "facts": facts},
        "effective_from": "2019-03-15",
        "effective_to": "2022-03-13",
    }


def lines(n: int, facts: str = "Facts.", refused: frozenset[int] = frozenset()) -> list[Line]:
    error = [{"code": "schema_violation", "field": None, "message": "x"}]
    return [
        Line(i + 1, f"r-{i}", None, error) if i in refused else Line(i + 1, f"r-{i}", entry(i, facts), [])
        for i in range(n)
    ]


def test_ids_are_the_digest_and_unit_hashed_and_the_position() -> None:
    expected = "import-" + hashlib.sha256(f"{DIGEST}|110000-SAT".encode()).hexdigest()[:24]
    assert expected == PREFIX
    assert batch_id(PREFIX, 7) == f"{expected}-000007"
    assert re.fullmatch(r"import-[0-9a-f]{24}-\d{6}", batch_id(PREFIX, 1))
    assert import_prefix(DIGEST, "110108-SAT") != PREFIX


def test_by_count_in_file_order_without_the_refused_lines() -> None:
    found = list(batches(lines(2_345, refused=frozenset({0, 1000})), prefix=PREFIX))
    assert [len(b.entries) for b in found] == [1000, 1000, 343]
    assert [b.index for b in found] == [1, 2, 3]
    assert [b.id for b in found] == [batch_id(PREFIX, k) for k in (1, 2, 3)]
    assert found[0].lines[:2] == [2, 3]
    assert found[0].entries[0]["ref"] == "r-1"
    every = [line for b in found for line in b.lines]
    assert every == sorted(every)
    assert len(every) == 2_343
    assert [len(b.entries) for b in batches(lines(10), prefix=PREFIX, batch_size=4)] == [4, 4, 2]


def test_by_bytes_and_every_message_stays_under_the_limit() -> None:
    facts = "虚开增值税专用发票。" * 2_000  # 60 KB of JSON an entry
    found = list(batches(lines(30, facts), prefix=PREFIX))
    assert all(b.size <= BATCH_BYTES for b in found)
    assert sum(len(b.entries) for b in found) == 30
    assert len(found) > 1
    assert all(b.size + len(orjson.dumps(found[-1].entries[0])) + 1 > BATCH_BYTES for b in found[:-1])
    signer = Signer.generate("kid-1", "unit:110000-SAT")
    for b in found:
        value = signed_message(b, "110000-SAT", "2026-12-05T09:30:00+08:00", signer)
        assert len(value) < MAX_MESSAGE_BYTES
        ImportDesignations.model_validate(orjson.loads(value)["data"])
    # The largest entries the contract allows, a thousand to a message, still fit.
    most = list(batches(lines(IMPORT_BATCH_MAX, "x" * 20_000), prefix=PREFIX))
    assert all(len(signed_message(b, "110000-SAT", "t", signer)) < MAX_MESSAGE_BYTES for b in most)


def test_an_entry_too_large_alone_still_goes_alone() -> None:
    found = list(batches(lines(3), prefix=PREFIX, max_bytes=10))
    assert [len(b.entries) for b in found] == [1, 1, 1]


def test_the_same_file_and_options_give_the_same_batches_and_bytes() -> None:
    signer = Signer.generate("kid-1", "unit:110000-SAT")

    def messages(size: int) -> list[tuple[str, bytes]]:
        return [
            (b.id, signed_message(b, "110000-SAT", "2026-12-05T09:30:00+08:00", signer))
            for b in batches(read_lines(JSONL), prefix=PREFIX, batch_size=size)
        ]

    assert messages(3) == messages(3)
    assert [i for i, _ in messages(3)] == [batch_id(PREFIX, k) for k in (1, 2, 3)]
    assert messages(3) != messages(4)


def test_the_batch_size_is_bounded() -> None:
    with pytest.raises(ValueError, match="1 to 1000"):
        list(batches(lines(1), prefix=PREFIX, batch_size=IMPORT_BATCH_MAX + 1))
    with pytest.raises(ValueError, match="1 to 1000"):
        list(batches(lines(1), prefix=PREFIX, batch_size=0))


def test_a_batch_knows_the_line_of_each_ref() -> None:
    (batch,) = batches(lines(3), prefix=PREFIX)
    assert isinstance(batch, Batch)
    assert batch.line_of() == {"r-0": 1, "r-1": 2, "r-2": 3}
