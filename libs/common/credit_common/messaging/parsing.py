"""From a Kafka record to what the bus applies: a parsed message for a handler, a rejection of a
request whose envelope or data does not fit the contract, or a dead letter for what is not an
event at all. Nothing here touches the database or the broker."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from aiokafka import ConsumerRecord
from pydantic import BaseModel, ValidationError

from credit_common.clock import Clock, SystemClock, local_day
from credit_common.contracts import binary
from credit_common.contracts.envelope import MAX_MESSAGE_BYTES, CloudEvent, nul_field, safe_attribute
from credit_common.contracts.reference import REFERENCE_SOURCE
from credit_common.contracts.types import DESIGNATION_IMPORT
from credit_common.messaging import topics
from credit_common.messaging.unit_of_work import Incoming
from credit_common.outcomes import ErrorItem, is_platform_id, request_key
from credit_common.security.signing import Verifier

ModelLookup = Callable[[str], type[BaseModel] | None]


PLATFORM_SOURCES = frozenset(f"platform/{name}" for name in ("designation", "sharing", "warning", "objection", "cases"))

#: Who may write each topic a service consumes that is not a request topic (contracts.md,
#: Security): only the owning service writes its events topic, only `reference` the catalogue.
#: The ACLs keep other principals off; this keeps a leaked credential from speaking for another.
TOPIC_OWNERS: dict[str, frozenset[str]] = {
    topics.DESIGNATION_EVENTS: frozenset({"platform/designation"}),
    topics.OBJECTION_EVENTS: frozenset({"platform/objection"}),
    topics.WARNING_EVENTS: frozenset({"platform/warning"}),
    topics.CASES_EVENTS: frozenset({"platform/cases"}),
    topics.REFERENCE: frozenset({REFERENCE_SOURCE}),
    topics.FEEDBACK: PLATFORM_SOURCES,
}


def trusted_unit(event: CloudEvent, record: ConsumerRecord | None = None) -> str | None:
    """The unit a request speaks for. Only called for an envelope whose signature the parser
    verified against a key of that very principal (`Verifier.check`), so `source` is proven."""
    return event.source_unit


@dataclass(slots=True)
class Parsed:
    """One record after parsing: `incoming` to handle, or a `dead_reason`, or `reject_errors` to
    answer (a request), keyed in the inbox by `inbox_key`."""

    record: ConsumerRecord
    inbox_key: str
    incoming: Incoming | None = None
    dead_reason: str | None = None
    reject_errors: list[ErrorItem] | None = None
    reject_to: str | None = None
    request_id: str | None = None
    request_type: str | None = None
    # SHA-256 of what the message says (the signed canonical form for a signed request, else the
    # raw value, or the envelope rebuilt from a binary-mode record): a repeat of its inbox key
    # with another digest is not a retry but `duplicate_id`.
    digest: bytes | None = None


class Parser:
    """Parses the records of one consumer. `handled` are the event types it applies (None: every
    type, for a batch handler), `request_types` the requests it answers on `request_topics`."""

    def __init__(
        self,
        *,
        handled: Collection[str] | None,
        request_types: Collection[str] = (),
        request_topics: Collection[str] = (),
        model_for: ModelLookup | None = None,
        skip: Callable[[ConsumerRecord], bool] | None = None,
        verifier: Verifier | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._handled = None if handled is None else set(handled)
        self._request_types = set(request_types)
        self._request_topics = set(request_topics)
        self._model_for = model_for
        self._skip = skip
        # Requests must be signed whenever this consumer reads a request topic: there is no
        # switch to turn that off, only the verifier a test of the bus itself may pass.
        self._verifier = verifier
        self._clock = clock or SystemClock()

    def parse(self, record: ConsumerRecord) -> Parsed:
        position_key = f"{record.topic}:{record.partition}:{record.offset}"
        if self._skip is not None and self._skip(record):
            return Parsed(record, position_key)  # not this consumer's business (no effect, no inbox row)
        if record.value is None and record.topic == topics.REFERENCE:
            return Parsed(record, position_key)  # a tombstone on the compacted reference topic
        # Binary mode (attributes in `ce_` headers) is rebuilt into the structured envelope it
        # stands for; from there both modes meet the very same checks.
        if binary.kafka_binary(record.headers):
            read = self._read_binary(record, position_key)
        else:
            read = self._read_structured(record, position_key)
        if isinstance(read, Parsed):
            return read
        return self._parse_envelope(record, position_key, *read)

    def _read_structured(self, record: ConsumerRecord, position_key: str) -> Parsed | tuple[Any, bytes, bytes]:
        """The envelope of a structured-mode record, with its raw bytes (what is checked for NULs
        and, unsigned, digested)."""
        raw = record.value
        if raw is None:
            return Parsed(record, position_key, dead_reason="empty value (tombstone) on a non-compacted topic")
        try:
            doc = orjson.loads(raw)  # orjson + validate_python measured faster than validate_json here
        except orjson.JSONDecodeError as not_json:
            return Parsed(record, position_key, dead_reason=f"not JSON: {not_json}")
        if len(raw) > MAX_MESSAGE_BYTES:
            return self._refused(record, position_key, doc, _too_large(len(raw)))
        return doc, raw, raw

    def _read_binary(self, record: ConsumerRecord, position_key: str) -> Parsed | tuple[Any, bytes, bytes]:
        """The structured envelope a binary-mode record stands for. Attributes that cannot be read
        refuse it like a structured envelope that is not one: answered to its `ce_source` where
        that can be read, and dead-lettered."""
        rebuilt = binary.from_kafka(record.headers, record.value)
        if rebuilt.size > MAX_MESSAGE_BYTES:
            return self._refused(record, position_key, rebuilt.doc, _too_large(rebuilt.size))
        if rebuilt.problem is not None:
            return self._refused(record, position_key, rebuilt.doc, rebuilt.problem)
        # Unsigned, the digest covers the whole rebuilt envelope: the value alone is only its data.
        return rebuilt.doc, record.value or b"", orjson.dumps(rebuilt.doc, option=orjson.OPT_SORT_KEYS)

    def _parse_envelope(self, record: ConsumerRecord, position_key: str, doc: Any, raw: bytes, body: bytes) -> Parsed:
        """The checks every envelope meets, whichever mode it came in: `doc` the envelope, `raw`
        the bytes that hold its JSON strings, `body` what its digest covers unless it is signed."""
        try:
            event = CloudEvent.model_validate(doc)
        except ValidationError as exc:
            return self._unparseable(record, position_key, doc, exc)
        if (where := nul_field(raw, doc)) is not None:
            # Nothing the platform stores may hold a NUL (PostgreSQL refuses it): refused here,
            # before any handler, rather than dead-lettered as a failure and never answered.
            nul = ErrorItem("schema_violation", where or None, "a NUL character cannot be stored")
            return self._refused(record, position_key, doc, nul)
        is_request = record.topic in self._request_topics
        owners = TOPIC_OWNERS.get(record.topic)
        if not is_request and owners is not None and event.source not in owners:
            return Parsed(
                record, position_key, dead_reason=f"foreign_source: {event.source!r} does not write {record.topic}"
            )
        if is_request and is_platform_id(event.id):
            # Ids the platform derives (UUIDv5, outcomes.derived_id) cannot be claimed by a sender:
            # a request under the derived id of a platform event to come would sit in the inbox
            # of a service that consumes both, and the real event be dropped as its repeat.
            claimed = ErrorItem("schema_violation", "id", "a version-5 UUID is an id the platform derives; use UUIDv7")
            return self._refused(record, position_key, doc, claimed)
        received_at = self._clock.now() if is_request else None  # the platform's time of receipt
        # A request is known by (source, id): another unit's request under the same id is another
        # request (contracts.md, Integrity rules); a platform event by its id (one writer a topic).
        key = request_key(event.source, event.id) if is_request else event.id
        signed: bytes | None = None
        if received_at is not None and self._verifier is not None:
            verdict = self._verifier.examine(doc, received_at)
            refusal, signed = verdict.refusal, verdict.signed
            if refusal is not None:
                # Keyed by position, not id: an unproven message must not use up a unit's request id.
                return Parsed(
                    record,
                    position_key,
                    reject_errors=[refusal],
                    reject_to=event.source_unit or event.source,
                    request_id=event.id,
                    request_type=event.type,
                )
        if received_at is not None and (late := time_problem(event, received_at)) is not None:
            return Parsed(
                record,
                key,
                reject_errors=[late],
                reject_to=event.source_unit or event.source,
                request_id=event.id,
                request_type=event.type,
                digest=hashlib.sha256(signed if signed is not None else body).digest(),
            )
        # What the inbox keeps of a request keyed by its id, whatever the rules make of it: a
        # repeat with another body is told `duplicate_id` only where both sides have one (the
        # chaos fuzz found repeats of schema-refused requests dropped in silence as retries).
        digest = hashlib.sha256(signed if signed is not None else body).digest()
        unit = trusted_unit(event, record)
        if not is_request and self._handled is not None and event.type not in self._handled:
            return Parsed(record, key)  # another service's event type: not ours to apply
        if is_request and event.type not in self._request_types:
            return Parsed(
                record,
                key,
                reject_errors=[
                    ErrorItem("schema_violation", "type", f"{event.type!r} is not a request on {record.topic}")
                ],
                reject_to=unit or event.source,
                request_id=event.id,
                request_type=event.type,
                digest=digest,
            )
        data: Any = event.data
        model = self._model_for(event.type) if self._model_for else None
        if model is not None:
            try:
                data = model.model_validate(event.data)
            except ValidationError as exc:
                if is_request:
                    return Parsed(
                        record,
                        key,
                        reject_errors=schema_errors(exc),
                        reject_to=unit or event.source,
                        request_id=event.id,
                        request_type=event.type,
                        digest=digest,
                    )
                return Parsed(record, key, dead_reason=f"data does not match {event.type}: {short(exc)}")
        incoming = Incoming(
            event,
            data,
            unit,
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.headers,
            received_at=received_at,
            signed=signed,
        )
        return Parsed(
            record,
            key,
            incoming=incoming,
            request_id=event.id if is_request else None,
            request_type=event.type if is_request else None,
            reject_to=unit or event.source,
            digest=digest,
        )

    @classmethod
    def _unparseable(cls, record: ConsumerRecord, position_key: str, doc: Any, exc: ValidationError) -> Parsed:
        error = ErrorItem("schema_violation", None, f"not a valid CloudEvent: {short(exc)}")
        return cls._refused(record, position_key, doc, error, dead_reason=f"not a CloudEvent: {short(exc)}")

    @staticmethod
    def _refused(
        record: ConsumerRecord, position_key: str, doc: Any, error: ErrorItem, dead_reason: str | None = None
    ) -> Parsed:
        """Dead-lettered by position (nothing of the message is trusted as a key); where a unit
        can be read, it gets its answer too, echoing only what is safe to store."""
        p = Parsed(record, position_key, dead_reason=dead_reason or f"{error.code}: {error.message}")
        source = safe_attribute(doc.get("source")) if isinstance(doc, dict) else None
        if source is not None and source.startswith("unit/"):
            p.reject_to = source[5:]
            p.request_id = safe_attribute(doc.get("id")) or position_key
            p.request_type = safe_attribute(doc.get("type")) or ""
            p.reject_errors = [error]
        return p


def _too_large(size: int) -> ErrorItem:
    return ErrorItem("too_large", None, f"{size} bytes is over the {MAX_MESSAGE_BYTES} a message may have")


#: How far ahead of the platform clock a request's `time` may be (contracts.md: `clock_skew`).
CLOCK_SKEW = timedelta(minutes=5)
#: The data fields that state a legal fact's date, which cannot be after the day of receipt.
DATE_FIELDS = frozenset({"decided_on", "occurred_on", "applied_on", "completed_on"})


def time_problem(event: CloudEvent, received_at: datetime) -> ErrorItem | None:
    """`clock_skew` for a request timed more than five minutes ahead of its receipt, and
    `invalid_date` for a decision, occurrence, application or completion dated after the day of
    receipt (Asia/Shanghai): the sender's clock never sets a legal date (contracts.md)."""
    if event.time > received_at + CLOCK_SKEW:
        ahead = (event.time - received_at).total_seconds()
        return ErrorItem("clock_skew", "time", f"time is {ahead:.0f}s ahead of the platform clock (at most 300s)")
    if event.type == DESIGNATION_IMPORT:
        return None  # history: each entry's dates are judged on their own, refused entry by entry
    today = local_day(received_at)
    found = _date_after(event.data, today, "data")
    if found is not None:
        field, value = found
        return ErrorItem("invalid_date", field, f"{value} is after the day the platform received this ({today})")
    return None


def _date_after(value: Any, today: date, path: str) -> tuple[str, str] | None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in DATE_FIELDS and isinstance(v, str):
                try:
                    if date.fromisoformat(v) > today:
                        return f"{path}.{k}".removeprefix("data."), v
                except ValueError:
                    continue  # not a date: the data model says so, with its own error
            found = _date_after(v, today, f"{path}.{k}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _date_after(v, today, f"{path}.{i}")
            if found is not None:
                return found
    return None


def record_time(record: ConsumerRecord) -> datetime:
    """The broker's timestamp of a record (what a dead letter is timed by, so a replay rebuilds it)."""
    return datetime.fromtimestamp(max(record.timestamp, 0) / 1000, UTC)


def short(exc: ValidationError) -> str:
    """The first five validation errors on one line."""
    errs = exc.errors(include_url=False)
    parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in errs[:5]]
    more = f" (+{len(errs) - 5} more)" if len(errs) > 5 else ""
    return "; ".join(parts) + more


def schema_errors(exc: ValidationError) -> list[ErrorItem]:
    """A validation error as `schema_violation` items, one per failing field (at most 20)."""
    return [
        ErrorItem("schema_violation", ".".join(str(x) for x in e["loc"]) or None, e["msg"])
        for e in exc.errors(include_url=False)[:20]
    ]
