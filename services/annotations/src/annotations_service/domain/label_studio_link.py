"""A dataset's link to a Label Studio project: the state folded from its events, and the decisions.

The aggregate is one dataset's link (subject wb.annotations.links.<dataset_id>): the project it is
linked to and the tasks pushed there, by record. It holds a few events (one link, one per push
batch), so it is read from the log whenever it is needed; no table is kept for it.
Pure: the caller passes the time and what Label Studio answered.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from google.protobuf.message import Message

from annotations_service.domain.errors import InvalidInput
from annotations_service.domain.names import checked_dataset_id
from eventlog.events import NewEvent, from_timestamp, to_timestamp
from workbench.annotations.v1.annotations_pb2 import LabelStudioLinked, LabelStudioTasksPushed

SOURCE = "label_studio"


def link_subject(dataset_id: str) -> str:
    """The subject of a dataset's Label Studio link events."""
    return f"wb.annotations.links.{checked_dataset_id(dataset_id)}"


@dataclass(frozen=True, slots=True)
class LabelStudioLink:
    dataset_id: str
    version: int = 0  # the sequence of the link's last event (0: never linked)
    project_id: int = 0  # 0: not linked
    project_url: str = ""
    linked_at: datetime | None = None
    # Record id -> task id, of the linked project only: a relink to another project starts empty.
    task_ids: Mapping[str, int] = field(default_factory=dict)

    @property
    def linked(self) -> bool:
        return self.project_id != 0


def evolve(state: LabelStudioLink, event: Message, sequence: int) -> LabelStudioLink:
    """The link after one event of its subject (never raises)."""
    if isinstance(event, LabelStudioLinked):
        same_project = event.project_id == state.project_id
        return replace(
            state,
            version=sequence,
            project_id=event.project_id,
            project_url=event.project_url,
            linked_at=from_timestamp(event.linked_at),
            task_ids=state.task_ids if same_project else {},
        )
    if isinstance(event, LabelStudioTasksPushed) and event.project_id == state.project_id:
        return replace(state, version=sequence, task_ids={**state.task_ids, **event.task_ids})
    return replace(state, version=sequence)


def decide_link(state: LabelStudioLink, project_id: int, project_url: str, linked_at: datetime) -> list[NewEvent]:
    """LabelStudioLinked, unless the dataset is linked to that very project already."""
    checked_dataset_id(state.dataset_id)
    if project_id <= 0:
        raise InvalidInput("project_id must be a Label Studio project id (a positive number)")
    if state.project_id == project_id and state.project_url == project_url:
        return []
    event = LabelStudioLinked(
        dataset_id=state.dataset_id, project_id=project_id, project_url=project_url, linked_at=to_timestamp(linked_at)
    )
    msg_id = f"ls-linked:{state.dataset_id}:{state.version}:{project_id}"
    return [NewEvent(link_subject(state.dataset_id), event, msg_id=msg_id, expected_sequence=state.version)]


def decide_pushed(state: LabelStudioLink, task_ids: Mapping[str, int], pushed_at: datetime) -> list[NewEvent]:
    """LabelStudioTasksPushed for tasks just created in the linked project (nothing for none)."""
    if not task_ids:
        return []
    event = LabelStudioTasksPushed(
        dataset_id=state.dataset_id,
        project_id=state.project_id,
        task_ids=dict(task_ids),
        pushed_at=to_timestamp(pushed_at),
    )
    # Task ids are Label Studio's, unique per server: the same tasks recorded twice deduplicate.
    digest = hashlib.sha256(",".join(str(task_id) for task_id in sorted(task_ids.values())).encode()).hexdigest()
    msg_id = f"ls-pushed:{state.dataset_id}:{state.project_id}:{digest[:40]}"
    return [NewEvent(link_subject(state.dataset_id), event, msg_id=msg_id, expected_sequence=state.version)]
