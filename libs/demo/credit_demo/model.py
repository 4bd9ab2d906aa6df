"""What the demo's generator knows of what it sent: the messages, the subjects it made up, the
designations it believes active (with their open objection or application), and a pool to pick
from at random. No I/O."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from credit_common.contracts.envelope import CONTENT_TYPE
from credit_common.contracts.reference import StandardRecord, UnitRecord

RESTORABLE_LISTS = ("black", "key_scrutiny")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Message:
    """One Kafka record to send: `kind` is the request type (or `malformed`), `id` the event id."""

    kind: str
    topic: str
    key: bytes
    value: bytes
    id: str

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        return [("content-type", CONTENT_TYPE.encode())]


@dataclass(eq=False, slots=True)
class Subject:
    data: dict[str, Any]  # as requests carry it
    entries: dict[str, Entry] = field(default_factory=dict)  # active entries by standard code
    reusable: bool = True  # False for a code accepted only by checksum override
    serial_target: int = 0  # a repeat offender: the key fields it is to collect (0: not one)

    @property
    def id(self) -> str:
        return str(self.data["id"])

    def key_scrutiny_fields(self, key_fields: set[str]) -> set[str]:
        return {e.field for e in self.entries.values() if e.list == "key_scrutiny" and e.field in key_fields}

    def on_black_or_key_scrutiny(self) -> bool:
        return any(e.list in RESTORABLE_LISTS for e in self.entries.values())


@dataclass(eq=False, slots=True)
class Entry:
    """A designation the demo made, as far as it knows."""

    designation_id: str
    subject: Subject
    standard: StandardRecord
    unit: UnitRecord
    effective_from: date
    effective_to: date
    sent_at: datetime
    active: bool = True
    objection: str | None = None  # the open objection's id
    application: str | None = None  # the open restoration application's id

    @property
    def list(self) -> str:
        return self.standard.list

    @property
    def field(self) -> str:
        return self.standard.field

    @property
    def busy(self) -> bool:
        return self.objection is not None or self.application is not None


class Pool(Generic[T]):
    """Items by key with O(1) add, discard and uniform random choice."""

    def __init__(self) -> None:
        self._items: list[tuple[str, T]] = []
        self._index: dict[str, int] = {}

    def add(self, key: str, item: T) -> None:
        if key not in self._index:
            self._index[key] = len(self._items)
            self._items.append((key, item))

    def discard(self, key: str) -> None:
        i = self._index.pop(key, None)
        if i is None:
            return
        last = self._items.pop()
        if i < len(self._items):
            self._items[i] = last
            self._index[last[0]] = i

    def choice(self, rng: random.Random) -> T | None:
        return rng.choice(self._items)[1] if self._items else None

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return (item for _, item in self._items)


Pair = tuple[UnitRecord, StandardRecord]


def uuid7(rng: random.Random, now: datetime) -> str:
    """A UUIDv7 of `now` whose random bits come from the seeded generator (reproducible)."""
    ms = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    rand = rng.getrandbits(74)
    value = ms << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))
