"""Which records pass each curation filter, in which order, and the counts overall and per model."""

from annotations_service.domain.curation import RecordFacts, RecordFilter, count, select
from annotations_service.domain.disagreement import Disagreement
from workbench.annotations.v1.annotations_pb2 import AnnotationKind

GOLDEN = AnnotationKind.ANNOTATION_KIND_GOLDEN
WRONG = AnnotationKind.ANNOTATION_KIND_WRONG


def differing(score: float, *models: str) -> Disagreement:
    return Disagreement(differs=True, score=score, differing_paths=(), differing_models=frozenset(models))


ORDER = ["r0", "r1", "r2", "r3", "r4"]
FACTS = [
    RecordFacts("r3", differing(1.0, "a", "b")),
    RecordFacts("r1", differing(0.5, "a", "b")),
    RecordFacts("r2", differing(0.5, "a", "b"), marks={"a": GOLDEN}),
    RecordFacts("r0", marks={"a": WRONG, "b": GOLDEN}),
    RecordFacts("gone", differing(1.0, "a", "b")),  # not a record of the dataset
]


def ids(wanted: RecordFilter, model_id: str = "") -> list[str]:
    return [facts.record_id for facts in select(FACTS, ORDER, wanted, model_id)]


def test_filters_keep_dataset_order() -> None:
    assert ids(RecordFilter.EVERY) == ORDER
    assert ids(RecordFilter.DIFFERENCES) == ["r1", "r2", "r3"]
    assert ids(RecordFilter.GOLDEN) == ["r0", "r2"]
    assert ids(RecordFilter.WRONG) == ["r0"]
    assert ids(RecordFilter.FIXED) == []


def test_needs_review_is_disagreement_without_a_verdict_most_disagreed_first() -> None:
    assert ids(RecordFilter.NEEDS_REVIEW) == ["r3", "r1"]  # r2 has a verdict


def test_a_named_model_counts_its_own_marks_and_answers_only() -> None:
    assert ids(RecordFilter.GOLDEN, "b") == ["r0"]
    assert ids(RecordFilter.NEEDS_REVIEW, "b") == ["r3", "r1", "r2"]  # nobody judged b's answer to r2
    assert ids(RecordFilter.DIFFERENCES, "c") == []


def test_counts_overall_and_per_model() -> None:
    overall = count(FACTS[:4], total=5)
    of_b = count(FACTS[:4], total=4, model_id="b")

    assert (overall.total, overall.golden, overall.wrong, overall.needs_review, overall.differing) == (5, 2, 1, 2, 3)
    assert (of_b.total, of_b.golden, of_b.wrong, of_b.needs_review, of_b.differing) == (4, 1, 0, 3, 3)
