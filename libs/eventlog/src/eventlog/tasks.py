"""Cancellation that survives libraries which swallow it.

A loop that retries on `except Exception` never ends if a library turns the CancelledError it
received into an ordinary exception (nats-py's `publish_async` raises TooManyStalledMsgsError when
cancelled while waiting for its pending-publish semaphore): the loop catches it and goes round
again, and whoever cancelled the task (a service stopping, `asyncio.run` closing its loop) waits
forever. The task itself still knows it was asked to stop.

The other way round, a cancellation can vanish: on Python 3.11 `asyncio.wait_for` returns the result
instead of raising when the awaited reply had already arrived as the cancellation came (nats-py
sends every JetStream API request, a subscription's too, through it). Whoever cancels a task and
waits for it must be ready to ask again.
"""

import asyncio
from typing import Any

CANCEL_AGAIN_EVERY_S = 1.0


def raise_if_cancelling() -> None:
    """Raises CancelledError when the current task has been asked to stop; call it in `except` blocks
    of loops that retry on errors."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(*tasks: "asyncio.Future[Any]", every_s: float = CANCEL_AGAIN_EVERY_S) -> None:
    """Cancels the tasks and waits until every one has ended, cancelling those still running again
    every every_s seconds in case a library swallowed the request. What they raised is retrieved (so
    asyncio does not report it as never retrieved), not raised: look at each task for it."""
    running = {task for task in tasks if not task.done()}
    while running:
        for task in running:
            task.cancel()
        _, running = await asyncio.wait(running, timeout=every_s)
    for task in tasks:
        if not task.cancelled():
            task.exception()
