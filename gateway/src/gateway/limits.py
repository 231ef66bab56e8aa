"""Text safety at the edge: every id, name and text a request carries is checked before any handler.

What reaches the services and the event log is text they can store anywhere (a Postgres column
refuses NUL), put in a NATS subject (ids; bounded in length) and show: so, for every string in the
path, the query and a JSON body, wherever it is nested:
- ids and names (a field named `name` or ending in `_id`, and every path parameter): no control
  character at all (a trailing newline included), at most WB_MAX_ID_CHARS characters;
- every other text (notes, fixed answers, searches, a JSON schema's descriptions): no control
  character but tab, newline and carriage return, at most WB_MAX_TEXT_CHARS characters;
- nowhere a lone surrogate (JSON can spell one; no encoder can write it out).
The refusal is a 400 that names the field (`note`, `sampling.guided_json.title`, `path dataset_id`).
"""

import json
from collections.abc import Iterator
from typing import Any

from litestar import Request
from litestar.exceptions import ClientException

from servicehost.text import text_problem


def is_id_field(key: str) -> bool:
    return key == "name" or key.endswith("_id")


def strings(value: Any, path: str, key: str) -> Iterator[tuple[str, str, str]]:
    """(field path, governing key, text) of every string in a decoded JSON value, keys included."""
    if isinstance(value, str):
        yield path, key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            child = f"{path}.{name}" if path else str(name)
            yield child, "name", str(name)  # a key is a name: no controls, short
            yield from strings(item, child, str(name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}[{index}]", key)


class TextRules:
    def __init__(self, max_id_chars: int, max_text_chars: int) -> None:
        self.max_id_chars = max_id_chars
        self.max_text_chars = max_text_chars

    def check(self, field: str, value: str, free_text: bool) -> None:
        """Refuses (400, the field named) an id or name, or a free text, that breaks the rule."""
        reason = text_problem(value, self.max_text_chars if free_text else self.max_id_chars, free_text)
        if reason is not None:
            raise ClientException(f"{field} {reason}")

    async def check_request(self, request: Request[Any, Any, Any]) -> None:
        """A before_request hook: refuses the request (400) at its first unsafe string."""
        for name, value in request.path_params.items():
            if isinstance(value, str):
                self.check(f"path {name}", value, free_text=False)
        for name, value in request.query_params.multi_items():
            self.check(f"query {name}", value, free_text=not is_id_field(name))
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return
        body = await request.body()
        if not body:
            return
        try:
            # The standard library's decoder: it reads a lone surrogate (msgspec calls that "truncated").
            decoded = json.loads(body)
        except (ValueError, RecursionError) as error:
            raise ClientException(f"the body is not valid JSON: {error}") from None
        try:
            for field, key, value in strings(decoded, "", ""):
                self.check(field or "body", value, free_text=not is_id_field(key))
        except RecursionError:
            raise ClientException("the body is nested too deeply") from None
