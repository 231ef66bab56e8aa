"""Names and ids of datasets: the user's file name made safe, ids, subjects and stored objects."""

import re
import unicodedata

DEFAULT_NAME = "dataset.jsonl"
MAX_NAME_LENGTH = 200
SUBJECT_PREFIX = "wb.datasets"
_DATASET_ID = re.compile(r"ds_[0-9a-f]{12}")  # fullmatch: "$" would let a trailing newline through


def clean_name(name: str) -> str:
    """The user's file name reduced to a harmless display name: base name only, no control
    characters, at most MAX_NAME_LENGTH characters; empty when nothing of it is left."""
    base = re.split(r"[/\\]", name)[-1]
    cleaned = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    if cleaned in {"", ".", ".."}:
        return ""
    if len(cleaned) > MAX_NAME_LENGTH:
        stem, dot, suffix = cleaned.rpartition(".")
        keep = suffix if dot and stem and len(suffix) <= 16 else ""
        cleaned = cleaned[: MAX_NAME_LENGTH - len(keep) - (1 if keep else 0)].rstrip() + (f".{keep}" if keep else "")
    return cleaned


def safe_file_name(name: str) -> str:
    """clean_name(name), never empty (an upload's name is its user's business, not a reason to refuse it)."""
    return clean_name(name) or DEFAULT_NAME


def is_dataset_id(value: str) -> bool:
    """True for ids this service hands out; anything else cannot name a dataset (or a subject)."""
    return _DATASET_ID.fullmatch(value) is not None


def dataset_subject(dataset_id: str) -> str:
    return f"{SUBJECT_PREFIX}.{dataset_id}"


def page_object_name(dataset_id: str, number: int) -> str:
    """The object holding one page of a dataset's records (numbered from 0)."""
    return f"{dataset_id}.p{number:05d}"
