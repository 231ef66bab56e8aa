"""Export formats: each turns batches of curated records into text, piece by piece, so an export of any
size streams in bounded memory (start, then one piece per batch, then end).

Everything a model wrote is untrusted text: JSON goes through json.dumps, CSV cells that a
spreadsheet would run as a formula are neutralised, nothing is ever HTML.
"""

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from annotations_service.domain.errors import InvalidInput
from annotations_service.domain.export import (
    CuratedOutput,
    chat_messages,
    export_item,
    json_text,
    kind_name,
    prompt_text,
)
from annotations_service.domain.label_studio_tasks import Mark, task
from workbench.annotations.v1.annotations_pb2 import AnnotationKind, ExportFormat
from workbench.datasets.v1.datasets_pb2 import Record

CSV_COLUMNS = ("record_id", "model_id", "kind", "input", "answer", "fixed_text", "annotator", "note", "metadata")
# OWASP's CSV injection advice: a cell starting with one of these is run as a formula by spreadsheets.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_TRAINING_KINDS = frozenset({AnnotationKind.ANNOTATION_KIND_GOLDEN, AnnotationKind.ANNOTATION_KIND_FIXED})


@dataclass(frozen=True, slots=True)
class CuratedRecord:
    """A record with its marked outputs (in model order) and every model's answer to it."""

    dataset_id: str
    record: Record
    outputs: Sequence[CuratedOutput]
    answers: Mapping[str, str] = field(default_factory=dict)  # model id -> answer (Label Studio's data)


class ExportWriter(Protocol):
    def start(self) -> str: ...
    def write(self, records: Sequence[CuratedRecord]) -> str: ...
    def end(self) -> str: ...


class JsonLines:
    """One JSON object per curated (record, model) per line."""

    def start(self) -> str:
        return ""

    def write(self, records: Sequence[CuratedRecord]) -> str:
        return "".join(json_text(item) + "\n" for item in _items(records))

    def end(self) -> str:
        return ""


class JsonArray:
    """The JSONL objects as one JSON array (or Label Studio's tasks, one per record)."""

    def __init__(self, label_studio_models: Sequence[str] | None = None) -> None:
        self._models = label_studio_models
        self._empty = True

    def start(self) -> str:
        return "["

    def write(self, records: Sequence[CuratedRecord]) -> str:
        items = _items(records) if self._models is None else [_task(r, self._models) for r in records if r.outputs]
        text = ",\n".join(json_text(item) for item in items)
        if not text:
            return ""
        text = ("\n" if self._empty else ",\n") + text
        self._empty = False
        return text

    def end(self) -> str:
        return "]\n" if self._empty else "\n]\n"


class CsvRows:
    """One row per curated (record, model) under a header; minimal quoting, "\\r\\n" line ends."""

    def start(self) -> str:
        return _csv_rows([CSV_COLUMNS])

    def write(self, records: Sequence[CuratedRecord]) -> str:
        return _csv_rows(
            [
                curated.record.record_id,
                output.model_id,
                kind_name(output.kind),
                prompt_text(curated.record),
                output.answer,
                output.fixed_text,
                output.annotator,
                output.note,
                curated.record.metadata_json or "{}",
            ]
            for curated in records
            for output in curated.outputs
        )

    def end(self) -> str:
        return ""


class OpenAIChat:
    """OpenAI's chat fine-tuning format: the input then the curated answer as the assistant turn."""

    def start(self) -> str:
        return ""

    def write(self, records: Sequence[CuratedRecord]) -> str:
        return "".join(
            json_text(
                {"messages": [*chat_messages(curated.record), {"role": "assistant", "content": output.curated_text}]}
            )
            + "\n"
            for curated in records
            for output in curated.outputs
        )

    def end(self) -> str:
        return ""


def export_writer(
    export_format: ExportFormat.ValueType, kinds: frozenset[int], model_ids: Sequence[str] = ()
) -> ExportWriter:
    """The writer of a format (UNSPECIFIED: JSONL). model_ids: the dataset's models (Label Studio's config).

    Raises InvalidInput for an unknown format, or for openai_chat asked for WRONG marks.
    """
    if export_format in (ExportFormat.EXPORT_FORMAT_UNSPECIFIED, ExportFormat.EXPORT_FORMAT_JSONL):
        return JsonLines()
    if export_format == ExportFormat.EXPORT_FORMAT_JSON:
        return JsonArray()
    if export_format == ExportFormat.EXPORT_FORMAT_CSV:
        return CsvRows()
    if export_format == ExportFormat.EXPORT_FORMAT_LABEL_STUDIO:
        return JsonArray(label_studio_models=list(model_ids))
    if export_format == ExportFormat.EXPORT_FORMAT_OPENAI_CHAT:
        if not kinds <= _TRAINING_KINDS:
            raise InvalidInput(
                "openai_chat exports golden and fixed answers only: a wrong answer is never a training "
                "target; leave out kinds=wrong (or use jsonl, json or csv to export wrong ones)"
            )
        return OpenAIChat()
    raise InvalidInput(f"export format {export_format} is unknown: use JSONL, JSON, CSV, LABEL_STUDIO or OPENAI_CHAT")


def neutralised(cell: str) -> str:
    """The cell as a spreadsheet shows it without running it: a leading ' before a formula start."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _items(records: Sequence[CuratedRecord]) -> list[dict[str, object]]:
    return [
        export_item(curated.dataset_id, curated.record, output) for curated in records for output in curated.outputs
    ]


def _task(curated: CuratedRecord, model_ids: Sequence[str]) -> dict[str, object]:
    # The answer a mark judged is the one shown, even when a later run answered again.
    answers = {**curated.answers, **{output.model_id: output.answer for output in curated.outputs}}
    marks = {
        output.model_id: Mark(output.kind, output.fixed_text)  # type: ignore[arg-type]
        for output in curated.outputs
    }
    models = [*model_ids, *(model_id for model_id in answers if model_id not in model_ids)]
    return task(curated.record, {m: answers[m] for m in models if m in answers}, marks, models)


def _csv_rows(rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerows([neutralised(str(cell)) for cell in row] for row in rows)
    return buffer.getvalue()
