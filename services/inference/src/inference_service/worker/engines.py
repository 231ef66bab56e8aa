"""A worker's engines: each model loaded at most once per process, on first use, and reused across runs."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from inference_service.adapters.engine import Engine, EngineLoadError, EngineOptions, load_engine
from inference_service.domain.errors import NotFound
from inference_service.domain.models import ModelSpec

log = logging.getLogger(__name__)

Loader = Callable[[ModelSpec, EngineOptions], Awaitable[Engine]]


class LoadWatcher(Protocol):
    """Told when a model starts loading and how it ended (the worker's Presence)."""

    async def loading(self, model_id: str) -> None: ...

    async def loaded(self, model_id: str, error: str = "") -> None: ...


class _Unwatched:
    async def loading(self, model_id: str) -> None:
        pass

    async def loaded(self, model_id: str, error: str = "") -> None:
        pass


class EngineCache:
    """The engines of the models a worker serves, by model id."""

    def __init__(
        self,
        models: Mapping[str, ModelSpec],
        options: EngineOptions,
        loader: Loader = load_engine,
        watcher: LoadWatcher | None = None,
    ) -> None:
        self.models = dict(models)
        self.options = options
        self.loader = loader
        self.watcher: LoadWatcher = watcher or _Unwatched()
        self._engines: dict[str, Engine] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def spec(self, model_id: str) -> ModelSpec:
        try:
            return self.models[model_id]
        except KeyError:
            raise NotFound(f"model {model_id!r} is not served by this worker") from None

    async def get(self, model_id: str) -> Engine:
        """The model's engine, loading it first if needed (EngineLoadError when it cannot load)."""
        engine = self._engines.get(model_id)
        if engine is not None:
            return engine
        async with self._locks.setdefault(model_id, asyncio.Lock()):
            engine = self._engines.get(model_id)
            if engine is None:
                spec = self.spec(model_id)
                await self.watcher.loading(model_id)
                try:
                    engine = await self.loader(spec, self.options)
                except EngineLoadError as error:
                    await self.watcher.loaded(model_id, str(error))
                    raise
                self._engines[model_id] = engine
                await self.watcher.loaded(model_id)
                log.info("engine for %s ready: %s", model_id, engine.name)
            return engine

    async def discard(self, model_id: str, engine: Engine) -> None:
        """Drops a broken engine (unless another shard already replaced it); the next shard loads a fresh one."""
        if self._engines.get(model_id) is engine:
            del self._engines[model_id]
            await _shutdown(model_id, engine)

    async def shutdown(self) -> None:
        """Shuts every loaded engine down, all at once (the worker is stopping, and each engine may
        take its whole shutdown timeout)."""
        await asyncio.gather(*(self.discard(model_id, engine) for model_id, engine in list(self._engines.items())))


async def _shutdown(model_id: str, engine: Engine) -> None:
    try:
        await engine.shutdown()
    except Exception:
        log.exception("the engine of %s did not shut down cleanly", model_id)
