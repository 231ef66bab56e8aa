"""Settings of the annotations service, read once from the environment at start (see servicehost.settings)."""

from servicehost.settings import ServiceSettings, setting


class AnnotationsSettings(ServiceSettings):
    address: str = setting("WB_ANNOTATIONS_ADDR", "127.0.0.1:50053", "where the annotations service listens (gRPC)")
    db_url: str = setting(
        "WB_ANNOTATIONS_DB_URL",
        "sqlite:///var/annotations.db",
        "the annotations read model's database (SQLAlchemy URL)",
    )
    metrics_addr: str = setting(
        "WB_ANNOTATIONS_METRICS_ADDR",
        "127.0.0.1:9153",
        "where the annotations service serves /metrics (off: nowhere)",
    )
    datasets_addr: str = setting(
        "WB_DATASETS_ADDR", "127.0.0.1:50051", "the datasets service, whose records an export reads (gRPC)"
    )
    label_studio_url: str = setting(
        "WB_LABEL_STUDIO_URL",
        "",
        "the Label Studio server datasets are synced with (e.g. http://127.0.0.1:8080; empty: none)",
    )
    label_studio_token: str = setting(
        "WB_LABEL_STUDIO_TOKEN",
        "",
        "the API token the annotations service sends to Label Studio (never logged)",
        repr=False,
    )
