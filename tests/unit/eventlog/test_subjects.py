"""Record ids are chosen by users; the subject tokens made from them must be safe and reversible."""

import pytest

from eventlog import token, untoken


@pytest.mark.parametrize("value", ["line-3", "abc_DEF-9"])
def test_safe_ids_are_kept_as_they_are(value: str) -> None:
    assert token(value) == value


@pytest.mark.parametrize(
    "value", ["a.b", "x*y", "gt>", "with space", "ünïcode", "", "~tilde", "a" * 300, "q1\n", "x\r\n"]
)
def test_unsafe_ids_become_one_reversible_token(value: str) -> None:
    encoded = token(value)
    assert not any(ch in encoded for ch in ".*> \t")
    assert untoken(encoded) == value
