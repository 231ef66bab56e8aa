"""Which records pass a curation filter, in which order, and how many of each kind there are.

Pure: the read model hands over each record's disagreement and marks, the datasets service the
record order; these rules decide the rest. With a model named, only that model's marks and answers
count: "differences" are the records where its answer differs from another model's, "needs review"
those where it does and nobody has judged its answer yet.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from annotations_service.domain.disagreement import AGREEMENT, Disagreement
from workbench.annotations.v1.annotations_pb2 import AnnotationKind


class RecordFilter(Enum):
    EVERY = "every"
    DIFFERENCES = "differences"
    GOLDEN = "golden"
    FIXED = "fixed"
    WRONG = "wrong"
    NEEDS_REVIEW = "needs_review"


_MARKED = {
    RecordFilter.GOLDEN: AnnotationKind.ANNOTATION_KIND_GOLDEN,
    RecordFilter.FIXED: AnnotationKind.ANNOTATION_KIND_FIXED,
    RecordFilter.WRONG: AnnotationKind.ANNOTATION_KIND_WRONG,
}


@dataclass(frozen=True)
class RecordFacts:
    """What curation knows of one record: how its answers disagree and its marks (model id -> kind)."""

    record_id: str
    disagreement: Disagreement = AGREEMENT
    marks: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Counts:
    total: int = 0
    golden: int = 0
    fixed: int = 0
    wrong: int = 0
    needs_review: int = 0
    differing: int = 0


def passes(facts: RecordFacts, wanted: RecordFilter, model_id: str = "") -> bool:
    """Whether the record passes the filter (of the named model's answer and marks only, if any)."""
    if wanted is RecordFilter.EVERY:
        return True
    if wanted is RecordFilter.DIFFERENCES:
        return _differs(facts, model_id)
    if wanted is RecordFilter.NEEDS_REVIEW:
        judged = model_id in facts.marks if model_id else bool(facts.marks)
        return _differs(facts, model_id) and not judged
    kind = _MARKED[wanted]
    return facts.marks.get(model_id) == kind if model_id else kind in facts.marks.values()


def select(
    facts: Iterable[RecordFacts], order: Sequence[str], wanted: RecordFilter, model_id: str = ""
) -> list[RecordFacts]:
    """The dataset's records (order: their ids in dataset order) that pass the filter: in dataset
    order, or most-disagreed first for needs review. A record the dataset lacks is left out."""
    position = {record_id: index for index, record_id in enumerate(order)}
    known = {item.record_id: item for item in facts if item.record_id in position}
    passing = [item for item in (known.get(r, RecordFacts(r)) for r in order) if passes(item, wanted, model_id)]
    if wanted is RecordFilter.NEEDS_REVIEW:
        passing.sort(key=lambda item: -item.disagreement.score)  # stable: ties stay in dataset order
    return passing


def count(facts: Iterable[RecordFacts], total: int, model_id: str = "") -> Counts:
    """The counts of one dataset's records (of one model's marks and answers, if named)."""
    items = list(facts)

    def number(wanted: RecordFilter) -> int:
        return sum(1 for item in items if passes(item, wanted, model_id))

    return Counts(
        total=total,
        golden=number(RecordFilter.GOLDEN),
        fixed=number(RecordFilter.FIXED),
        wrong=number(RecordFilter.WRONG),
        needs_review=number(RecordFilter.NEEDS_REVIEW),
        differing=number(RecordFilter.DIFFERENCES),
    )


def _differs(facts: RecordFacts, model_id: str) -> bool:
    if model_id:
        return model_id in facts.disagreement.differing_models
    return facts.disagreement.differs
