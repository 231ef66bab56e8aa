"""The port every inference backend implements, so the worker does not care which one runs a model.

Two backends, chosen by the model's `backend` in load_engine(): vLLM in-process (vllm_engine.py)
and any OpenAI-compatible server (openai_engine.py: `vllm serve` on another node, a hosted API).
"""

import asyncio
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from inference_service.domain.models import ModelSpec, Sampling

if TYPE_CHECKING:
    from inference_service.adapters.vllm_engine import VllmEngine


@dataclass(frozen=True, slots=True)
class Prompt:
    """One record's input: a plain prompt, or chat messages as (role, content) pairs."""

    text: str | None = None
    messages: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Generation:
    """What the engine produced for one prompt."""

    text: str
    finish_reason: str
    prompt_tokens: int
    output_tokens: int


class EngineError(Exception):
    """Base class of the engine port's errors."""


class EngineLoadError(EngineError):
    """The model cannot be loaded (missing files, bad config, not enough memory)."""


class EngineUnavailable(EngineError):
    """The engine stopped working; the shard must be retried, with a fresh engine."""


class RecordFailed(EngineError):
    """This one record cannot be generated (too long, bad chat template input); recorded as its error."""


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Knobs a worker passes to every engine it loads."""

    gpu_memory_utilization: float = 0.25
    enforce_eager: bool = True
    # For backend "openai": sent as a bearer token (WB_OPENAI_API_KEY); kept out of repr and logs.
    openai_api_key: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class EngineFacts:
    """What a loaded model is exactly, recorded on each run so that it can be reproduced."""

    name: str  # the engine and its version, e.g. "vllm 0.32.0"
    model_revision: str  # "local", the pinned revision, or what the engine resolved
    weights_hash: str = ""  # sha256 of the weights' index (or of the single weights file); "" unknown
    chat_template_hash: str = ""  # sha256 of the chat template applied to chat records; "" none


class Engine(Protocol):
    """A loaded model that generates many prompts concurrently."""

    @property
    def name(self) -> str:
        """The engine and its version, recorded on each run (e.g. "vllm 0.32.0")."""

    @property
    def facts(self) -> EngineFacts:
        """The model's exact identity (see EngineFacts)."""

    async def generate(self, prompt: Prompt, sampling: Sampling, request_id: str, json_schema: str = "") -> Generation:
        """Generates one prompt; call it many times at once, the engine batches them.

        json_schema (JSON text, when not empty): the answer must be valid JSON against it
        (structured output); RecordFailed when the engine cannot honour it for this record.
        """

    async def abort(self, request_ids: Sequence[str]) -> None:
        """Stops these generations now (a cancelled run); their generate() calls raise RecordFailed."""

    async def shutdown(self) -> None:
        """Frees the model and any processes it started."""


async def load_engine(spec: ModelSpec, options: EngineOptions) -> Engine:
    """Loads the backend that the model declares."""
    if spec.backend == "vllm":
        # Importing vLLM takes seconds: in a thread, so the worker's connections stay alive meanwhile.
        module = await asyncio.to_thread(importlib.import_module, "inference_service.adapters.vllm_engine")
        engine_class: type[VllmEngine] = module.VllmEngine
        return await engine_class.load(spec, options)
    if spec.backend == "openai":
        from inference_service.adapters.openai_engine import OpenAiEngine  # it imports this module

        return await OpenAiEngine.load(spec, options)
    raise EngineLoadError(f"model {spec.model_id}: backend {spec.backend!r} is not served by this worker yet")
