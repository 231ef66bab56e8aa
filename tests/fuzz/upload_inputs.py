"""Hypothesis strategies for uploaded files: JSONL records of every shape the parser knows, written
out nearly right, then broken the ways real files are (a BOM, CRLF, a raw control byte, a byte that
is not UTF-8, a cut line, a huge number, deep nesting, a lone surrogate)."""

import json

from hypothesis import strategies as st

from datasets_service.domain.validation import BATCH_URLS, ROLES

# Characters that have broken parsers: controls (C0, DEL, C1), lone surrogates, a BOM, Unicode line
# separators, NATS subject syntax, the start of a generated id.
AWKWARD = ["\x00", "\t", "\n", "\r", "\x0b", "\x1b", "\x7f", "\x85", "\x9f", "\ud800", "\udfff", "\ufeff"]
AWKWARD += ["\u2028", "\u202e", "é", "日", "/", ".", "*", ">", "~", " ", '"', "\\"]
BOM = b"\xef\xbb\xbf"

# Ids that look generated ("line-2") collide with the ids of records that name none.
texts = st.one_of(
    st.text(st.one_of(st.characters(), st.sampled_from(AWKWARD)), max_size=40),
    st.sampled_from(["line-1", "line-2", "row-2", "a"]),
)
# Text a careful user writes: no control characters, no lone surrogates; often enough that files pass.
plain = st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=20).filter(str.strip)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.one_of(plain, texts), inner, max_size=3)),
    max_leaves=12,
)
ids = st.one_of(plain, texts, st.integers(), st.text(min_size=250, max_size=300), json_values)
messages = st.one_of(
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": plain}),
            st.fixed_dictionaries({"role": st.sampled_from([*ROLES, "bot"]), "content": texts}),
            json_values,
        ),
        max_size=4,
    ),
    json_values,
)
response_formats = st.one_of(
    st.none(),
    st.sampled_from([{"type": "text"}, {"type": "json_object"}, {"type": "json_schema"}]),
    st.fixed_dictionaries(
        {"type": st.just("json_schema"), "json_schema": st.fixed_dictionaries({"schema": json_values})}
    ),
    json_values,
)
metadata = st.dictionaries(st.one_of(plain, texts), json_values, max_size=3)


@st.composite
def prompt_records(draw: st.DrawFn) -> dict[str, object]:
    record: dict[str, object] = {**draw(metadata), "prompt": draw(st.one_of(plain, texts, json_values))}
    if draw(st.booleans()):
        record["id"] = draw(ids)
    if draw(st.booleans()):
        record["response_format"] = draw(response_formats)
    return record


@st.composite
def chat_records(draw: st.DrawFn) -> dict[str, object]:
    record: dict[str, object] = {**draw(metadata), "messages": draw(messages)}
    if draw(st.booleans()):
        record["id"] = draw(ids)
    return record


@st.composite
def batch_lines(draw: st.DrawFn) -> dict[str, object]:
    url = draw(st.one_of(st.sampled_from(list(BATCH_URLS)), texts))
    body: dict[str, object] = draw(st.dictionaries(texts, json_values, max_size=2))
    body["messages" if url == "/v1/chat/completions" else "prompt"] = draw(messages if "chat" in url else plain)
    for field in draw(
        st.lists(st.sampled_from(["temperature", "top_p", "max_tokens", "max_completion_tokens", "seed"]))
    ):
        body[field] = draw(json_values)
    if draw(st.booleans()):
        body["response_format"] = draw(response_formats)
    line = {"custom_id": draw(ids), "method": draw(st.sampled_from(["POST", "GET"])), "url": url, "body": body}
    return {**draw(metadata), **line}


records = st.one_of(prompt_records(), chat_records(), batch_lines(), json_values)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@st.composite
def broken_line(draw: st.DrawFn, line: bytes) -> bytes:
    """The line, broken in one of the ways files are."""
    at = draw(st.integers(0, len(line)))
    if draw(st.booleans()):
        return line
    match draw(st.sampled_from(["control", "byte", "cut", "number", "nesting", "surrogate", "insert"])):
        case "control":  # a raw control byte, where JSON allows none (inside a string) or some (between)
            return line[:at] + bytes([draw(st.integers(0, 0x1F))]) + line[at:]
        case "byte":  # not UTF-8
            return line[:at] + bytes([draw(st.integers(0x80, 0xFF))]) + line[at:]
        case "cut":
            return line[:at]
        case "number":
            digits = draw(st.sampled_from(["1" * 5000, "1e999", "-1e999", "1" * 400 + ".5", "0." + "0" * 5000 + "1"]))
            return line.replace(b"{", b'{"n": ' + digits.encode() + b", ", 1)
        case "nesting":
            depth = draw(st.sampled_from([63, 64, 65, 500, 985, 990, 992, 994, 1000, 5000]))
            return line.replace(b"{", b'{"deep": ' + nested(depth).encode() + b", ", 1)
        case "surrogate":
            return line.replace(b'": "', b'": "\\ud800', 1)
        case "insert":  # a piece of JSON text where it may or may not belong
            return line[:at] + draw(st.sampled_from([b'"', b"{", b"}", b",", b":", b"\\", b"\\u00"])) + line[at:]
    return line


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    """A JSONL file of records of any shape, each written as JSON and maybe broken."""
    lines = []
    for record in draw(st.lists(records, min_size=0, max_size=6)):
        text = json.dumps(record, ensure_ascii=draw(st.booleans()))  # NaN and Infinity as Python writes them
        line = draw(broken_line(text.encode("utf-8", "surrogatepass")))
        lines.append(line)
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from([b"", b"   ", b"\t", b"\r"])))  # blank lines keep their numbers
    data = b"\n".join(lines)
    if draw(st.booleans()):
        data += b"\n"
    if draw(st.integers(0, 3)) == 0:
        data = data.replace(b"\n", b"\r\n")
    if draw(st.integers(0, 3)) == 0:
        data = BOM + data
    return data


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A CSV file: a header naming some of id, prompt, messages and others, then rows of any text."""
    cell = st.one_of(texts, st.just(json.dumps([{"role": "user", "content": "hi"}])), st.just(""))
    header = draw(st.lists(st.one_of(st.sampled_from(["id", "prompt", "messages", "Prompt"]), texts), max_size=4))
    rows = draw(st.lists(st.lists(cell, max_size=5), max_size=5))

    def quoted(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if draw(st.booleans()) else value

    text = "\n".join(",".join(quoted(value) for value in row) for row in [header, *rows])
    return draw(broken_line(text.encode("utf-8", "surrogatepass")))
