"""Which text can be stored and shown anywhere: the one rule for ids, names and free text.

Text goes on to a NATS subject (ids), a Postgres text column (no NUL, ever), a terminal, a CSV cell
and a browser. So ids and names hold no control character at all (Unicode category Cc: C0 controls,
DEL and C1 controls), free text (a prompt, a note, a fixed answer) none but tab, line feed and
carriage return, and nothing holds a lone surrogate (JSON can spell one; no encoder writes it out).
Used by the gateway for every request, by the datasets service for every uploaded record, and by the
annotations service for what reaches it over gRPC or from Label Studio.
"""

import re

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SURROGATE = re.compile("[\ud800-\udfff]")


def unsafe_character(value: str, free_text: bool) -> str | None:
    """Why value cannot be stored as it is ("holds the control character U+0000 at position 2"), or None."""
    control = (TEXT_CONTROL if free_text else CONTROL).search(value)
    if control is not None:
        return f"holds the control character U+{ord(control.group()):04X} at position {control.start()}"
    surrogate = SURROGATE.search(value)
    if surrogate is not None:
        return f"holds a lone surrogate U+{ord(surrogate.group()):04X} at position {surrogate.start()}"
    return None


def text_problem(value: str, limit: int, free_text: bool) -> str | None:
    """Why value is refused (too long, or an unsafe character), or None."""
    if len(value) > limit:
        return f"is {len(value):,} characters long; the limit is {limit:,}"
    return unsafe_character(value, free_text)


def storable(value: str) -> str:
    """Text from outside (a model's answer, a Label Studio user's) as it can be stored: a NUL or a lone
    surrogate becomes U+FFFD, as a decoder shows what it cannot read; everything else stays."""
    return SURROGATE.sub("\ufffd", value.replace("\x00", "\ufffd"))
