"""The command line's grammar: `workbench [--url URL] [--token TOKEN] COMMAND ...`."""

import argparse
from collections.abc import Sequence

FORMATS = ("openai-batch", "jsonl")
ROLES = ("viewer", "annotator", "admin")

DESCRIPTION = """\
The LLM batch workbench from the command line: upload a dataset, run models over it, watch them,
and take the results away (as OpenAI Batch API output files, or as the API gives them).

The gateway is WB_URL (default http://127.0.0.1:4080), the API token WB_API_TOKEN; --url and
--token replace them. Exit codes: 0 done, 1 an error or a run that did not complete,
2 a mistake on the command line, 130 interrupted."""


def connection_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    """--url and --token, before or after the command (a command's own are only kept when given)."""
    parser.add_argument("--url", default=default, help="the gateway (default: WB_URL, else http://127.0.0.1:4080)")
    parser.add_argument("--token", default=default, help="the API token (default: WB_API_TOKEN)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    connection_options(parser, None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        connection_options(sub, argparse.SUPPRESS)
        return sub

    upload = command("upload", "register a dataset from a JSONL, CSV or Parquet file; prints its id")
    upload.add_argument("file", metavar="FILE")
    upload.add_argument(
        "--skip-invalid", action="store_true", help="register the valid records and list the others (default: refuse)"
    )

    command("models", "list the models and the workers serving them")

    run = command("run", "start one run per model over a dataset; prints `RUN_ID<TAB>MODEL` per run")
    run.add_argument("dataset", metavar="DATASET", help="the dataset id (`workbench upload` prints it)")
    run.add_argument(
        "--model", "-m", dest="models", action="append", required=True, metavar="MODEL", help="a model id; repeat it"
    )
    sampling = run.add_argument_group("sampling (any left out: the model's default)")
    sampling.add_argument("--max-tokens", type=int, metavar="N")
    sampling.add_argument("--temperature", type=float, metavar="T")
    sampling.add_argument("--top-p", type=float, metavar="P")
    sampling.add_argument("--seed", type=int, metavar="S")
    run.add_argument("--json-schema", metavar="FILE", help="a JSON schema every answer must be valid against")
    run.add_argument("--wait", action="store_true", help="show live progress; exit 0 when every run completed")
    run.add_argument(
        "--cancel-on-interrupt", action="store_true", help="with --wait: Ctrl-C cancels the runs without asking"
    )

    runs = command("runs", "list the runs (of one dataset)")
    runs.add_argument("--dataset", metavar="ID", default="", help="only this dataset's runs")

    cancel = command("cancel", "cancel queued or running runs (finished results are kept)")
    cancel.add_argument("run_ids", nargs="+", metavar="RUN")

    results = command("results", "write a run's results to a file")
    results.add_argument("run_id", metavar="RUN")
    results.add_argument(
        "--format",
        choices=FORMATS,
        default="openai-batch",
        help="openai-batch: the OpenAI Batch API's output lines (default); jsonl: the results as the API gives them",
    )
    results.add_argument("-o", "--output", metavar="FILE", default="-", help="the file to write (default: stdout)")

    users = command("users", "manage who may use the workbench (admin): add, list, role, revoke, token, link")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a user; prints their API token once")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", choices=ROLES, default="annotator", help="what they may do (default: annotator)")
    actions.add_parser("list", help="the users, their roles and token ids")
    role = actions.add_parser("role", help="change a user's role (takes effect at once)")
    role.add_argument("name", metavar="NAME")
    role.add_argument("role", choices=ROLES, metavar="ROLE", help=" | ".join(ROLES))
    revoke = actions.add_parser("revoke", help="revoke a user: their tokens and sessions stop working at once")
    revoke.add_argument("name", metavar="NAME")
    token = actions.add_parser("token", help="issue another API token for a user (to rotate, then revoke-token)")
    token.add_argument("name", metavar="NAME")
    revoke_token = actions.add_parser("revoke-token", help="revoke one of a user's tokens by its id (`users list`)")
    revoke_token.add_argument("name", metavar="NAME")
    revoke_token.add_argument("token_id", metavar="TOKEN_ID")
    link = actions.add_parser("link", help="a one-time link that logs the user's browser in")
    link.add_argument("name", metavar="NAME")
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; a mistake prints the usage and exits with 2 (argparse's way)."""
    return build_parser().parse_args(argv)
