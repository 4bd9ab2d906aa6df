"""The request ledger's other half: answers to requests that other services (or this one, over
HTTP ingress) handled, read from the feedback topic into the ledger `GET /v1/requests/{id}` serves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from credit_common.contracts import events as ev
from credit_common.messaging.bus import Handlers
from credit_common.messaging.unit_of_work import Context, Incoming

from .store import record_answers

OWN_SOURCE = b'"source":"platform/designation"'


def own_answer(record: Any) -> bool:
    """This service's own answers are already in the ledger: pass over them unparsed. (A cheap
    test on the bytes our serializer writes; a miss only costs a no-op upsert.)"""
    return record.value is not None and OWN_SOURCE in record.value


def feedback_bus() -> Handlers[list[tuple[Any, ...]]]:
    """Other services' answers on the feedback topic into the request ledger (for requests that
    came in through this service's HTTP ingress, and any other)."""
    return Handlers(
        {ev.RequestAccepted: _ledger_row, ev.RequestRejected: _ledger_row},
        load=_no_rows,
        save=_record_rows,
        scoped=False,
    )


async def _no_rows(items: Sequence[Incoming], ctx: Context) -> list[tuple[Any, ...]]:
    return []


def _ledger_row(inc: Incoming, ctx: Context, rows: list[tuple[Any, ...]]) -> None:
    data = inc.event.data if isinstance(inc.event.data, dict) else {}
    status = "accepted" if isinstance(inc.data, ev.RequestAccepted) else "rejected"
    request_id = str(data.get("request_id", ""))
    if request_id:
        rows.append(
            (
                request_id,
                str(data.get("request_type", "")),
                inc.key.decode("utf-8", "replace") if inc.key else None,
                status,
                data.get("result_id"),
                data.get("errors"),
                inc.event.source,
                inc.at,
            )
        )


async def _record_rows(rows: list[tuple[Any, ...]], ctx: Context) -> None:
    await record_answers(ctx.conn, rows)
