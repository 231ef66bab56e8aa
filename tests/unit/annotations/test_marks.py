"""Marks that hold up: a mark names the run whose answer was shown and stores that answer; a mark can
be cleared (undo) and changed, each change a new event, and the record's history reads them back."""

from collections.abc import AsyncIterator

import pytest

from annotations_service.adapters.read_model import AnnotationsProjection
from annotations_service.domain.commands import ClearAnnotation
from annotations_service.domain.errors import Conflict, FailedPrecondition, InvalidInput
from tests.unit.annotations.test_annotations_application import FIXED, GOLDEN, NOW, WRONG, application, judge, result
from tests.unit.in_memory import Projected, projected


@pytest.fixture
async def world() -> AsyncIterator[Projected]:
    async with projected(AnnotationsProjection()) as world:
        yield world


def clear(model_id: str = "m1", **more: object) -> ClearAnnotation:
    return ClearAnnotation(dataset_id="ds1", record_id="r1", model_id=model_id, **more)  # type: ignore[arg-type]


async def test_a_mark_stores_the_answer_of_the_run_that_was_shown_not_a_newer_one(world: Projected) -> None:
    app = application(world)
    await result(world, "r1", "m1", "Lyon", run_id="run1")
    await result(world, "r1", "m1", "Paris", run_id="run2")  # a re-run landed while the page showed run1

    shown = await app.record_annotation(judge(GOLDEN, run_id="run1"))
    latest = await app.record_annotation(judge(WRONG, model_id="m1", expected_version=shown.version))

    assert (shown.output_text, shown.run_id) == ("Lyon", "run1")
    assert (latest.output_text, latest.run_id) == ("Paris", "run2")  # no run named: the latest result


async def test_a_mark_on_a_run_without_that_result_is_refused(world: Projected) -> None:
    app = application(world)
    await result(world, "r1", "m1", "Lyon", run_id="run1")
    await result(world, "r2", "m2", "Nice", run_id="run9")

    with pytest.raises(FailedPrecondition, match="run 'run7' has no result of model 'm1' for record 'r1'"):
        await app.record_annotation(judge(GOLDEN, run_id="run7"))
    with pytest.raises(FailedPrecondition, match="run 'run9' has no result"):  # another model's run
        await app.record_annotation(judge(GOLDEN, run_id="run9"))


async def test_a_mark_is_cleared_changed_and_its_history_read_back_oldest_first(world: Projected) -> None:
    app = application(world)
    await result(world, "r1", "m1", "Lyon", run_id="run1")

    golden = await app.record_annotation(judge(GOLDEN, annotator="ada", note="checked the atlas", run_id="run1"))
    version = await app.clear_annotation(clear(annotator="bob", expected_version=golden.version))
    fixed = await app.record_annotation(
        judge(FIXED, fixed_text="Lyon, France", annotator="ada", expected_version=version)
    )

    assert await app.list_annotations("ds1") == [fixed]
    history = await app.history("ds1", "r1")
    assert [(e.change, e.annotator, e.output_text, e.run_id, e.source) for e in history] == [
        ("golden", "ada", "Lyon", "run1", "workbench"),
        ("cleared", "bob", "", "", "workbench"),
        ("fixed", "ada", "Lyon, France", "run1", "workbench"),
    ]
    assert history[0].note == "checked the atlas" and history[0].at == NOW
    assert [e.version for e in history] == [golden.version, version, fixed.version]


async def test_clearing_twice_is_a_no_op_and_clearing_nothing_or_a_stale_version_is_refused(world: Projected) -> None:
    app = application(world)
    await result(world, "r1", "m1", "Lyon")
    golden = await app.record_annotation(judge(GOLDEN))

    version = await app.clear_annotation(clear(expected_version=golden.version))
    again = await app.clear_annotation(clear(expected_version=golden.version))  # a retried request

    assert again == version and len(await app.history("ds1", "r1")) == 2
    with pytest.raises(FailedPrecondition, match="has no mark on record 'r1' to clear"):
        await app.clear_annotation(clear())
    marked = await app.record_annotation(judge(WRONG, expected_version=version))
    with pytest.raises(Conflict, match="changed since version"):
        await app.clear_annotation(clear(expected_version=version))  # someone marked it meanwhile
    assert await app.list_annotations("ds1") == [marked]


async def test_a_retried_clear_answers_only_for_the_model_it_cleared(world: Projected) -> None:
    app = application(world)
    await result(world, "r1", "m1", "Lyon")
    golden = await app.record_annotation(judge(GOLDEN))

    await app.clear_annotation(clear(expected_version=golden.version))

    with pytest.raises(FailedPrecondition, match="model 'm2' has no mark"):  # not taken for m1's retry
        await app.clear_annotation(clear(model_id="m2", expected_version=golden.version))


@pytest.mark.parametrize("dataset_id", ["*", ">", "ds1.r1", ""])
async def test_a_history_of_a_dataset_id_that_is_a_pattern_is_refused(world: Projected, dataset_id: str) -> None:
    with pytest.raises(InvalidInput):
        await application(world).history(dataset_id, "r1")
