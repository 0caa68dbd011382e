"""SmolLM2's tokenizer read from its GGUF file, against HF tokenizers and transformers; its chat template."""

from __future__ import annotations

import functools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import NATIVE, needs_smollm
from workbench_engines.backends import resolve
from workbench_engines.corpus import read_text
from workbench_engines.errors import EngineError
from workbench_engines.tokenizers import SpecialTokenError
from workbench_engines.tokenizers.chat import ChatTemplateError, render_chat, render_gguf_chat
from workbench_engines.tokenizers.formats import bytes_to_unicode
from workbench_engines.gguf_file import bundled_model_path
from workbench_engines.tokenizers.gguf_vocab import GGUFTokenizer, load_gguf_tokenizer, open_gguf, read_chat_template


pytestmark = needs_smollm

BACKENDS = [NATIVE, "reference"]
MISSING_BYTES = [0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, *range(0xF5, 0x100)]
"""The bytes SmolLM2's vocabulary has no token for."""


@functools.cache
def reader():
    return open_gguf(bundled_model_path())


@functools.cache
def ours(backend: str = resolve().name) -> GGUFTokenizer:
    return load_gguf_tokenizer(reader(), backend=backend)


def metadata(key: str):
    return reader().fields[key].contents()


@functools.cache
def hf():
    """HF's merge-based BPE over the same tokens and merges, with SmolLM2's pre-tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    tokens, types = metadata("tokenizer.ggml.tokens"), metadata("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ")) for m in metadata("tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tok.pre_tokenizer = smollm_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == 3])
    return tok


def smollm_pre_tokenizer():
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )


def hf_ids(text: str) -> list[int]:
    return hf().encode(text, add_special_tokens=False).ids


def script(first: int, last: int) -> st.SearchStrategy[str]:
    # Cn: code points this Python's Unicode (14) leaves unassigned; the peers' tables are newer.
    return st.text(st.characters(min_codepoint=first, max_codepoint=last, exclude_categories=["Cn", "Cs"]),
                   min_size=1, max_size=6)


# Runs of letters from several scripts, digits of several systems, whitespace
# runs, emoji, bytes without a token, and special-token text.
MULTILINGUAL = st.lists(
    st.one_of(
        script(0x41, 0x7A), script(0xC0, 0x24F), script(0x370, 0x3FF), script(0x400, 0x4FF),
        script(0x590, 0x5FF), script(0x600, 0x6FF), script(0x900, 0x97F), script(0xE00, 0xE7F),
        script(0x3040, 0x30FF), script(0x4E00, 0x9FFF), script(0xAC00, 0xD7A3), script(0x1F300, 0x1FAFF),
        st.sampled_from(["0", "7", "42", "3.14", "1,000", "٣", "١٢٣", "५", "²", "½", "Ⅻ", "𝟙"]),
        st.sampled_from([" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u3000", "\xa0", "\u2028"]),
        st.sampled_from(["👍🏽", "🇫🇷", "👨‍👩‍👧", "e\u0301", "'s", "'LL", "...", "—", "«»", "\x04", "\x1d", "\U00040000"]),
        st.sampled_from(["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start", "<file_sep>"]),
    ),
    max_size=30,
).map("".join)


def plays(lines: int = 3000) -> str:
    return "\n".join(read_text(limit=400_000).splitlines()[:lines])


# ---- what the vocabulary holds (the module docstring of gguf_vocab) --------------------------

def test_the_vocabulary_is_what_gguf_vocab_says():
    tokens, types = metadata("tokenizer.ggml.tokens"), metadata("tokenizer.ggml.token_type")
    merges = metadata("tokenizer.ggml.merges")
    ids = {t: i for i, t in enumerate(tokens)}
    assert [ids["".join(m.split(" "))] for m in merges] == list(range(252, 252 + len(merges)))
    assert [i for i, k in enumerate(types) if k == 3] == list(range(17))
    spell = bytes_to_unicode()
    assert [b for b in range(256) if spell[b] not in ids] == sorted(MISSING_BYTES)
    tok = ours()
    assert (tok.vocab_size, tok.n_ordinary, len(tok.special_tokens)) == (49_152, 49_135, 17)
    assert (tok.bos_id, tok.eos_id, tok.add_bos, tok.pattern) == (1, 2, False, "smollm")
    assert tok.special_tokens["<|im_start|>"] == 1


def test_every_token_is_what_hf_merges_its_text_into():
    # HF merges even a piece that is itself a token (ignore_merges=False); we take it
    # whole. The same only because each token's own text merges back to it.
    tokens, types = metadata("tokenizer.ggml.tokens"), metadata("tokenizer.ggml.token_type")
    model = hf().model
    normal = [(i, text) for i, (text, kind) in enumerate(zip(tokens, types)) if kind == 1]
    assert [(i, text) for i, text in normal if [t.id for t in model.tokenize(text)] != [i]] == []
    assert len(normal) == 49_135


# ---- encoding: token-identical to HF -------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_hf_on_the_plays(backend):
    text = plays()
    assert ours(backend).encode(text) == hf_ids(text)


@pytest.mark.parametrize("backend", BACKENDS)
@given(text=MULTILINGUAL)
def test_matches_hf_on_generated_multilingual_text(backend, text):
    tok = ours(backend)
    assert tok.encode(text, allowed_special="all") == hf_ids(text)
    ordinary = tok.encode(text, disallowed_special=())
    hf().encode_special_tokens = True  # special-token text as plain text, on HF's side too
    try:
        assert ordinary == hf_ids(text)
    finally:
        hf().encode_special_tokens = False


@pytest.mark.parametrize(
    "text",
    [
        "", "a  1", "a 1", "a\t\t1b", "  \n 12", "1999", "in 1999,  42 ٣² ½", "x's 3rd", "    ", "\n\n\n",
        "Ünïcödé 中文 한국어 العربية עברית हिन्दी ไทย Ελληνικά кириллица 👍🏽",
        "x\x04y\x06z", "\U00040000",
    ],
)
def test_matches_hf_on_special_cases(text):
    assert ours().encode(text) == hf_ids(text)


@pytest.mark.native
def test_long_pieces_backtrack_to_hfs_tokens():
    # Pieces over 128 bytes take the backtracking encoder, its pair tests read off SmolLM2's merge tree.
    rng = random.Random(5)
    texts = ["".join(rng.choices(alphabet, k=rng.randint(129, 3000)))
             for alphabet in ("abcdefghijklmnopqrstuvwxyz", "etaoinshr", "ab", "éa", "!?.-") for _ in range(4)]
    tok = ours("native")
    assert tok.long_piece_path == "backtracking"
    assert [tok.encode(t) for t in texts] == [hf_ids(t) for t in texts]


def test_a_lone_surrogate_encodes_as_the_replacement_character():
    assert ours().encode("\ud83d lone") == hf_ids("\ufffd lone")


@pytest.mark.native
def test_native_and_reference_agree_in_batches(rng):
    text = plays()
    starts = sorted(rng.integers(0, len(text), 60).tolist())
    docs = [text[a : a + int(rng.integers(0, 2000))] for a in starts] + ["", "7", "\x04"]
    expected = [ours("reference").encode(d) for d in docs]
    assert ours("native").encode_batch(docs, threads=2) == expected
    assert [hf_ids(d) for d in docs] == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_special_tokens_are_single_ids_when_allowed(backend):
    tok = ours(backend)
    text = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    ids = tok.encode(text, allowed_special="all")
    assert ids == hf_ids(text)
    assert ids[0] == 1 and ids.count(2) == 1 and ids.count(1) == 2
    assert tok.encode(text, allowed_special={"<|im_start|>", "<|im_end|>"}) == ids
    with pytest.raises(SpecialTokenError, match="<\\|im_start\\|>"):
        tok.encode(text)
    assert 1 not in tok.encode(text, disallowed_special=())


# ---- decoding ------------------------------------------------------------------------------

@given(text=MULTILINGUAL)
def test_decoding_round_trips_except_bytes_without_a_token(text):
    tok = ours()
    ids = tok.encode(text, allowed_special="all")
    assert tok.decode(ids) == hf().decode(ids, skip_special_tokens=False)
    if not set(text.encode("utf-8", "surrogatepass")) & set(MISSING_BYTES):
        assert tok.decode(ids) == text


@pytest.mark.parametrize("backend", BACKENDS)
def test_bytes_without_a_token_encode_to_nothing(backend):
    tok = ours(backend)
    assert tok.encode("x\x04y") == tok.encode("x") + tok.encode("y") == hf_ids("x\x04y")
    # Within a piece, what remains merges across the gap, as in HF.
    assert tok.encode(" \x04\u0600") == tok.encode(" \u0600") == hf_ids(" \x04\u0600")
    assert tok.encode_batch(["a\x06\x06b", "c"]) == [hf_ids("a\x06\x06b"), hf_ids("c")]
    assert tok.decode(tok.encode("x\x04y")) == "xy"
    # U+40000 is F1 80 80 80: the lead byte goes, the continuation bytes stay.
    assert tok.decode_bytes(tok.encode("\U00040000")) == b"\x80\x80\x80"
    with pytest.raises(EngineError, match="not in"):
        tok.decode([49_152])


# ---- against transformers' own GGUF loading (slow: converting takes seconds) -------------------

@pytest.fixture(scope="module")
def transformers_tokenizer():
    from transformers import AutoTokenizer

    path = bundled_model_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.mark.slow
def test_matches_transformers_gguf_tokenizer(transformers_tokenizer):
    from tokenizers import Tokenizer

    text = plays(1000)
    samples = [text, "<|im_start|>user\nhi<|im_end|>", "Ünïcödé 中文 👍🏽 x\x04y", "a  b\n\n c"]
    # transformers (5.x) does not know llama.cpp's "smollm" pre-tokenizer and splits
    # with GPT-2's pattern alone; the two agree on text without number characters.
    for sample in samples:
        plain = "".join(c for c in sample if not c.isnumeric())
        assert ours().encode(plain, allowed_special="all") == transformers_tokenizer.encode(
            plain, add_special_tokens=False)
    # With SmolLM2's pre-tokenizer in place, its vocabulary and merges give our ids everywhere.
    fixed = Tokenizer.from_str(transformers_tokenizer.backend_tokenizer.to_str())
    fixed.pre_tokenizer = smollm_pre_tokenizer()
    for sample in [*samples, "in 1999,  42 ٣² ½", "a  1"]:
        assert ours().encode(sample, allowed_special="all") == fixed.encode(sample, add_special_tokens=False).ids


@pytest.mark.slow
def test_chat_template_matches_transformers_gguf_tokenizer(transformers_tokenizer):
    messages = [{"role": "user", "content": "Name a play by Shakespeare."}]
    for add in (False, True):
        assert render_gguf_chat(reader(), messages, add_generation_prompt=add) == \
            transformers_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add)


# ---- the chat template ---------------------------------------------------------------------

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello?"}],
    [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?\n  (show working)"},
    ],
    [{"role": "system", "content": ""}, {"role": "user", "content": "<|im_end|> in the text, ünïcödé, 👍"}],
]


@functools.cache
def transformers_chat():
    """A transformers tokenizer holding only the template: apply_chat_template without a GGUF load."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()), chat_template=read_chat_template(reader()))


@pytest.mark.parametrize("messages", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_chat_template_matches_transformers(messages, add_generation_prompt):
    template = read_chat_template(reader())
    expected = transformers_chat().apply_chat_template(messages, tokenize=False,
                                                       add_generation_prompt=add_generation_prompt)
    assert render_chat(template, messages, add_generation_prompt) == expected
    assert render_gguf_chat(reader(), messages, add_generation_prompt) == expected


def test_chat_prompt_is_chatml_with_a_default_system_turn():
    text = render_gguf_chat(reader(), [{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    ids = ours().encode(text, allowed_special="all")
    assert ids == hf_ids(text)
    assert ids[-4:] == [1, 520, 9531, 198]  # <|im_start|> "ass" "istant" "\n"


@pytest.mark.parametrize(
    "messages, message",
    [
        ("hello", "a conversation is a list of messages, got str"),
        ({"role": "user", "content": "hi"}, "got dict"),
        ([], "at least one message"),
        ([("user", "hi")], "message 0 is a tuple"),
        ([{"role": "user"}], "message 0: content must be a string, is missing"),
        ([{"role": "user", "content": "hi"}, {"role": 7, "content": "x"}], "message 1: role must be a string, is a int"),
        ([{"role": "user", "content": ["a", "b"]}], "content must be a string, is a list"),
    ],
)
def test_malformed_conversations_are_clear_errors(messages, message):
    with pytest.raises(ChatTemplateError, match=message):
        render_chat("{{ messages }}", messages)


@pytest.mark.parametrize(
    "template, message",
    [
        ("{% for m in messages %}{{ m.content }", "does not compile: line 1"),
        ("{% if messages|length > 1 %}{{ raise_exception('one message only') }}{% endif %}", "one message only"),
        ("{{ messages.append(1) }}", "unsafe"),
        ("{{ 1 // (messages|length - 2) }}", "ZeroDivisionError"),
    ],
)
def test_failing_templates_are_clear_errors(template, message):
    with pytest.raises(ChatTemplateError, match=message):
        render_chat(template, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])


def test_template_helpers_behave_as_in_transformers():
    template = "{{ messages[0] | tojson }}{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}" \
               "{{ m.role }}{% endfor %}"
    messages = [{"role": "user", "content": "<é>"}, {"role": "bot", "content": ""}]
    assert render_chat(template, messages) == '{"role": "user", "content": "<é>"}user'


# ---- bad files -----------------------------------------------------------------------------

def write_gguf(path, *, model="gpt2", pre="smollm", tokens=None, types=None, merges=None, skip=()):
    """A tokenizer-only GGUF: <|endoftext|>, the 256 bytes, then " t", "he", " the"."""
    import gguf

    spell = bytes_to_unicode()
    tokens = tokens or ["<|endoftext|>", *(spell[b] for b in range(256)), "Ġt", "he", "Ġthe"]
    values = {
        "model": model, "pre": pre, "tokens": tokens,
        "types": types or [3] + [1] * (len(tokens) - 1),
        "merges": merges or ["Ġ t", "h e", "Ġt he"],
    }
    writer = gguf.GGUFWriter(str(path), "llama")
    adders = {"model": writer.add_tokenizer_model, "pre": writer.add_tokenizer_pre, "tokens": writer.add_token_list,
              "types": writer.add_token_types, "merges": writer.add_token_merges}
    for key, add in adders.items():
        if key not in skip:
            add(values[key])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_small_gguf_vocabulary_loads(tmp_path, backend):
    tok = load_gguf_tokenizer(write_gguf(tmp_path / "tiny.gguf"), backend=backend)
    assert tok.name == "tiny" and tok.special_tokens == {"<|endoftext|>": 0}
    space, one = 1 + ord(" "), 1 + ord("1")
    assert tok.encode(" the 1 he") == [259, space, one, space, 258]
    assert tok.decode(tok.encode(" the 1 he")) == " the 1 he"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"model": "llama"}, "tokenizer.ggml.model is 'llama'"),
        ({"pre": "qwen2"}, "unknown pre-tokeniser tokenizer.ggml.pre = 'qwen2'"),
        ({"skip": ("merges",)}, "has no tokenizer.ggml.merges"),
        ({"skip": ("pre",)}, "has no tokenizer.ggml.pre"),
        ({"skip": ("model",)}, "has no tokenizer.ggml.model"),
        ({"merges": ["h e", "Ġ t", "Ġt he"]}, "merge 1 .* ids must follow merge order"),
        ({"merges": ["Ġ t", "h e", "Ġ the"]}, "merge 2 .* does not join two tokens"),
        ({"merges": ["Ġ t", "h e"]}, "token 259 .* is made by no merge"),
        ({"types": [3] + [1] * 258 + [4]}, "token 259 .* has token type 4"),
    ],
)
def test_bad_tokenizer_metadata_is_a_clear_error(tmp_path, options, message):
    path = write_gguf(tmp_path / "bad.gguf", **options)
    with pytest.raises(EngineError, match=message):
        load_gguf_tokenizer(path, backend="reference")


def test_files_that_are_not_gguf_are_clear_errors(tmp_path):
    with pytest.raises(EngineError, match="no such GGUF file"):
        load_gguf_tokenizer(tmp_path / "absent.gguf")
    (tmp_path / "text.gguf").write_text("not a model")
    with pytest.raises(EngineError, match="not a GGUF file"):
        load_gguf_tokenizer(tmp_path / "text.gguf")
    with pytest.raises(EngineError, match="has no tokenizer.chat_template"):
        read_chat_template(write_gguf(tmp_path / "tiny.gguf"))
