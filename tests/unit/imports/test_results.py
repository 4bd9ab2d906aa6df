"""Answers matched to batches without Kafka: an accepted batch imports all but the entries it
lists, a rejected one refuses every entry with its errors, and nothing else on the topic counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from credit_common.contracts import types as T
from credit_common.imports.batches import Batch, batch_id, import_prefix
from credit_common.imports.results import (
    Answer,
    ImportSummary,
    Refusal,
    default_refusals_path,
    parse_answer,
    settle,
    write_refusals,
)

PREFIX = import_prefix("cd" * 32, "110000-SAT")
ERROR = {"code": "invalid_checksum", "field": "subject.id", "message": "the check character does not match"}


def feedback(kind: str, **data: Any) -> bytes:
    event = {
        "specversion": "1.0",
        "id": "0193d1c2-7a51-7c3e-9f0a-3b1d2e4f5a6b",
        "source": "platform/designation",
        "type": kind,
        "time": "2026-12-05T09:30:01+08:00",
        "data": {"request_type": T.DESIGNATION_IMPORT, **data},
    }
    return orjson.dumps(event)


def batch(k: int = 1, n: int = 3) -> Batch:
    return Batch(
        k,
        batch_id(PREFIX, k),
        entries=[{"ref": f"r-{k}-{i}"} for i in range(n)],
        lines=[10 * k + i for i in range(n)],
    )


def test_an_accepted_batch_imports_all_but_what_it_refuses() -> None:
    b = batch()
    value = feedback(
        T.REQUEST_ACCEPTED, request_id=b.id, result_id=b.id, imported=2, refused=[{"ref": "r-1-1", "errors": [ERROR]}]
    )
    answer = parse_answer(value, PREFIX)
    assert answer == Answer(b.id, accepted=True, imported=2, refused=[{"ref": "r-1-1", "errors": [ERROR]}])
    settled = settle(b, answer)
    assert settled.imported == 2
    assert settled.refusals == [Refusal("r-1-1", 11, [ERROR])]


def test_a_rejected_batch_refuses_every_entry_with_its_errors() -> None:
    b = batch(2)
    too_large = {"code": "too_large", "field": None, "message": "over 512 KiB"}
    answer = parse_answer(feedback(T.REQUEST_REJECTED, request_id=b.id, errors=[too_large]), PREFIX)
    assert answer == Answer(b.id, accepted=False, errors=[too_large])
    settled = settle(b, answer)
    assert settled.imported == 0
    assert settled.refusals == [Refusal(f"r-2-{i}", 20 + i, [too_large]) for i in range(3)]


def test_an_answer_without_imported_counts_what_it_did_not_refuse() -> None:
    b = batch(n=5)
    answer = Answer(b.id, accepted=True, refused=[{"ref": "r-1-0", "errors": [ERROR]}, {"ref": "nope", "errors": []}])
    settled = settle(b, answer)
    assert settled.imported == 3
    assert settled.refusals[1] == Refusal("nope", None, [])  # a ref not in the batch: no line


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"not json " + PREFIX.encode(),
        feedback(T.REQUEST_ACCEPTED, request_id="0193d1c2-0000-7000-8000-000000000001", result_id="x"),
        feedback(T.REQUEST_ACCEPTED, request_id=import_prefix("ef" * 32, "110000-SAT") + "-000001", result_id="x"),
        feedback(T.REQUEST_ACCEPTED, request_id=PREFIX, result_id="x", note=PREFIX),  # the prefix alone is no batch
        feedback(T.DESIGNATION_CREATED, request_id=batch_id(PREFIX, 1)),
        orjson.dumps([PREFIX]),
    ],
)
def test_nothing_else_on_the_topic_is_an_answer(value: bytes | None) -> None:
    assert parse_answer(value, PREFIX) is None


def test_summary_codes_and_exit_status() -> None:
    summary = ImportSummary(file=Path("x.csv"), unit="110000-SAT", complete=True)
    assert summary.exit_code == 0
    summary.refused = [
        Refusal("b", 9, [ERROR, {**ERROR, "field": "checksum_override"}]),
        Refusal(None, 2, [{"code": "schema_violation", "field": None, "message": "not JSON"}]),
        Refusal("z", None, [ERROR]),
    ]
    assert summary.exit_code == 3
    assert summary.by_code() == {"invalid_checksum": 2, "schema_violation": 1}
    assert [r.line for r in summary.sorted_refusals()] == [2, 9, None]
    summary.complete = False
    assert summary.exit_code == 1


def test_the_refusals_file_is_jsonl_beside_the_input_or_in_the_fallback(tmp_path: Path) -> None:
    refusals = [Refusal("r-1", 4, [ERROR]), Refusal(None, 7, [ERROR])]
    assert default_refusals_path(tmp_path / "entries.csv") == tmp_path / "entries.refused.jsonl"
    written = write_refusals(refusals, tmp_path / "entries.refused.jsonl")
    assert [orjson.loads(line) for line in written.read_bytes().splitlines()] == [
        {"ref": "r-1", "line": 4, "errors": [ERROR]},
        {"ref": None, "line": 7, "errors": [ERROR]},
    ]
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    fallback = tmp_path / "state" / "x.refused.jsonl"
    assert write_refusals(refusals, blocked / "entries.refused.jsonl", fallback) == fallback
    assert len(fallback.read_bytes().splitlines()) == 2
