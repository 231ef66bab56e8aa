"""The dataset aggregate: its state is a fold of its events; decide() turns a command into events.

Both functions are pure: no I/O, no clock, no randomness (the command carries ids and times).
"""

from dataclasses import dataclass, replace

from google.protobuf.message import Message

from datasets_service.domain.commands import DeleteDataset, RegisterDataset
from datasets_service.domain.errors import Conflict, InvalidInput, NotFound
from datasets_service.domain.names import dataset_subject, is_dataset_id, object_name
from eventlog.events import NewEvent, to_timestamp
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted, DatasetRegistered

Command = RegisterDataset | DeleteDataset


@dataclass(frozen=True, slots=True)
class DatasetState:
    """What the write side needs to know about one dataset; version: its subject's last sequence."""

    dataset_id: str
    registered: bool = False
    deleted: bool = False
    sha256: str = ""
    version: int = 0


def evolve(state: DatasetState, event: Message, sequence: int) -> DatasetState:
    """The state after one event; events of other types leave it unchanged (but for its version)."""
    if isinstance(event, DatasetRegistered):
        return replace(state, registered=True, deleted=False, sha256=event.sha256, version=sequence)
    if isinstance(event, DatasetDeleted):
        return replace(state, deleted=True, version=sequence)
    return replace(state, version=sequence)


def decide(state: DatasetState, command: Command) -> list[NewEvent]:
    """The events a command produces on this dataset, or a domain error saying why not."""
    if isinstance(command, RegisterDataset):
        return _register(state, command)
    return _delete(state, command)


def _register(state: DatasetState, command: RegisterDataset) -> list[NewEvent]:
    dataset = command.dataset
    if not is_dataset_id(dataset.dataset_id):
        raise InvalidInput(f"{dataset.dataset_id!r} is not a dataset id (ds_ followed by 12 hex digits)")
    if state.registered:
        raise Conflict(f"dataset {dataset.dataset_id} is already registered; upload the file again for a new id")
    if dataset.record_count <= 0:
        raise InvalidInput("a dataset needs at least one record")
    if dataset.object_name != object_name(dataset.dataset_id):
        raise InvalidInput(f"the file of {dataset.dataset_id} must be stored as {object_name(dataset.dataset_id)}")
    event = DatasetRegistered(**dataset.message_fields())
    return [_new(state, event, f"dataset:{dataset.dataset_id}")]


def _delete(state: DatasetState, command: DeleteDataset) -> list[NewEvent]:
    if not state.registered:
        raise NotFound(f"there is no dataset {command.dataset_id}; list the datasets to find its id")
    if state.deleted:
        return []  # deleting twice is a no-op, so a retried delete succeeds
    event = DatasetDeleted(dataset_id=command.dataset_id, deleted_at=to_timestamp(command.deleted_at))
    return [_new(state, event, f"dataset:{command.dataset_id}:deleted")]


def _new(state: DatasetState, event: Message, msg_id: str) -> NewEvent:
    # The message id is chosen here, once, so a retried append is deduplicated; the expected
    # sequence makes a concurrent writer of the same dataset fail instead of overwriting.
    return NewEvent(dataset_subject(state.dataset_id), event, msg_id=msg_id, expected_sequence=state.version)
