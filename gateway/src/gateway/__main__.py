"""`python -m gateway`: serves the workbench on WB_GATEWAY_HOST:WB_GATEWAY_PORT."""

import logging
import sys

import uvicorn

from gateway import access_log
from gateway.app import create_app
from gateway.settings import GatewaySettings
from servicehost.cli import configure_logging
from servicehost.settings import SettingsError


def main() -> None:
    try:
        settings = GatewaySettings.from_env()
    except SettingsError as error:
        print(f"gateway: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    access_log.install()
    logging.getLogger("gateway").info("listening on http://%s:%d", settings.host, settings.port)
    # uvicorn handles SIGTERM/SIGINT: it stops accepting, finishes requests, then runs the lifespan's exit.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower())


if __name__ == "__main__":
    main()
