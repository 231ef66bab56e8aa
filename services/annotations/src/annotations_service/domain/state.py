"""A record's annotations: the state folded from its events, and the decision on a new judgement.

The aggregate is one record of a dataset (subject wb.annotations.<dataset_id>.<record token>);
it holds the current judgement of every model's output for that record. Its version is the stream
sequence of its last event, which is what appends name as their expected subject sequence.
"""

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from annotations_service.domain.commands import JudgedOutput, RecordAnnotation
from annotations_service.domain.errors import Conflict, FailedPrecondition, InvalidInput
from workbench.annotations.v1.annotations_pb2 import AnnotationCleared, AnnotationKind, AnnotationRecorded

SOURCE = "workbench"
DEFAULT_ANNOTATOR = "anonymous"
_KNOWN_KINDS = (
    AnnotationKind.ANNOTATION_KIND_GOLDEN,
    AnnotationKind.ANNOTATION_KIND_FIXED,
    AnnotationKind.ANNOTATION_KIND_WRONG,
)
# Dataset ids go into subjects and message ids as they are (the datasets service makes them so).
_DATASET_ID = re.compile(r"^[A-Za-z0-9_\-]{1,200}$")


@dataclass(frozen=True, slots=True)
class Judgement:
    """The current annotation of one model's output."""

    kind: AnnotationKind.ValueType
    output_text: str
    note: str
    annotator: str
    version: int  # the sequence of the event that recorded it
    based_on: int  # the record's version just before it


@dataclass(frozen=True, slots=True)
class RecordAnnotations:
    dataset_id: str
    record_id: str
    version: int = 0  # 0: no events yet
    judgements: Mapping[str, Judgement] = field(default_factory=dict)  # by model id


@dataclass(frozen=True, slots=True)
class Decision:
    """The event to append, with the id that makes a retry a no-op and the version it must follow."""

    event: AnnotationRecorded
    msg_id: str
    expected_sequence: int
    # A retry of the change already stored at the record's version: nothing to append.
    already_recorded: bool = False


def evolve(state: RecordAnnotations, sequence: int, event: Message) -> RecordAnnotations:
    """The state after one event of the record's subject (any event advances the version)."""
    judgements = dict(state.judgements)
    if isinstance(event, AnnotationRecorded):
        judgements[event.model_id] = Judgement(
            kind=event.kind,
            output_text=event.output_text,
            note=event.note,
            annotator=event.annotator,
            version=sequence,
            based_on=state.version,
        )
    elif isinstance(event, AnnotationCleared):
        judgements.pop(event.model_id, None)
    return replace(state, version=sequence, judgements=judgements)


def fold(state: RecordAnnotations, events: list[tuple[int, Message]]) -> RecordAnnotations:
    for sequence, event in events:
        state = evolve(state, sequence, event)
    return state


def decide(state: RecordAnnotations, command: RecordAnnotation, judged: JudgedOutput | None) -> Decision:
    """Turns a RecordAnnotation command into the AnnotationRecorded event to append.

    judged is the model's latest output for the record (None: no result yet). Raises InvalidInput,
    FailedPrecondition, or Conflict when expected_version is not the record's version, unless the
    command is a retry of the very change that moved the version on: then the decision says so.
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
        source=SOURCE,
        recorded_at=_timestamp(command),
    )
    expected = state.version if command.expected_version is None else command.expected_version
    retry = expected != state.version and _is_retry(state, expected, event)
    if expected != state.version and not retry:
        raise Conflict(
            f"the annotations of record {command.record_id!r} changed since version {expected} "
            f"(now version {state.version}): reload them and try again"
        )
    return Decision(event, _msg_id(event, expected), expected_sequence=expected, already_recorded=retry)


def _check_ids(command: RecordAnnotation) -> None:
    for name in ("dataset_id", "record_id", "model_id"):
        if not getattr(command, name):
            raise InvalidInput(f"{name} is required")
    if not _DATASET_ID.match(command.dataset_id):
        raise InvalidInput(f"dataset_id {command.dataset_id!r} is not a dataset id (letters, digits, '_' and '-')")
    if command.expected_version is not None and command.expected_version < 0:
        raise InvalidInput("expected_version must be 0 (no annotations yet) or a version you have read")


def _judged_text(command: RecordAnnotation, judged: JudgedOutput | None) -> str:
    if command.kind == AnnotationKind.ANNOTATION_KIND_FIXED:
        if not command.fixed_text.strip():
            raise InvalidInput("fixed_text is required for a FIXED annotation: give the corrected answer")
        return command.fixed_text
    if judged is None:
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
    return (
        last is not None
        and last.version == state.version
        and last.based_on == expected
        and (last.kind, last.output_text, last.note, last.annotator)
        == (event.kind, event.output_text, event.note, event.annotator)
    )


def _msg_id(event: AnnotationRecorded, expected: int) -> str:
    # The content is part of the id: a retry of the same judgement deduplicates, while a different
    # judgement made on the same version must reach the version check and fail there.
    digest = hashlib.sha256()
    for part in (event.dataset_id, event.record_id, event.model_id, str(event.kind), event.output_text, event.note):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(event.annotator.encode())
    return f"annotation:{event.dataset_id}:{expected}:{digest.hexdigest()[:40]}"


def _timestamp(command: RecordAnnotation) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(command.recorded_at)
    return stamp
