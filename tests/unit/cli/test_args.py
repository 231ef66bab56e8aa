"""The command line's grammar, and the run request it turns into."""

import json
import uuid
from pathlib import Path

import pytest

from wbcli.api import ApiError, Settings
from wbcli.args import parse
from wbcli.commands import run_request


def test_run_takes_a_dataset_repeated_models_sampling_and_wait() -> None:
    args = parse(["run", "ds-1", "--model", "tiny-a", "-m", "tiny-b", "--max-tokens", "32", "--seed", "7", "--wait"])

    assert (args.command, args.dataset, args.models) == ("run", "ds-1", ["tiny-a", "tiny-b"])
    assert (args.max_tokens, args.seed, args.temperature, args.top_p) == (32, 7, None, None)
    assert args.wait and not args.cancel_on_interrupt


def test_run_without_a_model_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        parse(["run", "ds-1"])

    assert exit.value.code == 2
    assert "--model" in capsys.readouterr().err


def test_a_sampling_value_of_the_wrong_type_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit:
        parse(["run", "ds-1", "--model", "a", "--max-tokens", "many"])

    assert exit.value.code == 2


def test_url_and_token_go_before_or_after_the_command() -> None:
    before = parse(["--url", "http://h:1", "--token", "t", "runs"])
    after = parse(["runs", "--url", "http://h:1", "--token", "t"])
    neither = parse(["runs", "--dataset", "ds-1"])

    assert (before.url, before.token) == (after.url, after.token) == ("http://h:1", "t")
    assert (neither.url, neither.token, neither.dataset) == (None, None, "ds-1")


def test_results_default_to_openai_batch_on_stdout_and_refuse_other_formats() -> None:
    args = parse(["results", "run-1"])
    written = parse(["results", "run-1", "--format", "jsonl", "-o", "out.jsonl"])

    assert (args.run_id, args.format, args.output) == ("run-1", "openai-batch", "-")
    assert (written.format, written.output) == ("jsonl", "out.jsonl")
    with pytest.raises(SystemExit):
        parse(["results", "run-1", "--format", "csv"])


def test_cancel_takes_one_or_more_runs() -> None:
    assert parse(["cancel", "r1", "r2"]).run_ids == ["r1", "r2"]


def test_the_run_request_names_only_the_sampling_given_and_a_fresh_request_id() -> None:
    args = parse(["run", "ds-1", "--model", "a", "--model", "b", "--model", "a", "--temperature", "0.5"])

    first, second = run_request(args), run_request(args)

    assert {k: v for k, v in first.items() if k != "request_id"} == {
        "dataset_id": "ds-1",
        "model_ids": ["a", "b"],
        "sampling": {"temperature": 0.5},
    }
    assert uuid.UUID(first["request_id"]) != uuid.UUID(second["request_id"])
    assert "sampling" not in run_request(parse(["run", "ds-1", "--model", "a"]))


def test_the_json_schema_file_travels_as_an_object(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"recommendation": {"enum": ["hire", "pass"]}}}
    (tmp_path / "s.json").write_text(json.dumps(schema))

    body = run_request(parse(["run", "ds-1", "--model", "a", "--json-schema", str(tmp_path / "s.json")]))

    assert body["json_schema"] == schema


@pytest.mark.parametrize(
    ("text", "words"),
    [('{"type": "object",\n "x": }', "is not valid JSON: line 2"), ("[1, 2]", "must be a JSON object")],
)
def test_a_schema_file_that_is_not_a_json_object_stops_before_any_run(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "s.json").write_text(text)

    with pytest.raises(ApiError) as error:
        run_request(parse(["run", "ds-1", "--model", "a", "--json-schema", str(tmp_path / "s.json")]))

    assert words in error.value.detail


def test_settings_come_from_the_options_else_the_environment() -> None:
    environ = {"WB_URL": "http://gw:9000/", "WB_API_TOKEN": "env-token"}

    assert Settings.resolve(None, None, environ) == Settings("http://gw:9000", "env-token")
    assert Settings.resolve("https://x", "t", environ) == Settings("https://x", "t")
    assert Settings.resolve(None, "t", {}).url == "http://127.0.0.1:4080"
    assert Settings("https://x/wb", "a b").websocket_url == "wss://x/wb/ws/workbench"  # no token in a URL
    assert Settings("https://x/wb", "a b").auth_headers == {"Authorization": "Bearer a b"}


def test_a_missing_token_or_a_url_without_scheme_is_an_error() -> None:
    with pytest.raises(ApiError, match="no API token: set WB_API_TOKEN or pass --token"):
        Settings.resolve("http://x", None, {})
    with pytest.raises(ApiError, match="must start with http"):
        Settings.resolve("gateway:4080", "t", {})
