"""What an import comes to: the platform's answers matched to the batches sent, the refusals (the
file's own and the platform's alike) and the summary. Pure, but for writing the refusals file:
the answers are read by `client`, and tested here without Kafka."""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from credit_common.contracts import types as T
from credit_common.contracts.requests import IMPORT_BATCH_MAX
from credit_common.imports.batches import Batch
from credit_common.imports.files import Line

#: Exit statuses of `credit-import` (and `ImportSummary.exit_code`).
EXIT_IMPORTED = 0  # every entry imported (a dry run: every entry would be sent)
EXIT_INCOMPLETE = 1  # stopped waiting (`--timeout`) or the broker failed: run again to resume
EXIT_USAGE = 2  # the command line, the file as a whole or the credentials
EXIT_REFUSED = 3  # finished, with refusals


@dataclass(frozen=True, slots=True)
class Refusal:
    """An entry that was not imported: its `ref` (None when the line has none that can be read),
    its line in the file, and the errors as the platform words them."""

    ref: str | None
    line: int | None
    errors: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "line": self.line, "errors": self.errors}

    @classmethod
    def of_line(cls, line: Line) -> Refusal:
        return cls(line.ref, line.number, line.errors)


@dataclass(frozen=True, slots=True)
class Answer:
    """The platform's answer to one batch: accepted with `imported` and the entries `refused`
    (`[{ref, errors}]`), or the whole message rejected with `errors`."""

    request_id: str
    accepted: bool
    imported: int | None = None
    refused: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def parse_answer(value: bytes | None, prefix: str) -> Answer | None:
    """The answer a feedback record carries to a batch of the import whose ids start with
    `prefix`, or None (another request's answer, another event, or not JSON). The cheap test
    comes first: most of the topic is other units' answers."""
    if value is None or prefix.encode() not in value:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("type") not in (T.REQUEST_ACCEPTED, T.REQUEST_REJECTED):
        return None
    data = doc.get("data")
    request_id = data.get("request_id") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(request_id, str) or not request_id.startswith(prefix + "-"):
        return None
    if doc["type"] == T.REQUEST_REJECTED:
        return Answer(request_id, accepted=False, errors=_list(data.get("errors")))
    imported = data.get("imported")
    return Answer(
        request_id,
        accepted=True,
        imported=imported if isinstance(imported, int) else None,
        refused=[r for r in _list(data.get("refused")) if isinstance(r, dict)],
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class Settled:
    """A batch and its answer put together."""

    imported: int
    refusals: list[Refusal]


def settle(batch: Batch, answer: Answer) -> Settled:
    """What `answer` says of each entry of `batch`: a rejected message refuses every entry with
    its errors; an accepted one imported all but those it lists."""
    lines = batch.line_of()
    if not answer.accepted:
        errors = answer.errors or [{"code": "processing_failed", "field": None, "message": "rejected without a reason"}]
        return Settled(0, [Refusal(ref, line, errors) for ref, line in lines.items()])
    refusals = [
        Refusal(str(r.get("ref")), lines.get(str(r.get("ref"))), [e for e in _list(r.get("errors"))])
        for r in answer.refused
    ]
    imported = answer.imported if answer.imported is not None else len(batch.entries) - len(refusals)
    return Settled(imported, refusals)


@dataclass
class ImportSummary:
    """The outcome of an import (or of a dry run): what the file held, what was sent in how many
    messages, and what came of it. `complete` is False when the run stopped before every batch
    was answered; running it again resumes."""

    file: Path
    unit: str
    read: int = 0  # entries read from the file
    sendable: int = 0  # entries that pass the contract and repeat no ref: what is sent
    messages: int = 0  # the messages (batches) those make
    batch_size: int = IMPORT_BATCH_MAX  # the most entries a message carries (a resumed run: the first run's)
    imported: int = 0
    refused: list[Refusal] = field(default_factory=list)
    answered_batches: int = 0
    complete: bool = False
    dry_run: bool = False
    resumed: bool = False
    state_file: Path | None = None

    def by_code(self) -> Counter[str]:
        """How many entries each error code refused (an entry counts once per code)."""
        return Counter(code for r in self.refused for code in {str(e.get("code")) for e in r.errors})

    @property
    def exit_code(self) -> int:
        if not self.complete:
            return EXIT_INCOMPLETE
        return EXIT_REFUSED if self.refused else EXIT_IMPORTED

    def sorted_refusals(self) -> list[Refusal]:
        """In file order (refusals the platform named by a ref not in the file last)."""
        return sorted(self.refused, key=lambda r: (r.line is None, r.line or 0, r.ref or ""))


def default_refusals_path(path: Path) -> Path:
    """`FILE.refused.jsonl` beside the input (`data.csv` -> `data.refused.jsonl`)."""
    return path.with_name(f"{path.stem}.refused.jsonl")


def write_refusals(refusals: Iterable[Refusal], path: Path, fallback: Path | None = None) -> Path:
    """Write the refusals as JSONL `{ref, line, errors}` to `path` atomically, or to `fallback`
    when `path` cannot be written (a read-only directory of exports); the path written."""
    data = b"".join(orjson.dumps(r.as_dict()) + b"\n" for r in refusals)
    try:
        return _write_atomic(path, data)
    except OSError:
        if fallback is None:
            raise
        return _write_atomic(fallback, data)


def _write_atomic(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
