"""The dataset aggregate as a story: given its events, when a command, then the new events."""

from datetime import UTC, datetime

import pytest
from google.protobuf.message import Message

from datasets_service.domain.commands import DeleteDataset, RegisterDataset, RenameDataset
from datasets_service.domain.dataset import DatasetInfo
from datasets_service.domain.errors import Conflict, InvalidInput, NotFound
from datasets_service.domain.pages import PageInfo
from datasets_service.domain.state import Command, DatasetState, decide, evolve
from eventlog import NewEvent
from workbench.datasets.v1.datasets_pb2 import (
    DatasetDeleted,
    DatasetRegistered,
    DatasetRenamed,
    GetDatasetRequest,
    RecordFormat,
)

DATASET = "ds_0123456789ab"
NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PAGES = (
    PageInfo(0, 0, 30, f"{DATASET}.p00000", "aa" * 32, 900),
    PageInfo(1, 30, 20, f"{DATASET}.p00001", "bb" * 32, 600),
)


def register(pages: tuple[PageInfo, ...] = PAGES, **changes: object) -> RegisterDataset:
    fields: dict[str, object] = {
        "dataset_id": DATASET,
        "name": "questions.jsonl",
        "format": RecordFormat.RECORD_FORMAT_CHAT,
        "record_count": 50,
        "sha256": "ab" * 32,
        "object_name": "",
        "size_bytes": 1234,
        "registered_at": NOON,
        "skipped_records": 2,
    }
    fields.update(changes)
    return RegisterDataset(DatasetInfo(**fields), pages)  # type: ignore[arg-type]


REGISTERED = decide(DatasetState(DATASET), register())[0].event


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


def test_registering_a_new_dataset_records_its_file_and_its_pages() -> None:
    [new] = when(given(), register())
    event = new.event

    assert isinstance(event, DatasetRegistered)
    assert (event.dataset_id, event.name, event.record_count, event.size_bytes, event.skipped_records) == (
        DATASET,
        "questions.jsonl",
        50,
        1234,
        2,
    )
    assert event.format == RecordFormat.RECORD_FORMAT_CHAT
    assert event.object_name == ""
    assert [(p.object_name, p.record_count, p.sha256, p.size_bytes) for p in event.pages] == [
        (f"{DATASET}.p00000", 30, "aa" * 32, 900),
        (f"{DATASET}.p00001", 20, "bb" * 32, 600),
    ]
    assert event.registered_at.ToDatetime(tzinfo=UTC) == NOON
    assert new.msg_id == f"dataset:{DATASET}"


def test_a_dataset_is_registered_once() -> None:
    with pytest.raises(Conflict, match="already registered"):
        decide(given(REGISTERED), register())


@pytest.mark.parametrize(
    ("pages", "changes", "message"),
    [
        (PAGES, {"dataset_id": "ds_x.>"}, "not a dataset id"),
        ((), {"record_count": 0}, "at least one record"),
        (PAGES, {"record_count": 51}, "do not hold its 51 records"),
        (PAGES[::-1], {}, f"page 0 of {DATASET} must hold records and be stored as {DATASET}.p00000"),
        ((*PAGES, PageInfo(2, 50, 0, f"{DATASET}.p00002", "", 0)), {}, "page 2 of"),
        (PAGES, {"object_name": f"{DATASET}.jsonl"}, "stored in pages, not as one object"),
    ],
)
def test_a_registration_that_does_not_add_up_is_refused(
    pages: tuple[PageInfo, ...], changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        decide(given(), register(pages, **changes))


def test_renaming_makes_the_name_safe_and_renaming_to_the_same_name_is_a_no_op() -> None:
    [renamed] = when(given(REGISTERED), RenameDataset(DATASET, "../private/Final\x07 v2.csv", NOON))

    assert isinstance(renamed.event, DatasetRenamed)
    assert (renamed.event.dataset_id, renamed.event.name) == (DATASET, "Final v2.csv")
    assert renamed.msg_id == f"dataset:{DATASET}:renamed:1"
    assert when(given(REGISTERED, renamed.event), RenameDataset(DATASET, "Final v2.csv", NOON)) == []
    [again] = when(given(REGISTERED, renamed.event), RenameDataset(DATASET, "third", NOON))
    assert again.msg_id == f"dataset:{DATASET}:renamed:2"


@pytest.mark.parametrize("name", ["", "   ", "\x00\x07", "dir/", ".."])
def test_a_name_that_leaves_nothing_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="must not be empty"):
        decide(given(REGISTERED), RenameDataset(DATASET, name, NOON))


def test_deleting_a_dataset_then_anything_else_about_it_is_not_found() -> None:
    [deleted] = when(given(REGISTERED), DeleteDataset(DATASET, NOON))

    assert isinstance(deleted.event, DatasetDeleted)
    assert deleted.msg_id == f"dataset:{DATASET}:deleted"
    assert deleted.expected_sequence == 1
    gone = given(REGISTERED, deleted.event)
    for command in [DeleteDataset(DATASET, NOON), RenameDataset(DATASET, "x", NOON)]:
        with pytest.raises(NotFound, match=f"there is no dataset {DATASET}"):
            decide(gone, command)


def test_an_unknown_dataset_is_not_found() -> None:
    for command in [DeleteDataset(DATASET, NOON), RenameDataset(DATASET, "x", NOON)]:
        with pytest.raises(NotFound):
            decide(given(), command)


def test_evolve_folds_registration_renaming_and_deletion_and_ignores_other_events() -> None:
    registered = given(REGISTERED)
    assert registered == DatasetState(
        DATASET,
        registered=True,
        name="questions.jsonl",
        sha256="ab" * 32,
        stored_objects=(f"{DATASET}.p00000", f"{DATASET}.p00001"),
        version=1,
    )
    assert given(REGISTERED, DatasetRenamed(dataset_id=DATASET, name="b")).name == "b"
    assert given(REGISTERED, DatasetDeleted(dataset_id=DATASET)).deleted
    other = given(REGISTERED, GetDatasetRequest(dataset_id=DATASET))
    assert (other.live, other.version) == (True, 2)


def test_a_dataset_registered_before_pages_existed_is_stored_as_its_one_file() -> None:
    legacy = DatasetRegistered(dataset_id=DATASET, name="a.jsonl", record_count=3, object_name=f"{DATASET}.jsonl")

    assert given(legacy).stored_objects == (f"{DATASET}.jsonl",)
