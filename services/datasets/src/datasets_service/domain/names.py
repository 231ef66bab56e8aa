"""Names and ids of datasets: the user's file name made safe, ids, subjects and event ids."""

import re
import unicodedata

DEFAULT_NAME = "dataset.jsonl"
MAX_NAME_LENGTH = 200
SUBJECT_PREFIX = "wb.datasets"
_DATASET_ID = re.compile(r"^ds_[0-9a-f]{12}$")


def safe_file_name(name: str) -> str:
    """The user's file name reduced to a harmless display name: base name only, no control
    characters, at most MAX_NAME_LENGTH characters, never empty."""
    base = re.split(r"[/\\]", name)[-1]
    cleaned = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    if cleaned in {"", ".", ".."}:
        return DEFAULT_NAME
    if len(cleaned) > MAX_NAME_LENGTH:
        stem, dot, suffix = cleaned.rpartition(".")
        keep = suffix if dot and stem and len(suffix) <= 16 else ""
        cleaned = cleaned[: MAX_NAME_LENGTH - len(keep) - (1 if keep else 0)].rstrip() + (f".{keep}" if keep else "")
    return cleaned


def is_dataset_id(value: str) -> bool:
    """True for ids this service hands out; anything else cannot name a dataset (or a subject)."""
    return _DATASET_ID.match(value) is not None


def dataset_subject(dataset_id: str) -> str:
    return f"{SUBJECT_PREFIX}.{dataset_id}"


def object_name(dataset_id: str) -> str:
    """The dataset's file in the object store."""
    return f"{dataset_id}.jsonl"
