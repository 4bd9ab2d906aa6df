"""Historical import files for tests and benchmarks: entries of one unit as it would have published
them since 2018, in the `credit-import` JSONL layout, every one valid against the sample catalogue
(so what the platform refuses is only what a test puts in on purpose)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
from stdnum.cn import ric

from tests.support.subjects import new_uscc

#: A national unit authorised for taxation: it may import red, black and key-scrutiny entries.
UNIT = "100000-SAT"
STANDARDS = {"red": "taxation-red", "black": "taxation-black", "key_scrutiny": "taxation-key_scrutiny"}
LISTS = ("black", "key_scrutiny", "red")


def resident_id(k: int) -> str:
    """The k-th of 25 million distinct valid resident identity numbers (random ones collide: a
    million-entry file drew the same person twice 800 times, and the platform rightly refused)."""
    born = date(1930, 1, 1) + timedelta(days=(k // 1000) % 25_000)
    body = "110101" + born.strftime("%Y%m%d") + f"{k % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def subject(rng: random.Random, i: int, base: int = 0) -> dict[str, Any]:
    if i % 5 == 0:
        return {"kind": "natural_person", "scheme": "resident_id", "id": resident_id(base + i), "name": f"Zhao Lei {i}"}
    return {
        "kind": "legal_person",
        "scheme": "uscc",
        "id": new_uscc(rng),
        "name": f"Example Trading Co. {i}",
        "legal_representative": "Zhang Wei",
    }


def entry(rng: random.Random, i: int, today: date, *, prefix: str = "e", base: int = 0) -> dict[str, Any]:
    """The i-th entry: one in ten ended by its period, one in ten removed (revoked) early, the
    rest still on their lists today; every one under a taxation standard, a year long."""
    list_ = LISTS[i % 3]
    kind = i % 10
    if kind == 3:  # ended by its period, years ago
        start = date(2019, 1, 1) + timedelta(days=rng.randrange(0, 1000))
    elif kind == 7:  # removed before its end
        start = date(2023, 1, 1) + timedelta(days=rng.randrange(0, 300))
    else:  # on its list today
        start = today - timedelta(days=rng.randrange(0, 300))
    doc: dict[str, Any] = {
        "ref": f"{prefix}-{i:07d}",
        "list": list_,
        "standard": STANDARDS[list_],
        "subject": subject(rng, i, base),
        "decision": {"document_no": f"税稽〔{start.year}〕{i}号", "decided_on": start.isoformat(), "facts": "Facts."},
        "effective_from": start.isoformat(),
        "effective_to": (start + timedelta(days=364)).isoformat(),
    }
    if kind == 7:
        doc["removed_on"] = (start + timedelta(days=100)).isoformat()
        doc["removal_reason"] = "revoked"
    return doc


def entries(n: int, today: date, *, seed: int = 7, prefix: str = "e") -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    base = (seed * 1_000_003) % 20_000_000  # files of other seeds name other people
    for i in range(n):
        yield entry(rng, i, today, prefix=prefix, base=base)


def write_jsonl(path: Path, docs: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> Path:
    with path.open("wb") as out:
        for doc in docs:
            out.write(orjson.dumps(doc) + b"\n")
    return path


def is_active(doc: dict[str, Any], today: date) -> bool:
    return "removed_on" not in doc and date.fromisoformat(doc["effective_to"]) >= today
