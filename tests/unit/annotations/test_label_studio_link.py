"""A dataset's Label Studio link: given its events, when linked or pushed, then these events."""

from datetime import UTC, datetime

import pytest

from annotations_service.domain.errors import InvalidInput
from annotations_service.domain.label_studio_link import LabelStudioLink, decide_link, decide_pushed, evolve
from annotations_service.domain.label_studio_tasks import label_config
from annotations_service.label_studio_sync import models_in_config, most_disagreed_first
from eventlog.events import to_timestamp
from workbench.annotations.v1.annotations_pb2 import LabelStudioLinked, LabelStudioTasksPushed
from workbench.datasets.v1.datasets_pb2 import Record

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def linked(project_id: int) -> LabelStudioLinked:
    return LabelStudioLinked(
        dataset_id="ds1",
        project_id=project_id,
        project_url=f"http://ls/projects/{project_id}/data",
        linked_at=to_timestamp(NOW),
    )


def fold(*events: object) -> LabelStudioLink:
    state = LabelStudioLink("ds1")
    for sequence, event in enumerate(events, start=1):
        state = evolve(state, event, sequence)  # type: ignore[arg-type]
    return state


def test_a_first_link_is_recorded_on_the_datasets_link_subject_after_nothing() -> None:
    (new,) = decide_link(LabelStudioLink("ds1"), 7, "http://ls/projects/7/data", NOW)

    assert new.subject == "wb.annotations.links.ds1"
    assert new.event == linked(7)
    assert new.expected_sequence == 0


def test_linking_again_to_the_same_project_changes_nothing_and_another_starts_over() -> None:
    state = fold(linked(7), LabelStudioTasksPushed(dataset_id="ds1", project_id=7, task_ids={"r1": 11, "r2": 12}))

    assert (state.project_id, dict(state.task_ids), state.version) == (7, {"r1": 11, "r2": 12}, 2)
    assert decide_link(state, 7, "http://ls/projects/7/data", NOW) == []
    relinked = evolve(state, linked(9), 3)
    assert (relinked.project_id, dict(relinked.task_ids)) == (9, {})


def test_pushed_tasks_are_recorded_at_the_links_version_and_none_records_nothing() -> None:
    state = fold(linked(7))

    (new,) = decide_pushed(state, {"r1": 11}, NOW)

    assert isinstance(new.event, LabelStudioTasksPushed)
    assert (dict(new.event.task_ids), new.event.project_id, new.expected_sequence) == ({"r1": 11}, 7, 1)
    assert decide_pushed(state, {}, NOW) == []


def test_a_link_needs_a_project_id() -> None:
    with pytest.raises(InvalidInput):
        decide_link(LabelStudioLink("ds1"), 0, "", NOW)


def test_the_models_of_a_config_read_back_and_records_go_most_disagreed_first() -> None:
    assert models_in_config(label_config(["tiny-a", "m.b"])) == ["tiny-a", "m.b"]
    waiting = [(Record(record_id=r), {"a": "x"}) for r in ("r1", "r2", "r3", "r4")]

    ordered = most_disagreed_first(waiting, {"r2": 0.5, "r3": 1.0, "r4": 0.5})

    assert [record.record_id for record, _ in ordered] == ["r3", "r2", "r4", "r1"]
