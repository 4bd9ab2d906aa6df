"""The message bus of a service: its handlers as a table from contract model to function.

A service declares what it handles by the models of the contract, not by type strings:

    bus = Handlers(
        {ReportEnforcement: handlers.report, DesignationCreated: handlers.designation, ...},
        load=handlers.load,   # the batch's state, read once for the whole batch
        save=handlers.save,   # what the batch changed, written once, in the batch's transaction
    )

The bus owns the per-message loop: each message runs in its own handling scope (causation,
derived ids, its trace span), a `Rejected` becomes that request's answer, and a message whose model
is not in the table is not this service's business. The types it answers and applies follow from
the table (`request_types`, `types`), so wiring, AsyncAPI and the parser cannot disagree with it."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, TypeVar

from pydantic import BaseModel

from credit_common.contracts.registry import REGISTRY, types_of
from credit_common.messaging.unit_of_work import Context, Incoming
from credit_common.outcomes import Outcome, Rejected

S = TypeVar("S")
Handle = Callable[[Incoming, Context, S], Outcome | Awaitable[Outcome]]
"""One message's handler: the message, the batch's unit of work, the batch's state."""


class Handlers(Generic[S]):
    """A service's handlers by contract model, with the batch's `load` and `save` around them.

    Called as a batch handler: loads the state of the batch, runs each message's handler in order
    against it, saves it, and returns one outcome per message. Each handler runs in its message's
    handling scope (causation, derived ids, its span) unless `scoped` is False: for a consumer
    whose handlers emit nothing, which then saves what it emits in scopes of its own."""

    def __init__(
        self,
        table: Mapping[type[BaseModel], Handle[S]],
        *,
        load: Callable[[Sequence[Incoming], Context], Awaitable[S]],
        save: Callable[[S, Context], Awaitable[None]] | None = None,
        scoped: bool = True,
    ) -> None:
        self.table = dict(table)
        self._scoped = scoped
        self._load = load
        self._save = save
        unknown = [m.__name__ for m in self.table if not types_of(m)]
        if unknown:
            raise ValueError(f"not models of the contract: {', '.join(unknown)}")

    @property
    def types(self) -> list[str]:
        """Every contract type this table handles, in registry order."""
        return [name for name, row in REGISTRY.items() if row.model in self.table]

    @property
    def request_types(self) -> list[str]:
        """The requests among them (each gets exactly one answer)."""
        return [name for name in self.types if REGISTRY[name].kind == "request"]

    async def __call__(self, items: Sequence[Incoming], ctx: Context) -> list[Outcome]:
        state = await self._load(items, ctx)
        outcomes: list[Outcome] = []
        for inc in items:
            handle = self.table.get(type(inc.data))
            if handle is None:
                outcomes.append(None)  # another service's message on a topic this one reads
                continue
            with ctx.handling(inc) if self._scoped else contextlib.nullcontext():
                try:
                    result = handle(inc, ctx, state)
                    outcome: Outcome = await result if inspect.isawaitable(result) else result
                except Rejected as rejected:
                    outcome = rejected
            outcomes.append(outcome)
        if self._save is not None:
            await self._save(state, ctx)
        return outcomes
