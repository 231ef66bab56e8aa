"""The inference API over gRPC with the real datasets service and nats-server (no worker needed).

Stories: the models file is listed; a run is requested, split into shards on the work queue and
shown as queued; bad requests are refused naming what was wrong.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from devstack.natsserver import free_port
from eventlog import JetStreamEventStore, NewEvent
from inference_service.adapters.run_log import RunLog
from inference_service.adapters.work_queue import WORK_STREAM
from inference_service.application import InferenceApplication
from inference_service.bootstrap import start
from inference_service.domain.commands import RequestRun
from inference_service.domain.models import Sampling
from inference_service.domain.state import RunState, decide
from inference_service.settings import InferenceSettings
from servicehost.host import Running
from tests.integration.inference.stack import upload
from workbench.inference.v1 import inference_pb2 as pb
from workbench.inference.v1 import inference_pb2_grpc


def prompts(count: int) -> list[dict[str, Any]]:
    return [{"id": f"p{n}", "prompt": f"tell me about the river number {n}"} for n in range(count)]


async def test_the_models_of_the_models_file_are_listed_with_paths_resolved(
    inference: Any, api_settings: InferenceSettings
) -> None:
    models = (await inference.ListModels(pb.ListModelsRequest())).models

    assert [model.model_id for model in models] == ["tiny-a", "tiny-b", "broken"]
    tiny = models[0]
    assert tiny.path == str(api_settings.models_file.parent / "tiny-a")
    assert (tiny.backend, tiny.revision, tiny.max_model_len) == ("vllm", "local", 512)
    assert tiny.default_sampling.max_tokens == 24


async def test_a_requested_run_is_queued_and_its_records_are_split_into_shards(
    inference: Any, datasets: Any, events: JetStreamEventStore
) -> None:
    dataset = await upload(datasets, "rivers.jsonl", prompts(20))
    sampling = pb.SamplingParams(temperature=0.5, top_p=0.9, max_tokens=8, seed=42)

    request = pb.StartRunRequest(dataset_id=dataset.dataset_id, model_id="tiny-b", sampling=sampling)
    run = (await inference.StartRun(request)).run

    assert run.run_id.startswith("run_") and len(run.run_id) == 16
    assert (run.status, run.total, run.done, run.model_id) == (pb.RUN_STATUS_QUEUED, 20, 0, "tiny-b")
    assert run.sampling == sampling
    assert run.HasField("requested_at")
    (requested,) = await events.read(f"wb.runs.{run.run_id}")
    assert requested.headers["Nats-Msg-Id"] == f"run:{run.run_id}"
    assert isinstance(requested.event, pb.RunRequested) and requested.event.record_count == 20

    shards = await queued_shards(events, "tiny-b")
    mine = [(shard.offset, shard.limit) for shard in shards if shard.run_id == run.run_id]
    assert mine == [(0, 8), (8, 8), (16, 4)]
    assert all(shard.run_total == 20 and shard.sampling == sampling for shard in shards if shard.run_id == run.run_id)

    active = (await inference.ListRuns(pb.ListRunsRequest(dataset_id=dataset.dataset_id, active_only=True))).runs
    assert [listed.run_id for listed in active] == [run.run_id]


async def test_a_run_without_sampling_uses_the_models_defaults(inference: Any, datasets: Any) -> None:
    dataset = await upload(datasets, "two.jsonl", prompts(2))

    run = (await inference.StartRun(pb.StartRunRequest(dataset_id=dataset.dataset_id, model_id="tiny-b"))).run

    assert run.sampling == pb.SamplingParams(temperature=0.0, top_p=1.0, max_tokens=256, seed=0)


@pytest.mark.parametrize(
    ("request_fields", "code", "message"),
    [
        ({"model_id": "gpt-9"}, grpc.StatusCode.NOT_FOUND, "known models: tiny-a, tiny-b, broken"),
        ({"dataset_id": "ds_missing"}, grpc.StatusCode.NOT_FOUND, "dataset 'ds_missing' not found"),
        ({"dataset_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "dataset_id is required"),
        (
            {"sampling": pb.SamplingParams(temperature=0, top_p=1, max_tokens=4096)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_tokens must be between 1 and 511",
        ),
    ],
)
async def test_a_bad_run_request_is_refused_with_what_to_fix(
    inference: Any,
    datasets: Any,
    events: JetStreamEventStore,
    request_fields: dict[str, Any],
    code: grpc.StatusCode,
    message: str,
) -> None:
    dataset = await upload(datasets, "one.jsonl", prompts(1))
    fields = {"dataset_id": dataset.dataset_id, "model_id": "tiny-b", **request_fields}
    before = await events.count("wb.runs.>")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inference.StartRun(pb.StartRunRequest(**fields))

    assert caught.value.code() == code
    assert message in (caught.value.details() or "")
    assert await events.count("wb.runs.>") == before


async def test_an_unknown_run_is_not_found(inference: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inference.GetRun(pb.GetRunRequest(run_id="run_000000000000"))

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_without_the_datasets_service_a_run_request_is_unavailable(api_settings: InferenceSettings) -> None:
    settings = InferenceSettings(
        nats_url=api_settings.nats_url,
        address=f"127.0.0.1:{free_port()}",
        metrics_addr="",
        datasets_addr=f"127.0.0.1:{free_port()}",  # nobody listens there
        db_url="sqlite:///:memory:",
        models_file=api_settings.models_file,
    )
    lonely = await start(settings)
    try:
        async with grpc.aio.insecure_channel(settings.address) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.StartRun(pb.StartRunRequest(dataset_id="ds_1", model_id="tiny-a"))
    finally:
        await lonely.stop()

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "datasets service" in (caught.value.details() or "")


async def test_a_run_left_queued_by_a_crash_gets_its_shards_when_the_api_starts_again(
    api_settings: InferenceSettings, datasets: Any, events: JetStreamEventStore, tmp_path: Path
) -> None:
    dataset = await upload(datasets, "crash.jsonl", prompts(3))
    # Given a run whose shards were never enqueued: the API died between the two appends.
    run_id = "run_0000c0ffee01"
    command = RequestRun(run_id, dataset.dataset_id, "tiny-b", Sampling(), 3, datetime.now(UTC))
    await RunLog(events).append(decide(RunState(run_id), command))
    before = await queued_shards(events, "tiny-b")

    # When the API starts again,
    settings = api_settings.model_copy(
        update={"address": f"127.0.0.1:{free_port()}", "db_url": f"sqlite:///{tmp_path / 'i.db'}"}
    )
    await (await start(settings)).stop()

    # then the run's shard is on the queue, and the other queued runs' shards are not there twice.
    after = await queued_shards(events, "tiny-b")
    assert [(shard.run_id, shard.offset, shard.limit) for shard in after[len(before) :]] == [(run_id, 0, 3)]


async def test_results_can_be_listed_for_some_records_only(
    inference: Any, api: Running[InferenceApplication], events: JetStreamEventStore
) -> None:
    # Given a run with results for five records,
    run_id = "run_00000000ab01"
    command = RequestRun(run_id, "ds_page", "tiny-b", Sampling(), 5, datetime.now(UTC))
    sequences = await RunLog(events).append(decide(RunState(run_id), command))
    for record_id in ("r1", "r2", "r3", "r 4", "r5"):
        result = pb.ResultRecorded(run_id=run_id, dataset_id="ds_page", model_id="tiny-b", record_id=record_id)
        sequences.append(
            await events.append(NewEvent(f"wb.results.{run_id}", result, msg_id=f"page:{run_id}:{record_id}"))
        )
    await api.runner().wait_for(sequences[-1])

    # when a page of the results view asks for three of them, then it gets those three, in recorded order.
    request = pb.ListResultsRequest(run_id=run_id, record_ids=["r5", "r 4", "r2", "r9"])
    page = (await inference.ListResults(request)).results

    assert [result.record_id for result in page] == ["r2", "r 4", "r5"]
    everything = (await inference.ListResults(pb.ListResultsRequest(dataset_id="ds_page"))).results
    assert len(everything) == 5


async def queued_shards(events: JetStreamEventStore, model_id: str) -> list[pb.RunShard]:
    """The shards waiting on the work queue for a model (read without taking them)."""
    info = await events.js.stream_info(WORK_STREAM, subjects_filter=f"wb.work.{model_id}")
    shards = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            raw = await events.js.get_msg(WORK_STREAM, sequence)
        except Exception:
            continue
        if raw.subject == f"wb.work.{model_id}":
            shards.append(pb.RunShard.FromString(raw.data or b""))
    return shards
