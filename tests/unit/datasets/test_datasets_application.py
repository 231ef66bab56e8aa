"""The datasets application's use cases on the in-memory event store: upload, list, read, delete."""

import hashlib
import itertools
from collections.abc import AsyncIterator

import pytest

from datasets_service.adapters.read_model import DatasetsProjection, DatasetsReadModel
from datasets_service.adapters.record_cache import RecordCache
from datasets_service.application import BlobMissing, DatasetsApplication
from datasets_service.domain.errors import Conflict, InvalidDataset, NotFound, StoredFileUnreadable, UploadTooLarge
from eventlog import InMemoryEventStore, NewEvent
from tests.unit.in_memory import Projected, projected
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted, DatasetRegistered

FILE = b'{"id": "a", "prompt": "Say a"}\n{"messages": [{"role": "user", "content": "Hi"}]}\n'


class Files:
    """The file store, in a dict."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def put(self, name: str, data: bytes) -> None:
        self.blobs[name] = data

    async def get(self, name: str) -> bytes:
        if name not in self.blobs:
            raise BlobMissing(name)
        return self.blobs[name]


def application(world: Projected, files: Files, max_upload_bytes: int = 10_000) -> DatasetsApplication:
    ids = (f"ds_{n:012x}" for n in itertools.count(1))
    return DatasetsApplication(
        world.store,
        world.runner,
        DatasetsReadModel(world.database),
        files,
        RecordCache(1 << 20),
        max_upload_bytes,
        new_id=lambda: next(ids),
    )


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
async def world() -> AsyncIterator[Projected]:
    async with projected(DatasetsProjection()) as world:
        yield world


async def test_an_upload_is_stored_registered_listed_and_read_back(world: Projected) -> None:
    files = Files()
    app = application(world, files)

    dataset = await app.upload_dataset("../questions.jsonl", chunks(FILE))

    assert (dataset.dataset_id, dataset.name, dataset.record_count) == ("ds_000000000001", "questions.jsonl", 2)
    assert files.blobs == {"ds_000000000001.jsonl": FILE}
    [stored] = await world.store.read("wb.datasets.>")
    assert isinstance(stored.event, DatasetRegistered) and stored.event.sha256 == hashlib.sha256(FILE).hexdigest()
    assert await app.list_datasets() == [dataset]
    records = await app.read_records(dataset.dataset_id)
    assert [(r.record_id, r.prompt) for r in records] == [("a", "Say a"), ("line-2", None)]
    assert [r.record_id for r in await app.read_records(dataset.dataset_id, offset=1, limit=1)] == ["line-2"]


async def test_a_bad_file_or_one_too_large_leaves_no_trace(world: Projected) -> None:
    files = Files()
    app = application(world, files, max_upload_bytes=len(FILE))

    with pytest.raises(InvalidDataset, match="line 2"):
        await app.upload_dataset("bad.jsonl", chunks(b'{"prompt": "ok"}\n{"prompt": 3}\n'))
    with pytest.raises(UploadTooLarge):
        await app.upload_dataset("big.jsonl", chunks(FILE + b"\n"))

    assert await world.store.read("wb.datasets.>") == [] and files.blobs == {}
    assert await app.list_datasets() == []


async def test_a_deleted_dataset_is_gone_and_deleting_it_again_changes_nothing(world: Projected) -> None:
    app = application(world, Files())
    dataset = await app.upload_dataset("a.jsonl", chunks(FILE))

    await app.delete_dataset(dataset.dataset_id)
    await app.delete_dataset(dataset.dataset_id)

    assert await app.list_datasets() == []
    with pytest.raises(NotFound):
        await app.get_dataset(dataset.dataset_id)
    assert [type(e.event) for e in await world.store.read("wb.datasets.>")] == [DatasetRegistered, DatasetDeleted]
    with pytest.raises(NotFound):
        await app.delete_dataset("ds_ffffffffffff")


async def test_a_delete_that_races_another_writer_is_a_conflict_not_a_double_delete() -> None:
    class Racing(InMemoryEventStore):
        """Another writer appends to the dataset between this one's read and its append."""

        async def append(self, new: NewEvent) -> int:
            if isinstance(new.event, DatasetDeleted) and not getattr(self, "raced", False):
                self.raced = True
                await super().append(NewEvent(new.subject, DatasetDeleted(dataset_id=new.event.dataset_id)))
            return await super().append(new)

    async with projected(DatasetsProjection(), Racing()) as world:
        app = application(world, Files())
        dataset = await app.upload_dataset("a.jsonl", chunks(FILE))

        with pytest.raises(Conflict, match="changed meanwhile"):
            await app.delete_dataset(dataset.dataset_id)

        assert len(await world.store.read("wb.datasets.>")) == 2


async def test_a_stored_file_that_was_changed_or_lost_is_reported_not_served(world: Projected) -> None:
    files = Files()
    app = application(world, files)
    changed = await app.upload_dataset("a.jsonl", chunks(FILE))
    lost = await app.upload_dataset("b.jsonl", chunks(FILE))
    app.cache = RecordCache(1 << 20)  # as after a restart: nothing parsed yet
    files.blobs[changed.object_name] = FILE + b'{"prompt": "extra"}\n'
    del files.blobs[lost.object_name]

    with pytest.raises(StoredFileUnreadable, match="sha256"):
        await app.read_records(changed.dataset_id)
    with pytest.raises(StoredFileUnreadable, match="missing"):
        await app.read_records(lost.dataset_id)
