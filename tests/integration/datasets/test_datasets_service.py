"""The datasets service over gRPC, with a real nats-server and a real read-model database.

Stories: a file (JSONL, CSV, Parquet) is uploaded in chunks, stored in pages, registered, listed and
read back with its metadata; a bad file is refused naming its lines (a report in the status
details) and leaves no trace; the same content again answers the dataset it is; a dataset is
browsed, searched, renamed and deleted; the read model is dropped and rebuilt to the same rows.
"""

import dataclasses
import hashlib
import io
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy
from nats.js.errors import NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore
from sqlmodel import SQLModel

from datasets_service.adapters.object_store import BUCKET
from datasets_service.adapters.read_model import DatasetRow, DatasetsProjection, DatasetsReadModel, PageRow
from datasets_service.application import DatasetsApplication
from datasets_service.bootstrap import projections, start
from datasets_service.settings import DatasetsSettings
from devstack.natsserver import NatsServer, free_port
from eventlog.projection import ProjectionCheckpoint
from servicehost.cli import rebuild
from servicehost.database import create_engine
from servicehost.grpc_client import status_details
from servicehost.host import Running
from tests.uploads import upload_requests
from workbench.datasets.v1 import datasets_pb2_grpc
from workbench.datasets.v1.datasets_pb2 import (
    Dataset,
    DatasetDeleted,
    DatasetRegistered,
    DatasetRenamed,
    DeleteDatasetRequest,
    GetDatasetRequest,
    ListDatasetsRequest,
    ListRecordsRequest,
    ReadRecordsRequest,
    RecordFormat,
    RenameDatasetRequest,
    UploadDatasetRequest,
    UploadDatasetResponse,
    UploadTrailer,
    ValidationReport,
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
    """Deletes the datasets rows (or their tables) and the projection's saved position."""
    engine = create_engine(db_url)
    SQLModel.metadata.create_all(engine)
    tables = [SQLModel.metadata.tables[table.__tablename__] for table in (PageRow, DatasetRow)]  # type: ignore[attr-defined]
    checkpoints = SQLModel.metadata.tables[ProjectionCheckpoint.__tablename__]
    with engine.begin() as connection:
        for table in tables:
            if drop_tables:
                table.drop(connection)
            else:
                connection.execute(sqlalchemy.delete(table))
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
    return (await upload_answer(stub, name, data, chunk_size)).dataset


async def upload_answer(
    stub: Any, name: str, data: bytes, chunk_size: int = 1000, skip_invalid: bool = False
) -> UploadDatasetResponse:
    requests = upload_requests(name, data, chunk_size)
    header = await anext(requests)
    header.header.skip_invalid = skip_invalid

    async def sent() -> AsyncIterator[UploadDatasetRequest]:
        yield header
        async for request in requests:
            yield request

    response: UploadDatasetResponse = await stub.UploadDataset(sent())
    return response


async def read_all(stub: Any, dataset_id: str, offset: int = 0, limit: int = 0) -> list[Any]:
    call = stub.ReadRecords(ReadRecordsRequest(dataset_id=dataset_id, offset=offset, limit=limit))
    return [record async for response in call for record in response.records]


async def listed_ids(stub: Any) -> list[str]:
    return [dataset.dataset_id for dataset in (await stub.ListDatasets(ListDatasetsRequest())).datasets]


def rows(db_url: str) -> list[dict[str, Any]]:
    """Every dataset the read model holds, with its pages."""
    engine = create_engine(db_url)
    read_model = DatasetsReadModel(engine)
    found = [
        {**dataclasses.asdict(info), "pages": [dataclasses.asdict(page) for page in read_model.pages(info.dataset_id)]}
        for info in read_model.list()
    ]
    engine.dispose()
    return found


async def stored_names(service: RunningService) -> list[str]:
    """The objects in the bucket (deleted ones left out)."""
    try:
        return sorted(info.name for info in await (await bucket(service)).list(ignore_deletes=True))
    except NotFoundError:
        return []


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
    assert dataset.object_name == ""
    [event] = await service.host.store.read("wb.datasets.>")
    assert isinstance(event.event, DatasetRegistered)
    assert event.headers["Nats-Msg-Id"] == f"dataset:{dataset.dataset_id}"
    [page] = event.event.pages
    stored = await (await bucket(service)).get(page.object_name)
    assert (page.object_name, page.record_count) == (f"{dataset.dataset_id}.p00000", 50)
    assert hashlib.sha256(stored.data).hexdigest() == page.sha256

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
    [report] = status_details(refused.value)
    assert isinstance(report, ValidationReport)
    assert [(p.line, p.field) for p in report.problems] == [(3, "")]
    assert (report.more, report.line_word) == (0, "line")
    assert await listed_ids(stub) == [kept.dataset_id]
    assert len(await service.host.store.read("wb.datasets.>")) == 1
    assert await stored_names(service) == [f"{kept.dataset_id}.p00000"]


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
        await (await bucket(service)).put(f"{dataset.dataset_id}.p00000", prompt_file(4))
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
        await stub.RenameDataset(RenameDatasetRequest(dataset_id=first.dataset_id, name="renamed.jsonl"))
        await stub.DeleteDataset(DeleteDatasetRequest(dataset_id=gone.dataset_id))
        assert await listed_ids(stub) == [first.dataset_id, third.dataset_id]
        assert await stored_names(service) == sorted([f"{first.dataset_id}.p00000", f"{third.dataset_id}.p00000"])
    before = rows(settings.db_url)
    assert [(row["name"], len(row["pages"])) for row in before] == [("renamed.jsonl", 1), ("c.jsonl", 1)]

    await rebuild("datasets", settings, projections())  # python -m datasets_service rebuild
    assert rows(settings.db_url) == before

    forget_read_model(settings.db_url, drop_tables=True)  # the service recreates the tables at start
    async with running(settings), client(settings) as stub:
        assert rows(settings.db_url) == before
        assert [record.prompt for record in await read_all(stub, third.dataset_id)] == [f"Say {n}" for n in range(4)]
        with pytest.raises(grpc.aio.AioRpcError) as missing:  # deleted, and deleted it stays
            await stub.GetDataset(GetDatasetRequest(dataset_id=gone.dataset_id))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_csv_parquet_and_batch_files_read_back_with_their_metadata_and_sampling(stub: Any) -> None:
    csv_file = b'\xef\xbb\xbfid,prompt,candidate,years\nc/1,"Say\nhello",Ada,12\n,Second,Bob,\n'
    structs = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    sink = io.BytesIO()
    chat = [{"role": "user", "content": "Hi"}]
    pq.write_table(pa.table({"id": [7], "messages": pa.array([chat], structs), "pedigree": [["a", "b"]]}), sink)
    batch_file = json.dumps(
        {
            "custom_id": "req 1",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": chat, "temperature": 0.3, "max_tokens": 20},
            "candidate": "Cy",
        }
    ).encode()

    from_csv = await upload(stub, "candidates.csv", csv_file)
    from_parquet = await upload(stub, "upload", sink.getvalue())  # no extension: told by its content
    from_batch = await upload(stub, "batch.jsonl", batch_file)

    assert (from_csv.format, from_parquet.format) == (
        RecordFormat.RECORD_FORMAT_CSV,
        RecordFormat.RECORD_FORMAT_PARQUET,
    )
    csv_records = await read_all(stub, from_csv.dataset_id)
    assert [(r.record_id, r.prompt, json.loads(r.metadata_json)) for r in csv_records] == [
        ("c/1", "Say\nhello", {"candidate": "Ada", "years": "12"}),
        ("row-3", "Second", {"candidate": "Bob", "years": ""}),
    ]
    [parquet_record] = await read_all(stub, from_parquet.dataset_id)
    assert (parquet_record.record_id, parquet_record.messages[0].content) == ("7", "Hi")
    assert json.loads(parquet_record.metadata_json) == {"pedigree": ["a", "b"]}
    [batch_record] = await read_all(stub, from_batch.dataset_id)
    assert batch_record.record_id == "req 1"
    assert json.loads(batch_record.metadata_json) == {"candidate": "Cy", "body": {"model": "m"}}
    sampling = {field.name: value for field, value in batch_record.sampling.ListFields()}
    assert sampling == {"temperature": pytest.approx(0.3), "max_tokens": 20}
    assert not parquet_record.sampling.HasField("temperature")


async def test_a_batch_bodys_response_format_comes_back_as_each_records_json_schema(stub: Any) -> None:
    schema = {"type": "object", "properties": {"recommendation": {"type": "string"}}, "required": ["recommendation"]}
    chat = [{"role": "user", "content": "Judge Ada"}]
    formats: list[Any] = [
        {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}},
        {"type": "json_object"},
        {"type": "text"},
    ]
    lines = [
        {"custom_id": f"r{n}", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": chat, **given}}
        for n, given in enumerate([{"response_format": f} for f in formats] + [{}])
    ]
    batch_file = "\n".join(json.dumps(line) for line in lines).encode()

    dataset = await upload(stub, "verdicts.jsonl", batch_file)

    expected = [json.dumps(schema, separators=(",", ":")), '{"type":"object"}', "", ""]
    assert [record.json_schema for record in await read_all(stub, dataset.dataset_id)] == expected
    listed = await stub.ListRecords(ListRecordsRequest(dataset_id=dataset.dataset_id, limit=10))
    assert [record.json_schema for record in listed.records] == expected
    assert all(record.metadata_json == "{}" for record in listed.records)

    xml = {**lines[0], "custom_id": "r9", "body": {"messages": chat, "response_format": {"type": "xml"}}}
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await upload(stub, "bad.jsonl", batch_file + b"\n" + json.dumps(xml).encode())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [report] = status_details(refused.value)
    assert isinstance(report, ValidationReport)
    assert [(p.line, p.field) for p in report.problems] == [(5, "body.response_format")]


async def test_the_same_content_again_answers_the_dataset_it_is(service: RunningService, stub: Any) -> None:
    data = prompt_file(5)
    first = await upload_answer(stub, "a.jsonl", data)

    again = await upload_answer(stub, "b.jsonl", data, chunk_size=7)

    assert (first.already_registered, again.already_registered) == (False, True)
    assert again.dataset == first.dataset
    assert len(await service.host.store.read("wb.datasets.>")) == 1
    assert await stored_names(service) == [f"{first.dataset.dataset_id}.p00000"]


async def test_skip_invalid_registers_the_valid_records_and_reports_the_others(stub: Any) -> None:
    data = prompt_file(2) + b"nope\n" * 25 + b'{"prompt": 3}\n'

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await upload_answer(stub, "a.jsonl", data)
    answer = await upload_answer(stub, "a.jsonl", data, skip_invalid=True)

    [report] = status_details(refused.value)
    assert isinstance(report, ValidationReport)
    assert (len(report.problems), report.more, report.skipped_records) == (20, 6, 26)
    assert (refused.value.details() or "").startswith("line 3: not valid JSON")
    assert "\n... and 6 more\n" in (refused.value.details() or "")
    assert (answer.dataset.record_count, answer.dataset.skipped_records) == (2, 26)
    assert (len(answer.report.problems), answer.report.more, answer.report.skipped_records) == (20, 6, 26)
    assert answer.report.problems[0].line == 3
    assert [r.prompt for r in await read_all(stub, answer.dataset.dataset_id)] == ["Say 0", "Say 1"]


async def test_a_dataset_is_browsed_searched_renamed_and_deleted(service: RunningService, stub: Any) -> None:
    dataset = await upload(stub, "prompts.jsonl", prompt_file(30))

    page = await stub.ListRecords(ListRecordsRequest(dataset_id=dataset.dataset_id, offset=10, limit=5))
    found = await stub.ListRecords(ListRecordsRequest(dataset_id=dataset.dataset_id, q="SAY 2", limit=3))
    renamed = await stub.RenameDataset(RenameDatasetRequest(dataset_id=dataset.dataset_id, name="../Final.jsonl"))

    assert ([r.index for r in page.records], page.total) == ([10, 11, 12, 13, 14], 30)
    assert page.records[0].metadata_json == "{}"
    assert ([r.prompt for r in found.records], found.total) == (["Say 2", "Say 20", "Say 21"], 11)
    assert renamed.dataset.name == "Final.jsonl"
    assert [d.name for d in (await stub.ListDatasets(ListDatasetsRequest())).datasets] == ["Final.jsonl"]
    with pytest.raises(grpc.aio.AioRpcError) as too_many:
        await stub.ListRecords(ListRecordsRequest(dataset_id=dataset.dataset_id, limit=1001))
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    await stub.DeleteDataset(DeleteDatasetRequest(dataset_id=dataset.dataset_id))

    assert await listed_ids(stub) == [] and await stored_names(service) == []
    with pytest.raises(ObjectNotFoundError):
        await (await bucket(service)).get(f"{dataset.dataset_id}.p00000")
    events = [type(event.event) for event in await service.host.store.read("wb.datasets.>")]
    assert events == [DatasetRegistered, DatasetRenamed, DatasetDeleted]
    for call in [
        stub.DeleteDataset(DeleteDatasetRequest(dataset_id=dataset.dataset_id)),
        stub.DeleteDataset(DeleteDatasetRequest(dataset_id="ds_000000000000")),
        stub.RenameDataset(RenameDatasetRequest(dataset_id=dataset.dataset_id, name="x")),
        stub.ListRecords(ListRecordsRequest(dataset_id=dataset.dataset_id)),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await call
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
