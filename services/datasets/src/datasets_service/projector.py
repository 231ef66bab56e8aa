"""The datasets read model's projector: wiring, and a command to rebuild it from the log.

python -m datasets_service.projector rebuild   # drop the rows, replay wb.datasets.> from sequence 1
"""

import argparse
import asyncio
import logging

from sqlalchemy import Engine

from datasets_service.adapters.read_model import DatasetProjection, make_engine
from datasets_service.config import Settings
from eventlog import EventLog, ProjectionRunner

log = logging.getLogger(__name__)


def projection_runner(events: EventLog, engine: Engine) -> ProjectionRunner:
    """The runner that keeps datasets_datasets up to date (creates the tables if needed)."""
    return ProjectionRunner(events, engine, DatasetProjection())


async def rebuild(settings: Settings) -> int:
    """Drops the read model's rows and replays every dataset event; returns the position reached."""
    events = await EventLog.connect(settings.nats_url, stream=settings.event_stream, name="datasets-projector")
    engine = make_engine(settings.db_url)
    try:
        await events.ensure_stream()
        return await projection_runner(events, engine).rebuild()
    finally:
        await events.close()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m datasets_service.projector", description=__doc__)
    parser.add_argument("action", choices=["rebuild"])
    parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    position = asyncio.run(rebuild(Settings.from_env()))
    log.info("datasets read model rebuilt up to stream sequence %d", position)


if __name__ == "__main__":
    main()
