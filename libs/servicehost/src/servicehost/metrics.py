"""Prometheus metrics every workbench process exposes (prometheus-client, the default registry).

gRPC calls by method and code with latency (the names of go-grpc-prometheus, so common dashboards
fit), events appended by type, and per projection its lag and parked events. Services add their own
(inference: tokens generated, shards in flight) with the same client.
"""

import logging
from collections.abc import Callable, Iterable, Sequence
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from eventlog import ProjectionStatus

log = logging.getLogger(__name__)

GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "gRPC calls completed on the server, by method and status code",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "time from a gRPC call's arrival to its last answer",
    ["grpc_service", "grpc_method"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
EVENTS_APPENDED = Counter("wb_events_appended_total", "events this process appended to the event log", ["type"])


def observe_grpc_call(service: str, method: str, code: str, seconds: float) -> None:
    GRPC_HANDLED.labels(service, method, code).inc()
    GRPC_SECONDS.labels(service, method).observe(seconds)


def count_appended(type_name: str) -> None:
    EVENTS_APPENDED.labels(type_name).inc()


class _Projections(Collector):
    """Reads the projections' status at scrape time (nothing to keep in step). One per process: a
    test may run several services in one process, and a registry refuses a metric named twice."""

    def __init__(self) -> None:
        self.sources: list[Callable[[], Sequence[ProjectionStatus]]] = []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        labels = ["projection"]
        lag = GaugeMetricFamily("wb_projection_lag_events", "events not applied yet", labels=labels)
        parked = GaugeMetricFamily("wb_projection_parked_events", "events kept aside for a retry", labels=labels)
        position = GaugeMetricFamily("wb_projection_position", "stream sequence applied up to", labels=labels)
        for source in list(self.sources):
            for status in source():
                lag.add_metric([status.name], status.lag)
                parked.add_metric([status.name], status.parked)
                position.add_metric([status.name], status.position)
        yield from (lag, parked, position)


_PROJECTIONS = _Projections()
REGISTRY.register(_PROJECTIONS)


def watch_projections(statuses: Callable[[], Sequence[ProjectionStatus]]) -> Callable[[], None]:
    """Adds a host's projections to the gauges; returns the function that removes them."""
    _PROJECTIONS.sources.append(statuses)
    return lambda: _PROJECTIONS.sources.remove(statuses)


def serve_metrics(address: str) -> tuple[WSGIServer, int] | None:
    """Serves /metrics on host:port in a thread (port 0: any free port); None when address is "off"
    (or empty, as settings built in code may say; an empty variable counts as unset, so the
    environment says "off")."""
    if address in ("", "off"):
        return None
    host, _, port = address.rpartition(":")
    try:
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1")
    except OSError as error:
        raise OSError(f"cannot serve metrics on {address}: {error.strerror}; change its *_METRICS_ADDR") from None
    bound = server.server_address[1]
    log.info("metrics on http://%s:%d/metrics", host or "127.0.0.1", bound)
    return server, int(bound)
