"""Hostile messages for the `fuzz_kafka` fault: request data drawn from the contract's JSON
Schemas by Hypothesis (`hypothesis-jsonschema`: valid by the schema, hostile in every string,
unpaired surrogates and control characters included), wrapped in envelopes that are signed,
unsigned, badly signed, from the future or the past, from a foreign source, with a NUL where
PostgreSQL cannot store it, or an id used before with another body; and beside them raw bytes,
empty values, huge values, deep nesting, wrong types and broken envelopes.

Every one must be answered (`credit.feedback.v1`, by its id) or dead-lettered (by its topic,
partition and offset), and no consumer may stop."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from credit_common.contracts.reference import UnitRecord
from credit_common.contracts.registry import REGISTRY
from credit_common.messaging import topics
from credit_common.reference.loader import load_files
from credit_common.security.credentials import Signers
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis_jsonschema import from_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "libs" / "common" / "credit_common" / "contracts" / "schemas"

#: How often each kind of hostile message is sent.
KINDS: dict[str, float] = {
    "schema_signed": 0.30,
    "schema_unsigned": 0.05,
    "bad_signature": 0.05,
    "wrong_types": 0.08,
    "bad_envelope": 0.08,
    "raw_bytes": 0.08,
    "empty_value": 0.02,
    "nul": 0.06,
    "deep": 0.03,
    "huge": 0.002,
    "future": 0.05,
    "past": 0.05,
    "duplicate_id": 0.08,
    "foreign_source": 0.04,
    "not_json_text": 0.048,
    "binary_signed": 0.04,
    "binary_hostile": 0.03,
}


@dataclass(frozen=True, slots=True)
class Hostile:
    kind: str
    topic: str
    key: bytes | None
    value: bytes | None
    id: str | None  # the id an answer would name (None: only a dead letter can account for it)
    headers: tuple[tuple[str, bytes], ...] = (("content-type", b"application/cloudevents+json"),)


def request_types() -> list[str]:
    return [row.name for row in REGISTRY.values() if row.kind == "request" and row.topic in topics.REQUEST_TOPICS]


def samples(type_: str, n: int, seed: int) -> list[Any]:
    """n data documents of `type_` drawn from its JSON Schema."""
    schema = json.loads((SCHEMAS / f"{type_}.json").read_text())
    out: list[Any] = []

    @settings(
        max_examples=n,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
        derandomize=False,
    )
    @given(from_schema(schema))
    def collect(doc: Any) -> None:
        out.append(doc)

    random.seed(seed)
    collect()
    return out


class Fuzzer:
    def __init__(self, *, pool: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.signers = Signers()
        self.types = request_types()
        self.pool = {t: samples(t, pool, seed + i) for i, t in enumerate(self.types)}
        units = load_files([ROOT / "deploy" / "catalog"])
        self.sources = [f"unit/{u.code}" for u in units if isinstance(u, UnitRecord) and u.active]
        self.used: list[tuple[str, str, str]] = []  # (id, type, source) sent before

    # ------------------------------------------------------------------ envelopes

    def _envelope(
        self, type_: str, data: Any, *, source: str | None = None, at: datetime | None = None
    ) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "source": source or self.rng.choice(self.sources),
            "type": type_,
            "time": (at or datetime.now(UTC)).isoformat(),
            "subject": "fuzz",
            "datacontenttype": "application/json",
            "data": data,
        }

    def _signed(self, env: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.signers.sign(env)
        except Exception:  # a value the canonical form refuses (a lone surrogate): sent unsigned
            return env

    @staticmethod
    def _bytes(doc: Any) -> bytes:
        # json, not orjson: a lone surrogate goes out as its \\ud8xx escape, as a hostile client
        # would write it (orjson refuses to write one).
        return json.dumps(doc, ensure_ascii=True).encode()

    def _hostile(self, kind: str, env: dict[str, Any], *, sign: bool = True) -> Hostile:
        doc = self._signed(env) if sign else env
        topic = REGISTRY[env["type"]].topic if env.get("type") in self.types else topics.DESIGNATION_REQUESTS
        self.used.append((env["id"], env["type"], env["source"]))
        return Hostile(kind, topic, str(env.get("subject", "fuzz")).encode(), self._bytes(doc), env["id"])

    def _binary(self, kind: str, doc: dict[str, Any]) -> Hostile:
        """CloudEvents binary mode: the attributes in `ce_` headers, the data as the value;
        `binary_hostile` breaks one header (a NUL or a newline in it, a repeat, or none at all)."""
        rng = self.rng
        headers = [(f"ce_{k}", str(v).encode()) for k, v in doc.items() if k not in ("data", "datacontenttype")]
        headers.append(("content-type", b"application/json"))
        rid: str | None = doc["id"]
        if kind == "binary_hostile":
            i = rng.randrange(len(headers) - 1)
            name, value = headers[i]
            how = rng.choice(["nul", "newline", "repeat", "drop"])
            if how == "nul":
                headers[i] = (name, value[:4] + b"\x00" + value[4:])
            elif how == "newline":
                headers[i] = (name, value + b"\r\nce_source: unit/100000-SAT")
            elif how == "repeat":
                headers.append((name, value + b"x"))
            else:
                headers.pop(i)
            if name in ("ce_id", "ce_source"):
                rid = None  # unreadable: only a dead letter accounts for it
        topic = REGISTRY[doc["type"]].topic
        return Hostile(kind, topic, b"fuzz", self._bytes(doc.get("data")), rid, tuple(headers))

    # ------------------------------------------------------------------ the kinds

    def next(self) -> Hostile:
        kind = self.rng.choices(list(KINDS), list(KINDS.values()))[0]
        type_ = self.rng.choice(self.types)
        data = self.rng.choice(self.pool[type_]) if self.pool[type_] else {}
        rng = self.rng
        if kind == "schema_signed":
            return self._hostile(kind, self._envelope(type_, data))
        if kind == "schema_unsigned":
            return self._hostile(kind, self._envelope(type_, data), sign=False)
        if kind == "bad_signature":
            doc = self._signed(self._envelope(type_, data))
            if "signature" in doc:
                sig = doc["signature"]
                i = rng.randrange(len(sig))
                doc["signature"] = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1 :]
            return Hostile(kind, REGISTRY[type_].topic, b"fuzz", self._bytes(doc), doc["id"])
        if kind == "wrong_types":
            wrong: Any = rng.choice(
                [
                    0,
                    -1,
                    1e308,
                    True,
                    None,
                    "text",
                    [],
                    [data],
                    {"data": data},
                    {k: [] for k in data} if isinstance(data, dict) else 7,
                ]
            )
            return self._hostile(kind, self._envelope(type_, wrong))
        if kind == "bad_envelope":
            env = self._envelope(type_, data)
            mutation = rng.choice(
                ["drop", "specversion", "time", "id_type", "type_unknown", "extra_big", "source_type"]
            )
            if mutation == "drop":
                env.pop(rng.choice(["specversion", "source", "type", "time", "datacontenttype"]), None)
            elif mutation == "specversion":
                env["specversion"] = "0.3"
            elif mutation == "time":
                env["time"] = rng.choice(["yesterday", "2026-13-45T99:99:99Z", "", "1e9"])
            elif mutation == "id_type":
                env["id"] = rng.choice([12345, None, ["x"], {"a": 1}])
                return Hostile(kind, REGISTRY[type_].topic, b"fuzz", self._bytes(env), None)
            elif mutation == "type_unknown":
                env["type"] = rng.choice(["credit.designation.destroy", "", "x" * 300, "credit.designation.created"])
            elif mutation == "extra_big":
                env["extension"] = "x" * 5000
            else:
                env["source"] = rng.choice([7, ["unit/100000-SAT"], None])
                return Hostile(kind, REGISTRY[type_].topic, b"fuzz", self._bytes(env), None)
            self.used.append((env["id"], str(env.get("type")), str(env.get("source"))))
            return Hostile(kind, REGISTRY[type_].topic, b"fuzz", self._bytes(self._signed(env)), env["id"])
        if kind == "raw_bytes":
            return Hostile(
                kind, rng.choice(sorted(topics.REQUEST_TOPICS)), None, rng.randbytes(rng.randrange(1, 3000)), None
            )
        if kind == "empty_value":
            return Hostile(kind, rng.choice(sorted(topics.REQUEST_TOPICS)), b"fuzz", None, None)
        if kind == "not_json_text":
            text = rng.choice(
                ["{", "null", "[]", '"just a string"', "1", '{"specversion": "1.0"', "\ufeff{}", "{}" * 100]
            )
            return Hostile(kind, rng.choice(sorted(topics.REQUEST_TOPICS)), b"fuzz", text.encode(), None)
        if kind == "nul":
            env = self._envelope(type_, data)
            where = rng.choice(["id", "source", "type", "subject", "data"])
            if where == "data":
                env["data"] = {"note": "a\x00b", **(data if isinstance(data, dict) else {})}
                return self._hostile(kind, env)
            env[where] = str(env[where])[:8] + "\x00" + str(env[where])[8:]
            return Hostile(kind, REGISTRY[type_].topic, b"fuzz", self._bytes(self._signed(env)), None)
        if kind == "deep":
            depth = rng.choice([600, 2000, 20000])
            body = (
                b'{"specversion":"1.0","id":"'
                + uuid.uuid4().hex.encode()
                + b'","data":'
                + b"[" * depth
                + b"]" * depth
                + b"}"
            )
            return Hostile(kind, REGISTRY[type_].topic, b"fuzz", body, None)
        if kind == "huge":
            env = self._envelope(type_, {"blob": "x" * (600 * 1024), **(data if isinstance(data, dict) else {})})
            return self._hostile(kind, env)
        if kind == "future":
            return self._hostile(
                kind, self._envelope(type_, data, at=datetime.now(UTC) + timedelta(days=rng.choice([1, 30, 3650])))
            )
        if kind == "past":
            return self._hostile(
                kind, self._envelope(type_, data, at=datetime.now(UTC) - timedelta(days=rng.choice([1, 365, 3650])))
            )
        if kind == "duplicate_id" and self.used:
            rid, used_type, source = rng.choice(self.used)
            # Only on request topics (a used id of a message with another type is sent as a request
            # type): the fuzz speaks as departments, whose ACLs keep them off the events topics.
            env = self._envelope(
                used_type if used_type in self.types else type_, data, source=source if source in self.sources else None
            )
            env["id"] = rid
            env["subject"] = "fuzz-other-body"
            doc = self._signed(env)
            topic = REGISTRY[env["type"]].topic
            return Hostile(kind, topic, b"fuzz", self._bytes(doc), rid)
        if kind in ("binary_signed", "binary_hostile"):
            return self._binary(kind, self._signed(self._envelope(type_, data)))
        if kind == "foreign_source":
            source = rng.choice(
                ["platform/designation", "platform/sharing", "unit/999999-NOPE", "portal", "unit/../../etc"]
            )
            return self._hostile(kind, self._envelope(type_, data, source=source))
        return self._hostile("schema_signed", self._envelope(type_, data))
