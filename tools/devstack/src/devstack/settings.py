"""What `make run` (python -m devstack run) reads from the environment; every variable is optional.

The services' own variables (WB_*_DB_URL, WB_LOG_LEVEL, WB_WORKER_*, ...) pass through to them
untouched: a user's choice (Postgres read models, say) is never overwritten.
"""

from pathlib import Path

from servicehost.settings import Settings, setting

REPO = Path(__file__).resolve().parents[4]


class DevstackSettings(Settings):
    var_dir: Path = setting("WB_VAR_DIR", REPO / "var", "JetStream data, SQLite read models, logs, demo models")
    api_token: str = setting("WB_API_TOKEN", "", "the API token (empty: generated once, kept in <var>/api-token)")
    models_file: Path = setting(
        "WB_MODELS_FILE", REPO / "config" / "models.toml", "the models file (default: two tiny demo models)"
    )
    nats_port: int = setting(
        "WB_NATS_PORT",
        4223,
        "the embedded nats-server's port (4222 is often a system NATS); with --cluster the first of three "
        "client ports, their route ports 10 above and their monitoring ports 20 above",
    )
    nats_sync: str = setting(
        "WB_NATS_SYNC",
        "default",
        "when nats-server fsyncs JetStream writes (its sync_interval): default (every 2 minutes), always "
        "(every write), or a duration such as 1s",
        pattern=r"^(default|always|[0-9]+(ms|s|m|h))$",
    )
    datasets_port: int = setting("WB_DATASETS_PORT", 50051, "the datasets service's gRPC port")
    inference_port: int = setting("WB_INFERENCE_PORT", 50052, "the inference service's gRPC port")
    annotations_port: int = setting("WB_ANNOTATIONS_PORT", 50053, "the annotations service's gRPC port")
    gateway_port: int = setting("WB_GATEWAY_PORT", 4080, "the web page and API")
    datasets_metrics_port: int = setting("WB_DATASETS_METRICS_PORT", 9151, "the datasets service's /metrics")
    inference_metrics_port: int = setting("WB_INFERENCE_METRICS_PORT", 9152, "the inference service's /metrics")
    annotations_metrics_port: int = setting("WB_ANNOTATIONS_METRICS_PORT", 9153, "the annotations service's /metrics")
    worker_metrics_port: int = setting("WB_WORKER_METRICS_PORT", 9154, "the inference worker's /metrics")
    services_nice: int = setting(
        "WB_SERVICES_NICE",
        10,
        "how much nicer (lower CPU priority) the services and the gateway run than the worker: "
        "on a shared machine the engine is the bottleneck (0: the same)",
        ge=0,
        le=19,
    )
