"""CloudEvents binary content mode: the attributes in protocol headers (`ce_<name>` on Kafka,
`ce-<name>` over HTTP), the data as the record's value or the request's body, `content-type` as
`datacontenttype` (CloudEvents 1.0, Kafka and HTTP protocol bindings).

A binary-mode message is rebuilt here into the structured envelope it stands for, exactly the
document a sender of the structured form would have written and signed, so that it meets the
same envelope validation, hostile-input checks and signature verification as a structured one.
The SDKs' own decoders are not used for this: they parse `time` into a datetime and drop the
string that was signed, and take any header bytes they are given."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from credit_common.outcomes import ErrorItem

KAFKA_PREFIX = "ce_"
HTTP_PREFIX = "ce-"
CONTENT_TYPE_HEADER = "content-type"
STRUCTURED_MEDIA_TYPE = "application/cloudevents"

#: An attribute name (CloudEvents 1.0: lower-case ASCII letters and digits, at most 20 of them).
_NAME = re.compile(r"^[a-z0-9]{1,20}$")
#: Characters no attribute may hold: C0 controls, DEL and the C1 controls (CloudEvents 1.0, String).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: A quoted-pair inside a double-quoted HTTP header value (RFC 9110, 5.6.4).
_QUOTED_PAIR = re.compile(rb"\\(.)", re.DOTALL)
#: Attributes a header may not carry: `data` is the value or body, `datacontenttype` the
#: `content-type` header (the HTTP binding: a `ce-datacontenttype` header MUST NOT be present).
_NOT_HEADERS = frozenset({"data", "datacontenttype"})


@dataclass(slots=True)
class Rebuilt:
    """A binary-mode message as its structured envelope: `doc` holds every attribute that could be
    read (so a refusal can still be answered to its `source`), `problem` the first reason it is
    not an envelope at all, `size` the bytes the message took (value and headers)."""

    doc: dict[str, Any] = field(default_factory=dict)
    problem: ErrorItem | None = None
    size: int = 0


def structured_content_type(content_type: str | None) -> bool:
    """Whether a `content-type` names a CloudEvents event format (structured mode)."""
    return content_type is not None and content_type.strip().lower().startswith(STRUCTURED_MEDIA_TYPE)


def is_json_media_type(content_type: str | None) -> bool:
    """Whether data of this `datacontenttype` is JSON: none given (the JSON format's default),
    `application/json` or a `+json` structured syntax suffix, parameters aside."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def kafka_binary(headers: Sequence[tuple[str, bytes | None]] | None) -> bool:
    """Whether a Kafka record is in binary mode. The binding makes every record whose
    `content-type` is not an event format binary; the platform's own producers and many
    departments' send structured JSON without that header, so a record counts as binary only when
    it also carries a `ce_` attribute header (as the CloudEvents SDK's `from_kafka` decides)."""
    content_type = None
    binary = False
    for name, value in headers or ():
        lower = name.lower()
        if lower == CONTENT_TYPE_HEADER and value is not None:
            content_type = value.decode("utf-8", "replace")
        elif lower.startswith(KAFKA_PREFIX):
            binary = True
    return binary and not structured_content_type(content_type)


def http_binary(headers: Mapping[str, str]) -> bool:
    """Whether an HTTP request is in binary mode: a `ce-` header and a `Content-Type` that is not
    an event format (header names as the ASGI server gives them: lower case)."""
    return any(k.lower().startswith(HTTP_PREFIX) for k in headers) and not structured_content_type(
        headers.get(CONTENT_TYPE_HEADER)
    )


def from_kafka(headers: Sequence[tuple[str, bytes | None]] | None, value: bytes | None) -> Rebuilt:
    """The envelope of a binary-mode Kafka record: header values are UTF-8 text as they stand."""
    pairs: list[tuple[str, bytes | None]] = []
    size = len(value or b"")
    for name, raw in headers or ():
        size += len(name.encode("utf-8", "replace")) + len(raw or b"")
        pairs.append((name, raw))
    return _rebuild(pairs, KAFKA_PREFIX, value, size, percent_encoded=False)


def from_http(headers: Iterable[tuple[bytes, bytes]], body: bytes) -> Rebuilt:
    """The envelope of a binary-mode HTTP request: header values are unquoted (a double-quoted
    string) and percent-decoded once, as the HTTP binding requires of a receiver."""
    pairs: list[tuple[str, bytes | None]] = []
    size = len(body)
    for name, raw in headers:
        size += len(name) + len(raw)
        pairs.append((name.decode("latin-1"), raw))
    return _rebuild(pairs, HTTP_PREFIX, body, size, percent_encoded=True)


def _rebuild(
    headers: Sequence[tuple[str, bytes | None]],
    prefix: str,
    value: bytes | None,
    size: int,
    *,
    percent_encoded: bool,
) -> Rebuilt:
    out = Rebuilt(size=size)
    problems: list[ErrorItem] = []
    content_type: str | None = None
    for name, raw in headers:
        lower = name.lower()
        if lower == CONTENT_TYPE_HEADER:
            text, problem = _text(raw, percent_encoded=False, field="datacontenttype")
            if content_type is not None:
                problem = _violation("datacontenttype", "content-type is given more than once")
            if problem is not None:
                problems.append(problem)
            elif text is not None:
                content_type = text
            continue
        if not lower.startswith(prefix):
            continue  # traceparent and the like: transport headers, not attributes
        attribute = lower[len(prefix) :]
        if not _NAME.match(attribute):
            # Named escaped, never as sent: the name itself may be what cannot be stored.
            problems.append(
                ErrorItem(
                    "schema_violation",
                    None,
                    f"header {ascii(name)[:80]}: an attribute name is 1 to 20 lower-case ASCII letters or digits",
                )
            )
            continue
        if attribute in _NOT_HEADERS:
            problems.append(_violation(attribute, f"{attribute} is not carried in a {prefix} header"))
            continue
        text, problem = _text(raw, percent_encoded=percent_encoded, field=attribute)
        if attribute in out.doc:
            problem = _violation(attribute, f"{prefix}{attribute} is given more than once")
            del out.doc[attribute]  # neither copy is the attribute
        if problem is not None:
            problems.append(problem)
        elif text is not None:
            out.doc[attribute] = text
    if content_type is not None:
        out.doc["datacontenttype"] = content_type
    if value:  # no value (or an empty body) is an event without data (Kafka binding, 3.2.2)
        if not is_json_media_type(content_type):
            problems.append(_violation("datacontenttype", f"{content_type!r} is not JSON: requests carry JSON data"))
        else:
            try:
                out.doc["data"] = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                problems.append(_violation("data", f"the data is not JSON: {exc}"))
    if problems:
        out.problem = problems[0]
    return out


def _text(raw: bytes | None, *, percent_encoded: bool, field: str) -> tuple[str | None, ErrorItem | None]:
    """A header value as attribute text, or why it cannot be one."""
    if raw is None:
        return None, _violation(field, "a header without a value")
    if percent_encoded:
        quoted = raw.strip(b" \t")
        if len(quoted) >= 2 and quoted[:1] == quoted[-1:] == b'"':
            quoted = _QUOTED_PAIR.sub(rb"\1", quoted[1:-1])
        raw = unquote_to_bytes(quoted)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, _violation(field, "the header is not UTF-8")
    if _CONTROL.search(text):
        return None, _violation(field, "control characters are not allowed")
    return text, None


def _violation(field: str, message: str) -> ErrorItem:
    # The message names the attribute too: a dead letter keeps only the error and the value.
    return ErrorItem("schema_violation", field, f"{field}: {message}")
