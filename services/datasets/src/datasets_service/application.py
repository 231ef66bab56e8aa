"""The datasets application: upload (validate -> store the file -> register), queries, records.

Commands follow load -> decide -> append, then wait for this service's own projection, so a read
right after a command sees its effect. Read-model queries run in worker threads, so a slow one
holds up neither the projector nor other calls.
"""

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from datasets_service.adapters.read_model import DatasetsReadModel
from datasets_service.adapters.record_cache import CacheKey, RecordCache
from datasets_service.domain.commands import DeleteDataset, RegisterDataset
from datasets_service.domain.dataset import DatasetInfo
from datasets_service.domain.errors import Conflict, InvalidInput, NotFound, StoredFileUnreadable, UploadTooLarge
from datasets_service.domain.names import dataset_subject, is_dataset_id, object_name, safe_file_name
from datasets_service.domain.records import ParsedDataset, Record, parse_jsonl
from datasets_service.domain.state import Command, DatasetState, decide, evolve
from eventlog import ConcurrencyConflict, EventStore, NewEvent, ProjectionRunner, load_aggregate
from servicehost.clock import Clock, utc_now


class BlobMissing(Exception):
    """No file of that name in the file store."""


class FileStore(Protocol):
    """Where dataset files are kept whole (the JetStream object store; a dict in unit tests)."""

    async def put(self, name: str, data: bytes) -> None: ...

    async def get(self, name: str) -> bytes:
        """The file's bytes; BlobMissing when there is none."""
        ...


def new_dataset_id() -> str:
    return "ds_" + secrets.token_hex(6)


@dataclass
class DatasetsApplication:
    """Everything the datasets service can do, independent of gRPC."""

    store: EventStore
    projection: ProjectionRunner
    read_model: DatasetsReadModel
    files: FileStore
    cache: RecordCache
    max_upload_bytes: int
    clock: Clock = utc_now
    new_id: Callable[[], str] = new_dataset_id

    async def upload_dataset(self, name: str, chunks: AsyncIterable[bytes]) -> DatasetInfo:
        """Validates a whole JSONL file, stores it, registers it as a new dataset and returns it.

        Raises UploadTooLarge past max_upload_bytes and InvalidDataset (naming the bad lines)
        before anything is stored, so a rejected upload leaves no trace.
        """
        data = await self._receive(chunks)
        parsed = await asyncio.to_thread(parse_jsonl, data)
        sha256 = await asyncio.to_thread(_sha256, data)
        dataset_id = self.new_id()
        dataset = DatasetInfo(
            dataset_id=dataset_id,
            name=safe_file_name(name),
            format=parsed.format,
            record_count=len(parsed.records),
            sha256=sha256,
            object_name=object_name(dataset_id),
            size_bytes=len(data),
            registered_at=self.clock(),
        )
        new_events = decide(await self._load(dataset_id), RegisterDataset(dataset))
        await self.files.put(dataset.object_name, data)
        # Should the append below fail, the file stays in the bucket as an orphan: no event refers
        # to it, so no read model or reader ever sees it; the client gets an error and may retry.
        await self._append(dataset_id, new_events)
        self.cache.put(CacheKey(dataset_id, sha256), parsed, len(data))
        return await self.get_dataset(dataset_id)

    async def delete_dataset(self, dataset_id: str) -> None:
        """Removes a dataset from the catalogue (its events stay in the log); deleting it again is a no-op."""
        if not is_dataset_id(dataset_id):
            raise NotFound(f"there is no dataset {dataset_id!r}; list the datasets to find its id")
        await self._execute(dataset_id, DeleteDataset(dataset_id, deleted_at=self.clock()))

    async def list_datasets(self) -> list[DatasetInfo]:
        """Every live dataset, in registration order."""
        return await asyncio.to_thread(self.read_model.list)

    async def get_dataset(self, dataset_id: str) -> DatasetInfo:
        """One dataset; NotFound when it was never registered or has been deleted."""
        info = await asyncio.to_thread(self.read_model.get, dataset_id)
        if info is None:
            raise NotFound(f"there is no dataset {dataset_id!r}; list the datasets to find its id")
        return info

    async def read_records(self, dataset_id: str, offset: int = 0, limit: int = 0) -> Sequence[Record]:
        """The records at positions offset .. offset+limit-1 (limit 0: to the end), in file order.

        The file comes from the file store, checked against its sha256, and stays parsed in a
        small in-memory cache so that reading a dataset shard by shard downloads it once.
        """
        if offset < 0 or limit < 0:
            raise InvalidInput(f"offset and limit must not be negative (got offset {offset}, limit {limit})")
        info = await self.get_dataset(dataset_id)
        parsed = await self.cache.get(
            CacheKey(info.dataset_id, info.sha256), info.size_bytes, lambda: self._parse(info)
        )
        return parsed.records[offset : None if limit == 0 else offset + limit]

    async def _receive(self, chunks: AsyncIterable[bytes]) -> bytes:
        received = bytearray()
        async for chunk in chunks:
            if len(received) + len(chunk) > self.max_upload_bytes:
                raise UploadTooLarge(self.max_upload_bytes)
            received += chunk
        return bytes(received)

    async def _parse(self, info: DatasetInfo) -> ParsedDataset:
        try:
            data = await self.files.get(info.object_name)
        except BlobMissing:
            raise StoredFileUnreadable(
                f"the file of dataset {info.dataset_id} ({info.object_name}) is missing from the object store; "
                "upload the file again"
            ) from None
        if await asyncio.to_thread(_sha256, data) != info.sha256:
            raise StoredFileUnreadable(
                f"the stored file of dataset {info.dataset_id} does not match its sha256; upload the file again"
            )
        try:
            return await asyncio.to_thread(parse_jsonl, data)
        except InvalidInput as error:  # validated at upload: only a parser change could get here
            raise StoredFileUnreadable(
                f"the stored file of dataset {info.dataset_id} no longer parses: {error}"
            ) from None

    async def _execute(self, dataset_id: str, command: Command) -> None:
        await self._append(dataset_id, decide(await self._load(dataset_id), command))

    async def _load(self, dataset_id: str) -> DatasetState:
        return await load_aggregate(self.store, dataset_subject(dataset_id), DatasetState(dataset_id), evolve)

    async def _append(self, dataset_id: str, new_events: list[NewEvent]) -> None:
        sequence = 0
        for new in new_events:
            try:
                sequence = await self.store.append(new)
            except ConcurrencyConflict:
                raise Conflict(f"dataset {dataset_id} changed meanwhile; reload it and try again") from None
        if sequence:
            await self.projection.wait_for(sequence)


def _sha256(data: bytes) -> str:
    # Off the event loop, like parsing: a file may be hundreds of megabytes.
    return hashlib.sha256(data).hexdigest()
