"""Errors the event log raises; callers translate them into their own domain errors."""


class EventLogError(Exception):
    """Base class of every error raised by this library."""


class ConcurrencyConflict(EventLogError):
    """An append named an expected subject sequence that is no longer the last one."""

    def __init__(self, subject: str, expected: int, detail: str = "") -> None:
        super().__init__(
            f"{subject} has changed since sequence {expected}: reload it and try again"
            + (f" ({detail})" if detail else "")
        )
        self.subject = subject
        self.expected = expected


class UndecodableEvent(EventLogError):
    """A stored message cannot be turned back into its event."""


class UnknownEventType(UndecodableEvent):
    """A stored message names an event type that no imported proto module defines."""


class AppendTimeout(EventLogError, TimeoutError):
    """The server did not acknowledge an append in time: it may or may not be stored.

    Retrying with the same Nats-Msg-Id is safe (deduplicated if the first one was stored).
    """

    def __init__(self, subject: str, seconds: float) -> None:
        super().__init__(f"no acknowledgement for an append to {subject} within {seconds:g} s; retry it")
        self.subject = subject
