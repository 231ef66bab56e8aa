"""A record's history: each change of its marks as the log holds it, oldest first."""

from dataclasses import dataclass
from datetime import datetime

from google.protobuf.message import Message

from annotations_service.domain.export import KNOWN_KINDS, kind_name
from eventlog.events import from_timestamp
from workbench.annotations.v1.annotations_pb2 import AnnotationCleared, AnnotationRecorded


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change: a mark ("golden", "fixed", "wrong") or its removal ("cleared")."""

    model_id: str
    change: str
    output_text: str
    note: str
    annotator: str
    source: str
    run_id: str
    version: int
    at: datetime | None


def history_entry(event: Message, sequence: int) -> HistoryEntry | None:
    """The entry an event of a record's subject makes; None for any other event."""
    if isinstance(event, AnnotationRecorded):
        return HistoryEntry(
            model_id=event.model_id,
            change=kind_name(event.kind) if event.kind in KNOWN_KINDS else "unknown",
            output_text=event.output_text,
            note=event.note,
            annotator=event.annotator,
            source=event.source,
            run_id=event.run_id,
            version=sequence,
            at=from_timestamp(event.recorded_at),
        )
    if isinstance(event, AnnotationCleared):
        return HistoryEntry(
            model_id=event.model_id,
            change="cleared",
            output_text="",
            note="",
            annotator=event.annotator,
            source=event.source,
            run_id="",
            version=sequence,
            at=from_timestamp(event.cleared_at),
        )
    return None
