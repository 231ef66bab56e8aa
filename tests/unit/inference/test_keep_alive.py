"""A worker reports a long shard in progress often enough that AckWait never hands it to another worker."""

import pytest

from inference_service.worker.loop import keep_alive_period


@pytest.mark.parametrize(("ack_wait_s", "period_s"), [(60.0, 10.0), (30.0, 10.0), (6.0, 2.0), (1.0, 1 / 3)])
def test_the_keep_alive_comes_three_times_per_ack_wait_and_at_least_every_ten_seconds(
    ack_wait_s: float, period_s: float
) -> None:
    assert keep_alive_period(ack_wait_s) == pytest.approx(period_s)


def test_an_ack_wait_of_zero_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="WB_WORKER_ACK_WAIT_S"):
        keep_alive_period(0)
