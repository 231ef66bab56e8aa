"""A run's events on the event store: load its state, append decided events, look at its results."""

from collections.abc import Sequence

from eventlog import EventStore, NewEvent, PendingAppend, load_aggregate
from inference_service.domain.state import RunState, evolve, results_subject, run_subject
from workbench.inference.v1 import inference_pb2 as pb


class RunLog:
    """Runs on the event store (wb.runs.<run_id>) and their results (wb.results.<run_id>)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def load(self, run_id: str) -> RunState:
        """The run's lifecycle state (its results are not folded in: see count_results)."""
        return await load_aggregate(self.store, run_subject(run_id), RunState(run_id), evolve)

    async def append(self, new_events: Sequence[NewEvent]) -> list[int]:
        """Appends and waits until every event is stored (or deduplicated); returns their sequences."""
        return await self.store.append_many(new_events)

    async def start_append(self, new: NewEvent) -> PendingAppend:
        """Starts an append without waiting for it (await its confirm() later): many in flight."""
        return await self.store.start_append(new)

    async def count_results(self, run_id: str) -> int:
        """How many results the log holds for the run (cheap: no message is read)."""
        return await self.store.count(results_subject(run_id))

    async def recorded(self, run_id: str) -> dict[str, bool]:
        """Every record id with a result in the run, mapped to whether that result is an error."""
        recorded: dict[str, bool] = {}
        for stored in await self.store.read(results_subject(run_id)):
            if isinstance(stored.event, pb.ResultRecorded):
                recorded[stored.event.record_id] = bool(stored.event.error)
        return recorded
