"""A user's file name becomes a harmless display name."""

import pytest

from datasets_service.domain.names import DEFAULT_NAME, MAX_NAME_LENGTH, is_dataset_id, safe_file_name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("questions.jsonl", "questions.jsonl"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\data set.jsonl", "data set.jsonl"),
        ("bad\x00na\nme\u202e.jsonl", "badname.jsonl"),
        ("", DEFAULT_NAME),
        ("dir/", DEFAULT_NAME),
        ("..", DEFAULT_NAME),
        ("\x07\x1b", DEFAULT_NAME),
    ],
)
def test_names_keep_only_a_safe_base_name(given: str, expected: str) -> None:
    assert safe_file_name(given) == expected


def test_long_names_are_cut_but_keep_their_extension() -> None:
    name = safe_file_name("x" * 1000 + ".jsonl")

    assert len(name) == MAX_NAME_LENGTH
    assert name.endswith("x.jsonl")


@pytest.mark.parametrize(("value", "valid"), [("ds_0123456789ab", True), ("ds_0123", False), ("ds_*", False)])
def test_only_ids_this_service_hands_out_are_dataset_ids(value: str, valid: bool) -> None:
    assert is_dataset_id(value) is valid
