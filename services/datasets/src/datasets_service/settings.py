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
    max_line_bytes: int = setting(
        "WB_DATASETS_MAX_LINE_BYTES", 8 * 2**20, "largest record accepted: one JSONL line or CSV row, in bytes", gt=0
    )
    max_records: int = setting("WB_DATASETS_MAX_RECORDS", 1_000_000, "most records one dataset may hold", gt=0)
    page_records: int = setting(
        "WB_DATASETS_PAGE_RECORDS",
        1000,
        "records per stored page (a page also closes at about 2 MiB); reads fetch only the pages they need",
        gt=0,
    )
    spool_dir: str = setting(
        "WB_DATASETS_SPOOL_DIR",
        "",
        "where an upload is spooled while it is validated (empty: the system's temporary directory)",
    )
    cache_bytes: int = setting(
        "WB_DATASETS_CACHE_BYTES",
        64 * 2**20,
        "parsed pages of records kept in memory for reads, as the sum of their stored sizes (parsed, they take "
        "about twice that); the latest page is always kept",
        gt=0,
    )
