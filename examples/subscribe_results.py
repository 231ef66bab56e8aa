"""Prints every model result the workbench records, as it is recorded (an example subscriber).

.venv/bin/python examples/subscribe_results.py --nats nats://127.0.0.1:4223 [--from-start]

Against the Kubernetes deployment, as the read-only user (docs/deploy.md), the password from the
environment so it is not on the command line:

NATS_USER=results-reader NATS_PASSWORD=... examples/subscribe_results.py --nats nats://nats.workbench:4222
"""

import argparse
import asyncio
import os
import uuid

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from workbench.inference.v1.inference_pb2 import ResultRecorded

STREAM = "WB_EVENTS"
RESULTS = "wb.results.>"
# The read-only user may only subscribe to inboxes under this prefix (not to other clients' replies).
INBOX_PREFIX = "_INBOX_results_reader"


async def main(url: str, from_start: bool, consumer: str) -> None:
    nc = await nats.connect(
        url,
        user=os.environ.get("NATS_USER") or None,
        password=os.environ.get("NATS_PASSWORD") or None,
        inbox_prefix=INBOX_PREFIX,
    )
    js = nc.jetstream()
    # A named consumer filtered to the results: the read-only user may create no other kind. The server
    # forgets it an hour after the last read; started again within the hour, it goes on where it stopped.
    await js.add_consumer(
        STREAM,
        ConsumerConfig(
            name=consumer,
            filter_subject=RESULTS,
            deliver_policy=DeliverPolicy.ALL if from_start else DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            inactive_threshold=3600.0,
        ),
    )
    sub = await js.pull_subscribe_bind(consumer, STREAM, inbox_prefix=f"{INBOX_PREFIX}.".encode())
    while True:
        try:
            messages = await sub.fetch(100, timeout=5)
        except nats.errors.TimeoutError:
            continue
        for msg in messages:
            if (msg.headers or {}).get("Wb-Event-Type") == ResultRecorded.DESCRIPTOR.full_name:
                result = ResultRecorded.FromString(msg.data)
                status = f"error: {result.error}" if result.error else f"{result.output_tokens} tokens"
                text = f"{result.output_text[:80]!r}"
                print(f"{result.run_id} {result.model_id} {result.record_id}: {status}: {text}", flush=True)
            await msg.ack()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nats", default="nats://127.0.0.1:4223")
    parser.add_argument("--from-start", action="store_true", help="replay every stored result first")
    parser.add_argument(
        "--consumer", default=f"results-{uuid.uuid4().hex[:8]}", help="the consumer's name (reuse it to resume)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.nats, args.from_start, args.consumer))
