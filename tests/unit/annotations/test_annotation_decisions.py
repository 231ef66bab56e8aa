"""A record's annotations as stories: given its events, when a judgement is asked for, then the event."""

from datetime import UTC, datetime

import pytest
from google.protobuf.message import Message

from annotations_service.domain.annotation import Annotation, JudgedOutput
from annotations_service.domain.commands import RecordAnnotation
from annotations_service.domain.errors import Conflict, FailedPrecondition, InvalidInput
from annotations_service.domain.state import RecordAnnotations, decide, evolve
from eventlog import NewEvent, token
from workbench.annotations.v1.annotations_pb2 import AnnotationCleared, AnnotationKind, AnnotationRecorded

GOLDEN = AnnotationKind.ANNOTATION_KIND_GOLDEN
FIXED = AnnotationKind.ANNOTATION_KIND_FIXED
WRONG = AnnotationKind.ANNOTATION_KIND_WRONG
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PARIS = JudgedOutput(output_text="Paris")
SUBJECT = "wb.annotations.ds1.r1"


def given(*events: tuple[int, Message]) -> RecordAnnotations:
    state = RecordAnnotations("ds1", "r1")
    for sequence, event in events:
        state = evolve(state, event, sequence)
    return state


def command(kind: AnnotationKind.ValueType = GOLDEN, **changes: object) -> RecordAnnotation:
    fields: dict[str, object] = {"dataset_id": "ds1", "record_id": "r1", "model_id": "m1", "kind": kind}
    fields.update(changes)
    return RecordAnnotation(**fields)  # type: ignore[arg-type]


def recorded(model_id: str = "m1", kind: AnnotationKind.ValueType = GOLDEN, text: str = "Paris") -> AnnotationRecorded:
    return AnnotationRecorded(
        dataset_id="ds1",
        record_id="r1",
        model_id=model_id,
        kind=kind,
        output_text=text,
        annotator="anonymous",
        source="workbench",
    )


def the_event(decided: list[NewEvent]) -> AnnotationRecorded:
    [new] = decided
    assert isinstance(new.event, AnnotationRecorded)
    return new.event


def test_golden_copies_the_judged_answer_onto_an_empty_record() -> None:
    [new] = decide(given(), command(GOLDEN, note="crisp"), PARIS, NOW)

    assert new.event == AnnotationRecorded(
        dataset_id="ds1",
        record_id="r1",
        model_id="m1",
        kind=GOLDEN,
        output_text="Paris",
        note="crisp",
        annotator="anonymous",
        source="workbench",
        recorded_at=new.event.recorded_at,  # type: ignore[attr-defined]
    )
    assert new.event.recorded_at.ToDatetime(tzinfo=UTC) == NOW  # type: ignore[attr-defined]
    assert new.subject == SUBJECT
    assert new.expected_sequence == 0  # the subject must still be empty


def test_the_subject_holds_a_token_of_the_users_record_id() -> None:
    [new] = decide(given(), command(GOLDEN, record_id="q 1/é"), PARIS, NOW)

    assert new.subject == f"wb.annotations.ds1.{token('q 1/é')}" and new.subject != "wb.annotations.ds1.q 1/é"


def test_wrong_copies_the_judged_answer_too() -> None:
    event = the_event(decide(given(), command(WRONG, annotator="ada"), JudgedOutput(output_text="Lyon"), NOW))

    assert (event.kind, event.output_text, event.annotator) == (WRONG, "Lyon", "ada")


def test_fixed_stores_the_corrected_text_even_without_a_result() -> None:
    event = the_event(decide(given(), command(FIXED, fixed_text="Paris, France"), None, NOW))

    assert (event.kind, event.output_text) == (FIXED, "Paris, France")


@pytest.mark.parametrize("text", ["", "  \n"])
def test_fixed_without_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="fixed_text is required"):
        decide(given(), command(FIXED, fixed_text=text), PARIS, NOW)


@pytest.mark.parametrize("kind", [GOLDEN, WRONG])
def test_judging_a_model_without_a_result_is_refused(kind: AnnotationKind.ValueType) -> None:
    with pytest.raises(FailedPrecondition, match="model 'm1' has no result for record 'r1' yet"):
        decide(given(), command(kind), None, NOW)


def test_a_failed_output_cannot_be_golden() -> None:
    with pytest.raises(FailedPrecondition, match="mark it FIXED"):
        decide(given(), command(GOLDEN), JudgedOutput(output_text="", error="context too long"), NOW)


def test_an_unspecified_kind_is_refused() -> None:
    with pytest.raises(InvalidInput, match="kind must be one of"):
        decide(given(), command(AnnotationKind.ANNOTATION_KIND_UNSPECIFIED), PARIS, NOW)


@pytest.mark.parametrize("field", ["dataset_id", "record_id", "model_id"])
def test_ids_are_required(field: str) -> None:
    with pytest.raises(InvalidInput, match=f"{field} is required"):
        decide(given(), command(GOLDEN, **{field: ""}), PARIS, NOW)


def test_a_dataset_id_that_would_break_the_subject_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not a dataset id"):
        decide(given(), command(dataset_id="ds.>"), PARIS, NOW)


def test_without_expected_version_the_change_goes_on_top_of_what_was_loaded() -> None:
    state = given((4, recorded()), (9, recorded("m2")))

    [new] = decide(state, command(WRONG), PARIS, NOW)

    assert new.expected_sequence == 9


def test_the_current_expected_version_is_accepted() -> None:
    [new] = decide(given((4, recorded())), command(WRONG, expected_version=4), PARIS, NOW)

    assert new.expected_sequence == 4


def test_a_stale_expected_version_is_a_conflict() -> None:
    # Another browser marked m1 wrong (sequence 7) after this one read version 4.
    state = given((4, recorded()), (7, recorded(kind=WRONG)))

    with pytest.raises(Conflict, match="changed since version 4 \\(now version 7\\): reload"):
        decide(state, command(FIXED, fixed_text="Paris!", expected_version=4), PARIS, NOW)


def test_a_stale_expected_version_conflicts_even_when_another_model_changed() -> None:
    state = given((4, recorded()), (7, recorded("m2")))

    with pytest.raises(Conflict):
        decide(state, command(WRONG, expected_version=4), PARIS, NOW)


def test_a_retry_of_the_stored_change_is_recognised_instead_of_conflicting() -> None:
    before = given((4, recorded()))
    [first] = decide(before, command(WRONG, expected_version=4), PARIS, NOW)
    after = given((4, recorded()), (5, first.event))

    retry = decide(after, command(WRONG, expected_version=4), PARIS, NOW)

    assert first.expected_sequence == 4
    assert retry == []  # nothing to append: the change is stored already
    # Decided again on the state it was first made on, it carries the same message id (deduplicated).
    assert decide(before, command(WRONG, expected_version=4), PARIS, NOW)[0].msg_id == first.msg_id


def test_a_retry_is_not_recognised_once_someone_else_changed_the_record() -> None:
    [first] = decide(given((4, recorded())), command(WRONG, expected_version=4), PARIS, NOW)
    after = given((4, recorded()), (5, first.event), (6, recorded("m2")))

    with pytest.raises(Conflict):
        decide(after, command(WRONG, expected_version=4), PARIS, NOW)


def test_a_different_judgement_on_the_same_version_gets_another_message_id() -> None:
    [golden] = decide(given(), command(GOLDEN, expected_version=0), PARIS, NOW)
    [wrong] = decide(given(), command(WRONG, expected_version=0), PARIS, NOW)

    assert golden.msg_id != wrong.msg_id
    assert golden.msg_id == decide(given(), command(GOLDEN, expected_version=0), PARIS, NOW)[0].msg_id


def test_evolve_keeps_one_judgement_per_model_and_the_last_sequence_as_version() -> None:
    state = given((3, recorded()), (8, recorded("m2", WRONG, "Lyon")), (11, recorded(kind=FIXED, text="Paris!")))

    assert state.version == 11
    made = {model: judgement.annotation for model, judgement in state.judgements.items()}
    assert {model: (a.kind, a.output_text, a.version) for model, a in made.items()} == {
        "m1": (FIXED, "Paris!", 11),
        "m2": (WRONG, "Lyon", 8),
    }
    assert state.judgements["m1"].based_on == 8


def test_the_state_answers_an_annotation_at_the_records_version() -> None:
    [new] = decide(given((3, recorded("m2"))), command(GOLDEN, note="crisp"), PARIS, NOW)
    state = given((3, recorded("m2")), (5, new.event))

    assert state.annotation("m1") == Annotation(
        dataset_id="ds1",
        record_id="r1",
        model_id="m1",
        kind=GOLDEN,
        output_text="Paris",
        note="crisp",
        annotator="anonymous",
        source="workbench",
        version=5,
        recorded_at=NOW,
    )
    assert state.annotation("m2").version == 5  # the version belongs to the record


def test_a_cleared_judgement_disappears_but_the_version_moves_on() -> None:
    state = evolve(given((3, recorded())), AnnotationCleared(dataset_id="ds1", record_id="r1", model_id="m1"), 5)

    assert state.version == 5
    assert state.judgements == {}
