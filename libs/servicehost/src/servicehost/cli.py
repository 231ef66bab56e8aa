"""The command line every service shares: `python -m <service> [serve | rebuild | parked [--retry]]`.

serve (the default) runs the service until SIGTERM or SIGINT; rebuild drops the read model's rows
and replays the event log into it; parked lists the events the running service's projections could
not apply, and --retry applies them again (after a fix). Settings come from the environment.
"""

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from eventlog import Projection
from servicehost.errors import ServiceError
from servicehost.grpc_client import open_channel
from servicehost.host import Running, ServiceHost
from servicehost.settings import ServiceSettings, Settings, SettingsError
from workbench.common.v1 import operations_pb2 as ops
from workbench.common.v1 import operations_pb2_grpc as ops_grpc

S = TypeVar("S", bound=ServiceSettings)


@dataclass(frozen=True, slots=True)
class Command:
    """A further command of a service (inference's `worker`), with the settings class it reads."""

    help: str
    settings: type[Settings]
    run: Callable[[Any], Coroutine[Any, Any, int]]


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def service_main(
    name: str,
    settings_class: type[S],
    start: Callable[[S], Awaitable[Running[Any]]],
    projections: Callable[[], Sequence[Projection]],
    argv: Sequence[str] | None = None,
    more: dict[str, Command] | None = None,
) -> int:
    """Parses the command line, reads the settings and runs the command; returns the exit code:
    0 when stopped by a signal, 1 when something it runs failed, 2 for a setting or input to fix.

    more: further commands of this service, by name.
    """
    extra = more or {}
    parser = argparse.ArgumentParser(prog=f"python -m {name}_service", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the service (the default)")
    commands.add_parser("rebuild", help="drop the read model's rows and replay the event log into it")
    parked = commands.add_parser("parked", help="list the events the running service could not apply")
    parked.add_argument("--retry", action="store_true", help="apply them again (after a fix)")
    for command, spec in extra.items():
        commands.add_parser(command, help=spec.help)
    args = parser.parse_args(argv)
    command = args.command or "serve"
    chosen = extra[command].settings if command in extra else settings_class
    try:
        settings: Any = chosen.from_env()  # the chosen command's own settings class
    except SettingsError as error:
        print(f"{name} {command}: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        if command in extra:
            return asyncio.run(extra[command].run(settings))
        if command == "rebuild":
            return asyncio.run(rebuild(name, settings, projections()))
        if command == "parked":
            return asyncio.run(show_parked(name, settings, args.retry))
        return asyncio.run(serve(start, settings))
    except ServiceError as error:  # a models file or a setting that names something missing
        print(f"{name} {command}: {error}", file=sys.stderr)
        return 2


async def serve(start: Callable[[S], Awaitable[Running[Any]]], settings: S) -> int:
    running = await start(settings)
    return await running.host.run_until_signalled()


async def rebuild(name: str, settings: ServiceSettings, projections: Sequence[Projection]) -> int:
    """Drops every row of the projections and replays the log into them (the service may be stopped)."""
    host = await ServiceHost.connect(f"{name}-rebuild", settings)
    try:
        for projection in projections:
            position = await host.project(projection).rebuild()
            print(f"{projection.name}: rebuilt up to stream sequence {position}")
    finally:
        await host.stop()
    return 0


async def show_parked(name: str, settings: ServiceSettings, retry: bool) -> int:
    """Asks the running service (at settings.address) for its parked events, or to retry them."""
    channel = open_channel(settings.address, settings.rpc_timeout_s)
    stub = ops_grpc.OperationsServiceStub(channel)
    try:
        if retry:
            outcome = await stub.RetryParkedEvents(ops.RetryParkedEventsRequest())
            print(f"applied {outcome.applied}; still parked {outcome.still_parked}")
            return 0 if outcome.still_parked == 0 else 1
        listing = await stub.ListParkedEvents(ops.ListParkedEventsRequest())
        for event in listing.events:
            where = f"{event.projection} #{event.sequence} {event.type_name} on {event.subject}"
            print(f"{where} ({event.attempts} attempts): {event.error}")
        print(f"{len(listing.events)} parked events")
        return 0
    except grpc.aio.AioRpcError as error:
        print(
            f"{name}: the service at {settings.address} did not answer ({error.code().name}): is it running?",
            file=sys.stderr,
        )
        return 1
    finally:
        await channel.close()
