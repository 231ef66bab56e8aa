"""Prints every model result the workbench records, as it is recorded (an example subscriber).

.venv/bin/python examples/subscribe_results.py --nats nats://127.0.0.1:4223 [--from-start]
"""

import argparse
import asyncio

import nats
from nats.js.api import DeliverPolicy

from workbench.inference.v1.inference_pb2 import ResultRecorded


async def main(url: str, from_start: bool) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
    sub = await js.subscribe("wb.results.>", ordered_consumer=True, deliver_policy=policy)
    async for msg in sub.messages:
        if (msg.headers or {}).get("Wb-Event-Type") != ResultRecorded.DESCRIPTOR.full_name:
            continue
        result = ResultRecorded.FromString(msg.data)
        status = f"error: {result.error}" if result.error else f"{result.output_tokens} tokens"
        print(f"{result.run_id} {result.model_id} {result.record_id}: {status}: {result.output_text[:80]!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nats", default="nats://127.0.0.1:4223")
    parser.add_argument("--from-start", action="store_true", help="replay every stored result first")
    args = parser.parse_args()
    asyncio.run(main(args.nats, args.from_start))
