"""`python -m datasets_service`: runs the datasets service until SIGTERM or SIGINT."""

import asyncio
import logging
import sys

from datasets_service.bootstrap import start
from datasets_service.config import Settings
from eventlog.serving import run_until_stopped

log = logging.getLogger("datasets_service")


async def serve(settings: Settings) -> int:
    service = await start(settings)
    log.info("listening on %s (events %s on %s)", settings.address, settings.event_stream, settings.nats_url)
    return await run_until_stopped(service.projector, service.stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(serve(Settings.from_env())))


if __name__ == "__main__":
    main()
