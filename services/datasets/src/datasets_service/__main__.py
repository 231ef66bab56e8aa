"""`python -m datasets_service`: runs the datasets service until SIGTERM or SIGINT."""

import asyncio
import logging
import signal
import sys

from datasets_service.bootstrap import start
from datasets_service.config import Settings

log = logging.getLogger("datasets_service")


async def serve(settings: Settings) -> int:
    service = await start(settings)
    log.info("listening on %s (events %s on %s)", settings.address, settings.event_stream, settings.nats_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait())
    # A projector that dies would leave reads stale forever: stop the service, so it is restarted.
    await asyncio.wait({stopping, service.projector}, return_when=asyncio.FIRST_COMPLETED)
    failed = service.projector.done()
    if failed:
        log.error("the read-model projector stopped; shutting down")
    stopping.cancel()
    log.info("stopping")
    await service.stop()
    return 1 if failed else 0


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(serve(Settings.from_env())))


if __name__ == "__main__":
    main()
