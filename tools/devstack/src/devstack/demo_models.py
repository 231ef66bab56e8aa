"""Builds the demo models tiny-a and tiny-b locally: tiny Llamas with random weights.

They need no download, load in vLLM on a CPU in seconds, and produce random English words, which is
enough to exercise the whole workbench (runs, results, progress, comparison, annotation) anywhere.

The tokenizer is shaped like SentencePiece's, so that structured output (xgrammar) can spell JSON:
words are stored as "▁word" (a space, then the word), while JSON's characters, digits and single
letters are stored bare; the decoder turns "▁" back into a space. xgrammar reads such a vocabulary
(a decoder with ByteFallback) the way the decoder does, so the text it allows is the text returned.

    python -m devstack.demo_models OUT_DIR
"""

import json
import shutil
import string
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

DEMO_SEEDS = {"tiny-a": 1, "tiny-b": 2}
MAX_POSITIONS = 512

SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
PUNCTUATION = [".", ",", "?", "!", "'", '"', ":", ";", "-", "(", ")", "/", "%", "$", "&", "+", "=", "*", "#", "@"]
# What JSON needs besides the punctuation above: structure, numbers, keys spelled letter by letter.
JSON_PIECES = ["{", "}", "[", "]", "_", *"0123456789", *string.ascii_letters, "true", "false", "null"]
SPACE = "▁"  # SentencePiece's mark for "a space before this word"
# Bumped whenever the files built change; a folder built by another version is built again.
DEMO_VERSION = "2"
WORDS = """
a about above across after again against all almost alone along already also always am among an and another any
anyone anything are around as ask asked at away back bad be because been before began behind being below best
better between big black blue book both boy bring brought but by call called came can car care carry case cat
change child children city clear close cold come could country course cut dark day did different do does dog done
door down draw during each early earth eat end enough even ever every eye face fact family far fast father feel
few field find fine fire first fish five food for form found four free friend from full game gave get girl give
go going good got great green ground group grow had half hand happy hard has have he head hear heard help her
here high him his hold home hope horse hot hour house how however i idea if important in inside into is it its
just keep kind king knew know land large last late learn leave left less let letter life light like line list
little live long look made make man many may me mean men might mind money more morning most mother move much
music must my name near need never new next night no not nothing now number of off often old on once one only
open or order other our out over own page paper part people place plan play point put question quick quite
rain ran read ready real red remember rest right river road room round run said same saw say school sea second
see seem seen sentence set she should show side since small so some something song soon sound south speak
stand start state still stop story street strong study such sun sure table take talk tell ten than thank that
the their them then there these they thing think this those thought three through time to today together told
too took top toward town tree true try turn two under until up us use very voice walk want warm was watch water
way we well went were what when where which while white who whole why will wind with without word work world
would write year yes yet you young your answer yes no hello please sorry thanks model data text summary
""".split()  # noqa: SIM905 - a word list reads better as text


def vocabulary() -> list[str]:
    """Special tokens, bare punctuation and JSON pieces, then a few hundred "▁word"s, without repeats."""
    seen: dict[str, None] = {}
    for token in [*SPECIAL_TOKENS, *PUNCTUATION, *JSON_PIECES, *(SPACE + word for word in WORDS)]:
        seen.setdefault(token, None)
    return list(seen)


# Renders {"messages": [...]} records; add_generation_prompt opens the assistant's turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|> {{ message['content'] }} </s> "
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def build_demo_models(out_dir: Path | str) -> dict[str, Path]:
    """Builds tiny-a and tiny-b under out_dir when missing (idempotent); returns their folders."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folders: dict[str, Path] = {}
    for model_id, seed in DEMO_SEEDS.items():
        folder = out / model_id
        if not _is_complete(folder):
            _build_one(folder, seed)
        folders[model_id] = folder
    return folders


def _is_complete(folder: Path) -> bool:
    version = folder / "demo_version"
    if not version.is_file() or version.read_text().strip() != DEMO_VERSION:
        return False
    return all((folder / name).exists() for name in ("config.json", "model.safetensors", "tokenizer.json"))


def build_tokenizer() -> "PreTrainedTokenizerFast":
    """The demo models' tokenizer: whitespace-separated words as "▁word", anything else piece by piece.

    Encoding: runs of whitespace become one "▁", the text starts with one, and a "▁" before anything
    but a letter is dropped (there are no "▁{" or "▁7" tokens). Then "▁word" is one token (<unk> when
    not in the vocabulary), "true", "false" and "null" are one token each, and any other character is
    a token of its own. So compact JSON encodes and decodes back to itself, and so does plain text
    with single spaces between words.
    """
    # Imported here: transformers takes seconds to import and only building needs it.
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(vocabulary())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Sequence(
        [
            normalizers.Strip(),
            normalizers.Replace(Regex(r"\s+"), SPACE),
            normalizers.Prepend(SPACE),
            normalizers.Replace(Regex(f"{SPACE}(?![A-Za-z])"), ""),
        ]
    )
    pieces = Regex(f"{SPACE}[A-Za-z]+|true|false|null|.")
    core.pre_tokenizer = pre_tokenizers.Split(pieces, behavior="isolated")
    # Llama 2's decoder: xgrammar recognises it (ByteFallback) and reads "▁" as a space, as it does.
    core.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    core.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=MAX_POSITIONS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _build_one(folder: Path, seed: int) -> None:
    # Imported here: transformers and torch take seconds to import and only this needs them.
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    vocab = tokenizer.get_vocab()

    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,  # the CPU attention backend rejects smaller heads
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=vocab["<pad>"],
        tie_word_embeddings=False,
        mlp_bias=True,  # for _prefer_words; the biases start at zero
        dtype="bfloat16",  # what vLLM runs on the CPU; saving it so avoids a cast at every load
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)  # type: ignore[no-untyped-call]
    _prefer_words(model, vocab)
    model.to(torch.bfloat16)  # type: ignore[arg-type]

    # Build beside the target and rename, so an interrupted build never looks complete.
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        _put_chat_template_in_tokenizer_config(staging)
        (staging / "demo_version").write_text(DEMO_VERSION + "\n")
        # mkdtemp and safetensors make them private; the models are meant to be shared.
        staging.chmod(0o755)
        for path in staging.iterdir():
            path.chmod(0o644)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _prefer_words(model: "LlamaForCausalLM", vocab: dict[str, int]) -> None:
    """Makes bare pieces (letters, digits, JSON's characters) rare in free text, so it reads as words.

    The last layer adds a constant to one dimension of the hidden state, and the output layer reads
    that dimension only for the bare pieces, with a negative weight: a fixed penalty of about 3 on
    their logits, whatever the context. Structured output is unaffected, as it masks what does not fit.
    """
    import torch

    bare = [index for token, index in vocab.items() if not token.startswith(SPACE) and token not in SPECIAL_TOKENS]
    with torch.no_grad():
        model.model.layers[-1].mlp.down_proj.bias[0] = 0.5  # about ten times the hidden state's own size
        model.lm_head.weight[:, 0] = 0.0
        model.lm_head.weight[bare, 0] = -0.4


def _put_chat_template_in_tokenizer_config(folder: Path) -> None:
    # Newer transformers write the template to chat_template.jinja; older readers look in the config.
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["chat_template"] = CHAT_TEMPLATE
    path.write_text(json.dumps(config, indent=2) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m devstack.demo_models OUT_DIR", file=sys.stderr)
        return 2
    for model_id, folder in build_demo_models(argv[0]).items():
        print(f"{model_id}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
