"""The datasets application: upload (validate -> store the file -> register), queries, records.

Commands follow load -> decide -> append, then wait for this service's own projection, so a read
right after a command sees its effect.
"""

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message

from datasets_service.adapters.object_store import BlobMissing, DatasetFiles
from datasets_service.adapters.read_model import DatasetQueries, DatasetRow
from datasets_service.adapters.record_cache import CacheKey, RecordCache
from datasets_service.domain.commands import DeleteDataset, RegisterDataset
from datasets_service.domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    StoredFileUnreadable,
    UploadTooLarge,
)
from datasets_service.domain.names import dataset_subject, is_dataset_id, object_name, safe_file_name
from datasets_service.domain.records import ParsedDataset, Record, parse_jsonl
from datasets_service.domain.state import Command, DatasetState, decide, event_id, evolve
from eventlog import ConcurrencyConflict, EventLog, ProjectionRunner
from workbench.datasets.v1.datasets_pb2 import RecordFormat


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """A registered dataset as the catalogue shows it."""

    dataset_id: str
    name: str
    format: "RecordFormat.ValueType"
    record_count: int
    sha256: str
    object_name: str
    size_bytes: int
    registered_at: datetime


def new_dataset_id() -> str:
    return "ds_" + secrets.token_hex(6)


class DatasetsApplication:
    """Everything the datasets service can do, independent of gRPC."""

    def __init__(
        self,
        events: EventLog,
        runner: ProjectionRunner,
        queries: DatasetQueries,
        files: DatasetFiles,
        cache: RecordCache,
        max_upload_bytes: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = new_dataset_id,
    ) -> None:
        self.events = events
        self.runner = runner
        self.queries = queries
        self.files = files
        self.cache = cache
        self.max_upload_bytes = max_upload_bytes
        self.clock = clock
        self.new_id = new_id

    async def upload_dataset(self, name: str, chunks: AsyncIterable[bytes]) -> DatasetInfo:
        """Validates a whole JSONL file, stores it, registers it as a new dataset and returns it.

        Raises UploadTooLarge past max_upload_bytes and InvalidDataset (naming the bad lines)
        before anything is stored, so a rejected upload leaves no trace.
        """
        data = await self._receive(chunks)
        parsed = await asyncio.to_thread(parse_jsonl, data)
        sha256 = await asyncio.to_thread(_sha256, data)
        dataset_id = self.new_id()
        command = RegisterDataset(
            dataset_id=dataset_id,
            name=safe_file_name(name),
            format=parsed.format,
            record_count=len(parsed.records),
            sha256=sha256,
            object_name=object_name(dataset_id),
            size_bytes=len(data),
            registered_at=self.clock(),
        )
        state, version = await self._load(dataset_id)
        new_events = decide(state, command)
        await self.files.put(command.object_name, data)
        # Should the append below fail, the file stays in the bucket as an orphan: no event refers
        # to it, so no read model or reader ever sees it; the client gets an error and may retry.
        await self._append(dataset_id, version, new_events)
        self.cache.put(CacheKey(dataset_id, command.sha256), parsed, len(data))
        return self.get_dataset(dataset_id)

    async def delete_dataset(self, dataset_id: str) -> None:
        """Removes a dataset from the catalogue; deleting it again is a no-op."""
        if not is_dataset_id(dataset_id):
            raise NotFound(f"there is no dataset {dataset_id!r}; list the datasets to find its id")
        await self._execute(dataset_id, DeleteDataset(dataset_id, deleted_at=self.clock()))

    def list_datasets(self) -> list[DatasetInfo]:
        """Every live dataset, in registration order."""
        return [_info(row) for row in self.queries.list()]

    def get_dataset(self, dataset_id: str) -> DatasetInfo:
        """One dataset; NotFound when it was never registered or has been deleted."""
        return _info(self._row(dataset_id))

    async def read_records(self, dataset_id: str, offset: int = 0, limit: int = 0) -> Sequence[Record]:
        """The records at positions offset .. offset+limit-1 (limit 0: to the end), in file order.

        The file comes from the object store, checked against its sha256, and stays parsed in a
        small in-memory cache so that reading a dataset shard by shard downloads it once.
        """
        if offset < 0 or limit < 0:
            raise InvalidInput(f"offset and limit must not be negative (got offset {offset}, limit {limit})")
        row = self._row(dataset_id)
        parsed = await self.cache.get(CacheKey(row.dataset_id, row.sha256), row.size_bytes, lambda: self._parse(row))
        return parsed.records[offset : None if limit == 0 else offset + limit]

    async def _receive(self, chunks: AsyncIterable[bytes]) -> bytes:
        received = bytearray()
        async for chunk in chunks:
            if len(received) + len(chunk) > self.max_upload_bytes:
                raise UploadTooLarge(self.max_upload_bytes)
            received += chunk
        return bytes(received)

    async def _parse(self, row: DatasetRow) -> ParsedDataset:
        try:
            data = await self.files.get(row.object_name)
        except BlobMissing:
            raise StoredFileUnreadable(
                f"the file of dataset {row.dataset_id} ({row.object_name}) is missing from the object store; "
                "upload the file again"
            ) from None
        if await asyncio.to_thread(_sha256, data) != row.sha256:
            raise StoredFileUnreadable(
                f"the stored file of dataset {row.dataset_id} does not match its sha256; upload the file again"
            )
        try:
            return await asyncio.to_thread(parse_jsonl, data)
        except InvalidInput as error:  # validated at upload: only a parser change could get here
            raise StoredFileUnreadable(
                f"the stored file of dataset {row.dataset_id} no longer parses: {error}"
            ) from None

    def _row(self, dataset_id: str) -> DatasetRow:
        row = self.queries.get(dataset_id)
        if row is None:
            raise NotFound(f"there is no dataset {dataset_id!r}; list the datasets to find its id")
        return row

    async def _execute(self, dataset_id: str, command: Command) -> None:
        state, version = await self._load(dataset_id)
        await self._append(dataset_id, version, decide(state, command))

    async def _load(self, dataset_id: str) -> tuple[DatasetState, int]:
        state, version = DatasetState(dataset_id), 0
        for stored in await self.events.read(dataset_subject(dataset_id)):
            state, version = evolve(state, stored.event), stored.sequence
        return state, version

    async def _append(self, dataset_id: str, version: int, new_events: list[Message]) -> None:
        subject = dataset_subject(dataset_id)
        sequence = 0
        for event in new_events:
            try:
                sequence = await self.events.append(
                    subject, event, msg_id=event_id(event), expected_sequence=sequence or version
                )
            except ConcurrencyConflict as conflict:
                raise Conflict(f"dataset {dataset_id} changed meanwhile: {conflict}") from None
        if sequence:
            await self.runner.wait_for(sequence)


def _sha256(data: bytes) -> str:
    # Off the event loop, like parsing: a file may be hundreds of megabytes.
    return hashlib.sha256(data).hexdigest()


def _info(row: DatasetRow) -> DatasetInfo:
    return DatasetInfo(
        dataset_id=row.dataset_id,
        name=row.name,
        format=row.format,  # type: ignore[arg-type]
        record_count=row.record_count,
        sha256=row.sha256,
        object_name=row.object_name,
        size_bytes=row.size_bytes,
        registered_at=row.registered_at,
    )
