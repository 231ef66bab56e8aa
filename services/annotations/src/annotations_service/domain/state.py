"""A record's annotations: the state folded from its events, and the decision on a new judgement.

The aggregate is one record of a dataset (subject wb.annotations.<dataset_id>.<record token>);
it holds the current judgement of every model's output for that record. Its version is the stream
sequence of its last event, which is what appends name as their expected subject sequence.
Both functions are pure: no I/O, no clock (the caller passes the time of the judgement).
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from google.protobuf.message import Message

from annotations_service.domain.annotation import Annotation, JudgedOutput, recorded_annotation
from annotations_service.domain.commands import ClearAnnotation, RecordAnnotation
from annotations_service.domain.errors import Conflict, FailedPrecondition, InvalidInput
from annotations_service.domain.names import checked_dataset_id, record_subject
from eventlog.events import NewEvent, to_timestamp
from workbench.annotations.v1.annotations_pb2 import AnnotationCleared, AnnotationKind, AnnotationRecorded

SOURCE = "workbench"
DEFAULT_ANNOTATOR = "anonymous"
_KNOWN_KINDS = (
    AnnotationKind.ANNOTATION_KIND_GOLDEN,
    AnnotationKind.ANNOTATION_KIND_FIXED,
    AnnotationKind.ANNOTATION_KIND_WRONG,
)


@dataclass(frozen=True, slots=True)
class Judgement:
    """The current annotation of one model's output, and the record's version it was made on."""

    annotation: Annotation  # as recorded: its version is the sequence of the event that recorded it
    based_on: int  # the record's version just before it


@dataclass(frozen=True, slots=True)
class RecordAnnotations:
    dataset_id: str
    record_id: str
    version: int = 0  # 0: no events yet
    judgements: Mapping[str, Judgement] = field(default_factory=dict)  # by model id
    # When the last event was a clear: the version it was made on and the model it cleared.
    last_clear: tuple[int, str] | None = None

    def annotation(self, model_id: str) -> Annotation:
        """The model's current annotation as the read model shows it; KeyError when it has none."""
        return replace(self.judgements[model_id].annotation, version=self.version)


def evolve(state: RecordAnnotations, event: Message, sequence: int) -> RecordAnnotations:
    """The state after one event of the record's subject (any event advances the version)."""
    judgements = dict(state.judgements)
    last_clear = None
    if isinstance(event, AnnotationRecorded):
        judgements[event.model_id] = Judgement(recorded_annotation(event, sequence), based_on=state.version)
    elif isinstance(event, AnnotationCleared):
        judgements.pop(event.model_id, None)
        last_clear = (state.version, event.model_id)
    return replace(state, version=sequence, judgements=judgements, last_clear=last_clear)


def decide(
    state: RecordAnnotations,
    command: RecordAnnotation,
    judged: JudgedOutput | None,
    recorded_at: datetime,
    source: str = SOURCE,
) -> list[NewEvent]:
    """The AnnotationRecorded event a judgement adds to the record, or a domain error saying why not.

    judged is the output the caller judged: that of command.run_id, or the model's latest (None:
    none; with a run_id, that run has no result for the record). source: "workbench", or
    "label_studio" for marks pulled back from Label Studio. Raises InvalidInput,
    FailedPrecondition, or Conflict when expected_version is not the record's version, unless the
    command is a retry of the very change that moved the version on: then there is nothing to append.
    """
    _check_ids(command)
    if command.kind not in _KNOWN_KINDS:
        raise InvalidInput("kind must be one of GOLDEN, FIXED or WRONG")
    event = AnnotationRecorded(
        dataset_id=command.dataset_id,
        record_id=command.record_id,
        model_id=command.model_id,
        kind=command.kind,
        output_text=_judged_text(command, judged),
        note=command.note,
        annotator=command.annotator.strip() or DEFAULT_ANNOTATOR,
        source=source,
        recorded_at=to_timestamp(recorded_at),
        run_id=judged.run_id if judged is not None else "",
    )
    expected = state.version if command.expected_version is None else command.expected_version
    if expected != state.version:
        if _is_retry(state, expected, event):
            return []
        raise Conflict(
            f"the annotations of record {command.record_id!r} changed since version {expected} "
            f"(now version {state.version}): reload them and try again"
        )
    # The message id is chosen here, once, so a retried append is deduplicated; the expected
    # sequence makes a concurrent writer of the same record fail instead of overwriting.
    subject = record_subject(command.dataset_id, command.record_id)
    return [NewEvent(subject, event, msg_id=_msg_id(event, expected), expected_sequence=expected)]


def decide_clear(state: RecordAnnotations, command: ClearAnnotation, cleared_at: datetime) -> list[NewEvent]:
    """The AnnotationCleared event an undo adds to the record, or a domain error saying why not.

    FailedPrecondition when the model's output has no mark to clear; Conflict when the record's
    annotations changed since command.expected_version (a retried clear of the same mark is a no-op).
    """
    _check_ids(command)
    expected = state.version if command.expected_version is None else command.expected_version
    if command.model_id not in state.judgements:
        if state.last_clear == (expected, command.model_id):
            return []  # a retry of the clear that moved the version on
        raise FailedPrecondition(f"model {command.model_id!r} has no mark on record {command.record_id!r} to clear")
    if expected != state.version:
        raise Conflict(
            f"the annotations of record {command.record_id!r} changed since version {expected} "
            f"(now version {state.version}): reload them and try again"
        )
    event = AnnotationCleared(
        dataset_id=command.dataset_id,
        record_id=command.record_id,
        model_id=command.model_id,
        annotator=command.annotator.strip() or DEFAULT_ANNOTATOR,
        cleared_at=to_timestamp(cleared_at),
        source=SOURCE,
    )
    subject = record_subject(command.dataset_id, command.record_id)
    msg_id = f"cleared:{command.dataset_id}:{expected}:{hashlib.sha256(command.model_id.encode()).hexdigest()[:40]}"
    return [NewEvent(subject, event, msg_id=msg_id, expected_sequence=expected)]


def _check_ids(command: RecordAnnotation | ClearAnnotation) -> None:
    for name in ("dataset_id", "record_id", "model_id"):
        if not getattr(command, name):
            raise InvalidInput(f"{name} is required")
    checked_dataset_id(command.dataset_id)
    if command.expected_version is not None and command.expected_version < 0:
        raise InvalidInput("expected_version must be 0 (no annotations yet) or a version you have read")


def _judged_text(command: RecordAnnotation, judged: JudgedOutput | None) -> str:
    if command.kind == AnnotationKind.ANNOTATION_KIND_FIXED:
        if not command.fixed_text.strip():
            raise InvalidInput("fixed_text is required for a FIXED annotation: give the corrected answer")
        return command.fixed_text
    if judged is None:
        if command.run_id:
            raise FailedPrecondition(
                f"run {command.run_id!r} has no result of model {command.model_id!r} for record "
                f"{command.record_id!r}: judge a result the run recorded"
            )
        raise FailedPrecondition(
            f"model {command.model_id!r} has no result for record {command.record_id!r} yet: "
            "run the model on the dataset first, or mark the record FIXED with the right answer"
        )
    if judged.error and command.kind == AnnotationKind.ANNOTATION_KIND_GOLDEN:
        raise FailedPrecondition(
            f"model {command.model_id!r} failed on record {command.record_id!r} ({judged.error}): "
            "there is no answer to mark golden; mark it FIXED with the right answer instead"
        )
    return judged.output_text


def _is_retry(state: RecordAnnotations, expected: int, event: AnnotationRecorded) -> bool:
    """Whether the record's last change is this very judgement, made on top of the expected version."""
    last = state.judgements.get(event.model_id)
    if last is None or last.annotation.version != state.version or last.based_on != expected:
        return False
    return _judged(last.annotation) == _judged(event)


def _judged(judgement: Annotation | AnnotationRecorded) -> tuple[object, ...]:
    """What a judgement says (what a retry repeats), apart from when and where it was recorded."""
    return (judgement.kind, judgement.output_text, judgement.note, judgement.annotator, judgement.run_id)


def _msg_id(event: AnnotationRecorded, expected: int) -> str:
    # The content is part of the id: a retry of the same judgement deduplicates, while a different
    # judgement made on the same version must reach the version check and fail there.
    digest = hashlib.sha256()
    parts = (event.dataset_id, event.record_id, event.model_id, str(event.kind), event.output_text, event.note)
    for part in (*parts, event.run_id):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(event.annotator.encode())
    return f"annotation:{event.dataset_id}:{expected}:{digest.hexdigest()[:40]}"
