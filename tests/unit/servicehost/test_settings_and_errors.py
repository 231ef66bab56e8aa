"""The service host's two promises that need no socket: settings say exactly which variable is wrong,
and every error kind becomes the same status code in every service."""

import grpc
import nats.errors
import nats.js.errors
import pytest
from sqlalchemy.exc import OperationalError

from eventlog import AppendTimeout, ConcurrencyConflict
from servicehost.errors import Conflict, DataLoss, FailedPrecondition, InvalidInput, NotFound, Unavailable
from servicehost.grpc_server import status_for
from servicehost.settings import ServiceSettings, SettingsError, setting


class ExampleSettings(ServiceSettings):
    address: str = setting("WB_EXAMPLE_ADDR", "127.0.0.1:1", "where it listens")
    db_url: str = setting("WB_EXAMPLE_DB_URL", "sqlite://", "its read model")
    batch: int = setting("WB_EXAMPLE_BATCH", 10, "records per batch", gt=0)
    eager: bool = setting("WB_EXAMPLE_EAGER", True, "whether to hurry")


def test_settings_come_from_their_variables_with_defaults_for_the_rest() -> None:
    settings = ExampleSettings.from_env({"WB_EXAMPLE_BATCH": "25", "WB_EXAMPLE_EAGER": "off", "WB_NATS_URL": ""})

    assert (settings.batch, settings.eager) == (25, False)
    assert settings.nats_url == "nats://127.0.0.1:4222"  # empty counts as unset
    assert settings.address == "127.0.0.1:1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WB_EXAMPLE_BATCH": "0"}, "WB_EXAMPLE_BATCH: input should be greater than 0 (got '0')"),
        ({"WB_EXAMPLE_BATCH": "ten"}, "WB_EXAMPLE_BATCH: input should be a valid integer"),
        ({"WB_EXAMPLE_EAGER": "maybe"}, "WB_EXAMPLE_EAGER: input should be a valid boolean"),
        ({"WB_STREAM_REPLICAS": "9"}, "WB_STREAM_REPLICAS: input should be less than or equal to 5"),
    ],
)
def test_a_bad_value_names_its_variable_and_what_it_must_be(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        ExampleSettings.from_env(env)
    assert message in str(refused.value)


def test_every_setting_documents_its_variable_default_and_meaning() -> None:
    variables = {name: (default, meaning) for name, default, meaning in ExampleSettings.variables()}

    assert variables["WB_EXAMPLE_BATCH"] == (10, "records per batch")
    assert variables["WB_NATS_URL"][0] == "nats://127.0.0.1:4222"
    assert all(name.startswith("WB_") and meaning for name, (_, meaning) in variables.items())


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("line 3: bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (NotFound("no such run"), grpc.StatusCode.NOT_FOUND),
        (Conflict("changed"), grpc.StatusCode.ABORTED),
        (ConcurrencyConflict("wb.x", 3), grpc.StatusCode.ABORTED),
        (FailedPrecondition("no result yet"), grpc.StatusCode.FAILED_PRECONDITION),
        (Unavailable("datasets away"), grpc.StatusCode.UNAVAILABLE),
        (DataLoss("sha256 differs"), grpc.StatusCode.DATA_LOSS),
        (AppendTimeout("wb.x", 1), grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_an_error_kind_keeps_its_words_and_gets_its_code(error: Exception, code: grpc.StatusCode) -> None:
    assert status_for(error) == (code, str(error))


@pytest.mark.parametrize(
    "error",
    [
        nats.errors.TimeoutError(),
        nats.errors.NoServersError(),
        nats.errors.ConnectionClosedError(),
        nats.js.errors.NoStreamResponseError(),
        TimeoutError("slow"),
        OperationalError("SELECT secret FROM x", {}, ConnectionError("db.internal:5432 refused")),
    ],
)
def test_infrastructure_that_is_away_is_unavailable_in_words_of_our_own(error: Exception) -> None:
    code, message = status_for(error)

    assert code == grpc.StatusCode.UNAVAILABLE
    assert "try again" in message and "secret" not in message and "db.internal" not in message


def test_anything_else_is_internal_and_says_nothing_of_the_insides() -> None:
    assert status_for(KeyError("api_key=hunter2")) == (grpc.StatusCode.INTERNAL, "internal error; see the service log")
