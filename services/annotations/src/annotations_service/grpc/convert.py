"""Domain values to proto messages and back (the only place that knows both)."""

from dataclasses import asdict

from annotations_service.domain.annotation import Annotation
from annotations_service.domain.commands import ClearAnnotation, RecordAnnotation
from annotations_service.domain.curation import Counts, RecordFacts, RecordFilter
from annotations_service.domain.errors import InvalidInput
from annotations_service.domain.history import HistoryEntry
from annotations_service.domain.label_studio_link import LabelStudioLink
from eventlog.events import to_timestamp
from servicehost.text import text_problem
from workbench.annotations.v1 import annotations_pb2 as pb

# What a note, a fixed answer or an annotator's name may be: the gateway refuses worse at its edge;
# this service refuses it too, as any gRPC client reaches it and a NUL would stop a Postgres projector.
MAX_TEXT_CHARS = 1_000_000
MAX_NAME_CHARS = 1024


def _checked(field: str, value: str, free_text: bool) -> str:
    problem = text_problem(value, MAX_TEXT_CHARS if free_text else MAX_NAME_CHARS, free_text)
    if problem is not None:
        raise InvalidInput(f"{field} {problem}")
    return value


def record_annotation_command(request: pb.RecordAnnotationRequest) -> RecordAnnotation:
    for field in ("record_id", "model_id", "run_id", "annotator"):
        _checked(field, getattr(request, field), free_text=False)
    _checked("note", request.note, free_text=True)
    _checked("fixed_text", request.fixed_text, free_text=True)
    return RecordAnnotation(
        dataset_id=request.dataset_id,
        record_id=request.record_id,
        model_id=request.model_id,
        kind=request.kind,
        fixed_text=request.fixed_text,
        note=request.note,
        annotator=request.annotator,
        expected_version=request.expected_version if request.HasField("expected_version") else None,
        run_id=request.run_id,
    )


def clear_annotation_command(request: pb.ClearAnnotationRequest) -> ClearAnnotation:
    for field in ("record_id", "model_id", "annotator"):
        _checked(field, getattr(request, field), free_text=False)
    return ClearAnnotation(
        dataset_id=request.dataset_id,
        record_id=request.record_id,
        model_id=request.model_id,
        annotator=request.annotator,
        expected_version=request.expected_version if request.HasField("expected_version") else None,
    )


def history_entry_to_proto(entry: HistoryEntry) -> pb.HistoryEntry:
    fields = asdict(entry)
    at = fields.pop("at")
    if at is not None:
        fields["at"] = to_timestamp(at)
    return pb.HistoryEntry(**fields)


def annotation_to_proto(annotation: Annotation) -> pb.Annotation:
    fields = asdict(annotation)
    recorded_at = fields.pop("recorded_at")
    if recorded_at is not None:
        fields["recorded_at"] = to_timestamp(recorded_at)
    return pb.Annotation(**fields)


_RECORD_FILTERS: dict[int, RecordFilter] = {
    pb.RECORD_FILTER_UNSPECIFIED: RecordFilter.EVERY,
    pb.RECORD_FILTER_DIFFERENCES: RecordFilter.DIFFERENCES,
    pb.RECORD_FILTER_GOLDEN: RecordFilter.GOLDEN,
    pb.RECORD_FILTER_FIXED: RecordFilter.FIXED,
    pb.RECORD_FILTER_WRONG: RecordFilter.WRONG,
    pb.RECORD_FILTER_NEEDS_REVIEW: RecordFilter.NEEDS_REVIEW,
}


def record_filter(value: int) -> RecordFilter:
    """The filter a QueryRecordsRequest names; InvalidInput for a value this service does not know."""
    wanted = _RECORD_FILTERS.get(value)
    if wanted is None:
        raise InvalidInput(f"record filter {value} is unknown: use one of the RecordFilter values")
    return wanted


def queried_record_to_proto(facts: RecordFacts) -> pb.QueriedRecord:
    found = facts.disagreement
    return pb.QueriedRecord(
        record_id=facts.record_id,
        disagreement=pb.Disagreement(
            differs=found.differs, score=found.score, differing_paths=list(found.differing_paths)
        ),
    )


def counts_to_proto(counts: Counts) -> pb.Counts:
    return pb.Counts(**asdict(counts))


def label_studio_link_to_proto(link: LabelStudioLink) -> pb.LabelStudioLink:
    message = pb.LabelStudioLink(
        dataset_id=link.dataset_id,
        project_id=link.project_id,
        project_url=link.project_url,
        pushed_tasks=len(link.task_ids),
    )
    if link.linked_at is not None:
        message.linked_at.CopyFrom(to_timestamp(link.linked_at))
    return message
