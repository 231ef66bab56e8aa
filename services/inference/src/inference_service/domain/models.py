"""Models the workbench can run, as declared in the models file (TOML), and their sampling parameters.

[[models]]
id = "tiny-a"
display_name = "Tiny Llama A (demo, random weights)"
backend = "vllm"                # or "openai" (an OpenAI-compatible server)
path = "../var/models/tiny-a"   # "./" or "../": relative to the models file; else absolute or a model name
revision = "local"              # optional: "local" for folders, "main" for model names
max_model_len = 512
[models.sampling]               # optional; these are the defaults
temperature = 0.0
top_p = 1.0
max_tokens = 256
seed = 0

A model served elsewhere by an OpenAI-compatible server (`vllm serve` on another node, a hosted API):

[[models]]
id = "gemma-remote"
backend = "openai"
base_url = "http://gpu-node-1:8000"  # the server's root; the engine calls {base_url}/v1/...
path = "google/gemma-3-4b-it"        # the name the server serves the model under (its /v1/models id)
max_model_len = 8192
max_concurrency = 32                 # optional (1..1024, default 16): requests in flight at once
"""

import posixpath
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from inference_service.domain.errors import InvalidInput

BACKENDS = ("vllm", "openai")
# Model ids appear in NATS subjects (wb.work.<model_id>) and consumer names (worker-<model_id>).
_MODEL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # fullmatch: "$" would let a trailing newline through
_MODEL_FIELDS = {"id", "display_name", "backend", "path", "revision", "max_model_len", "sampling"}
_OPENAI_FIELDS = {"base_url", "max_concurrency"}  # backend "openai" only
DEFAULT_MAX_CONCURRENCY = 16
MAX_CONCURRENCY = 1024
_SAMPLING_FIELDS = {"temperature", "top_p", "max_tokens", "seed"}


@dataclass(frozen=True, slots=True)
class Sampling:
    """How a run samples: the same values and seed reproduce its outputs on the same engine.

    The field names are those of the contract's SamplingParams and of vLLM's SamplingParams, so
    each converts by name.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int = 0


SAMPLING_FIELDS = tuple(item.name for item in fields(Sampling))


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One declared model."""

    model_id: str
    display_name: str
    backend: str
    path: str
    revision: str
    max_model_len: int
    sampling: Sampling = field(default_factory=Sampling)
    # Backend "openai" only: the server's root URL, and how many requests it gets at once.
    base_url: str = ""
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY


def record_sampling(run: Sampling, explicit: bool, record: Mapping[str, float | int]) -> Sampling:
    """How one record is sampled: a run that named its sampling decides for every record; otherwise
    the record's own fields (an OpenAI batch body's max_tokens, ...) take precedence over the
    model's defaults, field by field."""
    if explicit or not record:
        return run
    return replace(run, **{name: type(getattr(run, name))(value) for name, value in record.items()})


def sampling_problems(sampling: Sampling, max_model_len: int) -> list[str]:
    """What is wrong with sampling parameters for a model (empty: nothing)."""
    problems = []
    if not sampling.temperature >= 0:
        problems.append(f"temperature must be 0 or more (0 is greedy), got {sampling.temperature}")
    if not 0 < sampling.top_p <= 1:
        problems.append(f"top_p must be in (0, 1], got {sampling.top_p}")
    if not 1 <= sampling.max_tokens < max_model_len:
        problems.append(
            f"max_tokens must be between 1 and {max_model_len - 1} (below max_model_len), got {sampling.max_tokens}"
        )
    if sampling.seed < 0:
        problems.append(f"seed must be 0 or more, got {sampling.seed}")
    return problems


def parse_models(text: str, base_dir: PurePath, source: str = "models file") -> list[ModelSpec]:
    """Parses a models file; base_dir is the file's folder. Raises InvalidInput naming the model and field."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput(f"{source}: not valid TOML: {error}") from None
    entries = document.get("models")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise InvalidInput(f"{source}: declare at least one model as a [[models]] table")
    models: list[ModelSpec] = []
    for index, entry in enumerate(entries):
        spec = _parse_model(entry, base_dir, f"{source}: model {entry.get('id', f'#{index + 1}')!r}")
        if any(known.model_id == spec.model_id for known in models):
            raise InvalidInput(f"{source}: model id {spec.model_id!r} is declared twice; ids must be unique")
        models.append(spec)
    return models


def _parse_model(entry: dict[str, Any], base_dir: PurePath, where: str) -> ModelSpec:
    _reject_unknown(entry, _MODEL_FIELDS | _OPENAI_FIELDS, where)
    model_id = _string(entry, "id", where)
    if not _MODEL_ID.fullmatch(model_id):
        raise InvalidInput(f"{where}: field 'id' may hold only letters, digits, '-' and '_' (at most 64)")
    backend = _string(entry, "backend", where)
    if backend not in BACKENDS:
        raise InvalidInput(f"{where}: field 'backend' must be one of {', '.join(BACKENDS)}, got {backend!r}")
    raw_path = _string(entry, "path", where)
    max_model_len = _integer(entry, "max_model_len", where)
    if max_model_len < 2:
        raise InvalidInput(f"{where}: field 'max_model_len' must be 2 or more, got {max_model_len}")
    sampling = _parse_sampling(entry.get("sampling", {}), f"{where}: [models.sampling]")
    problems = sampling_problems(sampling, max_model_len)
    if problems:
        raise InvalidInput(f"{where}: [models.sampling] " + "; ".join(problems))
    if backend == "openai":
        # The path is the name the server serves the model under, kept as written; the server
        # decides which weights answer, so the revision says "served" unless the file knows better.
        path, revision = raw_path, _string(entry, "revision", where, default="served")
        base_url, max_concurrency = _server(entry, where)
    else:
        misplaced = sorted(_OPENAI_FIELDS & set(entry))
        if misplaced:
            raise InvalidInput(
                f"{where}: field {misplaced[0]!r} is for backend 'openai' only; a {backend} model runs in the worker"
            )
        local = raw_path.startswith((".", "/"))
        path = posixpath.normpath(str(base_dir / raw_path)) if raw_path.startswith(".") else raw_path
        revision = _string(entry, "revision", where, default="local" if local else "main")
        base_url, max_concurrency = "", DEFAULT_MAX_CONCURRENCY
    return ModelSpec(
        model_id=model_id,
        display_name=_string(entry, "display_name", where, default=model_id),
        backend=backend,
        path=path,
        revision=revision,
        max_model_len=max_model_len,
        sampling=sampling,
        base_url=base_url,
        max_concurrency=max_concurrency,
    )


def _server(entry: dict[str, Any], where: str) -> tuple[str, int]:
    """An OpenAI-compatible model's base_url (without a trailing "/") and max_concurrency."""
    base_url = _string(entry, "base_url", where).rstrip("/")
    if not _is_http_url(base_url):
        raise InvalidInput(f"{where}: field 'base_url' must be an http:// or https:// URL, got {base_url!r}")
    parts = urlsplit(base_url)
    if parts.path.endswith("/v1") or parts.query or parts.fragment:
        raise InvalidInput(
            f"{where}: field 'base_url' must be the server's root, without /v1 or a query "
            f"(the engine calls {{base_url}}/v1/chat/completions), got {base_url!r}"
        )
    max_concurrency = _integer(entry, "max_concurrency", where, DEFAULT_MAX_CONCURRENCY)
    if not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise InvalidInput(
            f"{where}: field 'max_concurrency' must be between 1 and {MAX_CONCURRENCY}, got {max_concurrency}"
        )
    return base_url, max_concurrency


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


def _parse_sampling(table: object, where: str) -> Sampling:
    if not isinstance(table, dict):
        raise InvalidInput(f"{where}: must be a table of {', '.join(sorted(_SAMPLING_FIELDS))}")
    _reject_unknown(table, _SAMPLING_FIELDS, where)
    default = Sampling()
    return Sampling(
        temperature=_number(table, "temperature", where, default.temperature),
        top_p=_number(table, "top_p", where, default.top_p),
        max_tokens=_integer(table, "max_tokens", where, default.max_tokens),
        seed=_integer(table, "seed", where, default.seed),
    )


def _reject_unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise InvalidInput(f"{where}: unknown field {unknown[0]!r}; known fields: {', '.join(sorted(known))}")


def _string(table: dict[str, Any], name: str, where: str, default: str | None = None) -> str:
    value = table.get(name, default)
    if value is None:
        raise InvalidInput(f"{where}: field {name!r} is missing")
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where}: field {name!r} must be a non-empty string, got {value!r}")
    return value


def _integer(table: dict[str, Any], name: str, where: str, default: int | None = None) -> int:
    value = table.get(name, default)
    if value is None:
        raise InvalidInput(f"{where}: field {name!r} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{where}: field {name!r} must be an integer, got {value!r}")
    return value


def _number(table: dict[str, Any], name: str, where: str, default: float) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where}: field {name!r} must be a number, got {value!r}")
    return float(value)
