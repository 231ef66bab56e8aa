"""The work queue: a JetStream work-queue stream (WB_WORK) of RunShard messages, one subject per model.

Every worker serving a model pulls from one shared durable consumer (worker-<model_id>), so a shard
goes to one worker at a time and comes back after AckWait when that worker dies.
"""

import asyncio
import logging
from collections.abc import Sequence

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError

from eventlog import DUPLICATE_IN_PROCESS, patiently, settle_async_errors
from inference_service.domain.errors import Unavailable
from workbench.inference.v1 import inference_pb2 as pb

log = logging.getLogger(__name__)

WORK_STREAM = "WB_WORK"
WORK_SUBJECTS = "wb.work.>"
PUBLISH_TIMEOUT_S = 30.0  # nats-py never fails a publish whose answer is lost (a server restart)


def work_subject(model_id: str) -> str:
    return f"wb.work.{model_id}"


def consumer_name(model_id: str) -> str:
    return f"worker-{model_id}"


def shard_msg_id(shard: pb.RunShard) -> str:
    return f"shard:{shard.run_id}:{shard.offset}"


class WorkQueue:
    """Shards of runs: published by the API, pulled by the workers."""

    def __init__(self, nc: NatsClient, stream: str = WORK_STREAM, publish_timeout_s: float = PUBLISH_TIMEOUT_S) -> None:
        self.js: JetStreamContext = nc.jetstream()
        settle_async_errors(self.js)
        self.stream = stream
        self.publish_timeout_s = publish_timeout_s

    async def ensure_stream(self, replicas: int = 1, duplicate_window_s: float = 24 * 3600) -> None:
        """Creates the work-queue stream when missing (replicas: 1 on one server, 3 in a cluster);
        safe to call from every process at start."""
        await patiently(lambda: self._ensure_stream(replicas, duplicate_window_s), f"creating stream {self.stream}")

    async def _ensure_stream(self, replicas: int, duplicate_window_s: float) -> None:
        try:
            await self.js.stream_info(self.stream)
        except NotFoundError:
            await self.js.add_stream(
                api.StreamConfig(
                    name=self.stream,
                    subjects=[WORK_SUBJECTS],
                    retention=api.RetentionPolicy.WORK_QUEUE,
                    storage=api.StorageType.FILE,
                    duplicate_window=duplicate_window_s,
                    num_replicas=replicas,
                )
            )

    async def publish(self, shards: Sequence[pb.RunShard]) -> None:
        """Enqueues shards, many in flight; each has a deterministic message id, so a retry is a no-op.

        Raises Unavailable when the server has not confirmed them all within publish_timeout_s.
        """
        try:
            await asyncio.wait_for(self._publish(shards), self.publish_timeout_s)
        except TimeoutError:
            raise Unavailable(
                f"the work queue (NATS stream {self.stream}) did not confirm {len(shards)} shards within "
                f"{self.publish_timeout_s:g} s; is nats-server up? Try again (shards already stored are not doubled)"
            ) from None

    async def _publish(self, shards: Sequence[pb.RunShard]) -> None:
        futures = [
            await self.js.publish_async(
                work_subject(shard.model_id),
                shard.SerializeToString(),
                headers={"Nats-Msg-Id": shard_msg_id(shard)},
                stream=self.stream,
            )
            for shard in shards
        ]
        answers = await asyncio.gather(*futures, return_exceptions=True)
        for shard, answer in zip(shards, answers, strict=True):
            if isinstance(answer, APIError) and answer.err_code == DUPLICATE_IN_PROCESS:
                await self._publish_again(shard)  # another publish (the reconciler's) is storing it
            elif isinstance(answer, BaseException):
                raise answer

    async def _publish_again(self, shard: pb.RunShard) -> None:
        """Publishes the shard until the cluster answers it as stored (or as the duplicate of the one stored)."""
        while True:
            try:
                await self.js.publish(
                    work_subject(shard.model_id),
                    shard.SerializeToString(),
                    headers={"Nats-Msg-Id": shard_msg_id(shard)},
                    stream=self.stream,
                )
                return
            except APIError as error:
                if error.err_code != DUPLICATE_IN_PROCESS:
                    raise
            await asyncio.sleep(0.02)

    async def subscribe(self, model_id: str, ack_wait_s: float, max_deliver: int) -> JetStreamContext.PullSubscription:
        """Binds to the model's shared durable consumer, creating it when missing.

        A consumer made earlier with another ack_wait or max_deliver is updated to these: the
        worker's keep-alive period is derived from ack_wait, so a stale one would redeliver shards
        that are still being worked on.
        """
        return await patiently(
            lambda: self._subscribe(model_id, ack_wait_s, max_deliver), f"binding to consumer {consumer_name(model_id)}"
        )

    async def _subscribe(self, model_id: str, ack_wait_s: float, max_deliver: int) -> JetStreamContext.PullSubscription:
        name = consumer_name(model_id)
        config = api.ConsumerConfig(
            durable_name=name,
            filter_subject=work_subject(model_id),
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait_s,
            max_deliver=max_deliver,
            deliver_policy=api.DeliverPolicy.ALL,
        )
        try:
            info = await self.js.consumer_info(self.stream, name)
        except NotFoundError:
            await self.js.add_consumer(self.stream, config)
        else:
            current = info.config
            if current.ack_wait != ack_wait_s or current.max_deliver != max_deliver:
                log.info(
                    "consumer %s: ack_wait %s s -> %g s, max_deliver %s -> %d",
                    name,
                    current.ack_wait,
                    ack_wait_s,
                    current.max_deliver,
                    max_deliver,
                )
                # Creating a durable that exists updates it (nats-server 2.10+); the rest of its config stays.
                await self.js.add_consumer(self.stream, current.evolve(ack_wait=ack_wait_s, max_deliver=max_deliver))
        return await self.js.pull_subscribe_bind(name, stream=self.stream)
