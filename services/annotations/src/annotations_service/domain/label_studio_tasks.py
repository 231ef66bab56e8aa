"""Label Studio's side of a dataset: the labelling config and the task of one record (pure, no I/O).

Both the `label_studio` export and the Label Studio sync build their projects and tasks here, so an
exported file imports into a synced project and the other way round.

The labelling config compares the models' answers to one prompt::

    <View>
      <Text name="prompt" value="$prompt"/>
      <!-- per model, in the order given -->
      <Header value="<model id>"/>
      <Text name="answer_<key>" value="$<key>"/>
      <Choices name="verdict_<key>" toName="answer_<key>" choice="single">
        <Choice value="golden"/><Choice value="wrong"/>
      </Choices>
      <TextArea name="fix_<key>" toName="answer_<key>" editable="true" maxSubmissions="1"/>
    </View>

`<key>` is `model_key(model_id)`: Label Studio reads a `$variable` as letters, digits and `_` only
(its frontend splits `$tiny-a` into `$tiny` and the text `-a`, and a `.` means a nested field), so
every other character of a model id is written `_<hex code>_` and `_` itself `_5f_`: `tiny-a` ->
`tiny_2d_a`. The mapping is one to one; `model_id_of(key)` turns a key back into the model id.
The task's data key of a model's answer is that same key.

A task::

    {"data": {"record_id": ..., "prompt": <input as text>, "<key>": <answer>, ...},
     "predictions": [{"model_version": <model id>, "result": [<fix_<key> pre-filled with the answer>]}, ...],
     "annotations": [{"result": [<verdict_/fix_ of each human mark>]}]}      # only when there are marks

A mark reads back from an annotation's result (`marks_in_result`): `verdict_<key>` golden or wrong,
or a `fix_<key>` text that differs from the model's answer (the fix area starts as the answer, so
leaving it untouched is no fix) -> FIXED with that text. A fix wins over a verdict.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from annotations_service.domain.export import prompt_text
from workbench.annotations.v1.annotations_pb2 import AnnotationKind
from workbench.datasets.v1.datasets_pb2 import Record

GOLDEN = "golden"
WRONG = "wrong"
_VERDICTS = {AnnotationKind.ANNOTATION_KIND_GOLDEN: GOLDEN, AnnotationKind.ANNOTATION_KIND_WRONG: WRONG}
_KINDS_OF_VERDICTS = {name: kind for kind, name in _VERDICTS.items()}
_ESCAPE = re.compile(r"_([0-9a-f]+)_")

LABEL_CONFIG_TEMPLATE = """<View>
  <Text name="prompt" value="$prompt"/>
{models}</View>
"""
_MODEL_TEMPLATE = """  <Header value={header}/>
  <Text name="answer_{key}" value="${key}"/>
  <Choices name="verdict_{key}" toName="answer_{key}" choice="single" showInline="true">
    <Choice value="golden"/>
    <Choice value="wrong"/>
  </Choices>
  <TextArea name="fix_{key}" toName="answer_{key}" editable="true" maxSubmissions="1" placeholder="the fixed answer"/>
"""


@dataclass(frozen=True, slots=True)
class Mark:
    """A human mark of one model's answer, as Label Studio holds it."""

    kind: AnnotationKind.ValueType  # GOLDEN, FIXED or WRONG
    fixed_text: str = ""  # FIXED: the corrected answer


def model_key(model_id: str) -> str:
    """The name of a model inside Label Studio (data key, and suffix of its tags): see the module doc."""
    return "".join(char if char.isascii() and char.isalnum() else f"_{ord(char):x}_" for char in model_id)


def model_id_of(key: str) -> str:
    """The model id a `model_key` stands for."""
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), key)


def label_config(model_ids: Iterable[str]) -> str:
    """The labelling config of a project comparing these models' answers (XML, see the module doc)."""
    models = "".join(
        _MODEL_TEMPLATE.format(key=model_key(model_id), header=quoteattr(model_id)) for model_id in model_ids
    )
    return LABEL_CONFIG_TEMPLATE.format(models=models)


def task(
    record: Record,
    answers_by_model: Mapping[str, str],
    marks_by_model: Mapping[str, Mark],
    model_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """The Label Studio task of one record: each model's answer as data and as its prediction, the
    human marks as one annotation.

    model_ids: the models of the project's config; each gets a data key ("" when it has no answer:
    Label Studio refuses a task that lacks a key its config names). Empty: the models answering.
    """
    models = list(model_ids) or list(answers_by_model)
    data: dict[str, Any] = {"record_id": record.record_id, "prompt": prompt_text(record)}
    for model_id in models:
        data[model_key(model_id)] = answers_by_model.get(model_id, "")
    predictions = [
        {"model_version": model_id, "result": [_fix_region(model_id, answer)]}
        for model_id, answer in answers_by_model.items()
        if model_id in models  # a model the config lacks has no tags to fill
    ]
    built: dict[str, Any] = {"data": data, "predictions": predictions}
    marks = [
        region
        for model_id, mark in marks_by_model.items()
        if model_id in models or model_id not in answers_by_model  # a mark without an answer still counts
        for region in _mark_regions(model_id, mark)
    ]
    if marks:
        built["annotations"] = [{"result": marks}]
    return built


def marks_in_result(result: Iterable[Mapping[str, Any]], answers_by_model: Mapping[str, str]) -> dict[str, Mark]:
    """The marks an annotation's result holds, by model id (see the module doc for how they read)."""
    verdicts: dict[str, AnnotationKind.ValueType] = {}
    fixes: dict[str, str] = {}
    for region in result:
        name = str(region.get("from_name", ""))
        value = region.get("value") or {}
        if name.startswith("verdict_"):
            choices = value.get("choices") or []
            if choices and choices[0] in _KINDS_OF_VERDICTS:
                verdicts[model_id_of(name.removeprefix("verdict_"))] = _KINDS_OF_VERDICTS[choices[0]]
        elif name.startswith("fix_"):
            text = "\n".join(value.get("text") or []).strip()
            model_id = model_id_of(name.removeprefix("fix_"))
            if text and text != answers_by_model.get(model_id, "").strip():
                fixes[model_id] = text
    marks = {model_id: Mark(kind) for model_id, kind in verdicts.items()}
    marks.update({model_id: Mark(AnnotationKind.ANNOTATION_KIND_FIXED, text) for model_id, text in fixes.items()})
    return marks


def _fix_region(model_id: str, text: str) -> dict[str, Any]:
    key = model_key(model_id)
    return {
        "id": f"fix_{key}",
        "from_name": f"fix_{key}",
        "to_name": f"answer_{key}",
        "type": "textarea",
        "value": {"text": [text]},
    }


def _mark_regions(model_id: str, mark: Mark) -> list[dict[str, Any]]:
    if mark.kind == AnnotationKind.ANNOTATION_KIND_FIXED:
        return [_fix_region(model_id, mark.fixed_text)]
    verdict = _VERDICTS.get(mark.kind)
    if verdict is None:
        return []
    key = model_key(model_id)
    return [
        {
            "id": f"verdict_{key}",
            "from_name": f"verdict_{key}",
            "to_name": f"answer_{key}",
            "type": "choices",
            "value": {"choices": [verdict]},
        }
    ]
