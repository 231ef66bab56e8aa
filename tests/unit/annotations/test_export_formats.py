"""Each export format, written in pieces as an export streams it, then parsed back."""

import csv
import io
import json
import re
from xml.etree import ElementTree

import pytest

from annotations_service.domain.errors import InvalidInput
from annotations_service.domain.export import CuratedOutput
from annotations_service.domain.export_formats import CuratedRecord, ExportWriter, export_writer, neutralised
from annotations_service.domain.label_studio_tasks import (
    Mark,
    label_config,
    marks_in_result,
    model_id_of,
    model_key,
    task,
)
from workbench.annotations.v1.annotations_pb2 import AnnotationKind, ExportFormat
from workbench.common.v1.common_pb2 import ChatMessage
from workbench.datasets.v1.datasets_pb2 import Record

GOLDEN = AnnotationKind.ANNOTATION_KIND_GOLDEN
FIXED = AnnotationKind.ANNOTATION_KIND_FIXED
WRONG = AnnotationKind.ANNOTATION_KIND_WRONG
DEFAULT_KINDS = frozenset({GOLDEN, FIXED})
CHAT = Record(
    record_id="c1",
    messages=[ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="2+2?")],
    metadata_json='{"source": "quiz"}',
)
PROMPT = Record(record_id="p1", prompt="Say =cmd()")
HOSTILE = '=cmd()|"\r\n{"messages": []}\u2028'


def curated() -> list[CuratedRecord]:
    return [
        CuratedRecord(
            "ds1",
            CHAT,
            [
                CuratedOutput("tiny-a", GOLDEN, "4", annotator="ann", note="ok"),
                CuratedOutput("tiny-b", FIXED, "5", fixed_text="4", annotator="bob"),
            ],
            {"tiny-a": "4", "tiny-b": "5"},
        ),
        CuratedRecord("ds1", PROMPT, [CuratedOutput("tiny-a", GOLDEN, HOSTILE)], {"tiny-a": HOSTILE, "tiny-b": "no"}),
    ]


def written(writer: ExportWriter) -> str:
    """As the application streams it: the start, one piece per batch (one record each here), the end."""
    return writer.start() + "".join(writer.write([record]) for record in curated()) + writer.end()


def test_jsonl_has_one_object_per_curated_output_with_what_the_issue_names() -> None:
    lines = [
        json.loads(line)
        for line in written(export_writer(ExportFormat.EXPORT_FORMAT_JSONL, DEFAULT_KINDS)).splitlines()
    ]

    assert [(line["record_id"], line["model_id"], line["kind"]) for line in lines] == [
        ("c1", "tiny-a", "golden"),
        ("c1", "tiny-b", "fixed"),
        ("p1", "tiny-a", "golden"),
    ]
    fixed = lines[1]
    assert (fixed["answer"], fixed["fixed_text"], fixed["annotator"], fixed["note"]) == ("5", "4", "bob", "")
    assert fixed["input"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    assert fixed["messages"][-1] == {"role": "assistant", "content": "4"} and fixed["metadata"] == {"source": "quiz"}
    assert lines[2]["answer"] == HOSTILE


def test_json_is_one_array_of_the_same_objects_even_when_empty() -> None:
    items = json.loads(written(export_writer(ExportFormat.EXPORT_FORMAT_JSON, DEFAULT_KINDS)))
    jsonl = written(export_writer(ExportFormat.EXPORT_FORMAT_JSONL, DEFAULT_KINDS))
    empty = export_writer(ExportFormat.EXPORT_FORMAT_JSON, DEFAULT_KINDS)

    assert isinstance(items, list) and items == [json.loads(line) for line in jsonl.splitlines()]
    assert json.loads(empty.start() + empty.write([]) + empty.end()) == []


def test_csv_has_a_header_and_a_row_per_curated_output_with_formulas_neutralised() -> None:
    text = written(export_writer(ExportFormat.EXPORT_FORMAT_CSV, DEFAULT_KINDS))

    header, *rows = list(csv.reader(io.StringIO(text, newline="")))

    assert text.startswith("record_id,model_id,kind,input,answer,fixed_text,annotator,note,metadata\r\n")
    assert header == ["record_id", "model_id", "kind", "input", "answer", "fixed_text", "annotator", "note", "metadata"]
    assert rows[0] == [
        "c1",
        "tiny-a",
        "golden",
        "system: Be brief.\nuser: 2+2?",
        "4",
        "",
        "ann",
        "ok",
        '{"source": "quiz"}',
    ]
    assert rows[1][4:6] == ["5", "4"]
    assert rows[2][3:5] == ["Say =cmd()", "'" + HOSTILE]  # a cell starting with = runs in a spreadsheet
    assert rows[2][8] == "{}"


@pytest.mark.parametrize("cell", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_each_formula_start_is_neutralised(cell: str) -> None:
    assert neutralised(cell) == "'" + cell
    assert neutralised("a" + cell) == "a" + cell


def test_openai_chat_lines_hold_only_the_messages_with_the_curated_answer_last() -> None:
    lines = [
        json.loads(line)
        for line in written(export_writer(ExportFormat.EXPORT_FORMAT_OPENAI_CHAT, DEFAULT_KINDS)).splitlines()
    ]

    assert all(list(line) == ["messages"] for line in lines)
    assert [[message["role"] for message in line["messages"]] for line in lines] == [
        ["system", "user", "assistant"],
        ["system", "user", "assistant"],
        ["user", "assistant"],
    ]
    assert [line["messages"][-1]["content"] for line in lines] == ["4", "4", HOSTILE]  # the fix, not "5"
    assert all(set(message) == {"role", "content"} for line in lines for message in line["messages"])


def test_openai_chat_refuses_wrong_answers_as_training_targets() -> None:
    with pytest.raises(InvalidInput, match="wrong answer is never a training target"):
        export_writer(ExportFormat.EXPORT_FORMAT_OPENAI_CHAT, frozenset({GOLDEN, WRONG}))


def test_label_studio_tasks_carry_one_prediction_per_model_and_the_marks_as_an_annotation() -> None:
    tasks = json.loads(
        written(export_writer(ExportFormat.EXPORT_FORMAT_LABEL_STUDIO, DEFAULT_KINDS, ["tiny-a", "tiny-b"]))
    )

    assert isinstance(tasks, list) and len(tasks) == 2
    chat, prompt = tasks
    assert chat["data"] == {
        "record_id": "c1",
        "prompt": "system: Be brief.\nuser: 2+2?",
        "tiny_2d_a": "4",
        "tiny_2d_b": "5",
    }
    assert [p["model_version"] for p in chat["predictions"]] == ["tiny-a", "tiny-b"]
    assert [p["model_version"] for p in prompt["predictions"]] == ["tiny-a", "tiny-b"]
    [annotation] = chat["annotations"]
    assert marks_in_result(annotation["result"], {"tiny-a": "4", "tiny-b": "5"}) == {
        "tiny-a": Mark(GOLDEN),
        "tiny-b": Mark(FIXED, "4"),
    }
    assert prompt["data"]["tiny_2d_a"] == HOSTILE


def test_the_label_config_names_what_the_tasks_fill() -> None:
    config = ElementTree.fromstring(label_config(["tiny-a", "org/m.1_x"]))
    built = task(PROMPT, {"tiny-a": "hi"}, {"tiny-a": Mark(WRONG)}, ["tiny-a", "org/m.1_x"])

    names = {element.get("name") for element in config.iter() if element.get("name")}
    variables = {element.get("value", "")[1:] for element in config.iter() if element.get("value", "").startswith("$")}
    regions = [*built["annotations"][0]["result"], *built["predictions"][0]["result"]]
    assert variables == set(built["data"]) - {"record_id"}  # every $variable has its data key, "" if unanswered
    assert built["data"]["org_2f_m_2e_1_5f_x"] == ""
    assert all(re.fullmatch(r"\w+", variable) for variable in variables)  # what Label Studio reads as a $variable
    assert {region["from_name"] for region in regions} | {region["to_name"] for region in regions} <= names
    assert {(c.get("name"), c.get("toName")) for c in config.iter("Choices")} == {
        ("verdict_tiny_2d_a", "answer_tiny_2d_a"),
        ("verdict_org_2f_m_2e_1_5f_x", "answer_org_2f_m_2e_1_5f_x"),
    }


@pytest.mark.parametrize("model_id", ["tiny-a", "Qwen/Qwen2.5-0.5B-Instruct", "a_b", "x_2d_y", "é"])
def test_a_model_key_turns_back_into_its_model_id(model_id: str) -> None:
    assert model_id_of(model_key(model_id)) == model_id
    assert re.fullmatch(r"\w+", model_key(model_id), re.ASCII)


def test_an_untouched_fix_area_is_no_fix() -> None:
    result = [
        {"from_name": "fix_tiny_2d_a", "to_name": "answer_tiny_2d_a", "type": "textarea", "value": {"text": ["4"]}},
        {"from_name": "verdict_tiny_2d_a", "type": "choices", "value": {"choices": ["golden"]}},
    ]

    assert marks_in_result(result, {"tiny-a": "4"}) == {"tiny-a": Mark(GOLDEN)}
