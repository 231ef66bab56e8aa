"""Settings of the inference API and of its workers, read once from the environment at start
(see servicehost.settings)."""

import os
import socket
from pathlib import Path
from typing import Annotated

from pydantic import field_validator
from pydantic_settings import NoDecode

from inference_service.adapters.engine import EngineOptions
from servicehost.settings import ProcessSettings, ServiceSettings, setting

_DATASETS_ADDR = ("WB_DATASETS_ADDR", "127.0.0.1:50051", "the datasets service (gRPC), asked for datasets and records")
_MODELS_FILE = ("WB_MODELS_FILE", Path("config/models.toml"), "the models file (TOML): the models that can be run")


class InferenceSettings(ServiceSettings):
    """The inference API (`python -m inference_service serve`)."""

    address: str = setting("WB_INFERENCE_ADDR", "127.0.0.1:50052", "where the inference service listens (gRPC)")
    db_url: str = setting(
        "WB_INFERENCE_DB_URL", "sqlite:///var/inference.db", "the runs read model's database (SQLAlchemy URL)"
    )
    metrics_addr: str = setting(
        "WB_INFERENCE_METRICS_ADDR", "127.0.0.1:9152", "where the inference service serves /metrics (port 0: any)"
    )
    datasets_addr: str = setting(*_DATASETS_ADDR)
    models_file: Path = setting(*_MODELS_FILE)
    shard_size: int = setting("WB_SHARD_SIZE", 256, "records per shard on the work queue", ge=1)


class WorkerSettings(ProcessSettings):
    """An inference worker (`python -m inference_service worker`): runs models from the work queue."""

    metrics_addr: str = setting(
        "WB_WORKER_METRICS_ADDR", "127.0.0.1:9154", "where a worker serves /metrics (port 0: any)"
    )
    datasets_addr: str = setting(*_DATASETS_ADDR)
    models_file: Path = setting(*_MODELS_FILE)
    models: Annotated[tuple[str, ...], NoDecode] = setting(
        "WB_WORKER_MODELS", (), "comma-separated ids of the models this worker serves (empty: every vllm model)"
    )
    worker_name: str = setting(
        "WB_WORKER_NAME", "", "recorded on RunStarted (empty: <hostname>-<pid>)", validate_default=True
    )
    max_shards: int = setting(
        "WB_WORKER_MAX_SHARDS",
        2,
        "shards in flight per model, so the engine's batch does not drain at a shard boundary",
        ge=1,
    )
    gpu_memory_utilization: float = setting(
        "WB_VLLM_GPU_MEMORY_UTILIZATION",
        0.25,
        "share of accelerator memory vLLM may take; on a CPU it sizes the KV cache from RAM "
        "unless VLLM_CPU_KVCACHE_SPACE is set",
        gt=0,
        le=1,
    )
    enforce_eager: bool = setting(
        "WB_VLLM_ENFORCE_EAGER", True, "skip graph capture and compilation: faster start, slower steps (false on GPUs)"
    )
    openai_api_key: str = setting(
        "WB_OPENAI_API_KEY",
        "",
        'bearer token sent to the servers of backend "openai" models (empty: none)',
        repr=False,
    )
    ack_wait_s: float = setting(
        "WB_WORKER_ACK_WAIT_S",
        60.0,
        "seconds before an unacknowledged shard goes to another worker; a busy worker extends it "
        "every third of that (every 10 s at most)",
        gt=0,
    )
    max_deliver: int = setting(
        "WB_WORKER_MAX_DELIVER",
        5,
        "deliveries of a shard before its records without a result are recorded as failed",
        ge=1,
    )
    generation_timeout_s: float = setting(
        "WB_WORKER_GENERATION_TIMEOUT_S",
        600.0,
        "seconds one record's generation may take from when it is handed to the engine (queueing included) "
        "before it is aborted and recorded as failed",
        gt=0,
    )
    drain_s: float = setting(
        "WB_WORKER_DRAIN_S",
        3.0,
        "on SIGTERM, how long shards in flight may finish before they are handed back to the queue; "
        "keep it well below the supervisor's stop timeout (10 s for `make run`)",
        ge=0,
    )

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("worker_name")
    @classmethod
    def _name_this_process(cls, value: str) -> str:
        return value or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def engine_options(self) -> EngineOptions:
        return EngineOptions(
            gpu_memory_utilization=self.gpu_memory_utilization,
            enforce_eager=self.enforce_eager,
            openai_api_key=self.openai_api_key,
        )
