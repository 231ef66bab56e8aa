"""Settings of the datasets service, read once from the environment at start (see servicehost.settings)."""

from servicehost.settings import ServiceSettings, setting


class DatasetsSettings(ServiceSettings):
    address: str = setting("WB_DATASETS_ADDR", "127.0.0.1:50051", "where the datasets service listens (gRPC)")
    db_url: str = setting(
        "WB_DATASETS_DB_URL", "sqlite:///var/datasets.db", "the datasets read model's database (SQLAlchemy URL)"
    )
    metrics_addr: str = setting(
        "WB_DATASETS_METRICS_ADDR", "127.0.0.1:9151", "where the datasets service serves /metrics (off: nowhere)"
    )
    max_upload_bytes: int = setting(
        "WB_MAX_UPLOAD_BYTES", 256 * 2**20, "largest dataset file accepted, in bytes (also the gateway's limit)", gt=0
    )
    cache_bytes: int = setting(
        "WB_DATASETS_CACHE_BYTES",
        256 * 2**20,
        "parsed files kept in memory for ReadRecords (sum of file sizes; the latest one is always kept)",
        gt=0,
    )
