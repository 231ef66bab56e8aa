"""Cancellation that survives libraries which swallow it.

A loop that retries on `except Exception` never ends if a library turns the CancelledError it
received into an ordinary exception (nats-py's `publish_async` raises TooManyStalledMsgsError when
cancelled while waiting for its pending-publish semaphore): the loop catches it and goes round
again, and whoever cancelled the task (a service stopping, `asyncio.run` closing its loop) waits
forever. The task itself still knows it was asked to stop.
"""

import asyncio


def raise_if_cancelling() -> None:
    """Raises CancelledError when the current task has been asked to stop; call it in `except` blocks
    of loops that retry on errors."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
