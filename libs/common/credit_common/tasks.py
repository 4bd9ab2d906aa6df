"""Small asyncio helpers shared by the runtime's long-running loops."""

from __future__ import annotations

import asyncio
import contextlib


async def finish_or_cancel(task: asyncio.Task[None] | None, timeout: float = 10.0) -> None:
    """Let a loop that was told to stop finish what it has in hand, for at most `timeout` seconds;
    cancel it after that (or when the caller itself is cancelled)."""
    if task is None:
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
    except (TimeoutError, asyncio.CancelledError):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def unasked_cancellation(exc: BaseException) -> bool:
    """A CancelledError nobody asked for: the task it surfaced in is not being cancelled (a
    library let one escape from an internal timeout or a race). It is the failure it stands for,
    retried like one. Taken as a request to stop, it ends a loop in silence: the likeliest cause
    of a consumer the chaos suite saw end without a word after its instance was cut off from
    PostgreSQL (a loop that ends unasked is now logged with its cause)."""
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() == 0
