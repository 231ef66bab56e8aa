"""Live frames: what the relay makes of NATS messages, the per-client backlog, and the WebSocket itself."""

import asyncio
import json
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from litestar import Litestar
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import AsyncTestClient

from gateway.live import CLOSE_FELL_BEHIND, CLOSE_RELOAD, CLOSE_UNAUTHORIZED, ClientQueue, Frame, LiveHub
from gateway.relay import event_frame, progress_frame
from workbench.annotations.v1 import annotations_pb2 as ann
from workbench.datasets.v1 import datasets_pb2 as ds
from workbench.inference.v1 import inference_pb2 as inf

from .conftest import TOKEN, at

T = TypeVar("T")


def result_frame(n: int) -> Frame:
    return Frame(json.dumps({"type": "result", "n": n}))


def progress(run_id: str, done: int) -> Frame:
    return Frame(json.dumps({"type": "progress", "run": run_id, "done": done}), progress_of=run_id)


def run_privately(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine on a loop of its own (these tests are synchronous; the session loop is not ours)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def drain(queue: ClientQueue) -> list[dict[str, Any]]:
    async def take() -> list[dict[str, Any]]:
        frames = []
        while len(queue):
            text = await queue.get()
            assert text is not None
            frames.append(json.loads(text))
        return frames

    return run_privately(take())


def test_a_newer_progress_snapshot_replaces_the_pending_one_of_the_same_run() -> None:
    queue = ClientQueue(limit=10)
    queue.put(progress("a", 1))
    queue.put(result_frame(1))
    queue.put(progress("b", 1))
    queue.put(progress("a", 2))

    assert drain(queue) == [
        {"type": "result", "n": 1},
        {"type": "progress", "run": "b", "done": 1},
        {"type": "progress", "run": "a", "done": 2},
    ]


def test_a_full_backlog_drops_the_oldest_progress_first_never_a_result() -> None:
    queue = ClientQueue(limit=3)
    queue.put(progress("a", 1))
    queue.put(result_frame(1))
    queue.put(result_frame(2))
    queue.put(result_frame(3))  # full: progress "a" goes
    queue.put(progress("b", 1))  # full of results: this snapshot is dropped, nothing else

    assert not queue.overflowed
    assert [f.get("n") for f in drain(queue)] == [1, 2, 3]


def test_results_that_overflow_the_backlog_close_the_client_to_resume() -> None:
    queue = ClientQueue(limit=2)
    for n in range(3):
        queue.put(result_frame(n))

    assert queue.overflowed and queue.closed and not queue.must_reload
    assert queue.closing is not None and queue.closing.code == CLOSE_FELL_BEHIND
    assert run_privately(queue.get()) is None  # pending frames are dropped: the page resumes after its last


def big_result(n: int, size: int) -> Frame:
    return Frame(json.dumps({"type": "result", "n": n, "output_text": "x" * size}), seq=n)


def test_the_backlog_is_bounded_in_bytes_as_well_as_in_frames() -> None:
    queue = ClientQueue(limit=100, limit_bytes=10_000)
    for n in range(1, 4):
        queue.put(big_result(n, 3_000))
    assert not queue.closed and 9_000 < queue.bytes <= 10_000

    queue.put(big_result(4, 3_000))  # the fourth would make it about 12 KB

    assert queue.overflowed and queue.closed and queue.bytes == 0


def test_progress_snapshots_make_room_for_results_before_the_bytes_overflow() -> None:
    queue = ClientQueue(limit=100, limit_bytes=10_000)
    queue.put(Frame(json.dumps({"type": "progress", "pad": "p" * 4_000}), progress_of="a"))
    queue.put(big_result(1, 3_000))
    queue.put(big_result(2, 3_000))  # full: the progress snapshot goes
    queue.put(Frame(json.dumps({"type": "progress", "pad": "p" * 4_000}), progress_of="b"))  # no room: dropped

    assert not queue.closed
    assert [f.get("n") for f in drain(queue)] == [1, 2]
    assert queue.bytes == 0


def test_a_frame_bigger_than_the_whole_backlog_still_reaches_a_page_that_keeps_up() -> None:
    queue = ClientQueue(limit_bytes=1_000)
    queue.put(big_result(1, 5_000))

    assert not queue.closed and [f["n"] for f in drain(queue)] == [1]


def test_the_hub_fans_one_frame_out_to_every_client() -> None:
    hub = LiveHub(backlog=5)
    first, second = hub.subscribe(), hub.subscribe()
    hub.broadcast(result_frame(7))
    hub.unsubscribe(second)
    hub.broadcast(result_frame(8))

    assert [f["n"] for f in drain(first)] == [7, 8]
    assert second.closed and len(hub.clients) == 1


def test_a_recorded_result_becomes_a_result_frame() -> None:
    event = inf.ResultRecorded(
        run_id="run-1",
        dataset_id="ds-1",
        model_id="gemma",
        record_id="r1",
        output_text="<b>hi</b>",
        finish_reason="stop",
        prompt_tokens=3,
        output_tokens=2,
        latency_ms=9.5,
        recorded_at=at(1),
    )

    frame = event_frame(event, sequence=17)

    assert frame is not None and frame.progress_of is None and frame.seq == 17
    assert json.loads(frame.text) == {
        "type": "result",
        "result": {
            "run_id": "run-1",
            "dataset_id": "ds-1",
            "model_id": "gemma",
            "record_id": "r1",
            "output_text": "<b>hi</b>",
            "finish_reason": "stop",
            "prompt_tokens": 3,
            "output_tokens": 2,
            "latency_ms": 9.5,
            "error": "",
        },
        "seq": 17,
    }


def test_run_events_become_run_frames_and_other_events_nothing() -> None:
    started = event_frame(
        inf.RunStarted(run_id="run-1", worker="w1", engine="vllm 0.32.0", started_at=at(2)), sequence=5
    )
    completed = event_frame(inf.RunCompleted(run_id="run-1", done=3, failed=1), sequence=6)

    assert started is not None and json.loads(started.text) == {
        "type": "run",
        "event": "RunStarted",
        "run_id": "run-1",
        "worker": "w1",
        "engine": "vllm 0.32.0",
        "model_revision": "",
        "started_at": "2025-10-09T08:53:22+00:00",
        "weights_hash": "",
        "chat_template_hash": "",
        "seq": 5,
    }
    assert completed is not None and json.loads(completed.text)["completed_at"] is None
    assert event_frame(ds.DatasetRegistered(dataset_id="ds-1"), sequence=7) is None


def test_annotation_events_become_annotation_frames_with_the_records_new_version() -> None:
    marked = event_frame(
        ann.AnnotationRecorded(
            dataset_id="ds-1",
            record_id="r1",
            model_id="olmo",
            kind=ann.ANNOTATION_KIND_GOLDEN,
            output_text="<b>yes</b>",
            annotator="ana",
            source="workbench",
            run_id="run-1",
            recorded_at=at(3),
        ),
        sequence=41,
    )
    cleared = event_frame(ann.AnnotationCleared(dataset_id="ds-1", record_id="r1", model_id="olmo"), sequence=42)

    assert marked is not None and cleared is not None
    frame = json.loads(marked.text)
    assert (frame["type"], frame["event"], frame["kind"], frame["version"]) == (
        "annotation",
        "AnnotationRecorded",
        "golden",
        41,
    )
    assert (frame["record_id"], frame["model_id"], frame["output_text"], frame["run_id"]) == (
        "r1",
        "olmo",
        "<b>yes</b>",
        "run-1",
    )
    assert (json.loads(cleared.text)["event"], json.loads(cleared.text)["version"]) == ("AnnotationCleared", 42)


def test_a_progress_snapshot_becomes_a_progress_frame() -> None:
    frame = progress_frame(inf.RunProgress(run_id="run-1", model_id="gemma", done=5, total=10, eta_seconds=2.5))

    assert frame.progress_of == "run-1"
    body = json.loads(frame.text)
    assert body["type"] == "progress"
    assert body["progress"]["done"] == 5 and body["progress"]["eta_seconds"] == 2.5


def wait_for_clients(hub: LiveHub, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(hub.clients) != count:
        assert time.monotonic() < deadline, "the socket never subscribed"
        time.sleep(0.01)


async def test_the_socket_pushes_frames_to_an_authenticated_browser(
    client: AsyncTestClient[Litestar], app: Litestar, token: str
) -> None:
    hub: LiveHub = app.state.hub
    with await client.websocket_connect("/ws/workbench", headers={"Authorization": f"Bearer {token}"}) as socket:
        wait_for_clients(hub, 1)
        client.blocking_portal.call(hub.broadcast, progress("run-1", 4))
        client.blocking_portal.call(hub.broadcast, result_frame(1))

        # NATS is unreachable here: the gateway follows no stream yet, so no sequence to start from.
        assert socket.receive_json(timeout=5) == {"type": "hello", "resumed": False, "seq": None}
        assert socket.receive_json(timeout=5) == {"type": "progress", "run": "run-1", "done": 4}
        assert socket.receive_json(timeout=5) == {"type": "result", "n": 1}
    wait_for_clients(hub, 0)  # closing the socket unsubscribes it


# A token in the address is never read: it would land in access logs and the browser's history.
@pytest.mark.parametrize("query", ["", "?token=wrong", f"?token={TOKEN}"])
async def test_the_socket_closes_4401_without_the_token(client: AsyncTestClient[Litestar], query: str) -> None:
    socket = await client.websocket_connect(f"/ws/workbench{query}")
    with socket, pytest.raises(WebSocketDisconnect) as closed:
        socket.receive_json(timeout=5)

    assert closed.value.code == CLOSE_UNAUTHORIZED


async def test_a_browser_too_far_behind_is_told_to_resume(
    client: AsyncTestClient[Litestar], app: Litestar, token: str
) -> None:
    hub: LiveHub = app.state.hub
    with await client.websocket_connect("/ws/workbench", headers={"Authorization": f"Bearer {token}"}) as socket:
        wait_for_clients(hub, 1)
        # Fill the backlog faster than the socket drains it, in one go on the app's loop.
        client.blocking_portal.call(_flood, hub, hub.backlog + 1)
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                socket.receive_json(timeout=5)

    assert closed.value.code == CLOSE_FELL_BEHIND


def _flood(hub: LiveHub, count: int) -> None:
    for n in range(count):
        hub.broadcast(result_frame(n))


async def test_every_open_browser_is_told_to_reload_when_the_relay_missed_events(
    client: AsyncTestClient[Litestar], app: Litestar, token: str
) -> None:
    hub: LiveHub = app.state.hub
    with await client.websocket_connect("/ws/workbench", headers={"Authorization": f"Bearer {token}"}) as socket:
        wait_for_clients(hub, 1)
        client.blocking_portal.call(hub.reload_all)
        assert socket.receive_json(timeout=5)["type"] == "hello"
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json(timeout=5)

    assert closed.value.code == CLOSE_RELOAD


def test_a_reload_closes_the_queue_and_says_why() -> None:
    hub = LiveHub(backlog=5)
    queue = hub.subscribe()
    hub.broadcast(result_frame(1))
    hub.reload_all()

    assert queue.closed and queue.must_reload and not queue.overflowed
    assert queue.closing is not None and queue.closing.code == CLOSE_RELOAD
    assert run_privately(queue.get()) is None  # pending frames are dropped: the page refetches them
