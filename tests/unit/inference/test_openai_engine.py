"""The OpenAI-compatible backend's requests and retries, and the models file's fields for it.

The server here is a stand-in behind httpx's MockTransport, used only for the shapes of the
requests and the retry arithmetic, and once a small HTTP server on a loopback port (a 429, then
an answer, with the real pause in between); tests/integration/inference/test_openai_backend.py
runs the engine against a real `vllm serve`.
"""

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath

import httpx
import pytest

from inference_service.adapters.engine import (
    EngineFacts,
    EngineLoadError,
    EngineOptions,
    EngineUnavailable,
    Prompt,
    RecordFailed,
)
from inference_service.adapters.openai_engine import OpenAiEngine, RetryPolicy, retry_after
from inference_service.domain.errors import InvalidInput
from inference_service.domain.models import ModelSpec, Sampling, parse_models

BASE_URL = "http://gpu-node-1:8000"
SPEC = ModelSpec("remote", "Remote", "openai", "served-model", "served", 512, base_url=BASE_URL, max_concurrency=4)
SAMPLING = Sampling(temperature=0.7, top_p=0.9, max_tokens=24, seed=3)
COMPLETION = {
    "choices": [{"index": 0, "text": " a story", "finish_reason": "length"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 24, "total_tokens": 29},
}
CHAT_COMPLETION = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "true"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
}


class StandInServer:
    """Serves "served-model" at /v1/models, says version 0.32.0, then gives the scripted answers in order."""

    def __init__(self, *answers: httpx.Response | Exception, version: bool = True) -> None:
        self.answers = list(answers)
        self.version = version
        self.requests: list[httpx.Request] = []
        self.model_list: httpx.Response = httpx.Response(
            200, json={"object": "list", "data": [{"id": "served-model", "object": "model", "owned_by": "vllm"}]}
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return self.model_list
        if request.url.path == "/version":
            return httpx.Response(200, json={"version": "0.32.0"}) if self.version else httpx.Response(404)
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(request.content) for request in self.requests]


class Pauses:
    """Records the engine's pauses between attempts instead of sleeping."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def engine_for(server: StandInServer, pauses: Pauses | None = None, api_key: str = "") -> OpenAiEngine:
    return await OpenAiEngine.load(
        SPEC, EngineOptions(openai_api_key=api_key), transport=httpx.MockTransport(server), sleep=pauses or Pauses()
    )


# Request shapes


async def test_a_prompt_record_goes_to_completions_with_the_sampling_and_the_bearer_key() -> None:
    server = StandInServer(httpx.Response(200, json=COMPLETION))
    engine = await engine_for(server, api_key="sk-test")

    generation = await engine.generate(Prompt(text="tell me a story"), SAMPLING, "run_1/r1/a")

    (request,) = server.requests
    assert (request.method, str(request.url)) == ("POST", f"{BASE_URL}/v1/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert server.bodies() == [
        {
            "model": "served-model",
            "prompt": "tell me a story",
            "temperature": 0.7,
            "top_p": 0.9,
            "max_tokens": 24,
            "seed": 3,
        }
    ]
    assert (generation.text, generation.finish_reason) == (" a story", "length")
    assert (generation.prompt_tokens, generation.output_tokens) == (5, 24)


async def test_a_chat_record_goes_to_chat_completions_as_messages_and_no_key_sends_no_authorization() -> None:
    server = StandInServer(httpx.Response(200, json=CHAT_COMPLETION))
    engine = await engine_for(server)

    messages = (("system", "Answer true or false."), ("user", "Is it fit?"))
    generation = await engine.generate(Prompt(messages=messages), SAMPLING, "run_1/r2/b")

    (request,) = server.requests
    assert str(request.url) == f"{BASE_URL}/v1/chat/completions"
    assert "authorization" not in request.headers
    assert server.bodies()[0]["messages"] == [
        {"role": "system", "content": "Answer true or false."},
        {"role": "user", "content": "Is it fit?"},
    ]
    assert (generation.text, generation.finish_reason, generation.output_tokens) == ("true", "stop", 1)


async def test_a_json_schema_becomes_a_strict_json_schema_response_format() -> None:
    server = StandInServer(httpx.Response(200, json=CHAT_COMPLETION))
    engine = await engine_for(server)
    schema = {"type": "object", "properties": {"recommendation": {"enum": ["hire", "pass"]}}}

    await engine.generate(Prompt(messages=(("user", "verdict?"),)), SAMPLING, "run_1/r3/c", json.dumps(schema))

    assert server.bodies()[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "record", "schema": schema, "strict": True},
    }


async def test_a_schema_that_is_not_json_fails_the_record_without_asking_the_server() -> None:
    server = StandInServer()
    engine = await engine_for(server)

    with pytest.raises(RecordFailed, match="not valid JSON"):
        await engine.generate(Prompt(text="hi"), SAMPLING, "run_1/r4/d", "{not json")

    assert server.requests == []


async def test_the_facts_name_the_server_and_its_version_or_else_its_host() -> None:
    vllm = await engine_for(StandInServer())
    other = await engine_for(StandInServer(version=False))

    assert vllm.facts == EngineFacts("openai-compatible vllm 0.32.0", "served")
    assert vllm.name == "openai-compatible vllm 0.32.0"
    assert other.facts == EngineFacts("openai-compatible gpu-node-1:8000", "served")


# Retries


async def test_429_and_503_are_asked_again_after_the_pause_their_retry_after_asks_for() -> None:
    server = StandInServer(
        httpx.Response(429, headers={"Retry-After": "2"}, json={"error": {"message": "slow down"}}),
        httpx.Response(503, headers={"Retry-After": "1"}, text="busy"),
        httpx.Response(200, json=COMPLETION),
    )
    pauses = Pauses()
    engine = await engine_for(server, pauses)

    generation = await engine.generate(Prompt(text="hello"), SAMPLING, "run_1/r1/a")

    assert generation.text == " a story"
    assert pauses.seconds == [2.0, 1.0]
    assert len(server.requests) == 3
    assert server.bodies()[0] == server.bodies()[2]  # the same request each time


async def test_without_retry_after_the_pauses_grow_exponentially_with_jitter() -> None:
    server = StandInServer(*[httpx.Response(502) for _ in range(4)], httpx.Response(200, json=COMPLETION))
    pauses = Pauses()
    engine = await engine_for(server, pauses)

    await engine.generate(Prompt(text="hello"), SAMPLING, "run_1/r1/a")

    ceilings = [0.5, 1.0, 2.0, 4.0]  # RetryPolicy(): 0.5 s first, doubling
    assert len(pauses.seconds) == 4
    assert all(ceiling / 2 <= pause <= ceiling for pause, ceiling in zip(pauses.seconds, ceilings, strict=True))


def test_the_backoff_arithmetic() -> None:
    policy = RetryPolicy(attempts=5, first_delay_s=0.5, max_delay_s=3.0, max_retry_after_s=10.0)

    assert [policy.delay(attempt, None, jitter=0.0) for attempt in (1, 2, 3, 4)] == [0.25, 0.5, 1.0, 1.5]
    assert policy.delay(2, None, jitter=0.999) == pytest.approx(1.0, abs=0.001)
    assert policy.delay(9, None, jitter=0.999) == pytest.approx(3.0, abs=0.01)  # capped at max_delay_s
    assert policy.delay(1, 7.0, jitter=0.5) == 7.0  # the server's Retry-After wins...
    assert policy.delay(1, 500.0, jitter=0.5) == 10.0  # ...up to a limit


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)

    assert retry_after("3", now) == 3.0
    assert retry_after("Fri, 27 Nov 2026 12:00:30 GMT", now) == 30.0
    assert retry_after("Fri, 27 Nov 2026 11:00:00 GMT", now) == 0.0  # already past
    assert retry_after(None, now) is None
    assert retry_after("soon", now) is None


class ScriptedHandler(BaseHTTPRequestHandler):
    """Serves served-model at /v1/models; answers each POST with the next (status, headers, body) of its script."""

    script: list[tuple[int, dict[str, str], dict[str, object]]]
    posted_at: list[float]

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._answer(200, {}, {"data": [{"id": "served-model", "owned_by": "vllm"}]})
        else:
            self._answer(404, {}, {"error": {"message": "no such path"}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.posted_at.append(time.monotonic())
        self._answer(*self.script.pop(0))

    def _answer(self, status: int, headers: dict[str, str], body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def scripted_server() -> Iterator[tuple[str, type[ScriptedHandler]]]:
    handler = type("Handler", (ScriptedHandler,), {"script": [], "posted_at": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


async def test_over_real_http_a_429_and_a_503_are_asked_again_after_a_pause_and_then_answered(
    scripted_server: tuple[str, type[ScriptedHandler]],
) -> None:
    url, handler = scripted_server
    handler.script += [
        (429, {"Retry-After": "1"}, {"error": {"message": "rate limit reached"}}),
        (503, {}, {"error": {"message": "overloaded"}}),
        (200, {}, COMPLETION),
    ]
    spec = ModelSpec("remote", "Remote", "openai", "served-model", "served", 512, base_url=url, max_concurrency=1)
    engine = await OpenAiEngine.load(spec, EngineOptions())
    try:
        generation = await engine.generate(Prompt(text="hello"), SAMPLING, "run_1/r1/a")
    finally:
        await engine.shutdown()

    assert generation.text == " a story"
    first, second, third = handler.posted_at
    assert 1.0 <= second - first < 3.0  # the pause the server asked for
    assert 0.5 <= third - second < 2.5  # no Retry-After: the second backoff step, 0.5 to 1 s


async def test_a_400_fails_its_record_at_once_with_the_servers_message() -> None:
    message = "This model's maximum context length is 512 tokens. However, your request has 900 input tokens."
    server = StandInServer(httpx.Response(400, json={"error": {"message": message, "code": 400}}))
    pauses = Pauses()
    engine = await engine_for(server, pauses)

    with pytest.raises(RecordFailed) as failed:
        await engine.generate(Prompt(text="long " * 900), SAMPLING, "run_1/r1/a")

    assert str(failed.value) == f"{BASE_URL}/v1/completions answered 400 Bad Request: {message}"
    assert len(server.requests) == 1 and pauses.seconds == []


async def test_a_server_error_that_outlasts_five_attempts_fails_the_record_with_the_last_status_and_body() -> None:
    server = StandInServer(*[httpx.Response(503, text=f"overloaded, try {n}") for n in range(5)])
    engine = await engine_for(server)

    with pytest.raises(RecordFailed) as failed:
        await engine.generate(Prompt(text="hello"), SAMPLING, "run_1/r1/a")

    assert len(server.requests) == 5
    assert str(failed.value) == f"{BASE_URL}/v1/completions answered 503 Service Unavailable: overloaded, try 4"


async def test_a_server_that_stays_unreachable_makes_the_engine_unavailable() -> None:
    server = StandInServer(*[httpx.ConnectError("Connection refused") for _ in range(5)])
    engine = await engine_for(server)

    with pytest.raises(EngineUnavailable, match=f"{BASE_URL} did not answer POST /v1/completions in 5 attempts"):
        await engine.generate(Prompt(text="hello"), SAMPLING, "run_1/r1/a")
    with pytest.raises(EngineUnavailable):  # the next record does not knock again
        await engine.generate(Prompt(text="again"), SAMPLING, "run_1/r2/b")

    assert len(server.requests) == 5


async def test_an_answer_that_takes_too_long_fails_its_record_without_asking_again() -> None:
    server = StandInServer(httpx.ReadTimeout("timed out"))
    engine = await engine_for(server)

    with pytest.raises(RecordFailed, match=f"^{BASE_URL}/v1/completions gave no answer within 600 s$"):
        await engine.generate(Prompt(text="hello"), SAMPLING, "run_1/r1/a")

    assert len(server.requests) == 1


async def test_a_dropped_connection_is_asked_again() -> None:
    server = StandInServer(httpx.RemoteProtocolError("Server disconnected"), httpx.Response(200, json=COMPLETION))
    engine = await engine_for(server)

    assert (await engine.generate(Prompt(text="hello"), SAMPLING, "run_1/r1/a")).output_tokens == 24
    assert len(server.requests) == 2


# Loading


async def test_loading_fails_naming_the_server_when_it_does_not_serve_the_model() -> None:
    server = StandInServer()
    server.model_list = httpx.Response(200, json={"data": [{"id": "other-model"}, {"id": "third"}]})

    with pytest.raises(EngineLoadError) as failed:
        await engine_for(server)

    assert str(failed.value) == (
        f"model remote: {BASE_URL} does not serve 'served-model' (it serves 'other-model', 'third'); "
        "set path to one of them"
    )


async def test_loading_fails_with_what_the_server_answered_at_v1_models() -> None:
    server = StandInServer()
    server.model_list = httpx.Response(401, json={"error": {"message": "Invalid API key"}})

    with pytest.raises(EngineLoadError) as failed:
        await engine_for(server, api_key="sk-wrong")

    assert str(failed.value) == f"model remote: {BASE_URL}/v1/models answered 401 Unauthorized: Invalid API key"


# The models file

BASE = PurePosixPath("/srv/workbench/config")
REMOTE = """
[[models]]
id = "gemma-remote"
backend = "openai"
base_url = "http://gpu-node-1:8000/"
path = "google/gemma-3-4b-it"
max_model_len = 8192
"""


def test_an_openai_model_keeps_its_served_name_and_base_url_and_defaults_to_16_in_flight() -> None:
    (model,) = parse_models(REMOTE, BASE)

    assert model.backend == "openai"
    assert model.base_url == "http://gpu-node-1:8000"  # without the trailing slash
    assert model.path == "google/gemma-3-4b-it"
    assert (model.max_concurrency, model.revision) == (16, "served")


def test_max_concurrency_is_read_and_a_relative_looking_name_is_not_turned_into_a_path() -> None:
    text = REMOTE.replace('path = "google/gemma-3-4b-it"', 'path = "./served-name"') + "max_concurrency = 1024\n"

    (model,) = parse_models(text, BASE)

    assert (model.path, model.max_concurrency) == ("./served-name", 1024)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('base_url = "http://gpu-node-1:8000/"\n', ""),
            "model 'gemma-remote': field 'base_url' is missing",
        ),
        (
            ("http://gpu-node-1:8000/", "gpu-node-1:8000"),
            "model 'gemma-remote': field 'base_url' must be an http:// or https:// URL, got 'gpu-node-1:8000'",
        ),
        (
            ("http://gpu-node-1:8000/", "https://api.example.com/v1"),
            "model 'gemma-remote': field 'base_url' must be the server's root, without /v1",
        ),
        (
            ("max_model_len = 8192", "max_model_len = 8192\nmax_concurrency = 0"),
            "model 'gemma-remote': field 'max_concurrency' must be between 1 and 1024, got 0",
        ),
        (
            ("max_model_len = 8192", "max_model_len = 8192\nmax_concurrency = 2000"),
            "model 'gemma-remote': field 'max_concurrency' must be between 1 and 1024, got 2000",
        ),
        (
            ("max_model_len = 8192", 'max_model_len = 8192\nmax_concurrency = "16"'),
            "model 'gemma-remote': field 'max_concurrency' must be an integer, got '16'",
        ),
    ],
)
def test_a_wrong_openai_field_is_refused_naming_the_model_and_field(change: tuple[str, str], message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_models(REMOTE.replace(*change), BASE, source="models.toml")

    assert str(refused.value).startswith(f"models.toml: {message}")


@pytest.mark.parametrize("field", ['base_url = "http://gpu-node-1:8000"', "max_concurrency = 8"])
def test_a_vllm_model_refuses_the_openai_fields(field: str) -> None:
    text = f"""
[[models]]
id = "tiny-a"
backend = "vllm"
path = "../var/models/tiny-a"
max_model_len = 512
{field}
"""
    name = field.split(" ")[0]

    with pytest.raises(InvalidInput) as refused:
        parse_models(text, BASE)

    assert str(refused.value) == (
        f"models file: model 'tiny-a': field {name!r} is for backend 'openai' only; a vllm model runs in the worker"
    )
