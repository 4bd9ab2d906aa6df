"""What handling a message can come to, with no transport in sight: a request accepted (with the id
of what it created or changed) or rejected (with stable error codes), and the ids the platform
derives for what it emits. The services' domain rules raise and return these; the message bus
turns them into `credit.request.accepted` / `credit.request.rejected` on the feedback topic."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import uuid_utils


@dataclass(slots=True)
class ErrorItem:
    """One reason a request is refused: a contract error code, the field it is about, a message."""

    code: str
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "message": self.message}


class Rejected(Exception):
    """Raised by a request handler, before it writes anything, when a rule is broken."""

    def __init__(self, errors: Sequence[ErrorItem] | ErrorItem) -> None:
        self.errors = [errors] if isinstance(errors, ErrorItem) else list(errors)
        super().__init__("; ".join(f"{e.code}: {e.message}" for e in self.errors))


def reject(code: str, message: str, field: str | None = None) -> Rejected:
    """Shorthand: `raise reject("unknown_unit", "no unit 110000-XYZ", "source")`."""
    return Rejected(ErrorItem(code, field, message))


@dataclass(slots=True)
class Accepted:
    """A request was accepted; `result_id` is the id of what it created or changed. `detail`
    adds fields to the answer (an import's `imported` and `refused`, contracts.md Additions)."""

    result_id: str
    detail: dict[str, Any] | None = None


Outcome = Accepted | Rejected | None
"""What a handler comes to for one message (None: an event applied, nothing to answer)."""

_ID_NAMESPACE = uuid_utils.UUID("6f1c2e0a-7b3d-5e4f-9a8b-1c2d3e4f5a6b")


def is_platform_id(value: str) -> bool:
    """Whether `value` reads as a version-5 UUID, the form of every id the platform derives (in
    any spelling a UUID parser takes): a sender's request may not claim one."""
    try:
        return uuid.UUID(value).version == 5
    except (ValueError, AttributeError, TypeError):
        return False


def id_taken(id: str, what: str) -> Rejected:
    """The answer to a request whose id, which the contract makes the id of what it creates,
    already names one (`what`): another unit's request under the same id (requests are known by
    source and id, so it is not a retry). Raised by the handler: nothing is created."""
    return Rejected([ErrorItem("duplicate_id", "id", f"id {id} already names {what}")])


def request_key(source: str, id: str) -> str:
    """What a request is known by (contracts.md, Integrity rules: the key is (`source`, `id`)): two
    units' requests under one id are two requests. Envelope attributes hold no control characters,
    so the unit separator between the two cannot be forged from either side."""
    return f"{source}\x1f{id}"


def derived_id(cause: str, service: str, type: str, k: int = 0) -> str:
    """A stable event id for the k-th `type` event `service` emits because of event `cause`, so a
    rebuild by replay emits the very same ids (and downstream inboxes drop them)."""
    return str(uuid_utils.uuid5(_ID_NAMESPACE, f"{cause}|{service}|{type}|{k}"))
