"""Gateway settings, read once from the environment at start (see servicehost.settings)."""

from pathlib import Path

from pydantic import field_validator

from servicehost.settings import CommonSettings, setting


def _default_frontend_dir() -> Path:
    # <repo>/frontend when running from a checkout; ./frontend otherwise (containers set WB_FRONTEND_DIR).
    beside_checkout = Path(__file__).resolve().parents[3] / "frontend"
    return beside_checkout if beside_checkout.is_dir() else Path.cwd() / "frontend"


class GatewaySettings(CommonSettings):
    api_token: str = setting(
        "WB_API_TOKEN", "", "required: the bearer token every API call and the WebSocket must send", repr=False
    )
    datasets_addr: str = setting("WB_DATASETS_ADDR", "127.0.0.1:50051", "the datasets service (gRPC)")
    inference_addr: str = setting("WB_INFERENCE_ADDR", "127.0.0.1:50052", "the inference service (gRPC)")
    annotations_addr: str = setting("WB_ANNOTATIONS_ADDR", "127.0.0.1:50053", "the annotations service (gRPC)")
    max_upload_bytes: int = setting(
        "WB_MAX_UPLOAD_BYTES",
        268_435_456,
        "largest dataset file accepted, in bytes (also the datasets service's)",
        gt=0,
    )
    host: str = setting("WB_GATEWAY_HOST", "127.0.0.1", "the address the web page and API listen on")
    port: int = setting("WB_GATEWAY_PORT", 4080, "the port the web page and API listen on", ge=0, le=65535)
    frontend_dir: Path = setting(
        "WB_FRONTEND_DIR", _default_frontend_dir(), "the single-page app's files (default: frontend/ of the checkout)"
    )
    live_backlog_bytes: int = setting(
        "WB_LIVE_BACKLOG_BYTES",
        4_194_304,
        "live frames one WebSocket may have waiting, in bytes; a page further behind is closed (4001) and resumes",
        gt=0,
    )

    @field_validator("api_token")
    @classmethod
    def _token_is_set(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is required: set it to a long random string, e.g. `openssl rand -hex 32`")
        return value
