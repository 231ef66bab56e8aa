"""Settings of the inference API and of its workers, read once from the environment at start."""

import os
import socket
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from inference_service.adapters.engine import EngineOptions


@dataclass(frozen=True, slots=True)
class Settings:
    """The inference API (`python -m inference_service serve`).

    WB_NATS_URL          NATS server with JetStream (nats://127.0.0.1:4222)
    WB_EVENT_STREAM      the event stream's name (WB_EVENTS)
    WB_INFERENCE_ADDR    where this service listens for gRPC (127.0.0.1:50052)
    WB_DATASETS_ADDR     the datasets service, asked whether a dataset exists (127.0.0.1:50051)
    WB_INFERENCE_DB_URL  the read model's database (sqlite:///var/inference.db; its folder is created)
    WB_MODELS_FILE       the models file (config/models.toml)
    WB_SHARD_SIZE        records per shard on the work queue (256)
    """

    nats_url: str = "nats://127.0.0.1:4222"
    event_stream: str = "WB_EVENTS"
    inference_addr: str = "127.0.0.1:50052"
    datasets_addr: str = "127.0.0.1:50051"
    db_url: str = "sqlite:///var/inference.db"
    models_file: Path = Path("config/models.toml")
    shard_size: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        default = cls()
        return cls(
            nats_url=env.get("WB_NATS_URL", default.nats_url),
            event_stream=env.get("WB_EVENT_STREAM", default.event_stream),
            inference_addr=env.get("WB_INFERENCE_ADDR", default.inference_addr),
            datasets_addr=env.get("WB_DATASETS_ADDR", default.datasets_addr),
            db_url=env.get("WB_INFERENCE_DB_URL", default.db_url),
            models_file=Path(env.get("WB_MODELS_FILE", str(default.models_file))),
            shard_size=_positive_int(env, "WB_SHARD_SIZE", default.shard_size),
        )


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """An inference worker (`python -m inference_service worker`).

    WB_NATS_URL, WB_EVENT_STREAM, WB_DATASETS_ADDR, WB_MODELS_FILE   as for the API
    WB_WORKER_MODELS                  comma-separated model ids to serve (empty: every vllm model in the file)
    WB_WORKER_NAME                    recorded on RunStarted (<hostname>-<pid>)
    WB_WORKER_MAX_SHARDS              shards in flight per model, so the engine's batch does not drain
                                      at a shard boundary (2)
    WB_VLLM_GPU_MEMORY_UTILIZATION    share of accelerator memory vLLM may take; on a CPU it sizes the
                                      KV cache from RAM unless VLLM_CPU_KVCACHE_SPACE is set (0.25)
    WB_VLLM_ENFORCE_EAGER             skip graph capture and compilation: faster start, slower steps (true)
    WB_WORKER_ACK_WAIT_S              seconds before an unacknowledged shard goes to another worker (60);
                                      a busy worker extends it every third of that (every 10 s at most)
    WB_WORKER_MAX_DELIVER             deliveries of a shard before its run is failed (5)
    """

    nats_url: str = "nats://127.0.0.1:4222"
    event_stream: str = "WB_EVENTS"
    datasets_addr: str = "127.0.0.1:50051"
    models_file: Path = Path("config/models.toml")
    models: tuple[str, ...] = ()
    worker_name: str = ""
    max_shards: int = 2
    gpu_memory_utilization: float = 0.25
    enforce_eager: bool = True
    ack_wait_s: float = 60.0
    max_deliver: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "WorkerSettings":
        default = cls()
        models = tuple(part.strip() for part in env.get("WB_WORKER_MODELS", "").split(",") if part.strip())
        return cls(
            nats_url=env.get("WB_NATS_URL", default.nats_url),
            event_stream=env.get("WB_EVENT_STREAM", default.event_stream),
            datasets_addr=env.get("WB_DATASETS_ADDR", default.datasets_addr),
            models_file=Path(env.get("WB_MODELS_FILE", str(default.models_file))),
            models=models,
            worker_name=env.get("WB_WORKER_NAME") or f"{socket.gethostname()}-{os.getpid()}",
            max_shards=_positive_int(env, "WB_WORKER_MAX_SHARDS", default.max_shards),
            gpu_memory_utilization=_fraction(env, "WB_VLLM_GPU_MEMORY_UTILIZATION", default.gpu_memory_utilization),
            enforce_eager=_flag(env, "WB_VLLM_ENFORCE_EAGER", default.enforce_eager),
            ack_wait_s=float(_positive_int(env, "WB_WORKER_ACK_WAIT_S", int(default.ack_wait_s))),
            max_deliver=_positive_int(env, "WB_WORKER_MAX_DELIVER", default.max_deliver),
        )

    @property
    def engine_options(self) -> EngineOptions:
        return EngineOptions(gpu_memory_utilization=self.gpu_memory_utilization, enforce_eager=self.enforce_eager)


# vLLM settings for the CPU build, applied by the worker only where the user has not set them:
#   VLLM_CPU_KVCACHE_SPACE=1   GiB of RAM for the KV cache; plenty for small models, and it keeps
#                              several workers and services on one machine (the default takes a share of all RAM).
#                              The GPU build ignores it.
VLLM_CPU_DEFAULTS = {"VLLM_CPU_KVCACHE_SPACE": "1"}


def apply_vllm_defaults(env: MutableMapping[str, str] = os.environ) -> None:
    """Sets VLLM_CPU_DEFAULTS in env where they are unset (before vLLM is imported)."""
    for name, value in VLLM_CPU_DEFAULTS.items():
        env.setdefault(name, value)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be 1 or more, got {value}")
    return value


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number between 0 and 1, got {raw!r}") from None
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")
