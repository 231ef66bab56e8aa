"""The models file declares what can run; a mistake in it must name the model and the field."""

from pathlib import Path, PurePosixPath

import pytest

from inference_service.domain.errors import InvalidInput
from inference_service.domain.models import Sampling, parse_models, record_sampling

REPO = Path(__file__).resolve().parents[3]
BASE = PurePosixPath("/srv/workbench/config")

TINY = """
[[models]]
id = "tiny-a"
display_name = "Tiny A"
backend = "vllm"
path = "../var/models/tiny-a"
revision = "local"
max_model_len = 512
[models.sampling]
temperature = 0.0
top_p = 1.0
max_tokens = 24
seed = 0
"""


def test_a_model_is_read_with_its_sampling_and_a_path_relative_to_the_file() -> None:
    (model,) = parse_models(TINY, BASE)

    assert model.model_id == "tiny-a"
    assert model.display_name == "Tiny A"
    assert model.backend == "vllm"
    assert model.path == "/srv/workbench/var/models/tiny-a"
    assert model.revision == "local"
    assert model.max_model_len == 512
    assert model.sampling == Sampling(temperature=0.0, top_p=1.0, max_tokens=24, seed=0)


def test_model_names_and_absolute_paths_are_kept_and_defaults_fill_the_rest() -> None:
    text = """
[[models]]
id = "gemma"
backend = "vllm"
path = "google/gemma-3-4b-it"
max_model_len = 8192
[[models]]
id = "local-one"
backend = "vllm"
path = "/models/local-one"
max_model_len = 4096
[[models]]
id = "remote"
backend = "openai"
base_url = "http://gpu-node-1:8000/"
path = "google/gemma-3-4b-it"
max_model_len = 8192
"""
    gemma, local, remote = parse_models(text, BASE)

    assert (gemma.path, gemma.revision, gemma.display_name) == ("google/gemma-3-4b-it", "main", "gemma")
    assert gemma.sampling == Sampling()
    assert (local.path, local.revision, local.backend) == ("/models/local-one", "local", "vllm")
    # The server decides which weights answer: "served" unless the file pins a revision.
    assert (remote.path, remote.revision, remote.base_url) == (
        "google/gemma-3-4b-it",
        "served",
        "http://gpu-node-1:8000",
    )
    assert remote.max_concurrency == 16


@pytest.mark.parametrize("name", ["models.toml", "models.gpu.example.toml"])
def test_the_shipped_models_files_are_valid(name: str) -> None:
    path = REPO / "config" / name
    models = parse_models(path.read_text(), PurePosixPath(path.parent))

    assert models
    assert {model.backend for model in models} <= {"vllm", "openai"}


def test_the_demo_file_declares_tiny_a_and_tiny_b_beside_var_models() -> None:
    path = REPO / "config" / "models.toml"
    models = parse_models(path.read_text(), PurePosixPath(path.parent))

    assert [model.model_id for model in models] == ["tiny-a", "tiny-b"]
    assert models[0].path == str(REPO / "var" / "models" / "tiny-a")


def test_the_gpu_example_declares_gemma_olmo_and_gpt_oss() -> None:
    path = REPO / "config" / "models.gpu.example.toml"
    paths = [model.path for model in parse_models(path.read_text(), PurePosixPath(path.parent))]

    assert paths == ["google/gemma-3-4b-it", "allenai/OLMo-2-1124-7B-Instruct", "openai/gpt-oss-20b"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("max_model_len = 512", ""), "model 'tiny-a': field 'max_model_len' is missing"),
        (("max_model_len = 512", 'max_model_len = "512"'), "model 'tiny-a': field 'max_model_len' must be an integer"),
        (('backend = "vllm"', 'backend = "tgi"'), "model 'tiny-a': field 'backend' must be one of vllm, openai"),
        (('id = "tiny-a"', 'id = "tiny.a"'), "field 'id' may hold only letters, digits"),
        (('revision = "local"', 'revison = "local"'), "model 'tiny-a': unknown field 'revison'"),
        (('path = "../var/models/tiny-a"', 'path = ""'), "model 'tiny-a': field 'path' must be a non-empty string"),
        (("max_tokens = 24", "max_tokens = 512"), "model 'tiny-a': [models.sampling] max_tokens must be between 1"),
        (("top_p = 1.0", "top_p = 0"), "model 'tiny-a': [models.sampling] top_p must be in (0, 1]"),
        (("temperature = 0.0", 'temperature = "hot"'), "field 'temperature' must be a number"),
        (("seed = 0", "sede = 0"), "unknown field 'sede'"),
    ],
)
def test_a_bad_field_is_named_with_its_model(change: tuple[str, str], expected: str) -> None:
    text = TINY.replace(*change)

    with pytest.raises(InvalidInput) as caught:
        parse_models(text, BASE, source="config/models.toml")

    assert str(caught.value).startswith("config/models.toml: ")
    assert expected in str(caught.value)


def test_a_model_declared_twice_is_refused() -> None:
    with pytest.raises(InvalidInput, match="'tiny-a' is declared twice"):
        parse_models(TINY + TINY, BASE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("models = [", "not valid TOML"), ("", "declare at least one model"), ("models = 3", "at least one model")],
)
def test_a_file_without_models_is_refused(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected):
        parse_models(text, BASE)


def test_a_records_own_sampling_overrides_the_models_defaults_field_by_field() -> None:
    defaults = Sampling(temperature=0.0, top_p=1.0, max_tokens=256, seed=0)

    assert record_sampling(defaults, False, {"max_tokens": 32, "temperature": 0.5}) == Sampling(0.5, 1.0, 32, 0)
    assert record_sampling(defaults, False, {}) == defaults


def test_a_run_that_named_its_sampling_ignores_the_records_own() -> None:
    chosen = Sampling(temperature=0.2, max_tokens=8)

    assert record_sampling(chosen, True, {"max_tokens": 32}) == chosen
