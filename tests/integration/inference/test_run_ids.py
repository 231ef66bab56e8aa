"""An id that is no run's, against a real event log: a dot, a wildcard, an empty token or a long id
in a cancel is NotFound, as an unknown run is, never an error from NATS (found by tests/fuzz: a cancel
of ".exe" read the subject "wb.runs..exe", which NATS refuses, and answered INTERNAL, a 500)."""

from pathlib import Path

import pytest

from eventlog import JetStreamEventStore
from inference_service.domain.errors import NotFound
from inference_service.domain.state import RunStatus
from tests.integration.inference.test_start_run import application


@pytest.mark.parametrize("run_id", [".exe", "run_1.", "a..b", "*", ">", "a b", "", "r" * 300, "run_\u00e9"])
async def test_cancelling_an_id_that_is_no_run_is_not_found(
    stream_log: JetStreamEventStore, tmp_path: Path, run_id: str
) -> None:
    app = await application(stream_log, stream_log, tmp_path)

    with pytest.raises(NotFound, match="not found; ListRuns shows the runs that exist"):
        await app.cancel_run(run_id)


async def test_a_wildcard_cancels_no_run(stream_log: JetStreamEventStore, tmp_path: Path) -> None:
    app = await application(stream_log, stream_log, tmp_path)
    run = await app.start_run("ds_1", "tiny-a")

    with pytest.raises(NotFound):
        await app.cancel_run("*")

    await app.projection.catch_up()
    assert (await app.get_run(run.run_id)).status is RunStatus.QUEUED
