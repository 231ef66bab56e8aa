"""Gateway settings, read once from the environment at start (see servicehost.settings)."""

from pathlib import Path

from pydantic import field_validator

from servicehost.settings import CommonSettings, setting

LOGIN_BURST = 20  # tries at POST /auth/login a client address may make at once above WB_LOGIN_RATE_PER_S


def _default_frontend_dir() -> Path:
    # <repo>/frontend when running from a checkout; ./frontend otherwise (containers set WB_FRONTEND_DIR).
    beside_checkout = Path(__file__).resolve().parents[3] / "frontend"
    return beside_checkout if beside_checkout.is_dir() else Path.cwd() / "frontend"


class GatewaySettings(CommonSettings):
    api_token: str = setting(
        "WB_API_TOKEN",
        "",
        "required: the bootstrap admin's bearer token (the first admin; `workbench users add` makes the others)",
        repr=False,
    )
    admin_name: str = setting("WB_ADMIN_NAME", "admin", "the bootstrap admin's user name (WB_API_TOKEN's holder)")
    session_secret: str = setting(
        "WB_SESSION_SECRET", "", "key of the session cookies (default: derived from WB_API_TOKEN)", repr=False
    )
    session_hours: float = setting("WB_SESSION_HOURS", 12.0, "how long a page's login lasts, in hours", gt=0)
    login_link_minutes: float = setting(
        "WB_LOGIN_LINK_MINUTES", 15.0, "how long a one-time login link can be used, in minutes", gt=0
    )
    secure_cookies: bool = setting(
        "WB_SECURE_COOKIES", False, "mark the session cookie Secure (set it when the workbench is served over HTTPS)"
    )
    rate_limit_per_s: float = setting(
        "WB_RATE_LIMIT_PER_S",
        50.0,
        "API requests a second each token (or a user's sessions) may make on average (0: none)",
        ge=0,
    )
    rate_limit_burst: int = setting("WB_RATE_LIMIT_BURST", 200, "requests a user may make at once above the rate", ge=1)
    login_rate_per_s: float = setting(
        "WB_LOGIN_RATE_PER_S",
        1.0,
        f"tries a second each client address may make at POST /auth/login on average, {LOGIN_BURST} at once (0: none)",
        ge=0,
    )
    max_json_bytes: int = setting("WB_MAX_JSON_BYTES", 1_048_576, "largest JSON request body, in bytes", gt=0)
    max_text_chars: int = setting(
        "WB_MAX_TEXT_CHARS", 100_000, "longest free text in a request (a note, a fixed answer), in characters", gt=0
    )
    max_id_chars: int = setting(
        "WB_MAX_ID_CHARS", 256, "longest id or name in a request (dataset, record, model, run ids)", gt=0, le=1024
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
