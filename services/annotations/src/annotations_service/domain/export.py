"""What an export says of a curated (record, model), and its JSONL line (other formats: export_formats)."""

import json
from dataclasses import dataclass
from typing import Any

from annotations_service.domain.errors import InvalidInput
from workbench.annotations.v1.annotations_pb2 import AnnotationKind
from workbench.datasets.v1.datasets_pb2 import Record
from workbench.inference.v1.inference_pb2 import RunRequested, RunStarted

DEFAULT_EXPORT_KINDS = frozenset({AnnotationKind.ANNOTATION_KIND_GOLDEN, AnnotationKind.ANNOTATION_KIND_FIXED})
# Characters json.dumps leaves raw that str.splitlines() and older JavaScript treat as line breaks.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_KIND_NAMES = {
    AnnotationKind.ANNOTATION_KIND_GOLDEN: "golden",
    AnnotationKind.ANNOTATION_KIND_FIXED: "fixed",
    AnnotationKind.ANNOTATION_KIND_WRONG: "wrong",
}


def export_kinds(requested: list[int]) -> frozenset[int]:
    """The kinds to export: the requested ones, or golden and fixed when none are named."""
    if not requested:
        return frozenset(DEFAULT_EXPORT_KINDS)
    unknown = [kind for kind in requested if kind not in _KIND_NAMES]
    if unknown:
        raise InvalidInput(f"kinds {unknown} are not annotation kinds: use GOLDEN, FIXED or WRONG")
    return frozenset(requested)


@dataclass(frozen=True, slots=True)
class CuratedOutput:
    """One model's marked output for a record, as an export writes it."""

    model_id: str
    kind: int  # AnnotationKind
    answer: str  # the model's answer that was judged ("" for a fix of a record the model never answered)
    fixed_text: str = ""  # FIXED: the corrected answer
    annotator: str = ""
    note: str = ""
    run: dict[str, object] | None = None  # the run whose answer was judged, and what reproduces it

    @property
    def curated_text(self) -> str:
        """The answer the mark vouches for (or, for WRONG, rejects): the fix, else the model's answer."""
        return self.fixed_text if self.kind == AnnotationKind.ANNOTATION_KIND_FIXED else self.answer


KNOWN_KINDS = frozenset(_KIND_NAMES)


def kind_name(kind: int) -> str:
    """golden, fixed or wrong."""
    return _KIND_NAMES[kind]  # type: ignore[index]


def chat_messages(record: Record) -> list[dict[str, str]]:
    """The record's input as chat messages: a prompt record becomes one user message."""
    if record.messages:
        return [{"role": message.role, "content": message.content} for message in record.messages]
    return [{"role": "user", "content": record.prompt}]


def prompt_text(record: Record) -> str:
    """The record's input as plain text: its prompt, or its chat as "role: content" lines."""
    if not record.messages:
        return record.prompt
    return "\n".join(f"{message.role}: {message.content}" for message in record.messages)


def record_metadata(record: Record) -> dict[str, Any]:
    """The record's own fields beside its input (name, years, pedigree...), as the datasets service keeps them."""
    if not record.metadata_json:
        return {}
    metadata = json.loads(record.metadata_json)
    return metadata if isinstance(metadata, dict) else {"value": metadata}


def run_facts(event: RunRequested | RunStarted) -> dict[str, object]:
    """What an inference event tells of what reproduces its run (see Reproducibility in the contract)."""
    if isinstance(event, RunRequested):
        return {
            "model_id": event.model_id,
            "model_path": event.model_path,
            "dataset_sha256": event.dataset_sha256,
            "sampling": {
                "temperature": event.sampling.temperature,
                "top_p": event.sampling.top_p,
                "max_tokens": event.sampling.max_tokens,
                "seed": event.sampling.seed,
            },
            "sampling_explicit": event.sampling_explicit,
            "json_schema": event.json_schema,
        }
    return {
        "engine": event.engine,
        "model_revision": event.model_revision,
        "weights_hash": event.weights_hash,
        "chat_template_hash": event.chat_template_hash,
    }


def export_item(dataset_id: str, record: Record, output: CuratedOutput) -> dict[str, Any]:
    """The JSONL/JSON object of a curated (record, model); messages end with the curated answer."""
    input_messages = chat_messages(record)
    item: dict[str, Any] = {
        "dataset_id": dataset_id,
        "record_id": record.record_id,
        "model_id": output.model_id,
        "kind": kind_name(output.kind),
        "messages": [*input_messages, {"role": "assistant", "content": output.curated_text}],
        "input": input_messages,
        "answer": output.answer,
        "fixed_text": output.fixed_text,
        "annotator": output.annotator,
        "note": output.note,
    }
    metadata = record_metadata(record)
    if metadata:  # only when the record has any: exports of plain records keep their shape
        item["metadata"] = metadata
    if output.run:  # the run whose output was judged, and what reproduces it
        item["run"] = output.run
    return item


def json_text(value: object) -> str:
    """Compact-enough JSON on one line: json escapes whatever untrusted text holds, and the
    characters it leaves raw that split lines elsewhere are escaped too."""
    return json.dumps(value, ensure_ascii=False).translate(_LINE_BREAKS)


def export_line(dataset_id: str, record: Record, output: CuratedOutput) -> str:
    """One JSONL line (with its newline)."""
    return json_text(export_item(dataset_id, record, output)) + "\n"
