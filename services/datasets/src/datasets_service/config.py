"""Settings of the datasets service, read once from the environment at start.

| variable                | default                    | meaning                                           |
| ----------------------- | -------------------------- | ------------------------------------------------- |
| WB_NATS_URL             | nats://127.0.0.1:4222      | NATS server (JetStream) holding events and files  |
| WB_EVENT_STREAM         | WB_EVENTS                  | the event stream                                  |
| WB_DATASETS_ADDR        | 127.0.0.1:50051            | where this service's gRPC server listens          |
| WB_DATASETS_DB_URL      | sqlite:///var/datasets.db  | read-model database (SQLAlchemy URL)              |
| WB_MAX_UPLOAD_BYTES     | 268435456 (256 MiB)        | largest dataset file accepted                     |
| WB_DATASETS_CACHE_BYTES | 268435456 (256 MiB)        | parsed files kept in memory for ReadRecords (sum  |
|                         |                            | of file sizes; the latest one is always kept)     |
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from eventlog import DEFAULT_STREAM


@dataclass(frozen=True, slots=True)
class Settings:
    nats_url: str = "nats://127.0.0.1:4222"
    event_stream: str = DEFAULT_STREAM
    address: str = "127.0.0.1:50051"
    db_url: str = "sqlite:///var/datasets.db"
    max_upload_bytes: int = 256 * 2**20
    cache_bytes: int = 256 * 2**20

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        default = cls()
        return cls(
            nats_url=env.get("WB_NATS_URL", default.nats_url),
            event_stream=env.get("WB_EVENT_STREAM", default.event_stream),
            address=env.get("WB_DATASETS_ADDR", default.address),
            db_url=env.get("WB_DATASETS_DB_URL", default.db_url),
            max_upload_bytes=_positive_int(env, "WB_MAX_UPLOAD_BYTES", default.max_upload_bytes),
            cache_bytes=_positive_int(env, "WB_DATASETS_CACHE_BYTES", default.cache_bytes),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of bytes, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value
