"""The annotations service over gRPC, with a real nats-server: judgements, races, and a rebuilt read model."""

import asyncio

import grpc
import pytest

from annotations_service.adapters.read_model import AnnotationsProjection
from eventlog import EventStore, ProjectionRunner, token
from servicehost.database import create_engine
from workbench.annotations.v1.annotations_pb2 import (
    AnnotationKind,
    AnnotationRecorded,
    ListAnnotationsRequest,
    RecordAnnotationRequest,
)

from .conftest import Annotations

GOLDEN = AnnotationKind.ANNOTATION_KIND_GOLDEN
FIXED = AnnotationKind.ANNOTATION_KIND_FIXED
WRONG = AnnotationKind.ANNOTATION_KIND_WRONG
RECORD = "q 1/é"  # a user's id that needs a subject token


def subject(dataset_id: str, record_id: str) -> str:
    return f"wb.annotations.{dataset_id}.{token(record_id)}"


async def recorded_events(events: EventStore, dataset_id: str, record_id: str) -> list[AnnotationRecorded]:
    return [stored.event for stored in await events.read(subject(dataset_id, record_id))]  # type: ignore[misc]


async def test_marking_an_output_golden_records_an_event_and_lists_it(annotations: Annotations) -> None:
    await annotations.result("run1", "ds1", RECORD, "m1", "Paris")

    response = await annotations.stub.RecordAnnotation(
        RecordAnnotationRequest(dataset_id="ds1", record_id=RECORD, model_id="m1", kind=GOLDEN, note="crisp")
    )

    stored = await annotations.workers.read(subject("ds1", RECORD))
    assert [(s.event.kind, s.event.output_text, s.event.source, s.event.annotator) for s in stored] == [  # type: ignore[attr-defined]
        (GOLDEN, "Paris", "workbench", "anonymous")
    ]
    assert response.annotation.version == stored[0].sequence
    assert (response.annotation.output_text, response.annotation.note) == ("Paris", "crisp")
    listed = await annotations.stub.ListAnnotations(ListAnnotationsRequest(dataset_id="ds1"))
    assert list(listed.annotations) == [response.annotation]


async def test_two_writers_on_the_same_version_one_is_refused_and_nothing_is_overwritten(
    annotations: Annotations,
) -> None:
    await annotations.result("run1", "ds1", "r1", "m1", "Paris")
    first = await annotations.stub.RecordAnnotation(
        RecordAnnotationRequest(dataset_id="ds1", record_id="r1", model_id="m1", kind=GOLDEN, expected_version=0)
    )
    seen = first.annotation.version

    # Two browsers opened the record at the same version and save different judgements at once.
    results = await asyncio.gather(
        annotations.stub.RecordAnnotation(
            RecordAnnotationRequest(
                dataset_id="ds1", record_id="r1", model_id="m1", kind=WRONG, annotator="ann", expected_version=seen
            )
        ),
        annotations.stub.RecordAnnotation(
            RecordAnnotationRequest(
                dataset_id="ds1",
                record_id="r1",
                model_id="m1",
                kind=FIXED,
                fixed_text="Paris.",
                annotator="bob",
                expected_version=seen,
            )
        ),
        return_exceptions=True,
    )

    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    saved = [r for r in results if not isinstance(r, BaseException)]
    assert len(refused) == 1 and len(saved) == 1
    assert refused[0].code() == grpc.StatusCode.ABORTED
    assert "reload" in (refused[0].details() or "")
    events = await recorded_events(annotations.workers, "ds1", "r1")
    assert [e.kind for e in events] == [GOLDEN, saved[0].annotation.kind]
    listed = await annotations.stub.ListAnnotations(ListAnnotationsRequest(dataset_id="ds1"))
    assert list(listed.annotations) == [saved[0].annotation]

    # A third writer still holding the first version is refused as well.
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await annotations.stub.RecordAnnotation(
            RecordAnnotationRequest(dataset_id="ds1", record_id="r1", model_id="m1", kind=GOLDEN, expected_version=seen)
        )
    assert stale.value.code() == grpc.StatusCode.ABORTED
    assert len(await recorded_events(annotations.workers, "ds1", "r1")) == 2


async def test_a_retried_command_is_recorded_once(annotations: Annotations) -> None:
    await annotations.result("run1", "ds1", "r1", "m1", "Paris")
    request = RecordAnnotationRequest(dataset_id="ds1", record_id="r1", model_id="m1", kind=WRONG, expected_version=0)

    first = await annotations.stub.RecordAnnotation(request)
    retry = await annotations.stub.RecordAnnotation(request)

    assert retry.annotation.version == first.annotation.version
    assert len(await recorded_events(annotations.workers, "ds1", "r1")) == 1


async def test_fixed_without_text_is_invalid_and_records_nothing(annotations: Annotations) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await annotations.stub.RecordAnnotation(
            RecordAnnotationRequest(dataset_id="ds1", record_id="r1", model_id="m1", kind=FIXED, fixed_text=" ")
        )

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "fixed_text is required" in (refused.value.details() or "")
    assert await annotations.workers.count("wb.annotations.>") == 0


async def test_golden_before_the_model_answered_is_a_failed_precondition(annotations: Annotations) -> None:
    await annotations.result("run1", "ds1", "r1", "m1", "Paris")

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await annotations.stub.RecordAnnotation(
            RecordAnnotationRequest(dataset_id="ds1", record_id="r1", model_id="m2", kind=GOLDEN)
        )

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details() is not None
    assert "model 'm2' has no result for record 'r1' yet" in refused.value.details()


async def test_the_judged_answer_is_the_latest_result_and_versions_belong_to_the_record(
    annotations: Annotations,
) -> None:
    await annotations.result("run1", "ds1", "r1", "m1", "Lyon")
    await annotations.result("run2", "ds1", "r1", "m1", "Paris")  # a re-run of m1
    await annotations.result("run3", "ds1", "r1", "m2", "Marseille")
    golden = await annotations.stub.RecordAnnotation(
        RecordAnnotationRequest(dataset_id="ds1", record_id="r1", model_id="m1", kind=GOLDEN)
    )

    wrong = await annotations.stub.RecordAnnotation(
        RecordAnnotationRequest(
            dataset_id="ds1", record_id="r1", model_id="m2", kind=WRONG, expected_version=golden.annotation.version
        )
    )

    assert golden.annotation.output_text == "Paris"
    listed = await annotations.stub.ListAnnotations(ListAnnotationsRequest(dataset_id="ds1"))
    assert [(a.model_id, a.output_text, a.version) for a in listed.annotations] == [
        ("m1", "Paris", wrong.annotation.version),
        ("m2", "Marseille", wrong.annotation.version),
    ]


async def test_the_rebuilt_read_model_has_the_same_rows(annotations: Annotations) -> None:
    for record, model, text in [("r1", "m1", "A"), ("r1", "m2", "B"), ("r2", "m1", "C"), ("r2", "m1", "C2")]:
        await annotations.result(f"run-{model}-{text}", "ds1", record, model, text)
    for record, model, kind in [("r1", "m1", GOLDEN), ("r1", "m2", WRONG), ("r2", "m1", GOLDEN), ("r1", "m1", FIXED)]:
        await annotations.stub.RecordAnnotation(
            RecordAnnotationRequest(
                dataset_id="ds1", record_id=record, model_id=model, kind=kind, fixed_text="fixed " + record
            )
        )
    before = annotations.rows()
    assert len(before[0]) == 3 and len(before[1]) == 3
    await annotations.service.stop(grace=0)

    engine = create_engine(annotations.settings.db_url)
    position = await ProjectionRunner(annotations.workers, engine, AnnotationsProjection()).rebuild()
    engine.dispose()

    assert position == await annotations.workers.last_sequence()
    assert annotations.rows() == before


async def test_listing_can_be_limited_to_a_page_of_records(annotations: Annotations) -> None:
    for record in ("a", "b", "c"):
        await annotations.result("run1", "ds1", record, "m1", f"answer {record}")
        await annotations.stub.RecordAnnotation(
            RecordAnnotationRequest(dataset_id="ds1", record_id=record, model_id="m1", kind=GOLDEN)
        )

    page = await annotations.stub.ListAnnotations(ListAnnotationsRequest(dataset_id="ds1", record_ids=["c", "a", "x"]))
    everything = await annotations.stub.ListAnnotations(ListAnnotationsRequest(dataset_id="ds1"))

    assert [a.record_id for a in page.annotations] == ["a", "c"]
    assert [a.record_id for a in everything.annotations] == ["a", "b", "c"]
