"""The dataset aggregate as a story: given its events, when a command, then the new events."""

from datetime import UTC, datetime

import pytest
from google.protobuf.message import Message

from datasets_service.domain.commands import DeleteDataset, RegisterDataset
from datasets_service.domain.dataset import DatasetInfo
from datasets_service.domain.errors import Conflict, InvalidInput, NotFound
from datasets_service.domain.state import Command, DatasetState, decide, evolve
from eventlog import NewEvent
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted, DatasetRegistered, GetDatasetRequest, RecordFormat

DATASET = "ds_0123456789ab"
NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def register(**changes: object) -> RegisterDataset:
    fields: dict[str, object] = {
        "dataset_id": DATASET,
        "name": "questions.jsonl",
        "format": RecordFormat.RECORD_FORMAT_CHAT,
        "record_count": 50,
        "sha256": "ab" * 32,
        "object_name": f"{DATASET}.jsonl",
        "size_bytes": 1234,
        "registered_at": NOON,
    }
    fields.update(changes)
    return RegisterDataset(DatasetInfo(**fields))  # type: ignore[arg-type]


def given(*events: Message) -> DatasetState:
    state = DatasetState(DATASET)
    for sequence, event in enumerate(events, start=1):
        state = evolve(state, event, sequence)
    return state


def when(state: DatasetState, command: Command) -> list[NewEvent]:
    new_events = decide(state, command)
    for new in new_events:  # decide and evolve agree: the events apply cleanly
        assert new.subject == f"wb.datasets.{DATASET}"
        assert new.expected_sequence == state.version  # a concurrent writer of this dataset fails
        state = evolve(state, new.event, state.version + 1)
    return new_events


def test_registering_a_new_dataset_records_everything_about_its_file() -> None:
    [new] = when(given(), register())
    event = new.event

    assert isinstance(event, DatasetRegistered)
    assert (event.dataset_id, event.name, event.record_count, event.size_bytes) == (
        DATASET,
        "questions.jsonl",
        50,
        1234,
    )
    assert event.format == RecordFormat.RECORD_FORMAT_CHAT
    assert event.object_name == f"{DATASET}.jsonl"
    assert event.registered_at.ToDatetime(tzinfo=UTC) == NOON
    assert new.msg_id == f"dataset:{DATASET}"


def test_a_dataset_is_registered_once() -> None:
    [registered] = decide(given(), register())

    with pytest.raises(Conflict, match="already registered"):
        decide(given(registered.event), register())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dataset_id": "ds_x.>"}, "not a dataset id"),
        ({"record_count": 0}, "at least one record"),
        ({"object_name": "other.jsonl"}, "must be stored as"),
    ],
)
def test_a_registration_that_does_not_add_up_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decide(given(), register(**changes))


def test_deleting_a_registered_dataset_then_deleting_it_again_is_a_no_op() -> None:
    [registered] = decide(given(), register())

    [deleted] = when(given(registered.event), DeleteDataset(DATASET, NOON))

    assert isinstance(deleted.event, DatasetDeleted)
    assert deleted.msg_id == f"dataset:{DATASET}:deleted"
    assert deleted.expected_sequence == 1
    assert when(given(registered.event, deleted.event), DeleteDataset(DATASET, NOON)) == []


def test_deleting_an_unknown_dataset_is_not_found() -> None:
    with pytest.raises(NotFound):
        decide(given(), DeleteDataset(DATASET, NOON))


def test_evolve_folds_registration_and_deletion_and_ignores_other_events() -> None:
    [registered] = decide(given(), register())

    assert given(registered.event) == DatasetState(DATASET, registered=True, sha256="ab" * 32, version=1)
    assert given(registered.event, DatasetDeleted(dataset_id=DATASET)).deleted
    other = given(registered.event, GetDatasetRequest(dataset_id=DATASET))
    assert (other.registered, other.deleted, other.version) == (True, False, 2)
