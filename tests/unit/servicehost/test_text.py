"""The one text rule (servicehost.text), and ids anchored at both ends in every service.

Each check below let a trailing newline through before (a `^...$` pattern with re.match: "$" also
matches before a final newline), which then reached a NATS subject or a message id.
"""

import json
from pathlib import PurePosixPath

import pytest

from annotations_service.domain.disagreement import Answer, disagreement
from annotations_service.domain.errors import InvalidInput as AnnotationsInvalid
from annotations_service.domain.names import is_dataset_id as annotations_dataset_id
from annotations_service.grpc.convert import record_annotation_command
from datasets_service.domain.names import is_dataset_id as datasets_dataset_id
from inference_service.domain.errors import InvalidInput as InferenceInvalid
from inference_service.domain.models import parse_models
from servicehost.text import storable, text_problem, unsafe_character
from workbench.annotations.v1 import annotations_pb2 as pb


@pytest.mark.parametrize(
    ("value", "free_text", "why"),
    [
        ("ok", False, None),
        ("line\nbreak\ttab\r", True, None),
        ("id\n", False, "holds the control character U+000A at position 2"),
        ("a\x00", True, "holds the control character U+0000 at position 1"),
        ("\x85next-line", True, "holds the control character U+0085 at position 0"),
        ("x\ud83d", True, "holds a lone surrogate U+D83D at position 1"),
        ("ünïcödé 😀", False, None),
    ],
)
def test_unsafe_characters_are_named_with_their_position(value: str, free_text: bool, why: str | None) -> None:
    assert unsafe_character(value, free_text) == why


def test_a_text_over_its_limit_is_refused_before_its_characters_are_read() -> None:
    assert text_problem("x" * 11, 10, free_text=True) == "is 11 characters long; the limit is 10"


def test_outside_text_is_made_storable_and_nothing_else_changes() -> None:
    assert storable("a\x00b\ud800c\n\td") == "a\ufffdb\ufffdc\n\td"


def test_dataset_ids_with_a_trailing_newline_are_not_ids() -> None:
    assert annotations_dataset_id("ds-1") and not annotations_dataset_id("ds-1\n")
    assert datasets_dataset_id("ds_0123456789ab") and not datasets_dataset_id("ds_0123456789ab\n")


def test_a_model_id_with_a_trailing_newline_is_refused() -> None:
    models = '[[models]]\nid = "tiny\\n"\nbackend = "vllm"\npath = "tiny"\n'
    with pytest.raises(InferenceInvalid, match="field 'id' may hold only"):
        parse_models(models, PurePosixPath("/srv"))


def test_a_json_key_with_a_trailing_newline_is_shown_quoted_in_a_path() -> None:
    found = disagreement([Answer("a", json.dumps({"k\n": 1})), Answer("b", json.dumps({"k\n": 2}))])

    assert found.differing_paths == ('$["k\\n"]',)


def test_the_annotations_service_refuses_a_nul_note_from_any_grpc_client() -> None:
    request = pb.RecordAnnotationRequest(dataset_id="ds-1", record_id="r1", model_id="m", note="x\x00")

    with pytest.raises(AnnotationsInvalid, match="note holds the control character U\\+0000 at position 1"):
        record_annotation_command(request)
