"""`workbench`: the entry point. Parses the command line, runs the command, turns errors into words."""

import os
import sys
from collections.abc import Sequence

import httpx

from wbcli.api import ApiError, Settings
from wbcli.args import parse
from wbcli.commands import COMMANDS, INTERRUPTED, Context
from wbcli.show import error_text
from wbcli.users import users

HANDLERS = {**COMMANDS, "users": users}


def main(argv: Sequence[str] | None = None, transport: httpx.AsyncBaseTransport | None = None) -> int:
    """The exit code of the command argv names (transport: how tests answer without a gateway)."""
    args = parse(argv)
    try:
        settings = Settings.resolve(args.url, args.token)
        return HANDLERS[args.command](Context(settings, transport), args)
    except ApiError as error:
        print(error_text(error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # `workbench runs | head`: the reader has all it wanted; nothing more may reach the pipe at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
