"""The demo models' tokenizer spells JSON exactly and free text as words; old folders are rebuilt."""

import json
from pathlib import Path

import pytest

from devstack import demo_models
from devstack.demo_models import DEMO_VERSION, build_demo_models, build_tokenizer

VERDICT = {"recommendation": "revise", "trajectory": "down", "confident": False, "scores": [3, -1.5, None]}


def test_a_json_object_encodes_and_decodes_back_to_itself() -> None:
    tokenizer = build_tokenizer()
    text = json.dumps(VERDICT, separators=(",", ":"))

    ids = tokenizer.encode(text, add_special_tokens=False)

    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text
    assert {"{", '"', ":", "false", "[", "-", "null", "}"} <= set(tokenizer.convert_ids_to_tokens(ids))


def test_words_decode_with_single_spaces_and_unknown_words_become_unk() -> None:
    tokenizer = build_tokenizer()

    ids = tokenizer.encode("tell me  a story\nabout the xylophone?")

    words = ["▁tell", "▁me", "▁a", "▁story", "▁about", "▁the"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["<s>", *words, "<unk>", "?"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "tell me a story about the?"


def test_a_chat_encodes_through_the_template_with_its_turn_markers() -> None:
    tokenizer = build_tokenizer()
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is the time?"}]

    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer.encode(text, add_special_tokens=False))

    system = ["<|system|>", "▁be", "<unk>", "</s>"]
    user = ["<|user|>", "▁what", "▁is", "▁the", "▁time", "?", "</s>"]
    assert tokens == ["<s>", *system, *user, "<|assistant|>"]


def test_a_folder_built_by_another_version_is_built_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []

    def pretend_to_build(folder: Path, seed: int) -> None:
        folder.mkdir(exist_ok=True)  # the real build replaces the folder
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            (folder / name).write_text("{}")
        (folder / "demo_version").write_text(DEMO_VERSION + "\n")
        built.append(folder.name)

    monkeypatch.setattr(demo_models, "_build_one", pretend_to_build)
    build_demo_models(tmp_path)
    build_demo_models(tmp_path)
    assert built == ["tiny-a", "tiny-b"]  # the second call finds both current

    (tmp_path / "tiny-a" / "demo_version").unlink()  # as the first version left its folders
    (tmp_path / "tiny-b" / "demo_version").write_text("1\n")
    build_demo_models(tmp_path)

    assert built == ["tiny-a", "tiny-b", "tiny-a", "tiny-b"]
