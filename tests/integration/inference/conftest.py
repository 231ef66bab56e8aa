"""One real stack for the inference tests: a nats-server, the datasets service and an inference worker
as child processes (`python -m ...`), and the inference API in this process.

The worker loads vLLM once for the whole session (tens of seconds on a small CPU), so every story
that needs a model shares it; the demo models are built into the session's tmp folder.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from nats.js.errors import NotFoundError

from devstack.demo_models import build_demo_models
from devstack.natsserver import NatsServer, free_port
from eventlog import JetStreamEventStore
from inference_service.adapters.work_queue import WORK_STREAM, consumer_name
from inference_service.application import InferenceApplication
from inference_service.bootstrap import start
from inference_service.settings import InferenceSettings
from servicehost.host import Running
from tests.integration.inference.stack import ChildProcess, WorkerProcess, wait_for_port
from tests.integration.inference.vllm_serve import VllmServe
from workbench.datasets.v1 import datasets_pb2_grpc
from workbench.inference.v1 import inference_pb2_grpc

SHARD_SIZE = 8  # small, so a 20-record run has several shards in flight

MODELS_TOML = """
[[models]]
id = "tiny-a"
display_name = "Tiny Llama A (demo, random weights)"
backend = "vllm"
path = "./tiny-a"
revision = "local"
max_model_len = 512
[models.sampling]
temperature = 0.0
top_p = 1.0
max_tokens = 24
seed = 0

[[models]]
id = "tiny-b"
display_name = "Tiny Llama B (no worker serves it in these tests)"
backend = "vllm"
path = "./tiny-b"
max_model_len = 512

[[models]]
id = "broken"
display_name = "A model whose files are damaged"
backend = "vllm"
path = "./broken"
max_model_len = 512
"""


@pytest.fixture(scope="session")
def models_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    build_demo_models(folder)
    (folder / "broken").mkdir()
    (folder / "broken" / "config.json").write_text("{ this is not json")
    path = folder / "models.toml"
    path.write_text(MODELS_TOML)
    return path


@pytest.fixture(scope="session")
def stack_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """The nats-server the session's services share (each story uses runs and datasets of its own)."""
    server = NatsServer(tmp_path_factory.mktemp("inference-nats")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def datasets_address(stack_nats: NatsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real datasets service, as its own process."""
    folder = tmp_path_factory.mktemp("datasets-service")
    address = f"127.0.0.1:{free_port()}"
    env = {
        "WB_NATS_URL": stack_nats.url,
        "WB_DATASETS_ADDR": address,
        "WB_DATASETS_DB_URL": f"sqlite:///{folder / 'datasets.db'}",
        "WB_DATASETS_METRICS_ADDR": "127.0.0.1:0",  # any free port: other stacks may run on this machine
    }
    child = ChildProcess(["datasets_service"], env, folder / "datasets_service.log")
    wait_for_port(child, address)
    yield address
    child.stop()


@pytest.fixture(scope="session")
async def worker(
    stack_nats: NatsServer, datasets_address: str, models_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerProcess]:
    """`python -m inference_service worker` serving tiny-a and broken; its engine loads on the first shard."""
    env = {
        "WB_NATS_URL": stack_nats.url,
        "WB_DATASETS_ADDR": datasets_address,
        "WB_MODELS_FILE": str(models_file),
        "WB_WORKER_MODELS": "tiny-a,broken",
        "WB_WORKER_NAME": "test-worker",
        "WB_WORKER_METRICS_ADDR": f"127.0.0.1:{free_port()}",
        "HF_HUB_OFFLINE": "1",  # a damaged local model must fail at once, not look for itself online
    }
    child = WorkerProcess(["inference_service", "worker"], env, tmp_path_factory.mktemp("worker") / "worker.log")
    await _wait_for_consumers(child, stack_nats.url, ["tiny-a", "broken"])
    yield child
    child.resume()
    began = time.monotonic()
    code = child.stop(timeout=90)
    assert code == 0, f"the worker did not stop cleanly on SIGTERM (exit {code}):\n{child.log_tail()}"
    stopped_in = time.monotonic() - began
    assert stopped_in < 10, f"the worker took {stopped_in:.1f} s to stop (make run allows 10):\n{child.log_tail()}"


async def _wait_for_consumers(child: ChildProcess, url: str, models: list[str], within_s: float = 60) -> None:
    events = await JetStreamEventStore.connect(url)
    try:
        deadline = time.monotonic() + within_s
        for model_id in models:
            while True:
                child.assert_alive()
                with contextlib.suppress(NotFoundError):
                    await events.js.consumer_info(WORK_STREAM, consumer_name(model_id))
                    break
                assert time.monotonic() < deadline, f"the worker made no consumer:\n{child.log_tail()}"
                await asyncio.sleep(0.2)
    finally:
        await events.close()


@pytest.fixture(scope="session")
def api_settings(
    stack_nats: NatsServer, datasets_address: str, models_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> InferenceSettings:
    return InferenceSettings(
        nats_url=stack_nats.url,
        address=f"127.0.0.1:{free_port()}",
        metrics_addr="",
        datasets_addr=datasets_address,
        db_url=f"sqlite:///{tmp_path_factory.mktemp('inference-api') / 'inference.db'}",
        models_file=models_file,
        shard_size=SHARD_SIZE,
    )


@pytest.fixture(scope="session")
async def api(api_settings: InferenceSettings) -> AsyncIterator[Running[InferenceApplication]]:
    """The inference API, in this process (the tests can look at its read model)."""
    running = await start(api_settings)
    yield running
    await running.stop()


@pytest.fixture(scope="session")
async def inference(api: Running[InferenceApplication], api_settings: InferenceSettings) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(api_settings.address) as channel:
        yield inference_pb2_grpc.InferenceServiceStub(channel)


@pytest.fixture(scope="session")
async def datasets(datasets_address: str) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(datasets_address) as channel:
        yield datasets_pb2_grpc.DatasetServiceStub(channel)


@pytest.fixture(scope="session")
async def events(stack_nats: NatsServer) -> AsyncIterator[JetStreamEventStore]:
    log = await JetStreamEventStore.connect(stack_nats.url)
    yield log
    await log.close()


@pytest.fixture(scope="session")
def vllm_serve(models_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServe]:
    """A real `vllm serve` of tiny-a on a free loopback port, on the CPU (about 40 s to start; one per session)."""
    server = VllmServe.start(
        models_file.parent / "tiny-a", "tiny-a", tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    )
    yield server
    server.stop()
