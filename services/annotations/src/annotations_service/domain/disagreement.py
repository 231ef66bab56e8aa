"""Whether the models' answers to one record disagree, where, and how much: the review queue's order.

Plain-text answers are compared after normalising case, whitespace and punctuation ("Yes." is
"yes"). Answers that parse as a JSON object or array are compared field by field, so the page can
highlight exactly the fields that differ ("$.trajectory", "$.scores[2]"); their string fields are
normalised like plain text. A failed answer (error set) is no answer: it never makes a record
differ, and stays visible as the failure it is.

With more than two answers every pair is compared: the score is the mean of the pairs' scores (a
pair of texts scores 1 when they differ, a pair of JSON answers the share of their fields that
differ), so 0 is "all agree" and 1 "every answer differs from every other everywhere".
"""

import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # fullmatch: "$" would let a trailing newline through


@dataclass(frozen=True)
class Answer:
    """One model's latest answer to a record."""

    model_id: str
    text: str
    error: str = ""


@dataclass(frozen=True)
class Disagreement:
    differs: bool
    score: float  # 0: all agree; 1: all differ everywhere
    differing_paths: tuple[str, ...]  # JSON answers: the fields that differ, in document order
    # The models whose answer differs from at least one other answer (a model's filters and counts).
    differing_models: frozenset[str]


AGREEMENT = Disagreement(differs=False, score=0.0, differing_paths=(), differing_models=frozenset())


def normalise_text(text: str) -> str:
    """Case, punctuation and runs of whitespace alone do not make two answers differ."""
    kept = "".join(" " if unicodedata.category(char).startswith("P") else char for char in text.casefold())
    return " ".join(kept.split())


def structured(text: str) -> object | None:
    """The answer as JSON when it is a JSON object or array; None for any other answer."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        value: object = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, dict | list) else None


def disagreement(answers: Sequence[Answer]) -> Disagreement:
    """How the answers (failed ones aside) disagree, compared pairwise."""
    valid = [answer for answer in answers if not answer.error]
    if len(valid) < 2:
        return AGREEMENT
    parsed = {answer.model_id: structured(answer.text) for answer in valid}
    scores: list[float] = []
    paths: dict[str, None] = {}
    differing: set[str] = set()
    for first, second in combinations(valid, 2):
        left, right = parsed[first.model_id], parsed[second.model_id]
        if left is not None and right is not None:
            compared = list(_compare(left, right, "$"))
            different = [path for path, same in compared if not same]
            paths.update(dict.fromkeys(different))
            score = len(different) / len(compared) if compared else 0.0
        else:
            # JSON against text is compared as text: the whole answer differs, not some field of it.
            score = 0.0 if normalise_text(first.text) == normalise_text(second.text) else 1.0
        scores.append(score)
        if score > 0:
            differing.update((first.model_id, second.model_id))
    mean = sum(scores) / len(scores)
    return Disagreement(
        differs=mean > 0, score=mean, differing_paths=tuple(paths), differing_models=frozenset(differing)
    )


def _compare(left: object, right: object, path: str) -> Iterator[tuple[str, bool]]:
    """Every leaf path of either value, with whether the two values agree there."""
    if isinstance(left, dict) and isinstance(right, dict) and (left or right):
        for key in dict.fromkeys([*left, *right]):
            child = _child(path, key)
            if key in left and key in right:
                yield from _compare(left[key], right[key], child)
            else:
                yield child, False
    elif isinstance(left, list) and isinstance(right, list) and (left or right):
        for index in range(max(len(left), len(right))):
            child = f"{path}[{index}]"
            if index < len(left) and index < len(right):
                yield from _compare(left[index], right[index], child)
            else:
                yield child, False
    else:
        yield path, _same_leaf(left, right)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _same_leaf(left: object, right: object) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return normalise_text(left) == normalise_text(right)
    # True is not 1, and 1 is 1.0: JSON's booleans and numbers are different kinds of value.
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return left == right
