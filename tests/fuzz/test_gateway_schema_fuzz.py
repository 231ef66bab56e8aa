"""Fuzzing the gateway through its own OpenAPI schema on a running stack: whatever schemathesis
generates for any route (path ids, query values, headers, cookies, JSON bodies), the answer is never
a 5xx. And whatever bytes are uploaded, the answer is a registered dataset or a 400 naming lines.

The stack is the real one (nats-server, the three services, the gateway, as tests/conftest.py starts
them) without an inference worker: runs can be started and cancelled and stay queued, so no vLLM
engine is needed and the stack is up in a few seconds. Rate limiting is off, so that every generated
request reaches its route. The bootstrap admin's token (WB_API_TOKEN) passes every role check.

schemathesis runs as its command line does (`schemathesis run`, whose --max-time bounds it), twice:
with generated ids (mostly unknown ones: 404s and 400s), then with the ids of a dataset, a record, a
run and a user that exist, so that generated queries and bodies reach the services' own code. About
30 s each; under CI with a fixed seed, so a run there is repeatable (the seed is printed either way).
"""

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack import Stack, StackPorts
from tests.conftest import REPO, jsonl
from tests.fuzz.upload_inputs import jsonl_files

FUZZ_MODELS = """
[[models]]
id = "fuzz-a"
display_name = "Fuzz A"
backend = "vllm"
path = "./not-loaded"  # no worker runs: the model is only named, never loaded
revision = "local"
max_model_len = 512
"""
SERVICES_AND_GATEWAY = ("datasets", "inference", "annotations", "gateway")
SEED_RECORDS: list[dict[str, object]] = [
    {"id": "r/1", "prompt": "Say one"},
    {"id": "r 2", "prompt": "Say two", "name": "Ada"},
]
SECONDS_PER_PASS = 30
EXAMPLES_PER_ROUTE = 25  # per phase; the fuzzing phase repeats until the pass's time is spent
CI_SEED = "20261127"
# /metrics is Prometheus's text about the process: it takes no input. (The WebSocket, /ws/workbench,
# is not in the schema: it cannot be described there.)
NOT_FUZZED = ["--exclude-path", "/metrics"]
# With the ids of things that exist, a DELETE would remove them (or the fuzzer's own user) early in
# the pass and leave every later request a 404; the first pass fuzzes the DELETE routes.
NOT_FUZZED_WITH_EXISTING_IDS = [*NOT_FUZZED, "--exclude-method", "DELETE"]


@dataclass(frozen=True)
class Seeded:
    """Things that exist on the fuzzed stack, so that generated requests can reach past a 404."""

    dataset_id: str
    record_id: str
    run_id: str
    user: str


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("fuzz-stack")
    models_file = folder / "models.toml"
    models_file.write_text(FUZZ_MODELS)
    stack = Stack(
        REPO,
        folder / "var",
        StackPorts.free(),
        models_file=models_file,
        extra_env={"WB_RATE_LIMIT_PER_S": "0", "WB_LOGIN_RATE_PER_S": "0"},
    )
    try:
        stack.start(SERVICES_AND_GATEWAY, timeout=120)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def api(fuzz_stack: Stack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {fuzz_stack.token}"}
    with httpx.Client(base_url=fuzz_stack.url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def seeded(api: httpx.Client) -> Seeded:
    upload = api.post("/admin/datasets/upload?name=seed.jsonl", content=jsonl(SEED_RECORDS))
    assert upload.status_code == 201, upload.text
    dataset_id = upload.json()["dataset"]["dataset_id"]
    started = api.post("/admin/benchmarks/run", json={"dataset_id": dataset_id, "model_ids": ["fuzz-a"]})
    assert started.status_code == 201, started.text
    user = api.post("/admin/users", json={"name": "fuzzed-user", "role": "annotator"})
    assert user.status_code == 201, user.text
    return Seeded(dataset_id, str(SEED_RECORDS[0]["id"]), started.json()["runs"][0]["run_id"], "fuzzed-user")


def run_schemathesis(stack: Stack, folder: Path, parameters: dict[str, str], options: list[str]) -> Counter[int]:
    """One `schemathesis run` against the stack's schema; fails the test with its report on any 5xx.
    Returns how many answers had each status."""
    # The token goes in the config file, not on a command line that any process can read.
    config = folder / "schemathesis.toml"
    config.write_text(
        f"[headers]\nAuthorization = {json.dumps(f'Bearer {stack.token}')}\n"
        + "[parameters]\n"
        + "".join(f"{json.dumps(name)} = {json.dumps(value)}\n" for name, value in parameters.items())
    )
    events = folder / "events.ndjson"
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"),
        f"{stack.url}/schema/openapi.json",
        *("--checks", "not_a_server_error"),
        *("--phases", "examples,coverage,fuzzing"),
        *("--max-examples", str(EXAMPLES_PER_ROUTE), "--max-time", str(SECONDS_PER_PASS)),
        *("--workers", "1", "--request-timeout", "30", "--no-color"),
        *("--report", "ndjson", "--report-ndjson-path", str(events)),
        *(["--seed", CI_SEED] if os.environ.get("CI") else []),
        *options,
    ]
    finished = subprocess.run(
        command, cwd=folder, capture_output=True, text=True, timeout=SECONDS_PER_PASS + 120, check=False
    )
    report = finished.stdout + finished.stderr
    assert finished.returncode == 0, f"schemathesis found 5xx answers (or could not run):\n{report[-12_000:]}"
    return answer_statuses(events)


def answer_statuses(events: Path) -> Counter[int]:
    statuses: Counter[int] = Counter()
    with events.open() as lines:
        for line in lines:
            finished = json.loads(line).get("ScenarioFinished")
            for interaction in (finished or {}).get("recorder", {}).get("interactions", {}).values():
                if interaction.get("response"):
                    statuses[interaction["response"]["status_code"]] += 1
    return statuses


def assert_routes_were_reached(statuses: Counter[int]) -> None:
    """Guards against a pass that proves nothing: requests refused at the door (the token no longer
    accepted, the rate limit back on) or hardly any requests at all."""
    total = sum(statuses.values())
    assert total >= 500, statuses
    assert statuses[401] + statuses[429] < total / 4, statuses
    assert sum(count for status, count in statuses.items() if 200 <= status < 300) >= 20, statuses


def test_no_route_answers_5xx_for_generated_input(fuzz_stack: Stack, tmp_path: Path) -> None:
    statuses = run_schemathesis(fuzz_stack, tmp_path, {}, NOT_FUZZED)

    assert_routes_were_reached(statuses)


def test_no_route_answers_5xx_for_generated_input_on_existing_ids(
    fuzz_stack: Stack, seeded: Seeded, tmp_path: Path
) -> None:
    ids = {"dataset_id": seeded.dataset_id, "candidate_id": seeded.record_id, "run_id": seeded.run_id}

    statuses = run_schemathesis(fuzz_stack, tmp_path, {**ids, "path.name": seeded.user}, NOT_FUZZED_WITH_EXISTING_IDS)

    assert_routes_were_reached(statuses)


# The upload route reads its body as it streams (the schema describes none): its fuzzing is here.
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.one_of(jsonl_files(), st.binary(max_size=2000)), skip=st.booleans())
def test_any_uploaded_bytes_register_a_dataset_or_are_refused_naming_lines(
    api: httpx.Client, data: bytes, skip: bool
) -> None:
    response = api.post("/admin/datasets/upload", params={"name": "fuzz.jsonl", "skip_invalid": skip}, content=data)

    body = response.json()
    if response.status_code == 201:
        assert body["dataset"]["record_count"] >= 1
        return
    assert response.status_code == 400, response.text
    lines = data.count(b"\n") + 1
    assert all(1 <= problem["line"] <= lines for problem in body.get("problems", [])), body
    assert body.get("problems") or "holds no records" in body["detail"], body


def test_the_stack_survived_the_fuzzing(fuzz_stack: Stack, api: httpx.Client) -> None:
    me = api.get("/admin/me")

    assert me.status_code == 200, me.text  # the bootstrap admin still passes
    for name in SERVICES_AND_GATEWAY:
        assert fuzz_stack.running(name), f"{name} exited:\n{fuzz_stack.log(name)[-3000:]}"
