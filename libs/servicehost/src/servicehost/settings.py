"""The one way to read settings: typed classes, one field per environment variable, read once at start.

Every field names its variable (`WB_...`) and carries its default and a description, so the class
is the documentation (docs/operations.md lists them; a test checks that every variable is there).
Tests build settings from a mapping with from_env({...}) or by field name.
"""

from collections.abc import Mapping
from typing import Any, Self

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_EVENT_STREAM = "WB_EVENTS"


class SettingsError(ValueError):
    """A setting is malformed; the message names the variable and says what it must be."""


def setting(variable: str, default: Any, description: str, **constraints: Any) -> Any:
    """A settings field read from the environment variable `variable`."""
    return Field(default, validation_alias=variable, description=description, **constraints)


class Settings(BaseSettings):
    """Base of every settings class: frozen, exact variable names, empty values count as unset."""

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", populate_by_name=True, case_sensitive=True, env_ignore_empty=True
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings from the process environment, or from env when given (tests)."""
        try:
            if env is None:
                return cls()
            return cls.model_validate({name: value for name, value in env.items() if value != ""})
        except ValidationError as error:
            raise SettingsError(_explain(error, cls)) from None

    @classmethod
    def variables(cls) -> list[tuple[str, Any, str]]:
        """(variable, default, description) of every field read from a variable, for docs and checks."""
        return [
            (str(info.validation_alias), info.get_default(call_default_factory=False), info.description or "")
            for info in cls.model_fields.values()
            if info.validation_alias is not None
        ]


class CommonSettings(Settings):
    """What every workbench process needs: where the event log is, deadlines, logging."""

    nats_url: str = setting("WB_NATS_URL", DEFAULT_NATS_URL, "NATS server (JetStream) holding the event log")
    # Apart from the URL so the password stays out of logs that print the URL.
    nats_user: str = setting("WB_NATS_USER", "", "the NATS user this process connects as (empty: none)")
    nats_password: str = setting("WB_NATS_PASSWORD", "", "that NATS user's password (never logged)", repr=False)
    event_stream: str = setting("WB_EVENT_STREAM", DEFAULT_EVENT_STREAM, "the event-log stream")
    rpc_timeout_s: float = setting("WB_RPC_TIMEOUT_S", 30.0, "deadline of a call to another service, in seconds", gt=0)
    log_level: str = setting("WB_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR")


class ProcessSettings(CommonSettings):
    """A process that may create the streams and serves its metrics (services and workers)."""

    stream_replicas: int = setting(
        "WB_STREAM_REPLICAS",
        1,
        "replicas of the streams and the object store when a process creates them (3 in a cluster)",
        ge=1,
        le=5,
    )
    # Each process kind sets its own variable and port; empty: no metrics server.
    metrics_addr: str = ""


class ServiceSettings(ProcessSettings):
    """A gRPC service with a read model: each service names its own variables for these."""

    address: str
    db_url: str


def _explain(error: ValidationError, settings: type[Settings]) -> str:
    variables = {name: str(info.validation_alias) for name, info in settings.model_fields.items()}
    problems = []
    for problem in error.errors():
        variable = ".".join(variables.get(str(part), str(part)) for part in problem["loc"])
        if problem["type"] == "value_error":  # a validator's own words: "WB_X is required: ..."
            problems.append(f"{variable} {problem['ctx']['error']}")
            continue
        given = problem.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        problems.append(f"{variable}: {problem['msg'][:1].lower()}{problem['msg'][1:]}{shown}")
    return "; ".join(problems)
