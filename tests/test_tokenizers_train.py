"""BPE training: the naive loop, the incremental reference and the C trainer agree; the driver's edges."""

from __future__ import annotations

from functools import cache

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import NATIVE
from workbench_engines.backends import resolve
from workbench_engines import corpus
from workbench_engines.corpus import CorpusError, read_text
from workbench_engines.errors import EngineError
from workbench_engines.tokenizers import load, save, train_bpe
from workbench_engines.tokenizers.bpe_train import TrainingCancelled, count_pieces, train_naive, train_reference

BACKENDS = [NATIVE, "reference"]
FASTEST = resolve().name
"""The trainer the other tests use: C where it loads."""


@given(text=st.text(alphabet="ab cd\n'é日", max_size=200), merges=st.integers(1, 40))
def test_incremental_reference_equals_the_naive_loop(text, merges):
    counts = count_pieces(text, "gpt2")
    assert train_reference(counts, merges) == train_naive(counts, merges)


# Only code points this Python's Unicode knows: on newer ones the C tables
# follow tiktoken and the regex reference does not (see pretokenize.py).
@pytest.mark.native
@given(text=st.text(st.characters(exclude_categories=["Cn"]), max_size=300), vocab=st.integers(256, 400))
def test_native_trainer_equals_the_reference(text, vocab):
    if not text:
        return
    native = train_bpe(text, vocab, special_tokens=(), backend="native")
    reference = train_bpe(text, vocab, special_tokens=(), backend="reference")
    assert native.merges == reference.merges
    assert native.tokenizer.ranks == reference.tokenizer.ranks


@cache
def real_text_merges(pattern: str) -> tuple[str, list]:
    """(text, merges): 300 merges learned from 150,000 characters of the plays by the reference trainer, held to
    the naive one once a pattern (each backend's test below reuses them)."""
    text = read_text(limit=150_000)
    counts = count_pieces(text, pattern)
    reference = train_reference(counts, 300)
    assert reference == train_naive(counts, 300)
    return text, reference


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pattern", ["gpt2", "cl100k", r"\w+|\s+|[^\w\s]+"])
def test_trainers_agree_on_real_text(pattern, backend):
    text, reference = real_text_merges(pattern)
    assert train_bpe(text, 256 + 300, pattern=pattern, special_tokens=(), backend=backend).merges == reference


@pytest.mark.parametrize("backend", BACKENDS)
def test_trained_tokenizer_round_trips_and_saves(backend, tmp_path):
    text = read_text(limit=200_000)
    result = train_bpe(text, 1000, backend=backend)
    tokenizer = result.tokenizer
    assert tokenizer.vocab_size == 1000
    assert tokenizer.special_tokens == {"<|endoftext|>": 999}
    sample = read_text(limit=400_000)[200_000:] + " 日本語 👍🏽 <tag>"
    ids = tokenizer.encode(sample)
    assert tokenizer.decode(ids) == sample
    assert len(ids) < len(sample.encode()) / 2  # it learned something
    again = load(save(tokenizer, tmp_path / "t.wbtok"), backend=backend)
    assert again.encode(sample) == ids
    assert tokenizer.encode("<|endoftext|>", allowed_special="all") == [999]


def test_special_token_text_is_not_trained_on():
    result = train_bpe("<|endoftext|>" * 50 + "ab ab", 256 + 10 + 1, backend=FASTEST)
    assert all(b"|" not in token for token in result.tokenizer.ranks if len(token) > 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_streaming_a_folder_equals_the_whole_text(backend, tmp_path, monkeypatch):
    text = read_text(limit=120_000)
    half = len(text) // 2
    (tmp_path / "a.txt").write_text(text[:half])
    (tmp_path / "b.md").write_text(text[half:])
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 4096)
    streamed = train_bpe(Path(tmp_path), 600, backend=backend, special_tokens=())
    whole_counts = count_pieces(text[:half], "cl100k") + count_pieces(text[half:], "cl100k")
    assert [m.pair for m in streamed.merges] == [m.pair for m in train_reference(whole_counts, len(streamed.merges))]


def test_progress_and_cancel():
    seen = []
    train_bpe(read_text(limit=100_000), 600, backend=FASTEST, progress=lambda d, t, w: seen.append(w))
    assert "counting pieces" in seen and "merging pairs" in seen
    with pytest.raises(TrainingCancelled):
        train_bpe(read_text(limit=100_000), 600, backend=FASTEST, should_stop=lambda: True)


def test_bad_training_input(tmp_path):
    with pytest.raises(EngineError, match="at least 256"):
        train_bpe("abc", 255)
    with pytest.raises(EngineError, match="at least 256"):
        train_bpe("abc", 256, special_tokens=("<s>",))
    with pytest.raises(EngineError, match="empty"):
        train_bpe("", 300, backend=FASTEST)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(CorpusError, match="latin1.txt: not UTF-8 at byte 3"):
        train_bpe(bad, 300, backend=FASTEST)
    with pytest.raises(CorpusError, match="no such file"):
        train_bpe(tmp_path / "missing.txt", 300, backend=FASTEST)
    with pytest.raises(TypeError):
        train_bpe(b"bytes", 300)  # type: ignore[arg-type]


def test_runs_out_of_pairs_gracefully():
    result = train_bpe("ab", 1000, special_tokens=(), backend=FASTEST)
    assert result.stopped_early
    assert result.tokenizer.vocab_size == 257
