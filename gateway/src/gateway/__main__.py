"""`python -m gateway`: serves the workbench on WB_GATEWAY_HOST:WB_GATEWAY_PORT."""

import logging
import sys

import uvicorn

from gateway.app import create_app
from gateway.config import ConfigError, Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"gateway: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.getLogger("gateway").info("listening on http://%s:%d", settings.host, settings.port)
    # uvicorn handles SIGTERM/SIGINT: it stops accepting, finishes requests, then runs the lifespan's exit.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
