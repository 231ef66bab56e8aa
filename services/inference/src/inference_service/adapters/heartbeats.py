"""Workers' heartbeats (WorkerHeartbeat on core NATS, wb.heartbeats.<worker>): when each was last heard of.

Not stored: a worker killed outright announces nothing, so its silence is what tells it is gone.
"""

import asyncio
import contextlib
import logging
from datetime import datetime

from google.protobuf.message import DecodeError
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from inference_service.domain.workers import HEARTBEAT_SUBJECTS
from servicehost.clock import Clock, utc_now
from workbench.inference.v1 import inference_pb2 as pb

log = logging.getLogger(__name__)


class HeartbeatWatch:
    """The application's WorkerLiveness, fed by a subscription."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock
        self._seen: dict[str, datetime] = {}
        self._subscription: Subscription | None = None

    def last_seen(self, worker: str) -> datetime | None:
        return self._seen.get(worker)

    async def start(self, nc: NatsClient) -> None:
        self._subscription = await nc.subscribe(HEARTBEAT_SUBJECTS, cb=self._heard)

    async def stop(self, within_s: float = 2.0) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):  # the connection may be closing; it goes anyway
                await asyncio.wait_for(self._subscription.unsubscribe(), within_s)

    async def _heard(self, msg: Msg) -> None:
        try:
            beat = pb.WorkerHeartbeat.FromString(msg.data)
        except DecodeError:
            log.debug("skipping a malformed heartbeat on %s", msg.subject)
            return
        self._seen[beat.worker] = self.clock()
