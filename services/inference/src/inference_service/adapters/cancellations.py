"""Cancellations heard as they are stored: a core NATS subscription to the runs' subjects.

JetStream stores each event of wb.runs.<run_id> and delivers it to core subscribers of that subject
too, so a worker hears a RunCancelled within milliseconds. A message missed while disconnected is
caught by the shard job's own look at the run's state every few seconds.
"""

import asyncio
import contextlib
import logging

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from eventlog import RawEvent
from workbench.inference.v1 import inference_pb2 as pb

log = logging.getLogger(__name__)

RUN_SUBJECTS = "wb.runs.*"


class CancelWatch:
    """The runs cancelled since the worker started, as events a shard job can wait on (one small
    entry per run the worker has worked on or heard cancelled)."""

    def __init__(self) -> None:
        self._cancelled: dict[str, asyncio.Event] = {}
        self._subscription: Subscription | None = None

    def event_for(self, run_id: str) -> asyncio.Event:
        return self._cancelled.setdefault(run_id, asyncio.Event())

    async def start(self, nc: NatsClient) -> None:
        self._subscription = await nc.subscribe(RUN_SUBJECTS, cb=self._heard)

    async def stop(self, within_s: float = 2.0) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):  # the connection may be closing; it goes anyway
                await asyncio.wait_for(self._subscription.unsubscribe(), within_s)

    async def _heard(self, msg: Msg) -> None:
        raw = RawEvent(0, msg.subject, msg.data, dict(msg.headers or {}))
        if raw.type_name != pb.RunCancelled.DESCRIPTOR.full_name:
            return
        try:
            stored = raw.decode()
        except Exception:
            log.debug("skipping an undecodable run event on %s", msg.subject)
            return
        if stored is not None and isinstance(stored.event, pb.RunCancelled):
            self.event_for(stored.event.run_id).set()
