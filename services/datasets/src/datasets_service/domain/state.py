"""The dataset aggregate: its state is a fold of its events; decide() turns a command into events.

Both functions are pure: no I/O, no clock, no randomness (the command carries ids and times).
"""

from dataclasses import dataclass, replace

from google.protobuf.message import Message

from datasets_service.domain.commands import DeleteDataset, RegisterDataset, RenameDataset
from datasets_service.domain.errors import Conflict, InvalidInput, NotFound
from datasets_service.domain.names import clean_name, dataset_subject, is_dataset_id, page_object_name
from eventlog.events import NewEvent, to_timestamp
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted, DatasetPage, DatasetRegistered, DatasetRenamed

Command = RegisterDataset | RenameDataset | DeleteDataset


@dataclass(frozen=True, slots=True)
class DatasetState:
    """What the write side needs to know about one dataset; version: its subject's last sequence.

    stored_objects: the objects holding its records (its pages, or a legacy dataset's whole file).
    """

    dataset_id: str
    registered: bool = False
    deleted: bool = False
    name: str = ""
    sha256: str = ""
    stored_objects: tuple[str, ...] = ()
    version: int = 0

    @property
    def live(self) -> bool:
        return self.registered and not self.deleted


def evolve(state: DatasetState, event: Message, sequence: int) -> DatasetState:
    """The state after one event; events of other types leave it unchanged (but for its version)."""
    if isinstance(event, DatasetRegistered):
        stored = tuple(page.object_name for page in event.pages) or (event.object_name,)
        return replace(
            state,
            registered=True,
            deleted=False,
            name=event.name,
            sha256=event.sha256,
            stored_objects=stored,
            version=sequence,
        )
    if isinstance(event, DatasetRenamed):
        return replace(state, name=event.name, version=sequence)
    if isinstance(event, DatasetDeleted):
        return replace(state, deleted=True, version=sequence)
    return replace(state, version=sequence)


def decide(state: DatasetState, command: Command) -> list[NewEvent]:
    """The events a command produces on this dataset, or a domain error saying why not."""
    if isinstance(command, RegisterDataset):
        return _register(state, command)
    if not state.live:
        raise NotFound(f"there is no dataset {command.dataset_id}; list the datasets to find its id")
    if isinstance(command, RenameDataset):
        return _rename(state, command)
    event = DatasetDeleted(dataset_id=command.dataset_id, deleted_at=to_timestamp(command.deleted_at))
    return [_new(state, event, f"dataset:{command.dataset_id}:deleted")]


def _register(state: DatasetState, command: RegisterDataset) -> list[NewEvent]:
    dataset, pages = command.dataset, command.pages
    if not is_dataset_id(dataset.dataset_id):
        raise InvalidInput(f"{dataset.dataset_id!r} is not a dataset id (ds_ followed by 12 hex digits)")
    if state.registered:
        raise Conflict(f"dataset {dataset.dataset_id} is already registered; upload the file again for a new id")
    if dataset.record_count <= 0:
        raise InvalidInput("a dataset needs at least one record")
    if sum(page.record_count for page in pages) != dataset.record_count:
        raise InvalidInput(f"the pages of {dataset.dataset_id} do not hold its {dataset.record_count} records")
    for number, page in enumerate(pages):
        expected = page_object_name(dataset.dataset_id, number)
        if page.object_name != expected or page.record_count <= 0:
            raise InvalidInput(f"page {number} of {dataset.dataset_id} must hold records and be stored as {expected}")
    if dataset.object_name:
        raise InvalidInput("a new dataset's records are stored in pages, not as one object")
    event = DatasetRegistered(
        **dataset.message_fields(),
        pages=[
            DatasetPage(
                object_name=page.object_name,
                record_count=page.record_count,
                sha256=page.sha256,
                size_bytes=page.size_bytes,
            )
            for page in pages
        ],
    )
    return [_new(state, event, f"dataset:{dataset.dataset_id}")]


def _rename(state: DatasetState, command: RenameDataset) -> list[NewEvent]:
    name = clean_name(command.name)
    if not name:
        raise InvalidInput("a dataset's name must not be empty (nor only control characters, / or dots)")
    if name == state.name:
        return []  # renaming to the name it has changes nothing, so a retried rename succeeds
    event = DatasetRenamed(dataset_id=command.dataset_id, name=name, renamed_at=to_timestamp(command.renamed_at))
    # One id per version renamed from: a retry of this rename deduplicates, a later rename does not.
    return [_new(state, event, f"dataset:{command.dataset_id}:renamed:{state.version}")]


def _new(state: DatasetState, event: Message, msg_id: str) -> NewEvent:
    # The message id is chosen here, once, so a retried append is deduplicated; the expected
    # sequence makes a concurrent writer of the same dataset fail instead of overwriting.
    return NewEvent(dataset_subject(state.dataset_id), event, msg_id=msg_id, expected_sequence=state.version)
