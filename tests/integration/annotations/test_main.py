"""`python -m annotations_service` starts from the environment, serves, and stops cleanly on SIGTERM."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc

from devstack.natsserver import NatsServer, free_port
from workbench.annotations.v1.annotations_pb2 import ListAnnotationsRequest
from workbench.annotations.v1.annotations_pb2_grpc import AnnotationServiceStub

from .conftest import wait_until_serving


def test_the_service_process_serves_and_stops_on_sigterm(fresh_nats: NatsServer, tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    db = tmp_path / "var" / "annotations.db"  # its folder does not exist yet
    env = {
        **os.environ,
        "WB_NATS_URL": fresh_nats.url,
        "WB_ANNOTATIONS_ADDR": address,
        "WB_ANNOTATIONS_DB_URL": f"sqlite:///{db}",
        "WB_ANNOTATIONS_METRICS_ADDR": "127.0.0.1:0",  # any free port: tests may run beside a `make run`
    }
    log_path = tmp_path / "annotations-service.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "annotations_service"], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        wait_until_serving(address, process, log_path)
        with grpc.insecure_channel(address) as channel:
            listed = AnnotationServiceStub(channel).ListAnnotations(ListAnnotationsRequest(dataset_id="ds1"))
        assert list(listed.annotations) == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert db.exists()
    assert f"listening on {address}" in log_path.read_text()
