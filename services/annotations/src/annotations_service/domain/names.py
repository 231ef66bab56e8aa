"""Subjects of the annotations context: where a record's judgements are stored, and where results come from."""

import re

from annotations_service.domain.errors import InvalidInput
from eventlog.subjects import token

ANNOTATION_SUBJECTS = "wb.annotations.>"
# The inference context's ResultRecorded events: the outputs people judge.
RESULT_SUBJECTS = "wb.results.>"
DATASET_SUBJECTS = "wb.datasets.>"
RUN_SUBJECTS = "wb.runs.>"
# Dataset ids go into subjects and message ids as they are (the datasets service makes them so).
_DATASET_ID = re.compile(r"[A-Za-z0-9_\-]{1,200}")  # fullmatch: "$" would let a trailing newline through


def is_dataset_id(value: str) -> bool:
    """True for a value that can stand in a subject as it is (what the datasets service hands out)."""
    return _DATASET_ID.fullmatch(value) is not None


def checked_dataset_id(dataset_id: str) -> str:
    """The dataset id, checked to stand in a subject as it is: "*" or ">" would read other datasets'."""
    if not is_dataset_id(dataset_id):
        raise InvalidInput(f"dataset_id {dataset_id!r} is not a dataset id (letters, digits, '_' and '-')")
    return dataset_id


def record_subject(dataset_id: str, record_id: str) -> str:
    """The subject of a record's annotation events (the record id is the user's: it becomes a token)."""
    return f"wb.annotations.{checked_dataset_id(dataset_id)}.{token(record_id)}"
