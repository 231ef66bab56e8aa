"""Settings, read once from the environment at start.

WB_NATS_URL           NATS server of the event log        (nats://127.0.0.1:4222)
WB_EVENT_STREAM       JetStream stream of the events       (WB_EVENTS)
WB_ANNOTATIONS_ADDR   where this service listens (gRPC)    (127.0.0.1:50053)
WB_DATASETS_ADDR      the datasets service (gRPC)          (127.0.0.1:50051)
WB_ANNOTATIONS_DB_URL the read model's database            (sqlite:///var/annotations.db)
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url


@dataclass(frozen=True, slots=True)
class Config:
    nats_url: str = "nats://127.0.0.1:4222"
    event_stream: str = "WB_EVENTS"
    address: str = "127.0.0.1:50053"
    datasets_address: str = "127.0.0.1:50051"
    db_url: str = "sqlite:///var/annotations.db"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Config":
        defaults = cls()
        return cls(
            nats_url=env.get("WB_NATS_URL", defaults.nats_url),
            event_stream=env.get("WB_EVENT_STREAM", defaults.event_stream),
            address=env.get("WB_ANNOTATIONS_ADDR", defaults.address),
            datasets_address=env.get("WB_DATASETS_ADDR", defaults.datasets_address),
            db_url=env.get("WB_ANNOTATIONS_DB_URL", defaults.db_url),
        )

    def prepare_db_folder(self) -> None:
        """Creates the folder of a SQLite database file, so a first start just works."""
        url = make_url(self.db_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
