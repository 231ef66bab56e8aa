"""A run's life as events: given what happened, a command decides what happens next."""

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.message import Message

from eventlog import token
from inference_service.domain.commands import BeginRun, CompleteRun, FailRun, RecordResult, RequestRun
from inference_service.domain.errors import Conflict, FailedPrecondition
from inference_service.domain.models import Sampling
from inference_service.domain.state import RunState, RunStatus, decide, evolve, result_msg_id
from workbench.inference.v1 import inference_pb2 as pb

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_tokens=24, seed=7)


def given(*events: Message) -> RunState:
    state = RunState("run_1")
    for sequence, event in enumerate(events, start=1):
        state = evolve(state, event, sequence)
    return state


def requested(total: int = 3) -> Message:
    return decide(RunState("run_1"), RequestRun("run_1", "ds_1", "tiny-a", SAMPLING, total, T0))[0].event


def started(at: datetime = T0 + timedelta(seconds=1)) -> Message:
    return decide(given(requested()), BeginRun("run_1", "w1", "vllm 0.32.0", "local", at))[0].event


def result(record_id: str, seconds: float, tokens: int = 10, error: str = "") -> Message:
    command = RecordResult(
        "run_1",
        "ds_1",
        "tiny-a",
        record_id,
        "" if error else "some words",
        "error" if error else "length",
        5,
        tokens,
        12.5,
        error,
        T0 + timedelta(seconds=seconds),
    )
    return decide(RunState("run_1"), command)[0].event


def test_requesting_a_run_records_the_dataset_model_sampling_and_record_count() -> None:
    (new,) = decide(RunState("run_1"), RequestRun("run_1", "ds_1", "tiny-a", SAMPLING, 20, T0))

    assert new.subject == "wb.runs.run_1"
    assert new.msg_id == "run:run_1"
    assert new.expected_sequence == 0  # a new run's subject must be empty
    assert isinstance(new.event, pb.RunRequested)
    assert (new.event.dataset_id, new.event.model_id, new.event.record_count) == ("ds_1", "tiny-a", 20)
    assert new.event.sampling.seed == 7
    assert given(new.event).status == RunStatus.QUEUED


def test_a_run_over_an_empty_dataset_is_refused() -> None:
    with pytest.raises(FailedPrecondition, match="has no records"):
        decide(RunState("run_1"), RequestRun("run_1", "ds_1", "tiny-a", SAMPLING, 0, T0))


def test_the_same_run_cannot_be_requested_twice() -> None:
    with pytest.raises(Conflict):
        decide(given(requested()), RequestRun("run_1", "ds_1", "tiny-a", SAMPLING, 3, T0))


def test_the_first_worker_starts_a_queued_run_and_later_shards_add_nothing() -> None:
    command = BeginRun("run_1", "w1", "vllm 0.32.0", "local", T0)

    (new,) = decide(given(requested()), command)
    assert (new.subject, new.msg_id) == ("wb.runs.run_1", "started:run_1")
    assert given(requested(), new.event).status == RunStatus.RUNNING
    assert decide(given(requested(), new.event), command) == []


def test_each_result_is_keyed_by_run_and_record_so_a_retry_is_deduplicated() -> None:
    command = RecordResult("run_1", "ds_1", "tiny-a", "line-7", "hi", "stop", 5, 1, 3.0, "", T0)

    (new,) = decide(given(requested(), started()), command)

    assert (new.subject, new.msg_id) == ("wb.results.run_1", "result:run_1:line-7")
    assert isinstance(new.event, pb.ResultRecorded) and new.event.record_id == "line-7"


@pytest.mark.parametrize(("first", "second"), [("q1", "q1 "), ("a\nb", "a b"), ("x\r\n", "x"), ("q1", "q1\n")])
def test_record_ids_that_nats_headers_would_blur_still_get_distinct_message_ids(first: str, second: str) -> None:
    def msg_id(record_id: str) -> str:
        command = RecordResult("run_1", "ds_1", "tiny-a", record_id, "hi", "stop", 5, 1, 3.0, "", T0)
        return decide(given(requested(), started()), command)[0].msg_id

    ids = msg_id(first), msg_id(second)

    assert ids[0] != ids[1]
    # nats-py strips header values and turns CR/LF into spaces: what is sent must survive that as it is.
    assert all(value == value.strip() and not any(char.isspace() for char in value) for value in ids)
    assert [msg_id(first), msg_id(second)] == list(ids)  # deterministic, so a retry is still deduplicated


@pytest.mark.parametrize("record_id", ["line-7", "q 1", "é/x.y", "", "a" * 201])
def test_a_record_id_in_a_message_id_has_the_form_of_a_subject_token(record_id: str) -> None:
    assert result_msg_id("run_1", record_id) == f"result:run_1:{token(record_id)}"


def test_results_count_done_failed_and_output_tokens_and_give_speed_and_eta_by_event_time() -> None:
    state = given(
        requested(total=4), started(T0), result("a", 2, tokens=10), result("b", 4, tokens=30, error="too long")
    )

    assert (state.done, state.failed, state.output_tokens) == (2, 1, 40)
    assert state.tokens_per_second == pytest.approx(10.0)  # 40 tokens in 4 s since the start
    assert state.eta_seconds == pytest.approx(4.0)  # 2 records left at 0.5 records/s


def test_a_run_completes_only_when_every_record_has_a_result() -> None:
    state = given(requested(total=3), started())

    assert decide(state, CompleteRun("run_1", 2, 0, T0)) == []
    (new,) = decide(state, CompleteRun("run_1", 3, 1, T0 + timedelta(seconds=9)))
    assert isinstance(new.event, pb.RunCompleted)
    assert (new.msg_id, new.event.done, new.event.failed) == ("completed:run_1", 3, 1)

    completed = given(requested(total=3), started(), new.event)
    assert completed.status == RunStatus.COMPLETED
    assert completed.finished_at == T0 + timedelta(seconds=9)
    assert completed.eta_seconds == 0.0
    assert decide(completed, CompleteRun("run_1", 3, 1, T0)) == []


def test_a_failed_run_keeps_its_error_and_a_finished_run_cannot_fail() -> None:
    (new,) = decide(given(requested()), FailRun("run_1", "model tiny-a could not be loaded", T0))
    assert new.msg_id == "failed:run_1"

    failed = given(requested(), new.event)
    assert (failed.status, failed.error) == (RunStatus.FAILED, "model tiny-a could not be loaded")
    assert decide(failed, FailRun("run_1", "again", T0)) == []
    assert given(requested(), new.event, started()).status == RunStatus.FAILED
