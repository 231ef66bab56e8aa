"""Helpers of the inference integration tests: child processes, uploads, waiting for a run."""

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from eventlog import JetStreamEventStore
from tests.uploads import upload_requests
from workbench.datasets.v1 import datasets_pb2
from workbench.inference.v1 import inference_pb2

REPO = Path(__file__).resolve().parents[3]


class ChildProcess:
    """A service started as `python -m <module> ...`, logging to a file the failures can show."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", *args],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() also ends what it spawned
        )

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def assert_alive(self) -> None:
        assert self.process.poll() is None, f"{self.log_path.name} exited:\n{self.log_tail()}"

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # vLLM's engine core outlives a worker that was killed rather than stopped.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()
        return self.process.returncode


def wait_for_port(child: ChildProcess, address: str, timeout: float = 60) -> None:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.assert_alive()
        with socket.socket() as sock:
            if sock.connect_ex((host, int(port))) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {address} after {timeout} s:\n{child.log_tail()}")


class WorkerProcess(ChildProcess):
    def metrics(self) -> dict[tuple[str, str], float]:
        """The worker's Prometheus samples by (name, model label)."""
        text = httpx.get(f"http://{self.env['WB_WORKER_METRICS_ADDR']}/metrics", timeout=5).text
        return {
            (sample.name, sample.labels.get("model", "")): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def pause(self) -> None:
        """Freezes the worker (as a hung machine would be): it takes no shard until resume()."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


async def upload(datasets: Any, name: str, records: list[dict[str, Any]]) -> datasets_pb2.Dataset:
    """Uploads records as a JSONL file through the datasets service: header, small chunks, trailer."""
    data = "".join(json.dumps(record) + "\n" for record in records).encode()
    response: datasets_pb2.UploadDatasetResponse = await datasets.UploadDataset(upload_requests(name, data, 1000))
    return response.dataset


async def record_ids(datasets: Any, dataset_id: str) -> list[str]:
    request = datasets_pb2.ReadRecordsRequest(dataset_id=dataset_id)
    return [record.record_id async for batch in datasets.ReadRecords(request) for record in batch.records]


async def wait_for_run(
    inference: Any, run_id: str, worker: ChildProcess | None = None, within_s: float = 300
) -> inference_pb2.Run:
    """Polls GetRun until the run has finished; on a timeout the worker's log explains why."""
    finished = (inference_pb2.RUN_STATUS_COMPLETED, inference_pb2.RUN_STATUS_FAILED, inference_pb2.RUN_STATUS_CANCELLED)
    deadline = time.monotonic() + within_s
    while True:
        response: inference_pb2.GetRunResponse = await inference.GetRun(inference_pb2.GetRunRequest(run_id=run_id))
        run = response.run
        if run.status in finished:
            return run
        if worker is not None:
            worker.assert_alive()
        if time.monotonic() > deadline:
            tail = worker.log_tail() if worker is not None else ""
            raise AssertionError(f"run {run_id} still {run.status} after {within_s} s:\n{tail}")
        await asyncio.sleep(0.5)


async def results_of(events: JetStreamEventStore, run_id: str) -> list[inference_pb2.ResultRecorded]:
    """Every ResultRecorded on the run's results subject, in log order."""
    stored = await events.read(f"wb.results.{run_id}")
    return [item.event for item in stored if isinstance(item.event, inference_pb2.ResultRecorded)]
