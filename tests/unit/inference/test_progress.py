"""Progress numbers: speed from output tokens over time, ETA from the pace so far, shards of a run."""

import pytest

from inference_service.domain.progress import plan_shards, rates
from inference_service.worker.progress import ProgressBoard
from workbench.inference.v1 import inference_pb2 as pb


def test_speed_is_output_tokens_per_second_and_eta_the_remaining_records_at_the_same_pace() -> None:
    pace = rates(done=25, total=100, output_tokens=500, elapsed_s=10.0)

    assert pace.tokens_per_second == pytest.approx(50.0)
    assert pace.eta_seconds == pytest.approx(30.0)  # 75 records left at 2.5 records/s


def test_nothing_done_yet_gives_no_speed_and_no_eta() -> None:
    assert rates(done=0, total=100, output_tokens=0, elapsed_s=0.0).tokens_per_second == 0.0
    assert rates(done=0, total=100, output_tokens=0, elapsed_s=5.0).eta_seconds == 0.0


def test_a_finished_count_has_no_time_left() -> None:
    assert rates(done=100, total=100, output_tokens=900, elapsed_s=9.0).eta_seconds == 0.0


@pytest.mark.parametrize(
    ("total", "size", "expected"),
    [
        (20, 256, [(0, 20)]),
        (512, 256, [(0, 256), (256, 256)]),
        (600, 256, [(0, 256), (256, 256), (512, 88)]),
        (0, 256, []),
    ],
)
def test_a_run_is_split_into_shards_that_cover_every_record_once(
    total: int, size: int, expected: list[tuple[int, int]]
) -> None:
    assert plan_shards(total, size) == expected


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_live_progress_is_published_at_most_every_half_second_and_once_at_the_end() -> None:
    published: list[pb.RunProgress] = []
    recorded = 0

    async def publish(progress: pb.RunProgress) -> None:
        published.append(progress)

    async def count_results(run_id: str) -> int:
        return recorded

    board = ProgressBoard(publish, count_results)
    shard = pb.RunShard(run_id="run_1", dataset_id="ds", model_id="tiny-a", offset=0, limit=10, run_total=10)
    async with board.track(shard) as tracker:
        clock = Clock()
        tracker.clock = clock
        tracker.started = 0.0
        for step in range(10):
            clock.now = step * 0.1  # ten results over 0.9 s
            recorded += 1
            await tracker.record(failed=step == 3, output_tokens=4)

    assert len(published) == 3  # at 0.0 s, at 0.5 s, and the final one
    final = published[-1]
    assert (final.run_id, final.done, final.total, final.failed) == ("run_1", 10, 10, 1)
    assert final.tokens_per_second == pytest.approx(40 / 0.9)
    assert final.eta_seconds == 0.0
