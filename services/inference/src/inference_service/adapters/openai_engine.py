"""The OpenAI-compatible backend: a model served elsewhere (`vllm serve` on another node, a hosted API).

Chat records go to {base_url}/v1/chat/completions, plain prompts to {base_url}/v1/completions. At most
the model's max_concurrency requests are in flight (the server batches them). 429, 5xx and lost
connections are retried with exponential backoff and jitter (a Retry-After wins); any other 4xx fails
its record at once, so one bad record fails alone; a server that stays unreachable makes the engine
unavailable, and the worker retries the shard later with a fresh engine.
"""

import asyncio
import email.utils
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

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

_EXCERPT_CHARS = 300
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often to ask the server again, and how long to wait in between."""

    attempts: int = 5
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 120.0  # a server asking for a longer pause gets this one

    def delay(self, failed_attempt: int, retry_after_s: float | None, jitter: float) -> float:
        """The pause after the failed_attempt-th attempt (1-based); jitter in [0, 1) spreads clients out."""
        if retry_after_s is not None:
            return min(retry_after_s, self.max_retry_after_s)
        ceiling = min(self.max_delay_s, self.first_delay_s * 2.0 ** (failed_attempt - 1))
        return ceiling * (0.5 + jitter / 2)  # at least half the exponential delay, so pauses still grow


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 10.0
    # Waiting for an answer: a long generation on a busy server. A record that takes longer fails
    # alone (asking again would most likely wait as long).
    answer_s: float = 600.0


class _Unreachable(Exception):
    """No HTTP answer at all, attempt after attempt."""


class _Server:
    """One OpenAI-compatible server: a connection pool, retries and backoff."""

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, retry: RetryPolicy, timeouts: Timeouts, sleep: Sleep
    ) -> None:
        self.client = client
        self.base_url = base_url
        self.retry = retry
        self.timeouts = timeouts
        self.sleep = sleep

    async def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """The server's final answer: a success, a status not worth retrying, or the last retried one.

        Raises httpx.ReadTimeout (or WriteTimeout) when the answer takes too long, and _Unreachable
        when no attempt got an answer.
        """
        for attempt in range(1, self.retry.attempts + 1):
            retry_after_s = None
            try:
                response = await self.client.request(method, path, json=body)
            except (httpx.ReadTimeout, httpx.WriteTimeout):
                raise
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
                if attempt == self.retry.attempts:
                    raise _Unreachable(
                        f"{self.base_url} did not answer {method} {path} in {attempt} attempts; last: {problem}"
                    ) from error
            else:
                if not _worth_retrying(response.status_code) or attempt == self.retry.attempts:
                    return response
                problem = describe(response)
                retry_after_s = retry_after(response.headers.get("retry-after"), datetime.now(UTC))
            pause = self.retry.delay(attempt, retry_after_s, random.random())
            log.info("%s %s%s: %s; asking again in %.1f s", method, self.base_url, path, problem, pause)
            await self.sleep(pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def close(self) -> None:
        await self.client.aclose()


class OpenAiEngine:
    """A model on an OpenAI-compatible server; many generate() calls at once, max_concurrency in flight."""

    def __init__(self, server: _Server, spec: ModelSpec, facts: EngineFacts) -> None:
        self._server = server
        self._spec = spec
        self._facts = facts
        self._slots = asyncio.Semaphore(spec.max_concurrency)
        self._in_flight: dict[str, asyncio.Task[Generation]] = {}
        self._aborted: set[str] = set()
        self._unreachable = ""

    @classmethod
    async def load(
        cls,
        spec: ModelSpec,
        options: EngineOptions,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeouts: Timeouts = Timeouts(),
        sleep: Sleep = asyncio.sleep,
    ) -> "OpenAiEngine":
        """Checks that the server answers and serves the model (EngineLoadError naming what it answered)."""
        headers = {"Authorization": f"Bearer {options.openai_api_key}"} if options.openai_api_key else {}
        client = httpx.AsyncClient(
            base_url=spec.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeouts.answer_s, connect=timeouts.connect_s, pool=None),
            # The semaphore keeps requests within max_concurrency, so none ever waits for a connection.
            limits=httpx.Limits(max_connections=spec.max_concurrency, max_keepalive_connections=spec.max_concurrency),
            transport=transport,
        )
        server = _Server(client, spec.base_url, retry, timeouts, sleep)
        try:
            facts = await _identify(server, spec)
        except BaseException:
            await server.close()
            raise
        log.info("%s: %s at %s serves %s", spec.model_id, facts.name, spec.base_url, spec.path)
        return cls(server, spec, facts)

    @property
    def name(self) -> str:
        return self._facts.name

    @property
    def facts(self) -> EngineFacts:
        return self._facts

    async def generate(self, prompt: Prompt, sampling: Sampling, request_id: str, json_schema: str = "") -> Generation:
        path, body = request_body(self._spec.path, prompt, sampling, json_schema)
        # Its own task, so that abort() can cancel this request and nothing else.
        task = asyncio.create_task(self._ask(path, body))
        self._in_flight[request_id] = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # our caller is being cancelled, not just this request
            if request_id in self._aborted:
                raise RecordFailed("aborted before the server answered (the run was cancelled)") from None
            raise EngineUnavailable(f"model {self._spec.model_id}: the engine was shut down") from None
        finally:
            self._in_flight.pop(request_id, None)
            self._aborted.discard(request_id)

    async def _ask(self, path: str, body: dict[str, Any]) -> Generation:
        # The slot is held through the retries' pauses too: a server that asks us to slow down gets
        # fewer requests, not a queue of fresh ones.
        async with self._slots:
            if self._unreachable:
                raise EngineUnavailable(self._unreachable)  # another request found the server gone
            try:
                response = await self._server.send("POST", path, body)
            except (httpx.ReadTimeout, httpx.WriteTimeout):
                waited = self._server.timeouts.answer_s
                raise RecordFailed(f"{self._spec.base_url}{path} gave no answer within {waited:g} s") from None
            except _Unreachable as error:
                self._unreachable = f"model {self._spec.model_id}: {error}"
                raise EngineUnavailable(self._unreachable) from None
        if not response.is_success:
            raise RecordFailed(f"{self._spec.base_url}{path} answered {describe(response)}")
        return generation_from(response, chat=path == "/v1/chat/completions")

    async def abort(self, request_ids: Sequence[str]) -> None:
        # Cancelling closes the request's connection, and an OpenAI-compatible server (vLLM does)
        # stops generating for a client that went away.
        for request_id in request_ids:
            task = self._in_flight.get(request_id)
            if task is not None:
                self._aborted.add(request_id)
                task.cancel()

    async def shutdown(self) -> None:
        for task in self._in_flight.values():
            task.cancel()
        await self._server.close()


def request_body(model: str, prompt: Prompt, sampling: Sampling, json_schema: str) -> tuple[str, dict[str, Any]]:
    """The endpoint and JSON body for one record (RecordFailed when the record cannot be asked)."""
    # Sampling's field names are the OpenAI API's (temperature, top_p, max_tokens, seed).
    body: dict[str, Any] = {"model": model, **asdict(sampling)}
    if json_schema:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "record", "schema": _schema(json_schema), "strict": True},
        }
    if prompt.messages:
        messages = [{"role": role, "content": content} for role, content in prompt.messages]
        return "/v1/chat/completions", {**body, "messages": messages}
    if prompt.text is not None:
        return "/v1/completions", {**body, "prompt": prompt.text}
    raise RecordFailed("the record has neither a prompt nor messages")


def generation_from(response: httpx.Response, chat: bool) -> Generation:
    """The Generation in a completion (or chat completion) answer."""
    try:
        answer = response.json()
        choice = answer["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
        usage = answer.get("usage") or {}
        return Generation(
            text=text if isinstance(text, str) else "",  # a chat answer without content (a refusal)
            finish_reason=str(choice.get("finish_reason") or ""),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
        )
    except (ValueError, LookupError, TypeError, AttributeError):
        raise RecordFailed(f"{response.url} answered what is not a completion: {_excerpt(response.text)}") from None


def describe(response: httpx.Response) -> str:
    """The status and the server's message (or the body's start), e.g. '400 Bad Request: ... too long'."""
    message = response.text
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
    except (ValueError, AttributeError):
        pass
    status = f"{response.status_code} {response.reason_phrase}".strip()
    excerpt = _excerpt(message)
    return f"{status}: {excerpt}" if excerpt else status


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (seconds, or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


async def _identify(server: _Server, spec: ModelSpec) -> EngineFacts:
    where = f"model {spec.model_id}: {spec.base_url}"
    try:
        response = await server.send("GET", "/v1/models")
    except (_Unreachable, httpx.TimeoutException) as error:
        raise EngineLoadError(f"{where} cannot be reached: {error}") from None
    if not response.is_success:
        raise EngineLoadError(f"{where}/v1/models answered {describe(response)}")
    try:
        entries = {entry["id"]: entry for entry in response.json()["data"]}
    except (ValueError, LookupError, TypeError):
        raise EngineLoadError(f"{where}/v1/models answered no model list: {_excerpt(response.text)}") from None
    entry = entries.get(spec.path)
    if entry is None:
        served = ", ".join(map(repr, entries)) or "none"
        raise EngineLoadError(f"{where} does not serve {spec.path!r} (it serves {served}); set path to one of them")
    # vLLM says "vllm" in owned_by and its version at /version; other servers are named by their host.
    version = await _version(server)
    owner = entry.get("owned_by")
    if version and isinstance(owner, str):
        version = f"{owner} {version}"
    revision = entry.get("revision")
    return EngineFacts(
        name=f"openai-compatible {version or urlsplit(spec.base_url).netloc}",
        model_revision=revision if isinstance(revision, str) and revision else spec.revision,
    )


async def _version(server: _Server) -> str:
    """What a vLLM server says at /version (e.g. "0.32.0"); "" from servers that do not say."""
    try:
        response = await server.client.get("/version")
        version = response.json().get("version") if response.is_success else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return ""
    return version if isinstance(version, str) else ""


def _schema(json_schema: str) -> dict[str, Any]:
    try:
        schema = json.loads(json_schema)
    except ValueError as error:
        raise RecordFailed(f"the run's JSON schema is not valid JSON: {error}") from None
    if not isinstance(schema, dict):
        raise RecordFailed("the run's JSON schema must be a JSON object")
    return schema


def _worth_retrying(status: int) -> bool:
    return status == 429 or status >= 500


def _excerpt(text: str) -> str:
    return " ".join(text.split())[:_EXCERPT_CHARS]
