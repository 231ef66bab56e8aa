"""`make run` hands the services the user's own settings: only the stack's addresses are its own."""

from pathlib import Path

from devstack import Stack, StackPorts
from devstack.settings import DevstackSettings


def test_read_model_databases_the_user_named_are_kept_and_the_others_default_to_sqlite(tmp_path: Path) -> None:
    stack = Stack(tmp_path, tmp_path / "var", StackPorts.free(), token="t")
    user = {"WB_ANNOTATIONS_DB_URL": "postgresql+psycopg2://wb@db/annotations", "WB_LOG_LEVEL": "DEBUG"}

    env = stack.env(base=user)

    assert env["WB_ANNOTATIONS_DB_URL"] == "postgresql+psycopg2://wb@db/annotations"
    assert env["WB_DATASETS_DB_URL"] == f"sqlite:///{tmp_path / 'var' / 'db' / 'datasets.db'}"
    assert env["WB_LOG_LEVEL"] == "DEBUG"


def test_the_stack_owns_the_addresses_the_token_and_the_metrics_ports(tmp_path: Path) -> None:
    ports = StackPorts.free()
    stack = Stack(tmp_path, tmp_path / "var", ports, token="secret")

    env = stack.env(base={"WB_API_TOKEN": "stale", "WB_NATS_URL": "nats://elsewhere:4222"})

    assert env["WB_API_TOKEN"] == "secret"
    assert env["WB_NATS_URL"] == f"nats://127.0.0.1:{ports.nats}"
    assert env["WB_INFERENCE_ADDR"] == f"127.0.0.1:{ports.inference}"
    assert env["WB_WORKER_METRICS_ADDR"] == f"127.0.0.1:{ports.worker_metrics}"
    assert len({ports.nats, ports.gateway, ports.datasets_metrics, ports.worker_metrics}) == 4


def test_make_run_ports_come_from_its_settings() -> None:
    settings = DevstackSettings.from_env({"WB_NATS_PORT": "4999", "WB_WORKER_METRICS_PORT": "9999"})

    ports = StackPorts.from_settings(settings)

    assert (ports.nats, ports.gateway, ports.worker_metrics, ports.datasets_metrics) == (4999, 4080, 9999, 9151)
