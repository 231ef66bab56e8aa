"""The fault suite's rebuild comparison (rebuild.py) finds a live read model that differs from a
rebuild of the log, and none where they agree: else its zero after every fault would prove nothing."""

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from eventlog import JetStreamEventStore, ProjectionRunner
from inference_service.adapters.read_model import WorkerRow
from inference_service.bootstrap import projections
from inference_service.domain.workers import announced
from servicehost.database import create_engine
from tests.faults.rebuild import compare

AT = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def fresh_rebuild(events: JetStreamEventStore) -> ProjectionRunner:
    (projection,) = projections()
    return ProjectionRunner(events, create_engine("sqlite://"), projection)


async def test_a_live_row_unlike_the_rebuilt_one_is_named(stream_log: JetStreamEventStore, tmp_path: Path) -> None:
    await stream_log.append(announced("w1", ["tiny-a", "tiny-b"], AT))
    (projection,) = projections()
    live = create_engine(f"sqlite:///{tmp_path / 'inference.db'}")
    await ProjectionRunner(stream_log, live, projection).catch_up()

    assert await compare(fresh_rebuild(stream_log), live) == []

    with live.begin() as connection:
        connection.execute(update(WorkerRow).where(WorkerRow.model_id == "tiny-b").values(detail="changed by hand"))  # type: ignore[arg-type]

    (mismatch,) = await compare(fresh_rebuild(stream_log), live)
    assert mismatch.startswith("inference_workers (row 1: live ('w1', 'tiny-b'")
    assert "changed by hand" in mismatch
