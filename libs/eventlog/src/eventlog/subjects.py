"""Subject tokens: user-chosen ids (record ids) may hold characters NATS subjects reserve."""

import base64
import re

_SAFE = re.compile(r"[A-Za-z0-9_\-]{1,200}")  # fullmatch: "$" would let a trailing newline through
_ENCODED_PREFIX = "~"


def token(value: str) -> str:
    """Returns a subject token for value: itself when safe, else a reversible base32 form."""
    if _SAFE.fullmatch(value):
        return value
    encoded = base64.b32encode(value.encode()).decode().rstrip("=")
    return _ENCODED_PREFIX + encoded


def untoken(value: str) -> str:
    """Inverse of token()."""
    if not value.startswith(_ENCODED_PREFIX):
        return value
    body = value[len(_ENCODED_PREFIX) :]
    return base64.b32decode(body + "=" * (-len(body) % 8)).decode()


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether a subject falls under a NATS filter: `*` is one token, a final `>` one or more."""
    wanted, actual = pattern.split("."), subject.split(".")
    for position, part in enumerate(wanted):
        if part == ">":
            return position == len(wanted) - 1 and len(actual) > position
        if position >= len(actual) or (part != "*" and part != actual[position]):
            return False
    return len(wanted) == len(actual)
