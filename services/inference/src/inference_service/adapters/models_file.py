"""Reads the models file (WB_MODELS_FILE) from disk; parsing and validation live in the domain."""

from pathlib import Path

from inference_service.domain.errors import InvalidInput
from inference_service.domain.models import ModelSpec, parse_models


def load_models(path: Path) -> list[ModelSpec]:
    """The models declared in the file; relative model paths resolve against the file's folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"models file {path} not found; set WB_MODELS_FILE to a models TOML file") from None
    return parse_models(text, path.resolve().parent, source=str(path))
