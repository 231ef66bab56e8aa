"""`python -m annotations_service`: runs the annotations service until SIGTERM or SIGINT."""

import asyncio
import logging
import signal
import sys

from annotations_service.bootstrap import start
from annotations_service.config import Config

log = logging.getLogger("annotations_service")


async def serve(config: Config) -> int:
    service = await start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait())
    # A projection that died would leave reads stale for good: stop, so the process is restarted.
    await asyncio.wait({stopping, service.projection_task}, return_when=asyncio.FIRST_COMPLETED)
    failed = service.projection_task.done()
    if failed:
        log.error("the read-model projection stopped; shutting down")
    stopping.cancel()
    log.info("stopping")
    await service.stop()
    return 1 if failed else 0


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(serve(Config.from_env())))


if __name__ == "__main__":
    main()
