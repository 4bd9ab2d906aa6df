"""An import's messages: the valid entries of the file in order, cut into batches, each with an id
that depends only on the file, the unit and the batch's position.

Determinism is what makes an import resumable: run again, the same file and options give the same
batches under the same ids (and, with the same `time` from the state file, the same signed
bytes), so a batch that did land before is a silent retry to the platform's inbox and the answers
already on the feedback topic can be matched to what is sent now."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from credit_common.contracts.requests import IMPORT_BATCH_MAX
from credit_common.imports.files import Line

#: The most bytes of entries (their JSON) one message carries: with the envelope and the
#: signature around them it stays well under the 512 KiB the platform takes (`too_large`).
BATCH_BYTES = 400_000


@dataclass(slots=True)
class Batch:
    """One message's entries, and the file line of each (to report the platform's refusals)."""

    index: int  # 1-based: the k of its id
    id: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    size: int = 0  # bytes of the entries' JSON, with a separator each

    def line_of(self) -> dict[str, int]:
        """Each entry's `ref` and its line."""
        return {entry["ref"]: line for entry, line in zip(self.entries, self.lines, strict=True)}


def import_prefix(digest: str, unit: str) -> str:
    """The part every batch id of this file imported by `unit` starts with."""
    return "import-" + hashlib.sha256(f"{digest}|{unit}".encode()).hexdigest()[:24]


def batch_id(prefix: str, index: int) -> str:
    """The request id of batch `index` (1-based): `import-<24 hex>-<6 digits>`. Never a UUID, so
    never one the platform derives (a version-5 id is refused)."""
    return f"{prefix}-{index:06d}"


def batches(
    lines: Iterable[Line],
    *,
    prefix: str,
    batch_size: int = IMPORT_BATCH_MAX,
    max_bytes: int = BATCH_BYTES,
) -> Iterator[Batch]:
    """The entries of `lines` that are not refused, in file order, as batches of at most
    `batch_size` entries and `max_bytes` bytes of JSON (an entry alone above it still makes a
    batch of its own: the platform answers it `too_large`). Only the batch being built is kept."""
    if not 1 <= batch_size <= IMPORT_BATCH_MAX:
        raise ValueError(f"batch size {batch_size}: 1 to {IMPORT_BATCH_MAX}")
    current = Batch(1, batch_id(prefix, 1))
    for line in lines:
        if line.entry is None or line.errors:
            continue
        size = len(orjson.dumps(line.entry)) + 1
        if current.entries and (len(current.entries) >= batch_size or current.size + size > max_bytes):
            yield current
            current = Batch(current.index + 1, batch_id(prefix, current.index + 1))
        current.entries.append(line.entry)
        current.lines.append(line.number)
        current.size += size
    if current.entries:
        yield current
