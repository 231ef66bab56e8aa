"""uvicorn's access log, with no secret in it: query values whose name says secret are blanked.

The workbench itself never puts a secret in a URL (the page's session is a cookie, API clients send
a header, login codes travel in the fragment, which browsers never send); this guards against a
client that does anyway (`?token=...` from an old bookmark or script).
"""

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_NAME = re.compile(r"token|code|login|secret|password|passwd|key|session|auth", re.IGNORECASE)
REDACTED = "REDACTED"


def redact_path(path: str) -> str:
    """The request target with every secret-named query value replaced."""
    parts = urlsplit(path)
    if not parts.query:
        return path
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    cleaned = [(name, REDACTED if SECRET_NAME.search(name) else value) for name, value in pairs]
    return urlunsplit(parts._replace(query=urlencode(cleaned)))


class RedactQuerySecrets(logging.Filter):
    """For the `uvicorn.access` logger: its record's args are (client, method, path, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def install() -> None:
    logging.getLogger("uvicorn.access").addFilter(RedactQuerySecrets())
