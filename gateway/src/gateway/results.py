"""The workbench's results view: records, every model's answer and the annotations, side by side.

Pure: the controller fetches from the three services in parallel and hands the replies here.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from gateway.curation import DisagreementView, disagreement_view
from gateway.views import (
    CellAnnotationView,
    CellResultView,
    DatasetView,
    cell_annotation_view,
    cell_result_view,
    dataset_view,
    record_input,
    record_metadata,
)
from workbench.annotations.v1 import annotations_pb2 as ann
from workbench.datasets.v1 import datasets_pb2 as ds
from workbench.inference.v1 import inference_pb2 as inf


class ResultRowView(msgspec.Struct):
    """One record of the grid: its input and metadata, then every model's answer and annotation."""

    record_id: str
    index: int
    input: dict[str, Any]
    metadata: dict[str, Any]
    results: dict[str, CellResultView]
    annotations: dict[str, CellAnnotationView]
    # The record's annotation version: send it back as expected_version to detect a concurrent edit.
    annotation_version: int
    differs: bool
    # From the annotations service: text normalised, JSON field by field (the fields that differ).
    disagreement: DisagreementView


class WorkbenchResults(msgspec.Struct):
    dataset: DatasetView
    models: list[str]
    records: list[ResultRowView]
    offset: int
    limit: int | None
    total: int


def normalise(text: str) -> str:
    """Whitespace differences alone do not make two answers differ."""
    return " ".join(text.split())


def outputs_differ(results: Iterable[CellResultView]) -> bool:
    """True when two or more models answered (without error) and their answers are not the same."""
    texts = [normalise(r.output_text) for r in results if not r.error]
    return len(texts) >= 2 and len(set(texts)) > 1


def run_order(runs: Sequence[inf.Run]) -> list[inf.Run]:
    return sorted(runs, key=lambda r: (r.requested_at.seconds, r.requested_at.nanos, r.run_id))


def merge_results(
    dataset: ds.Dataset,
    records: Sequence[ds.Record],
    results: Sequence[inf.Result],
    annotations: Sequence[ann.Annotation],
    runs: Sequence[inf.Run],
    offset: int = 0,
    limit: int | None = None,
    disagreements: Mapping[str, ann.Disagreement] | None = None,
    total: int | None = None,
) -> WorkbenchResults:
    """Joins the records with one result and one annotation per model.

    Models appear in the order of their first run on the dataset. When a model ran more than once,
    the result of its latest run wins (a rerun replaces older answers cell by cell as it goes).
    total: the records that passed a filter (unset: the dataset's record count).
    """
    found = disagreements or {}
    ordered = run_order(runs)
    rank = {run.run_id: i for i, run in enumerate(ordered)}
    models = list(dict.fromkeys(run.model_id for run in ordered))

    wanted = {record.record_id for record in records}
    best: dict[tuple[str, str], tuple[int, inf.Result]] = {}
    for result in results:
        if result.record_id not in wanted:
            continue
        if result.model_id not in models:  # a run that started after ListRuns answered
            models.append(result.model_id)
        key = (result.record_id, result.model_id)
        position = rank.get(result.run_id, len(ordered))
        if key not in best or position >= best[key][0]:
            best[key] = (position, result)

    latest: dict[str, dict[str, ann.Annotation]] = {}
    for annotation in annotations:
        per_model = latest.setdefault(annotation.record_id, {})
        current = per_model.get(annotation.model_id)
        if current is None or annotation.version >= current.version:
            per_model[annotation.model_id] = annotation

    views = []
    for record in records:
        marks = latest.get(record.record_id, {})
        cells = {m: cell_result_view(best[(record.record_id, m)][1]) for m in models if (record.record_id, m) in best}
        views.append(
            ResultRowView(
                record_id=record.record_id,
                index=record.index,
                input=record_input(record),
                metadata=record_metadata(record),
                results=cells,
                annotations={m: cell_annotation_view(a) for m, a in marks.items()},
                annotation_version=max((a.version for a in marks.values()), default=0),
                differs=outputs_differ(cells.values()),
                disagreement=(
                    disagreement_view(found[record.record_id]) if record.record_id in found else DisagreementView()
                ),
            )
        )
    return WorkbenchResults(
        dataset=dataset_view(dataset),
        models=models,
        records=views,
        offset=offset,
        limit=limit,
        total=dataset.record_count if total is None else total,
    )
