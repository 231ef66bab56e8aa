"""A run's events on the event log: load its state, append decided events, look at its results."""

import asyncio
from collections.abc import Sequence

from nats.js import api

from eventlog import Append, EventLog
from inference_service.domain.state import NewEvent, RunState, evolve, results_subject, run_subject
from workbench.inference.v1 import inference_pb2 as pb

PendingAppend = tuple[Append, "asyncio.Future[api.PubAck]"]


class RunLog:
    """Runs on the event log (wb.runs.<run_id>) and their results (wb.results.<run_id>)."""

    def __init__(self, events: EventLog) -> None:
        self.events = events

    async def load(self, run_id: str) -> RunState:
        """The run's lifecycle state (its results are not folded in: see count_results)."""
        state = RunState(run_id)
        for stored in await self.events.read(run_subject(run_id)):
            state = evolve(state, stored.event)
        return state

    async def append(self, new_events: Sequence[NewEvent]) -> list[int]:
        """Appends and waits until every event is stored (or deduplicated); returns their sequences."""
        return await self.events.append_many(_as_append(new) for new in new_events)

    async def append_nowait(self, new: NewEvent) -> PendingAppend:
        """Starts an append without waiting for it (pass the result to confirm)."""
        return await self.events.append_nowait(_as_append(new))

    async def confirm(self, pending: PendingAppend) -> int:
        return await self.events.confirm(*pending)

    async def count_results(self, run_id: str) -> int:
        """How many results the log holds for the run (cheap: no message is read)."""
        return await self.events.count(results_subject(run_id))

    async def recorded(self, run_id: str) -> dict[str, bool]:
        """Every record id with a result in the run, mapped to whether that result is an error."""
        recorded: dict[str, bool] = {}
        for stored in await self.events.read(results_subject(run_id)):
            if isinstance(stored.event, pb.ResultRecorded):
                recorded[stored.event.record_id] = bool(stored.event.error)
        return recorded


def _as_append(new: NewEvent) -> Append:
    return Append(subject=new.subject, event=new.event, msg_id=new.msg_id)
