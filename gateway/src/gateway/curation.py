"""Curation views: the record filters' names, a record's disagreement, and a dataset's counts."""

from collections.abc import Mapping

import msgspec

from gateway.clients import Clients
from workbench.annotations.v1 import annotations_pb2 as ann

# The words of `?filter=`, and the annotations service's filter each stands for.
RECORD_FILTERS = {
    "differences": ann.RECORD_FILTER_DIFFERENCES,
    "golden": ann.RECORD_FILTER_GOLDEN,
    "fixed": ann.RECORD_FILTER_FIXED,
    "wrong": ann.RECORD_FILTER_WRONG,
    "needs_review": ann.RECORD_FILTER_NEEDS_REVIEW,
}


class DisagreementView(msgspec.Struct):
    differs: bool = False
    score: float = 0.0  # 0: all agree; 1: every answer differs from every other everywhere
    differing_paths: list[str] = msgspec.field(default_factory=list)  # JSON answers: "$.trajectory"


class CountsView(msgspec.Struct):
    total: int
    golden: int
    fixed: int
    wrong: int
    needs_review: int
    differing: int


class StatsView(CountsView):
    """The dataset's counts, then the same counts per model (total: the records the model answered)."""

    by_model: dict[str, CountsView]


def disagreement_view(message: ann.Disagreement) -> DisagreementView:
    return DisagreementView(differs=message.differs, score=message.score, differing_paths=list(message.differing_paths))


def counts_view(message: ann.Counts) -> CountsView:
    return CountsView(
        total=message.total,
        golden=message.golden,
        fixed=message.fixed,
        wrong=message.wrong,
        needs_review=message.needs_review,
        differing=message.differing,
    )


def stats_view(overall: ann.Counts, by_model: Mapping[str, ann.Counts]) -> StatsView:
    return StatsView(
        **msgspec.structs.asdict(counts_view(overall)),
        by_model={model: counts_view(counts) for model, counts in sorted(by_model.items())},
    )


async def fetch_stats(clients: Clients, dataset_id: str) -> StatsView:
    """The dataset's counts, as the annotations service has them (the stats route and the live feed)."""
    reply = await clients.annotations.GetStats(ann.GetStatsRequest(dataset_id=dataset_id))
    return stats_view(reply.overall, reply.by_model)
