"""The datasets application: upload (spool -> validate -> store pages -> register), rename and
delete, and the queries: datasets, records in order, a page of records with a search.

Commands follow load -> decide -> append, then wait for this service's own projection, so a read
right after a command sees its effect. Read-model queries, parsing and hashing run in worker
threads, so a slow one holds up neither the projector nor other calls.

Memory stays bounded whatever the file: an upload goes to a spool file as it arrives, then is read
back streaming in a worker thread, record by record, while the event loop stores each page of
valid records as it fills; records are read back a page at a time, through a bounded cache.
"""

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from datasets_service.adapters.file_readers import detect_kind, read_records
from datasets_service.adapters.page_cache import CacheKey, PageCache
from datasets_service.adapters.read_model import DatasetsReadModel
from datasets_service.adapters.spool import SpooledUpload, spool
from datasets_service.domain.commands import DeleteDataset, RegisterDataset, RenameDataset
from datasets_service.domain.dataset import DatasetInfo
from datasets_service.domain.errors import Conflict, InvalidInput, NotFound, StoredFileUnreadable
from datasets_service.domain.names import dataset_subject, is_dataset_id, safe_file_name
from datasets_service.domain.pages import Page, PageInfo, page_records, paginate
from datasets_service.domain.records import Record, may_match
from datasets_service.domain.report import ValidationReport
from datasets_service.domain.state import Command, DatasetState, decide, evolve
from datasets_service.domain.upload import Limits, UploadCheck
from eventlog import ConcurrencyConflict, EventStore, NewEvent, ProjectionRunner, load_aggregate
from servicehost.clock import Clock, utc_now
from workbench.datasets.v1.datasets_pb2 import RecordFormat

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_LIST_LIMIT = 1000
# Pages being stored at once: each put waits on several round trips to the object store, so a few
# in flight keep the upload going at the pace of parsing (at most this many pages held meanwhile).
PUTS_IN_FLIGHT = 4
DEFAULT_LIST_LIMIT = 100
ROW_FORMATS = (RecordFormat.RECORD_FORMAT_CSV, RecordFormat.RECORD_FORMAT_PARQUET)


class BlobMissing(Exception):
    """No object of that name in the file store."""


class FileStore(Protocol):
    """Where the records are kept (the JetStream object store; a dict in unit tests)."""

    async def put(self, name: str, data: bytes) -> None: ...

    async def get(self, name: str) -> bytes:
        """The object's bytes; BlobMissing when there is none."""
        ...

    async def delete(self, name: str) -> None:
        """Removes the object; BlobMissing when there is none."""
        ...


@dataclass(frozen=True, slots=True)
class Upload:
    """What the uploader says about the file: its name (whose extension names its kind), and
    whether to register the valid records of a file that has invalid ones."""

    name: str
    skip_invalid: bool = False


@dataclass(frozen=True, slots=True)
class UploadOutcome:
    dataset: DatasetInfo
    already_registered: bool  # identical content was registered before: nothing new was stored
    report: ValidationReport  # with skip_invalid: the records left out, and why


@dataclass(frozen=True, slots=True)
class RecordsPage:
    records: tuple[Record, ...]
    total: int  # the dataset's records, or those matching the search


def new_dataset_id() -> str:
    return "ds_" + secrets.token_hex(6)


@dataclass
class DatasetsApplication:
    """Everything the datasets service can do, independent of gRPC."""

    store: EventStore
    projection: ProjectionRunner
    read_model: DatasetsReadModel
    files: FileStore
    cache: PageCache
    max_upload_bytes: int
    limits: Limits = field(default_factory=Limits)
    page_records: int = 1000
    spool_dir: str = ""  # empty: the system's temporary directory
    clock: Clock = utc_now
    new_id: Callable[[], str] = new_dataset_id

    async def upload_dataset(self, upload: Upload, chunks: AsyncIterable[bytes]) -> UploadOutcome:
        """Validates a file (JSONL, CSV or Parquet), stores its records in pages and registers it.

        Content identical to a live dataset's answers that dataset and stores nothing. Raises
        UploadTooLarge past max_upload_bytes, TooManyRecords past the record limit, and
        InvalidDataset (the first problems, how many more) when a record is invalid, unless
        upload.skip_invalid, or when none is valid; a refused upload leaves nothing stored.
        """
        spooled = await spool(chunks, self.spool_dir, self.max_upload_bytes)
        try:
            existing = await asyncio.to_thread(self.read_model.with_content, spooled.sha256)
            # A strict upload of a file registered with records skipped must hear about them.
            if existing is not None and (upload.skip_invalid or existing.skipped_records == 0):
                word = "row" if existing.format in ROW_FORMATS else "line"
                return UploadOutcome(existing, True, ValidationReport((), 0, existing.skipped_records, word))
            return await self._register(upload, spooled)
        finally:
            await asyncio.to_thread(spooled.remove)

    async def rename_dataset(self, dataset_id: str, name: str) -> DatasetInfo:
        """Gives a live dataset another name (made safe as an upload's); NotFound, InvalidInput."""
        self._check_id(dataset_id)
        await self._execute(dataset_id, RenameDataset(dataset_id, name, renamed_at=self.clock()))
        return await self.get_dataset(dataset_id)

    async def delete_dataset(self, dataset_id: str) -> None:
        """Removes a live dataset from the catalogue (its events stay in the log), then its stored
        records; NotFound for an unknown or already deleted dataset."""
        self._check_id(dataset_id)
        state = await self._load(dataset_id)
        await self._append(dataset_id, decide(state, DeleteDataset(dataset_id, deleted_at=self.clock())))
        await self._delete_objects(state.stored_objects)

    async def list_datasets(self) -> list[DatasetInfo]:
        """Every live dataset, in registration order."""
        return await asyncio.to_thread(self.read_model.list)

    async def get_dataset(self, dataset_id: str) -> DatasetInfo:
        """One dataset; NotFound when it was never registered or has been deleted."""
        info = await asyncio.to_thread(self.read_model.get, dataset_id)
        if info is None:
            raise NotFound(f"there is no dataset {dataset_id!r}; list the datasets to find its id")
        return info

    async def read_records(self, dataset_id: str, offset: int = 0, limit: int = 0) -> AsyncIterator[Record]:
        """The records at positions offset .. offset+limit-1 (limit 0: to the end), in file order.

        Only the pages holding them are fetched, each checked against its sha256, and kept parsed
        in a bounded cache so that reading a dataset shard by shard fetches each page once.
        """
        if offset < 0 or limit < 0:
            raise InvalidInput(f"offset and limit must not be negative (got offset {offset}, limit {limit})")
        info = await self.get_dataset(dataset_id)
        end = info.record_count if limit == 0 else min(info.record_count, offset + limit)
        if offset >= end:
            return
        for page in await asyncio.to_thread(self.read_model.pages, dataset_id, offset, end):
            records = await self._page_records(info, page)
            for record in records[max(offset - page.first_index, 0) : end - page.first_index]:
                yield record

    async def list_records(self, dataset_id: str, offset: int = 0, limit: int = 0, q: str = "") -> RecordsPage:
        """One page of a dataset's records (limit 0: DEFAULT_LIST_LIMIT; at most MAX_LIST_LIMIT).

        With q, only the records whose id, input text or metadata hold it (ignoring case), and
        total counts them: every page of the dataset is read, in order, one at a time (and parsed
        only when its text holds q).
        """
        if offset < 0 or limit < 0 or limit > MAX_LIST_LIMIT:
            raise InvalidInput(
                f"offset must not be negative and limit must be from 0 to {MAX_LIST_LIMIT} "
                f"(got offset {offset}, limit {limit}); page through longer lists with offset"
            )
        limit = limit or DEFAULT_LIST_LIMIT
        info = await self.get_dataset(dataset_id)
        if not q:
            records = [record async for record in self.read_records(dataset_id, offset, limit)]
            return RecordsPage(tuple(records), info.record_count)
        needle = q.casefold()
        found: list[Record] = []
        total = 0
        for page in await asyncio.to_thread(self.read_model.pages, dataset_id):
            matching = await self._search_page(info, page, needle)
            found += matching[max(offset - total, 0) : max(offset + limit - total, 0)]
            total += len(matching)
        return RecordsPage(tuple(found), total)

    async def _register(self, upload: Upload, spooled: SpooledUpload) -> UploadOutcome:
        dataset_id = self.new_id()
        kind = await asyncio.to_thread(detect_kind, spooled.path, upload.name, self.limits.max_line_bytes)
        check = UploadCheck(kind, self.limits, upload.skip_invalid)
        raw_records = read_records(spooled.path, kind, self.limits.max_line_bytes)
        stored: list[PageInfo] = []  # in order; each put, or being put
        putting: set[asyncio.Task[None]] = set()

        async def settle(at_most: int) -> None:
            nonlocal putting
            while len(putting) > at_most:
                done, putting = await asyncio.wait(putting, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a put that failed fails the upload

        async def store(page: Page) -> None:
            await settle(PUTS_IN_FLIGHT - 1)
            stored.append(page.info)
            putting.add(asyncio.create_task(self.files.put(page.info.object_name, page.data)))

        try:
            await _each_in_worker_thread(paginate(check.kept_lines(raw_records), dataset_id, self.page_records), store)
            await settle(0)
            checked = check.finish()
            dataset = DatasetInfo(
                dataset_id=dataset_id,
                name=safe_file_name(upload.name),
                format=checked.format,
                record_count=checked.record_count,
                sha256=spooled.sha256,
                object_name="",
                size_bytes=spooled.size_bytes,
                registered_at=self.clock(),
                skipped_records=checked.report.skipped_records,
            )
            new_events = decide(await self._load(dataset_id), RegisterDataset(dataset, tuple(stored)))
        except BaseException:
            # Puts are let finish, not cancelled: a put cut short would leave chunks without an object.
            await asyncio.gather(*putting, return_exceptions=True)
            await self._delete_objects(page.object_name for page in stored)
            raise
        # Should the append below fail, the pages stay in the bucket as orphans: no event refers to
        # them, so no reader ever sees them; the client gets an error and may retry.
        await self._append(dataset_id, new_events)
        return UploadOutcome(await self.get_dataset(dataset_id), False, checked.report)

    async def _page_records(self, info: DatasetInfo, page: PageInfo, data: bytes | None = None) -> tuple[Record, ...]:
        """The page's records, from the cache or parsed (from data when it was fetched already)."""

        async def load() -> tuple[Record, ...]:
            return await self._parse(info, page, data if data is not None else await self._fetch(info, page))

        return await self.cache.get(CacheKey(page.object_name, page.sha256), page.size_bytes, load)

    async def _search_page(self, info: DatasetInfo, page: PageInfo, needle: str) -> list[Record]:
        records = self.cache.peek(CacheKey(page.object_name, page.sha256))
        if records is None:
            data = await self._fetch(info, page)
            # A legacy file is as the user wrote it (escapes, spacing): only its records can tell.
            if not page.legacy and not await asyncio.to_thread(may_match, data, needle):
                return []
            records = await self._page_records(info, page, data)
        return await asyncio.to_thread(_matching, records, needle)

    async def _fetch(self, info: DatasetInfo, page: PageInfo) -> bytes:
        try:
            data = await self.files.get(page.object_name)
        except BlobMissing:
            missing = f"{_where(info, page)} is missing from the object store; upload the file again"
            raise StoredFileUnreadable(missing) from None
        if await asyncio.to_thread(_sha256, data) != page.sha256:
            raise StoredFileUnreadable(f"{_where(info, page)} does not match its sha256; upload the file again")
        return data

    async def _parse(self, info: DatasetInfo, page: PageInfo, data: bytes) -> tuple[Record, ...]:
        try:
            return await asyncio.to_thread(page_records, page, data)
        except ValueError as error:  # validated at upload: only a change of format could get here
            raise StoredFileUnreadable(f"{_where(info, page)} no longer reads: {error}") from None

    async def _delete_objects(self, names: Iterable[str]) -> None:
        """Best effort: an object left behind is an orphan no event refers to, logged here."""
        for name in names:
            try:
                await self.files.delete(name)
            except BlobMissing:
                pass
            except Exception:
                log.warning("could not delete %s from the object store; it is left as an orphan", name, exc_info=True)

    def _check_id(self, dataset_id: str) -> None:
        if not is_dataset_id(dataset_id):  # nor could it be a subject token
            raise NotFound(f"there is no dataset {dataset_id!r}; list the datasets to find its id")

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


async def _each_in_worker_thread(items: Generator[T, None, None], use: Callable[[T], Awaitable[None]]) -> None:
    """Awaits use(item) for each item while a worker thread makes the next one: the next page is
    parsed while this one is stored. However this ends, the generator is closed, never mid-step."""
    step = asyncio.ensure_future(asyncio.to_thread(next, items, None))
    try:
        while (item := await asyncio.shield(step)) is not None:
            step = asyncio.ensure_future(asyncio.to_thread(next, items, None))
            await use(item)
    finally:
        with contextlib.suppress(BaseException):
            await step  # a generator cannot be closed while a thread runs it
        items.close()


def _where(info: DatasetInfo, page: PageInfo) -> str:
    return f"page {page.number} of dataset {info.dataset_id} ({page.object_name})"


def _matching(records: tuple[Record, ...], needle: str) -> list[Record]:
    return [record for record in records if record.matches(needle)]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
