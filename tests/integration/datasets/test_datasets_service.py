"""The datasets service over gRPC, with a real nats-server and a real read-model database.

Stories: a file is uploaded in chunks, registered, listed and read back; a bad file is refused
naming its line and leaves no trace; the read model is dropped and rebuilt to the same rows.
"""

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore
from sqlmodel import SQLModel

from datasets_service.adapters.object_store import BUCKET
from datasets_service.adapters.read_model import DatasetRow, DatasetsProjection, DatasetsReadModel
from datasets_service.application import DatasetsApplication
from datasets_service.bootstrap import projections, start
from datasets_service.settings import DatasetsSettings
from devstack.natsserver import NatsServer, free_port
from eventlog.projection import ProjectionCheckpoint
from servicehost.cli import rebuild
from servicehost.database import create_engine
from servicehost.host import Running
from tests.uploads import upload_requests
from workbench.datasets.v1 import datasets_pb2_grpc
from workbench.datasets.v1.datasets_pb2 import (
    Dataset,
    DatasetRegistered,
    GetDatasetRequest,
    ListDatasetsRequest,
    ReadRecordsRequest,
    RecordFormat,
    UploadDatasetRequest,
    UploadDatasetResponse,
    UploadTrailer,
)

MAX_UPLOAD = 64 * 1024
RunningService = Running[DatasetsApplication]


def chat_file(count: int) -> bytes:
    lines = [
        {
            "id": f"q{n:03d}",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Q{n}"}],
        }
        for n in range(count)
    ]
    return "\n".join(json.dumps(line) for line in lines).encode() + b"\n"


def prompt_file(count: int) -> bytes:
    return "".join(json.dumps({"prompt": f"Say {n}"}) + "\n" for n in range(count)).encode()


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def db_url(backend: str, tmp_path: Path, postgres_url: str | None) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'datasets.db'}"
        return
    if postgres_url is None:
        pytest.skip("no Postgres server (set WB_TEST_POSTGRES_URL)")
    forget_read_model(postgres_url)  # this test's own stream starts at sequence 1: forget older runs
    yield postgres_url


def forget_read_model(db_url: str, drop_tables: bool = False) -> None:
    """Deletes the datasets rows (or their table) and the projection's saved position."""
    engine = create_engine(db_url)
    SQLModel.metadata.create_all(engine)
    datasets = SQLModel.metadata.tables[DatasetRow.__tablename__]
    checkpoints = SQLModel.metadata.tables[ProjectionCheckpoint.__tablename__]
    with engine.begin() as connection:
        if drop_tables:
            datasets.drop(connection)
        else:
            connection.execute(sqlalchemy.delete(datasets))
        connection.execute(sqlalchemy.delete(checkpoints).where(checkpoints.c.name == DatasetsProjection.name))
    engine.dispose()


@pytest.fixture
def settings(fresh_nats: NatsServer, db_url: str) -> DatasetsSettings:
    return DatasetsSettings(
        nats_url=fresh_nats.url,
        address=f"127.0.0.1:{free_port()}",
        metrics_addr="",
        db_url=db_url,
        max_upload_bytes=MAX_UPLOAD,
        cache_bytes=1024 * 1024,
    )


@asynccontextmanager
async def running(settings: DatasetsSettings) -> AsyncIterator[RunningService]:
    service = await start(settings)
    try:
        yield service
    finally:
        await service.stop(grace=1)


@asynccontextmanager
async def client(settings: DatasetsSettings) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(settings.address) as channel:
        yield datasets_pb2_grpc.DatasetServiceStub(channel)


@pytest.fixture
async def service(settings: DatasetsSettings) -> AsyncIterator[RunningService]:
    async with running(settings) as service:
        yield service


@pytest.fixture
async def stub(service: RunningService) -> AsyncIterator[Any]:
    async with client(service.host.settings) as stub:  # type: ignore[arg-type]
        yield stub


async def bucket(service: RunningService) -> ObjectStore:
    return await service.host.nats.jetstream().object_store(BUCKET)


async def upload(stub: Any, name: str, data: bytes, chunk_size: int = 1000) -> Dataset:
    response: UploadDatasetResponse = await stub.UploadDataset(upload_requests(name, data, chunk_size))
    return response.dataset


async def read_all(stub: Any, dataset_id: str, offset: int = 0, limit: int = 0) -> list[Any]:
    call = stub.ReadRecords(ReadRecordsRequest(dataset_id=dataset_id, offset=offset, limit=limit))
    return [record async for response in call for record in response.records]


async def listed_ids(stub: Any) -> list[str]:
    return [dataset.dataset_id for dataset in (await stub.ListDatasets(ListDatasetsRequest())).datasets]


def rows(db_url: str) -> list[dict[str, Any]]:
    engine = create_engine(db_url)
    found = [dataclasses.asdict(info) for info in DatasetsReadModel(engine).list()]
    engine.dispose()
    return found


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_an_upload_in_chunks_is_registered_listed_and_read_back_in_order(
    service: RunningService, stub: Any
) -> None:
    data = chat_file(50)

    dataset = await upload(stub, "../private/questions\x07.jsonl", data, chunk_size=700)

    assert dataset.dataset_id.startswith("ds_") and len(dataset.dataset_id) == 15
    assert dataset.name == "questions.jsonl"
    assert dataset.format == RecordFormat.RECORD_FORMAT_CHAT
    assert (dataset.record_count, dataset.size_bytes) == (50, len(data))
    assert dataset.sha256 == hashlib.sha256(data).hexdigest()
    assert dataset.object_name == f"{dataset.dataset_id}.jsonl"
    [event] = await service.host.store.read("wb.datasets.>")
    assert isinstance(event.event, DatasetRegistered)
    assert event.headers["Nats-Msg-Id"] == f"dataset:{dataset.dataset_id}"
    stored = await (await bucket(service)).get(dataset.object_name)
    assert stored.data == data

    assert await listed_ids(stub) == [dataset.dataset_id]
    assert (await stub.GetDataset(GetDatasetRequest(dataset_id=dataset.dataset_id))).dataset == dataset
    records = await read_all(stub, dataset.dataset_id)
    assert [(record.record_id, record.index) for record in records] == [(f"q{n:03d}", n) for n in range(50)]
    expected = [json.loads(line)["messages"] for line in data.splitlines()]
    assert [[{"role": m.role, "content": m.content} for m in record.messages] for record in records] == expected
    assert [record.index for record in await read_all(stub, dataset.dataset_id, offset=10, limit=5)] == [
        10,
        11,
        12,
        13,
        14,
    ]

    second = await upload(stub, "prompts.jsonl", prompt_file(3))
    assert await listed_ids(stub) == [dataset.dataset_id, second.dataset_id]


async def test_records_stream_in_batches_and_a_dataset_read_by_shards_is_downloaded_once(
    settings: DatasetsSettings,
) -> None:
    async with running(settings) as service, client(settings) as stub:
        dataset = await upload(stub, "prompts.jsonl", prompt_file(600), chunk_size=8192)
    async with running(settings) as service, client(settings) as stub:  # restarted: nothing cached
        call = stub.ReadRecords(ReadRecordsRequest(dataset_id=dataset.dataset_id))
        assert [len(response.records) async for response in call] == [256, 256, 88]
        shards = [await read_all(stub, dataset.dataset_id, offset, 100) for offset in range(0, 600, 100)]
        assert [record.prompt for shard in shards for record in shard] == [f"Say {n}" for n in range(600)]
        assert service.app.cache.loads == 1
        assert await read_all(stub, dataset.dataset_id, offset=600) == []


async def test_a_broken_line_is_refused_naming_it_and_nothing_is_registered(service: RunningService, stub: Any) -> None:
    kept = await upload(stub, "good.jsonl", prompt_file(5))
    broken = prompt_file(2) + b'{"prompt": "three" "oops"}\n' + prompt_file(2)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await upload(stub, "bad.jsonl", broken)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("line 3: not valid JSON (Expecting ',' delimiter")
    assert await listed_ids(stub) == [kept.dataset_id]
    assert len(await service.host.store.read("wb.datasets.>")) == 1
    assert [info.name for info in await (await bucket(service)).list()] == [kept.object_name]


async def test_an_upload_over_the_limit_is_refused_with_the_limit(service: RunningService, stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await upload(stub, "huge.jsonl", prompt_file(5000), chunk_size=16384)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"upload limit of {MAX_UPLOAD} bytes" in (refused.value.details() or "")
    assert await listed_ids(stub) == []
    with pytest.raises(NotFoundError):  # the bucket holds no file
        await (await bucket(service)).list()


async def test_unknown_datasets_and_uploads_without_a_header(stub: Any) -> None:
    for dataset_id in ["ds_000000000000", "wb.>"]:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetDataset(GetDatasetRequest(dataset_id=dataset_id))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await read_all(stub, dataset_id)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    async def headless() -> AsyncIterator[UploadDatasetRequest]:
        yield UploadDatasetRequest(chunk=prompt_file(1))

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.UploadDataset(headless())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header" in (refused.value.details() or "")


async def test_an_upload_cut_off_before_its_trailer_registers_nothing(stub: Any) -> None:
    before = await stub.ListDatasets(ListDatasetsRequest())

    with pytest.raises(grpc.aio.AioRpcError) as cut:
        await stub.UploadDataset(upload_requests("cut.jsonl", prompt_file(5), chunk_size=100, trailer=False))

    assert cut.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "trailer" in (cut.value.details() or "")
    assert await stub.ListDatasets(ListDatasetsRequest()) == before


async def test_an_upload_whose_trailer_disagrees_registers_nothing(stub: Any) -> None:
    before = await stub.ListDatasets(ListDatasetsRequest())

    async def damaged() -> AsyncIterator[UploadDatasetRequest]:
        async for request in upload_requests("damaged.jsonl", prompt_file(5), trailer=False):
            yield request
        yield UploadDatasetRequest(trailer=UploadTrailer(size_bytes=1, sha256="00"))

    with pytest.raises(grpc.aio.AioRpcError) as damaged_upload:
        await stub.UploadDataset(damaged())

    assert damaged_upload.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "damaged" in (damaged_upload.value.details() or "")
    assert await stub.ListDatasets(ListDatasetsRequest()) == before


async def test_a_stored_file_that_no_longer_matches_its_sha256_is_data_loss(settings: DatasetsSettings) -> None:
    async with running(settings) as service, client(settings) as stub:
        dataset = await upload(stub, "prompts.jsonl", prompt_file(3))
        await (await bucket(service)).put(dataset.object_name, prompt_file(4))
    async with running(settings), client(settings) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as corrupt:
            await read_all(stub, dataset.dataset_id)
    assert corrupt.value.code() == grpc.StatusCode.DATA_LOSS
    assert "sha256" in (corrupt.value.details() or "")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_read_model_dropped_and_rebuilt_has_the_same_rows(settings: DatasetsSettings) -> None:
    async with running(settings) as service, client(settings) as stub:
        first = await upload(stub, "a.jsonl", prompt_file(3))
        gone = await upload(stub, "b.jsonl", chat_file(2))
        third = await upload(stub, "c.jsonl", prompt_file(4))
        await service.app.delete_dataset(gone.dataset_id)
        assert await listed_ids(stub) == [first.dataset_id, third.dataset_id]
    before = rows(settings.db_url)

    await rebuild("datasets", settings, projections())  # python -m datasets_service rebuild
    assert rows(settings.db_url) == before

    forget_read_model(settings.db_url, drop_tables=True)  # the service recreates the tables at start
    async with running(settings), client(settings) as stub:
        assert rows(settings.db_url) == before
        assert [record.prompt for record in await read_all(stub, third.dataset_id)] == [f"Say {n}" for n in range(4)]
