"""`python -m annotations_service`: runs the annotations service until SIGTERM or SIGINT."""

import asyncio
import logging
import sys

from annotations_service.bootstrap import start
from annotations_service.config import Config
from eventlog.serving import run_until_stopped

log = logging.getLogger("annotations_service")


async def serve(config: Config) -> int:
    service = await start(config)
    return await run_until_stopped(service.projection_task, service.stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(serve(Config.from_env())))


if __name__ == "__main__":
    main()
