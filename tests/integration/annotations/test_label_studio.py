"""Label Studio sync against a real Label Studio server and a real nats-server.

Story: four candidates, two models. They agree on r1 ("Paris" / "paris."), differ in one field of
three on r2 (JSON), and wholly on r3; r4 has no answer yet. The dataset is linked to a new project,
pushed (r3, r2, r1: most-disagreed first) and pushed again (nothing new). Someone marks answers in
Label Studio; pulling records them as annotations with source label_studio, and pulling again
appends nothing.
"""

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from label_studio_sdk import LabelStudio

from annotations_service.adapters.curation import CurationReadModel
from annotations_service.adapters.dataset_answers import DatasetAnswers
from annotations_service.adapters.label_studio import LabelStudioClient
from annotations_service.domain.label_studio_tasks import label_config, marks_in_result, model_key
from annotations_service.domain.names import record_subject
from annotations_service.label_studio_sync import LabelStudioSync
from devstack.natsserver import NatsServer
from tests.conftest import LabelStudioServer
from workbench.annotations.v1.annotations_pb2 import (
    AnnotationKind,
    AnnotationRecorded,
    ExportFormat,
    GetLabelStudioLinkRequest,
    LinkLabelStudioRequest,
    ListAnnotationsRequest,
    PullFromLabelStudioRequest,
    PushToLabelStudioRequest,
    RecordAnnotationRequest,
)
from workbench.datasets.v1.datasets_pb2 import Record

from .conftest import Annotations, annotations_settings, running

GOLDEN = AnnotationKind.ANNOTATION_KIND_GOLDEN
FIXED = AnnotationKind.ANNOTATION_KIND_FIXED
WRONG = AnnotationKind.ANNOTATION_KIND_WRONG
DATASET = "ds-ls"
MODELS = ["tiny-a", "tiny.b"]  # ids that Label Studio cannot take as they are (see label_studio_tasks)
RECORDS = [Record(record_id=f"r{n}", prompt=f"question {n}") for n in range(1, 5)]
ANSWERS = {  # record -> (tiny-a, tiny.b)
    "r1": ("Paris", "paris."),
    "r2": ('{"city": "Lyon", "river": "Rhone", "size": "big"}', '{"city": "Lyon", "river": "Saone", "size": "big"}'),
    "r3": ("Marseille", "Nice"),
}


class Datasets:
    """The datasets service as the sync reads it: a name and the records in file order."""

    async def dataset_name(self, dataset_id: str) -> str:
        return "Capitals"

    async def record_batches(self, dataset_id: str) -> AsyncIterator[Sequence[Record]]:
        yield RECORDS[:2]
        yield RECORDS[2:]


@pytest.fixture
async def synced(fresh_nats: NatsServer, tmp_path: Path, label_studio: LabelStudioServer) -> AsyncIterator[Annotations]:
    settings = annotations_settings(fresh_nats, tmp_path).model_copy(
        update={"label_studio_url": label_studio.url, "label_studio_token": label_studio.token}
    )
    async for harness in running(settings):
        for record_id, texts in ANSWERS.items():
            for model_id, text in zip(MODELS, texts, strict=True):
                await harness.result(f"run-{model_id}", DATASET, record_id, model_id, text)
        yield harness


def sync_of(harness: Annotations, label_studio: LabelStudioServer) -> LabelStudioSync:
    """The service's sync as bootstrap wires it, reading records from the fake datasets service."""
    host = harness.service.host
    return LabelStudioSync(
        host.store,
        harness.service.runner("annotations"),
        harness.service.app.read_model,
        DatasetAnswers(host.database),
        CurationReadModel(host.database),
        Datasets(),
        LabelStudioClient(label_studio.url, label_studio.token),
    )


def project_tasks(label_studio: LabelStudioServer, project_id: int) -> list[Any]:
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)  # type: ignore[no-untyped-call]
    return sorted(client.tasks.list(project=project_id, fields="all"), key=lambda task: task.id)


def plain(item: Any) -> dict[str, Any]:
    """A prediction or annotation of a listed task as a dict (the SDK answers models or dicts)."""
    return item if isinstance(item, dict) else item.model_dump()  # type: ignore[no-any-return]


async def linked_and_pushed(harness: Annotations, label_studio: LabelStudioServer) -> int:
    """Links the dataset to a new project over gRPC, pushes it; the project id."""
    response = await harness.stub.LinkLabelStudio(LinkLabelStudioRequest(dataset_id=DATASET, title="Capitals"))
    outcome = await sync_of(harness, label_studio).push(DATASET)
    assert (outcome.pushed, outcome.skipped) == (3, 1)  # r4 has no answer yet
    return response.link.project_id


async def test_link_creates_a_project_and_push_sends_the_most_disagreed_records_first_once(
    synced: Annotations, label_studio: LabelStudioServer
) -> None:
    before = await synced.stub.GetLabelStudioLink(GetLabelStudioLinkRequest(dataset_id=DATASET))
    assert before.configured and not before.HasField("link")

    linked = (await synced.stub.LinkLabelStudio(LinkLabelStudioRequest(dataset_id=DATASET, title="Capitals"))).link

    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)  # type: ignore[no-untyped-call]
    project = client.projects.get(linked.project_id)
    assert project.title == "Capitals"
    assert project.label_config is not None
    assert all(f'name="verdict_{model_key(m)}"' in project.label_config for m in MODELS)
    assert linked.project_url == f"{label_studio.url}/projects/{linked.project_id}/data"

    sync = sync_of(synced, label_studio)
    first = await sync.push(DATASET)

    tasks = project_tasks(label_studio, linked.project_id)
    assert (first.pushed, first.skipped) == (3, 1)
    assert [task.data["record_id"] for task in tasks] == ["r3", "r2", "r1"]  # most-disagreed first
    for task in tasks:
        answers = ANSWERS[task.data["record_id"]]
        assert sorted(
            (p["model_version"], p["result"][0]["value"]["text"][0]) for p in map(plain, task.predictions)
        ) == sorted(zip(MODELS, answers, strict=True))
    shown = await synced.stub.GetLabelStudioLink(GetLabelStudioLinkRequest(dataset_id=DATASET))
    assert (shown.link.project_id, shown.link.pushed_tasks) == (linked.project_id, 3)

    second = await sync.push(DATASET)
    assert (second.pushed, second.skipped) == (0, 4)
    assert len(project_tasks(label_studio, linked.project_id)) == 3

    # r4 gets its answers later: the next push adds it alone.
    await synced.result("run-late", DATASET, "r4", "tiny-a", "Toulouse")
    third = await sync.push(DATASET)
    assert (third.pushed, third.skipped) == (1, 3)
    assert [task.data["record_id"] for task in project_tasks(label_studio, linked.project_id)] == [
        "r3",
        "r2",
        "r1",
        "r4",
    ]


async def test_marks_made_in_label_studio_are_pulled_back_once(
    synced: Annotations, label_studio: LabelStudioServer
) -> None:
    project_id = await linked_and_pushed(synced, label_studio)
    tasks = {task.data["record_id"]: task.id for task in project_tasks(label_studio, project_id)}
    a, b = (model_key(m) for m in MODELS)
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)  # type: ignore[no-untyped-call]
    # An annotator judges r3 (tiny-a golden, tiny.b fixed) and r1 (tiny.b wrong), as the page would save it.
    client.annotations.create(
        tasks["r3"],
        result=[
            {
                "from_name": f"verdict_{a}",
                "to_name": f"answer_{a}",
                "type": "choices",
                "value": {"choices": ["golden"]},
            },
            {"from_name": f"fix_{b}", "to_name": f"answer_{b}", "type": "textarea", "value": {"text": ["Marseille"]}},
        ],
    )
    client.annotations.create(
        tasks["r1"],
        result=[
            {"from_name": f"verdict_{b}", "to_name": f"answer_{b}", "type": "choices", "value": {"choices": ["wrong"]}}
        ],
    )

    pulled = await synced.stub.PullFromLabelStudio(PullFromLabelStudioRequest(dataset_id=DATASET))

    assert (pulled.recorded, pulled.unchanged) == (3, 0)
    events = [
        stored.event
        for record_id in ("r1", "r3")
        for stored in await synced.workers.read(record_subject(DATASET, record_id))
    ]
    assert all(isinstance(event, AnnotationRecorded) for event in events)
    assert sorted(
        (e.record_id, e.model_id, e.kind, e.output_text, e.source, e.annotator, e.run_id) for e in events
    ) == [  # type: ignore[attr-defined]
        ("r1", "tiny.b", WRONG, "paris.", "label_studio", "admin@example.com", "run-tiny.b"),
        ("r3", "tiny-a", GOLDEN, "Marseille", "label_studio", "admin@example.com", "run-tiny-a"),
        ("r3", "tiny.b", FIXED, "Marseille", "label_studio", "admin@example.com", "run-tiny.b"),
    ]
    listed = await synced.stub.ListAnnotations(ListAnnotationsRequest(dataset_id=DATASET))
    assert [(a.record_id, a.model_id, a.kind) for a in listed.annotations] == [
        ("r1", "tiny.b", WRONG),
        ("r3", "tiny-a", GOLDEN),
        ("r3", "tiny.b", FIXED),
    ]

    last = await synced.workers.last_sequence()
    again = await synced.stub.PullFromLabelStudio(PullFromLabelStudioRequest(dataset_id=DATASET))
    assert (again.recorded, again.unchanged) == (0, 3)
    assert await synced.workers.last_sequence() == last

    # A workbench user changes their mind on r1 afterwards: a later pull does not overwrite them.
    await synced.stub.RecordAnnotation(
        RecordAnnotationRequest(dataset_id=DATASET, record_id="r1", model_id="tiny.b", kind=GOLDEN, annotator="ann")
    )
    third = await synced.stub.PullFromLabelStudio(PullFromLabelStudioRequest(dataset_id=DATASET))
    assert (third.recorded, third.unchanged) == (0, 3)
    listed = await synced.stub.ListAnnotations(ListAnnotationsRequest(dataset_id=DATASET, record_ids=["r1"]))
    assert [(a.kind, a.annotator) for a in listed.annotations] == [(GOLDEN, "ann")]
    # The same annotator judges r1's tiny.b again in a second annotation (another tab): both stand
    # in Label Studio, and pulling twice records the new one once, not the two in turn for ever.
    client.annotations.create(
        tasks["r1"],
        result=[
            {"from_name": f"verdict_{b}", "to_name": f"answer_{b}", "type": "choices", "value": {"choices": ["golden"]}}
        ],
    )
    fourth = await synced.stub.PullFromLabelStudio(PullFromLabelStudioRequest(dataset_id=DATASET))
    fifth = await synced.stub.PullFromLabelStudio(PullFromLabelStudioRequest(dataset_id=DATASET))
    assert (fourth.recorded, fifth.recorded) == (1, 0)
    # The link events share wb.annotations.>: the projections pass over them, parking nothing.
    assert [status.parked for status in synced.service.host.statuses()] == [0, 0]


async def test_the_label_studio_export_imports_into_a_real_project_as_is(
    synced: Annotations, label_studio: LabelStudioServer
) -> None:
    for record_id, model_id, kind, fixed in (("r1", "tiny-a", GOLDEN, ""), ("r3", "tiny.b", FIXED, "Nice!")):
        await synced.stub.RecordAnnotation(
            RecordAnnotationRequest(
                dataset_id=DATASET, record_id=record_id, model_id=model_id, kind=kind, fixed_text=fixed
            )
        )
    app = replace(synced.service.app, records=Datasets())
    exported = b"".join(
        [chunk async for chunk in app.export_dataset(DATASET, [], ExportFormat.EXPORT_FORMAT_LABEL_STUDIO)]
    )
    tasks = json.loads(exported)

    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)  # type: ignore[no-untyped-call]
    project = client.projects.create(title="Exported", label_config=label_config(MODELS))
    assert project.id is not None
    client.projects.import_tasks(project.id, request=tasks)

    read_back = project_tasks(label_studio, project.id)
    assert len(read_back) == len(tasks) >= 2
    marks = {}
    for task in read_back:
        assert sorted(p["model_version"] for p in map(plain, task.predictions)) == MODELS
        shown = {m: task.data[model_key(m)] for m in MODELS}
        for annotation in task.annotations or []:
            for model_id, mark in marks_in_result(plain(annotation)["result"], shown).items():
                marks[(task.data["record_id"], model_id)] = (mark.kind, mark.fixed_text)
    assert marks == {("r1", "tiny-a"): (GOLDEN, ""), ("r3", "tiny.b"): (FIXED, "Nice!")}


async def test_without_a_label_studio_server_the_link_says_so_and_push_is_refused(annotations: Annotations) -> None:
    shown = await annotations.stub.GetLabelStudioLink(GetLabelStudioLinkRequest(dataset_id=DATASET))
    assert not shown.configured and not shown.HasField("link")

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await annotations.stub.PushToLabelStudio(PushToLabelStudioRequest(dataset_id=DATASET))

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "WB_LABEL_STUDIO_URL" in str(refused.value.details())


async def test_an_existing_empty_project_gets_the_config_and_one_with_its_own_is_refused(
    synced: Annotations, label_studio: LabelStudioServer
) -> None:
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)  # type: ignore[no-untyped-call]
    empty = client.projects.create(title="Empty")
    foreign = client.projects.create(
        title="Sentiment",
        label_config='<View><Text name="text" value="$text"/><Choices name="s" toName="text">'
        '<Choice value="pos"/></Choices></View>',
    )
    assert empty.id is not None and foreign.id is not None

    linked = await synced.stub.LinkLabelStudio(LinkLabelStudioRequest(dataset_id=DATASET, project_id=empty.id))

    assert linked.link.project_id == empty.id
    assert f'name="fix_{model_key(MODELS[1])}"' in (client.projects.get(empty.id).label_config or "")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await synced.stub.LinkLabelStudio(LinkLabelStudioRequest(dataset_id=DATASET, project_id=foreign.id))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Sentiment" in (client.projects.get(foreign.id).title or "")
    assert '<Choice value="pos"/>' in (client.projects.get(foreign.id).label_config or "")
