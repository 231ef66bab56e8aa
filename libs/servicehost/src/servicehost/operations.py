"""OperationsService: what a service answers about its projections (served by every host)."""

from collections.abc import Callable, Mapping, Sequence

import grpc

from eventlog import ProjectionRunner, to_timestamp
from workbench.common.v1 import operations_pb2 as pb
from workbench.common.v1 import operations_pb2_grpc as pb_grpc


class OperationsServicer(pb_grpc.OperationsServiceServicer):
    def __init__(
        self,
        service: str,
        runners: Callable[[], Mapping[str, ProjectionRunner]],
        storage_warnings: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        self.service = service
        self.runners = runners
        self.storage_warnings = storage_warnings

    async def GetStatus(self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext) -> pb.GetStatusResponse:
        statuses = [runner.status() for runner in self.runners().values()]
        return pb.GetStatusResponse(
            service=self.service,
            projections=[
                pb.ProjectionStatus(name=s.name, position=s.position, lag=s.lag, parked=s.parked) for s in statuses
            ],
            storage_warnings=list(self.storage_warnings()),
        )

    async def ListParkedEvents(
        self, request: pb.ListParkedEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListParkedEventsResponse:
        events = []
        for runner in self.runners().values():
            for parked in runner.parked_events():
                events.append(
                    pb.ParkedEvent(
                        projection=parked.projection,
                        sequence=parked.sequence,
                        subject=parked.subject,
                        type_name=parked.type_name,
                        error=parked.error,
                        parked_at=to_timestamp(parked.parked_at),
                        attempts=parked.attempts,
                    )
                )
        return pb.ListParkedEventsResponse(events=events)

    async def RetryParkedEvents(
        self, request: pb.RetryParkedEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryParkedEventsResponse:
        applied = still = 0
        for runner in self.runners().values():
            outcome = await runner.retry_parked()
            applied += outcome.applied
            still += outcome.still_parked
        return pb.RetryParkedEventsResponse(applied=applied, still_parked=still)
