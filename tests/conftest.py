"""Fixtures every test level shares: a real nats-server on a free port, an event log on it, and
the whole workbench as real processes (one stack per session: its vLLM engines start once)."""

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devstack import Stack, StackPorts
from devstack.natsserver import NatsServer, free_port
from eventlog import JetStreamEventStore, NewEvent, StreamSettings
from workbench.inference.v1 import inference_pb2 as inf

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One real nats-server (JetStream) for the session, on a free port."""
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


@pytest.fixture
async def event_log(nats_server: NatsServer) -> AsyncIterator[JetStreamEventStore]:
    """An event store on its own stream, so tests never see each other's events."""
    stream = f"T_{uuid.uuid4().hex[:10]}"
    prefix = f"t{uuid.uuid4().hex[:8]}"
    log = await JetStreamEventStore.connect(nats_server.url, stream=stream)
    await log.ensure_stream(StreamSettings(subjects=[f"{prefix}.>"]))
    log.test_prefix = prefix  # type: ignore[attr-defined]
    yield log
    await log.js.delete_stream(stream)
    await log.close()


@pytest.fixture(scope="session")
def postgres_url() -> str | None:
    """The Postgres server to test the read-model path on, or None where there is none."""
    url = os.environ.get("WB_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception:
        return None
    return url


@pytest.fixture
def fresh_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of the test's own (starts in well under a second), for service tests that
    use the real `wb.*` subjects and must not share a stream with other tests."""
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture
async def stream_log(fresh_nats: NatsServer) -> AsyncIterator[JetStreamEventStore]:
    """A writer on the workbench's own event stream (WB_EVENTS, the real wb.* subjects) of a fresh nats-server."""
    events = await JetStreamEventStore.connect(fresh_nats.url)
    await events.ensure_stream()
    yield events
    await events.close()


@pytest.fixture(scope="session")
def demo_models_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two tiny demo models, built locally (no download), and a models file naming them."""
    root = tmp_path_factory.mktemp("models")
    subprocess.run([sys.executable, "-m", "devstack.demo_models", str(root)], check=True)
    models_file = root / "models.toml"
    models_file.write_text(
        "\n".join(
            f"""
[[models]]
id = "{name}"
display_name = "Tiny {name}"
backend = "vllm"
path = "{root / name}"
revision = "local"
max_model_len = 512

[models.sampling]
temperature = 0.0
top_p = 1.0
max_tokens = 16
seed = 0
"""
            for name in ("tiny-a", "tiny-b")
        )
    )
    return models_file


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, demo_models_file: Path) -> Iterator[Stack]:
    # A short AckWait so that a shard of a killed worker comes back within seconds (tests/faults).
    stack = Stack(
        REPO,
        tmp_path_factory.mktemp("var"),
        StackPorts.free(),
        models_file=demo_models_file,
        extra_env={"WB_WORKER_ACK_WAIT_S": "6"},
    )
    try:
        stack.start(timeout=180)
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=60) as client:
        yield client


LABEL_STUDIO = REPO / ".venv-labelstudio" / "bin" / "label-studio"
LABEL_STUDIO_START_S = 240.0


@dataclass(frozen=True)
class LabelStudioServer:
    """A real Label Studio server (its own venv, installed by `make install`) and its admin's API token."""

    url: str
    token: str = field(repr=False)


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """Label Studio on a free loopback port with a preset legacy token, once per session (it takes
    about a minute to start); stopped at the end."""
    if not LABEL_STUDIO.exists():
        pytest.fail(f"{LABEL_STUDIO} is missing: run `make install` (it installs label-studio into .venv-labelstudio)")
    data_dir = tmp_path_factory.mktemp("label-studio")
    port, token = free_port(), secrets.token_hex(20)
    env = {
        **os.environ,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # without it the preset token is refused (401)
        "LABEL_STUDIO_USERNAME": "admin@example.com",
        "LABEL_STUDIO_PASSWORD": secrets.token_hex(12),
        "LABEL_STUDIO_USER_TOKEN": token,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
    }
    log_path = data_dir / "label-studio.log"
    command = [str(LABEL_STUDIO), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(url, process, log_path)
        yield LabelStudioServer(url, token)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for_health(url: str, process: "subprocess.Popen[bytes]", log_path: Path) -> None:
    deadline = time.monotonic() + LABEL_STUDIO_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Label Studio exited at start:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"Label Studio did not answer /health at {url}:\n{log_path.read_text()[-4000:]}")


def jsonl(records: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the shared stack run last, so the others keep its warm engines."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_stack") is not None)


# A hung async test shows pytest-timeout only the event loop waiting in select(). Shortly before the
# timeout fires, print what every asyncio task of that loop is awaiting, so a hang in CI names itself.
HANG_REPORT_BEFORE_TIMEOUT_S = 20.0


def _running_loop_of_main_thread() -> asyncio.AbstractEventLoop | None:
    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if frame.f_code.co_name == "run_forever" and isinstance(candidate, asyncio.AbstractEventLoop):
            return candidate
        frame = frame.f_back
    return None


def _report_tasks(test_id: str) -> None:
    loop = _running_loop_of_main_thread()
    tasks = list(asyncio.all_tasks(loop)) if loop is not None else []
    print(f"\n~~~ {test_id} is about to time out; {len(tasks)} asyncio tasks ~~~", file=sys.stderr)
    for task in tasks:
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    marker = item.get_closest_marker("timeout")
    timeout = float(marker.args[0]) if marker and marker.args else float(item.config.getini("timeout") or 0)
    timer = None
    if timeout > HANG_REPORT_BEFORE_TIMEOUT_S:
        timer = threading.Timer(timeout - HANG_REPORT_BEFORE_TIMEOUT_S, _report_tasks, args=(item.nodeid,))
        timer.daemon = True
        timer.start()
    try:
        return (yield)
    finally:
        if timer is not None:
            timer.cancel()


async def upload_records(api: httpx.AsyncClient, name: str, records: list[dict[str, object]]) -> str:
    upload = await api.post("/admin/datasets/upload", files={"file": (name, jsonl(records))})
    assert upload.status_code == 201, upload.text
    return str(upload.json()["dataset"]["dataset_id"])


async def store_answers(stack: Stack, dataset_id: str, answers: dict[str, dict[str, str]]) -> None:
    """Stores answers (record id -> model id -> text) as a run of each model stores its results."""
    events = await JetStreamEventStore.connect(stack.nats_url)
    try:
        for model_id in sorted({model for by_model in answers.values() for model in by_model}):
            run_id = f"run_{uuid.uuid4().hex[:12]}"
            for record_id, by_model in answers.items():
                result = inf.ResultRecorded(
                    run_id=run_id,
                    dataset_id=dataset_id,
                    model_id=model_id,
                    record_id=record_id,
                    output_text=by_model[model_id],
                    finish_reason="stop",
                    output_tokens=9,
                )
                await events.append(NewEvent(f"wb.results.{run_id}", result, msg_id=f"{run_id}:{record_id}"))
    finally:
        await events.close()
