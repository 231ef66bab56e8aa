"""Gateway settings, read once from the environment at start."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _default_frontend_dir() -> Path:
    # <repo>/frontend when running from a checkout; ./frontend otherwise (containers set WB_FRONTEND_DIR).
    beside_checkout = Path(__file__).resolve().parents[3] / "frontend"
    return beside_checkout if beside_checkout.is_dir() else Path.cwd() / "frontend"


@dataclass(frozen=True)
class Settings:
    """Everything the gateway needs to know about its surroundings.

    api_token: WB_API_TOKEN, required: the bearer token every API call and the WebSocket must send.
    nats_url: WB_NATS_URL (nats://127.0.0.1:4222); event_stream: WB_EVENT_STREAM (WB_EVENTS).
    datasets_addr / inference_addr / annotations_addr: WB_*_ADDR (127.0.0.1:50051 / 50052 / 50053).
    max_upload_bytes: WB_MAX_UPLOAD_BYTES (268435456): the largest dataset file accepted.
    host / port: WB_GATEWAY_HOST (127.0.0.1) / WB_GATEWAY_PORT (4080).
    frontend_dir: WB_FRONTEND_DIR (<repo>/frontend): the single-page app served at /.
    """

    api_token: str = field(repr=False)
    nats_url: str = "nats://127.0.0.1:4222"
    event_stream: str = "WB_EVENTS"
    datasets_addr: str = "127.0.0.1:50051"
    inference_addr: str = "127.0.0.1:50052"
    annotations_addr: str = "127.0.0.1:50053"
    max_upload_bytes: int = 268_435_456
    host: str = "127.0.0.1"
    port: int = 4080
    frontend_dir: Path = field(default_factory=_default_frontend_dir)

    def __post_init__(self) -> None:
        if not self.api_token.strip():
            raise ConfigError("WB_API_TOKEN is required: set it to a long random string, e.g. `openssl rand -hex 32`")
        if self.max_upload_bytes <= 0:
            raise ConfigError("WB_MAX_UPLOAD_BYTES must be a positive number of bytes")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        def integer(name: str, default: int) -> int:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return int(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None

        frontend = env.get("WB_FRONTEND_DIR")
        return cls(
            api_token=env.get("WB_API_TOKEN", ""),
            nats_url=env.get("WB_NATS_URL", cls.nats_url),
            event_stream=env.get("WB_EVENT_STREAM", cls.event_stream),
            datasets_addr=env.get("WB_DATASETS_ADDR", cls.datasets_addr),
            inference_addr=env.get("WB_INFERENCE_ADDR", cls.inference_addr),
            annotations_addr=env.get("WB_ANNOTATIONS_ADDR", cls.annotations_addr),
            max_upload_bytes=integer("WB_MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            host=env.get("WB_GATEWAY_HOST", cls.host),
            port=integer("WB_GATEWAY_PORT", cls.port),
            frontend_dir=Path(frontend) if frontend else _default_frontend_dir(),
        )
