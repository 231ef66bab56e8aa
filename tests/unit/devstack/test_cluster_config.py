"""What `make run-cluster` and WB_NATS_SYNC hand nats-server and the processes."""

import socket
from pathlib import Path

import pytest

from devstack import Stack, StackPorts
from devstack.__main__ import loopback_cluster
from devstack.cluster import ClusterPorts, NatsCluster
from devstack.natsserver import NatsServer, PortInUse
from devstack.settings import DevstackSettings
from eventlog import nats_servers
from servicehost.settings import SettingsError


def test_a_server_of_the_cluster_has_a_name_its_routes_and_a_store_of_its_own(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path, ClusterPorts.from_base(4223), sync="always")

    config = cluster.servers["n2"].config()

    assert 'server_name: "n2"' in config
    assert "listen: 127.0.0.1:4224" in config
    assert "http: 127.0.0.1:4244" in config
    assert 'cluster { name: "wb", listen: 127.0.0.1:4234, routes: [nats-route://127.0.0.1:4233, ' in config
    assert f'jetstream {{ store_dir: "{tmp_path / "n2"}", sync_interval: always }}' in config
    assert cluster.url == "nats://127.0.0.1:4223,nats://127.0.0.1:4224,nats://127.0.0.1:4225"


def test_a_single_server_keeps_nats_servers_own_sync_interval_by_default(tmp_path: Path) -> None:
    assert "sync_interval" not in NatsServer(tmp_path, port=4223).config()
    assert "sync_interval: 1s" in NatsServer(tmp_path, port=4223, sync="1s").config()


def test_a_sync_policy_nats_server_would_not_take_is_refused_by_name() -> None:
    assert DevstackSettings.from_env({"WB_NATS_SYNC": "always"}).nats_sync == "always"
    with pytest.raises(SettingsError, match="WB_NATS_SYNC"):
        DevstackSettings.from_env({"WB_NATS_SYNC": "sometimes"})


def test_the_processes_of_a_cluster_stack_get_every_server_three_replicas_and_a_second_worker(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path / "nats", ClusterPorts.from_base(4223))
    stack = Stack(
        tmp_path, tmp_path / "var", StackPorts.free(), cluster=cluster, extra_workers={"worker-2": {"X": "1"}}
    )

    env = stack.env(base={})

    assert env["WB_NATS_URL"] == cluster.url
    assert env["WB_STREAM_REPLICAS"] == "3"
    assert stack.process_names == ("datasets", "inference", "annotations", "worker", "worker-2", "gateway")


def test_wb_nats_url_holds_one_server_or_several_separated_by_commas() -> None:
    assert nats_servers("nats://a:4222") == ["nats://a:4222"]
    assert nats_servers("nats://a:4222, nats://b:4222,") == ["nats://a:4222", "nats://b:4222"]
    with pytest.raises(ValueError, match="no NATS server URL"):
        nats_servers(" , ")


def test_make_run_cluster_names_the_variable_that_moves_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        route_port = busy.getsockname()[1]
        settings = DevstackSettings.from_env({"WB_NATS_PORT": str(route_port - 11)})  # n2's route port

        with pytest.raises(PortInUse, match=f"port {route_port} .* set WB_NATS_PORT elsewhere"):
            loopback_cluster(tmp_path, settings)
