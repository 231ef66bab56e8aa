"""The dataset aggregate: its state is a fold of its events; decide() turns a command into events.

Both functions are pure: no I/O, no clock, no randomness (the command carries ids and times).
"""

from dataclasses import dataclass, replace

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from datasets_service.domain.commands import DeleteDataset, RegisterDataset
from datasets_service.domain.errors import Conflict, InvalidInput, NotFound
from datasets_service.domain.names import is_dataset_id, object_name
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted, DatasetRegistered

Command = RegisterDataset | DeleteDataset


@dataclass(frozen=True, slots=True)
class DatasetState:
    """What the write side needs to know about one dataset."""

    dataset_id: str
    registered: bool = False
    deleted: bool = False
    sha256: str = ""


def evolve(state: DatasetState, event: Message) -> DatasetState:
    """The state after one event; events of other types leave it unchanged."""
    if isinstance(event, DatasetRegistered):
        return replace(state, registered=True, deleted=False, sha256=event.sha256)
    if isinstance(event, DatasetDeleted):
        return replace(state, deleted=True)
    return state


def decide(state: DatasetState, command: Command) -> list[Message]:
    """The events a command produces on this dataset, or a domain error saying why not."""
    if isinstance(command, RegisterDataset):
        return _register(state, command)
    return _delete(state, command)


def _register(state: DatasetState, command: RegisterDataset) -> list[Message]:
    if not is_dataset_id(command.dataset_id):
        raise InvalidInput(f"{command.dataset_id!r} is not a dataset id (ds_ followed by 12 hex digits)")
    if state.registered:
        raise Conflict(f"dataset {command.dataset_id} is already registered; upload the file again for a new id")
    if command.record_count <= 0:
        raise InvalidInput("a dataset needs at least one record")
    if command.object_name != object_name(command.dataset_id):
        raise InvalidInput(f"the file of {command.dataset_id} must be stored as {object_name(command.dataset_id)}")
    registered_at = Timestamp()
    registered_at.FromDatetime(command.registered_at)
    return [
        DatasetRegistered(
            dataset_id=command.dataset_id,
            name=command.name,
            format=command.format,
            record_count=command.record_count,
            sha256=command.sha256,
            object_name=command.object_name,
            size_bytes=command.size_bytes,
            registered_at=registered_at,
        )
    ]


def _delete(state: DatasetState, command: DeleteDataset) -> list[Message]:
    if not state.registered:
        raise NotFound(f"there is no dataset {command.dataset_id}; list the datasets to find its id")
    if state.deleted:
        return []  # deleting twice is a no-op, so a retried delete succeeds
    deleted_at = Timestamp()
    deleted_at.FromDatetime(command.deleted_at)
    return [DatasetDeleted(dataset_id=command.dataset_id, deleted_at=deleted_at)]


def event_id(event: Message) -> str:
    """The Nats-Msg-Id of an event: chosen here, once, so a retried append is deduplicated."""
    if isinstance(event, DatasetRegistered):
        return f"dataset:{event.dataset_id}"
    if isinstance(event, DatasetDeleted):
        return f"dataset:{event.dataset_id}:deleted"
    raise TypeError(f"not a datasets event: {type(event).__name__}")
