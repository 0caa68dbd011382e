"""word2vec (engines/embeddings/word2vec.py, native/src/wb_word2vec.c): the C and NumPy trainers step for step,
the gradient of the negative-sampling loss, the data side (vocabulary, subsampling, noise table) and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from workbench_engines.embeddings import w2v_data, word2vec
from workbench_engines.embeddings.w2v_data import build_vocab, encode, keep_thresholds, noise_table, tokenize
from workbench_engines.errors import EngineError

TINY = {"dim": 16, "epochs": 2, "min_count": 2, "table_size": 1000, "chunk_words": 1500}


@pytest.fixture(scope="module")
def plays_slice() -> list[list[str]]:
    return w2v_data.corpus_sentences(limit=30_000)


def zipf_sentences(rng, n_sentences: int, vocab: int) -> list[list[str]]:
    """Random sentences of Zipf-distributed words (lengths 0..30), so subsampling and the noise table both matter."""
    return [[f"w{k}" for k in np.minimum(rng.zipf(1.3, size=rng.integers(0, 31)), vocab)]
            for _ in range(n_sentences)]


def test_lcg_stream_is_word2vec_c_generator(rng):
    start = int(rng.integers(0, 2**63))
    expected, state = [], start
    for _ in range(257):
        state = (state * 25214903917 + 11) % 2**64
        expected.append(state)
    assert word2vec.lcg_stream(start, 257).tolist() == expected
    assert word2vec.lcg_next(start) == expected[0]


def test_initial_vectors_are_word2vec_c_uniform():
    syn0, syn1 = word2vec.init_vectors(300, 20, seed=7)
    assert syn0.shape == syn1.shape == (300, 20) and syn0.dtype == np.float32
    assert not syn1.any()
    assert syn0.min() >= -0.5 / 20 and syn0.max() < 0.5 / 20
    first = word2vec.lcg_next(7)
    assert syn0[0, 0] == np.float32(((first & 0xFFFF) / 65536 - 0.5) / 20)


@pytest.mark.native
@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
@pytest.mark.parametrize("sample", [1e-3, 0.0])
def test_c_and_numpy_agree_step_for_step_on_the_plays(plays_slice, mode, sample):
    ref = word2vec.train(plays_slice, backend="reference", mode=mode, sample=sample, seed=3, **TINY)
    nat = word2vec.train(plays_slice, backend="native", threads=1, mode=mode, sample=sample, seed=3, **TINY)
    # Same draws in the same order: the generators end in the same state and the same words were kept.
    assert nat.rng == ref.rng
    assert nat.words_trained == ref.words_trained
    if sample == 0:
        assert ref.words_trained == ref.words_seen
    else:
        assert ref.words_trained < ref.words_seen
    # Only float32 round-off differs (C fuses multiply-adds and sums the dots in another order).
    scale = np.abs(ref.syn0).max()
    np.testing.assert_allclose(nat.syn0, ref.syn0, atol=1e-5 * scale, rtol=1e-4)
    np.testing.assert_allclose(nat.syn1neg, ref.syn1neg, atol=1e-5 * np.abs(ref.syn1neg).max(), rtol=1e-4)
    assert np.abs(ref.syn0 - word2vec.init_vectors(len(ref.vocab), 16, 3)[0]).max() > 10 * 1e-5 * scale


@pytest.mark.native
@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_c_and_numpy_agree_on_random_zipf_sentences(rng, mode):
    sentences = zipf_sentences(rng, 150, vocab=60)
    seed = int(rng.integers(0, 2**32))
    settings = {"mode": mode, "dim": int(rng.integers(1, 40)), "window": int(rng.integers(1, 7)),
                    "negative": int(rng.integers(1, 8)), "sample": 0.01, "epochs": 2, "min_count": 2, "table_size": 977,
                    "alpha": 0.05, "seed": seed, "chunk_words": int(rng.integers(50, 500))}
    ref = word2vec.train(sentences, backend="reference", **settings)
    nat = word2vec.train(sentences, backend="native", threads=1, **settings)
    assert nat.rng == ref.rng and nat.words_trained == ref.words_trained
    np.testing.assert_allclose(nat.syn0, ref.syn0, atol=1e-5 * np.abs(ref.syn0).max(), rtol=1e-4)
    np.testing.assert_allclose(nat.syn1neg, ref.syn1neg, atol=1e-5 * np.abs(ref.syn1neg).max(), rtol=1e-4)


def test_sgns_gradient_matches_finite_differences(rng):
    dim, k = 12, 6
    h = rng.standard_normal(dim)
    outputs = rng.standard_normal((k, dim)) * 0.5
    labels = np.array([1.0] + [0.0] * (k - 1))
    grad_h, grad_u = word2vec.sgns_gradients(h, outputs, labels)
    eps = 1e-6
    for i in range(dim):
        step = np.zeros(dim)
        step[i] = eps
        numeric = (word2vec.sgns_loss(h + step, outputs, labels) - word2vec.sgns_loss(h - step, outputs, labels)) / (2 * eps)
        assert numeric == pytest.approx(grad_h[i], rel=1e-6, abs=1e-8)
    for j in range(k):
        for i in range(dim):
            moved = outputs.copy()
            moved[j, i] += eps
            up = word2vec.sgns_loss(h, moved, labels)
            moved[j, i] -= 2 * eps
            numeric = (up - word2vec.sgns_loss(h, moved, labels)) / (2 * eps)
            assert numeric == pytest.approx(grad_u[j, i], rel=1e-6, abs=1e-8)


def test_one_training_step_is_minus_alpha_times_the_gradient(rng):
    """The trainer's update (g = alpha (l - sigma(h.u))) is gradient descent on the SGNS loss, for distinct targets."""
    vocab, dim, negative = 50, 10, 4
    syn1 = (rng.standard_normal((vocab, dim)) * 0.3).astype(np.float32)
    h = (rng.standard_normal(dim) * 0.3).astype(np.float32)
    word = 0
    table = np.arange(1, vocab, dtype=np.int32)  # never draws the true word
    state = int(rng.integers(0, 2**63))
    draws, s = [], state
    for _ in range(negative):
        s = word2vec.lcg_next(s)
        draws.append(int(table[(s >> 16) % len(table)]))
    if len(set(draws)) < negative:
        pytest.skip("a noise word drawn twice: the second draw sees the first's update")
    targets = [word, *draws]
    before = syn1[targets].astype(np.float64)
    alpha = np.float32(0.1)
    err, end = word2vec.train_targets_reference(syn1, h, word, alpha, negative, table, state)
    assert end == s
    grad_h, grad_u = word2vec.sgns_gradients(h.astype(np.float64), before, np.array([1.0] + [0.0] * negative))
    np.testing.assert_allclose(err, -alpha * grad_h, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(syn1[targets], before - alpha * grad_u, rtol=1e-5, atol=1e-7)


def test_tokenizer_keeps_speech_and_drops_markup():
    text = "# Hamlet\n\n## ACT I\n\n**HAMLET**  \nO, that this too too solid flesh would melt,  \nThaw and o'er-run!\n\n" \
           "_Exit HORATIO_\n\nWho's there? 'Tis I.\n"
    assert tokenize(text) == [["o", "that", "this", "too", "too", "solid", "flesh", "would", "melt", "thaw", "and",
                               "o'er", "run"], ["who's", "there", "tis", "i"]]


def test_vocabulary_order_is_count_then_word():
    vocab = build_vocab([["b", "a", "c", "b"], ["a", "d", "c", "e"], ["b"]], min_count=2)
    assert vocab.words == ["b", "a", "c"] and vocab.counts.tolist() == [3, 2, 2] and vocab.total == 7
    data = encode([["b", "x", "a"], ["x"], ["c"] * 5], vocab, max_sentence=2)
    assert data.ids.tolist() == [0, 1, 2, 2, 2, 2, 2] and data.starts.tolist() == [0, 2, 4, 6, 7]


def test_keep_thresholds_are_word2vec_c_formula(rng):
    counts = np.sort(rng.integers(1, 5000, size=200))[::-1].astype(np.int64)
    t = 1e-3
    keep = keep_thresholds(counts, t)
    tn = t * counts.sum()
    np.testing.assert_allclose(keep, (np.sqrt(counts / tn) + 1) * tn / counts, rtol=1e-6)
    assert keep_thresholds(counts, 0.0) is None
    # word2vec.c keeps every word up to f = phi^2 tN (phi the golden ratio, about 2.62 tN) always; one far more
    # frequent about sqrt(tN/f) of the time.
    assert (keep[counts <= tn * ((1 + 5**0.5) / 2) ** 2 * (1 - 1e-9)] >= 1).all()
    assert (keep[counts > tn * ((1 + 5**0.5) / 2) ** 2 * (1 + 1e-9)] < 1).all()


def test_noise_table_follows_unigram_to_the_three_quarters(rng):
    counts = np.sort(rng.integers(1, 10_000, size=40))[::-1].astype(np.int64)
    table = noise_table(counts, 200_000)
    share = np.bincount(table, minlength=len(counts)) / len(table)
    want = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(share, want, atol=2 / len(table))
    assert table.dtype == np.int32 and table.min() >= 0 and table.max() < len(counts)
    # Slot by slot, the table is its definition: the first word whose cumulative share exceeds (j + 0.5) / size.
    for size in (7, 999, 200_000):
        cumulative = np.cumsum(counts**0.75 / (counts**0.75).sum())
        slots = (np.arange(size) + 0.5) / size
        direct = np.minimum(np.searchsorted(cumulative, slots, side="right"), len(counts) - 1)
        np.testing.assert_array_equal(noise_table(counts, size), direct)


@pytest.mark.native
def test_progress_is_reported_and_an_exception_cancels(plays_slice):
    seen = []
    word2vec.train(plays_slice, threads=1, progress=lambda f, what: seen.append((f, what)), **TINY)
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0 and fractions[-1] == 1.0 and fractions == sorted(fractions) and len(seen) > 4
    assert seen[-2][1] == "epoch 2/2"

    class Stop(Exception):
        """The caller's cancel."""

    calls = []

    def stop_at_third(fraction, what):
        calls.append(fraction)
        if len(calls) == 3:
            raise Stop

    with pytest.raises(Stop):
        word2vec.train(plays_slice, threads=1, progress=stop_at_third, **TINY)
    assert len(calls) == 3


@pytest.mark.native
def test_two_hogwild_threads_train_every_word_once_per_epoch(plays_slice):
    one = word2vec.train(plays_slice, threads=1, sample=0.0, **TINY)
    two = word2vec.train(plays_slice, threads=2, sample=0.0, **TINY)
    assert two.words_trained == one.words_trained == one.words_seen
    assert len(two.rng) == 2 and np.isfinite(two.syn0).all()
    assert not np.array_equal(two.syn0, word2vec.init_vectors(len(two.vocab), 16, 1)[0])


@pytest.mark.slow
@pytest.mark.native
def test_vectors_of_the_plays_learn_related_words():
    """After training on part of the plays (two Hogwild threads), related words are each other's neighbours."""
    model = word2vec.train_plays(limit=1_500_000, dim=50, epochs=3, threads=2)
    vectors = model.vectors()
    pairs = [("thou", "thy"), ("father", "brother"), ("my", "your"), ("lord", "master"), ("hast", "hath")]
    hits = [b in {w for w, _ in vectors.nearest(a, 10)} for a, b in pairs]
    assert sum(hits) >= 4, list(zip(pairs, hits, strict=True))


@pytest.mark.parametrize("bad, match", [
    ({"window": 0}, "window"), ({"negative": 0}, "negative"), ({"dim": 0}, "dim"), ({"epochs": 0}, "epochs"),
    ({"min_count": 0}, "min_count"), ({"alpha": float("nan")}, "alpha"), ({"sample": -1.0}, "sample"),
    ({"mode": "glove"}, "mode"), ({"dim": 2.5}, "dim"), ({"window": True}, "window"), ({"colour": 1}, "unknown"),
])
def test_bad_settings_raise_before_c(bad, match):
    with pytest.raises(EngineError, match=match):
        word2vec.train([["a", "b"]] * 10, **{"min_count": 1, **bad})


@pytest.mark.parametrize("threads", [0, -1, "2", 1.0, 10**6])
def test_bad_thread_counts_raise(threads):
    with pytest.raises(EngineError):
        word2vec.train([["a", "b"]] * 10, min_count=1, threads=threads)


def test_the_reference_takes_one_thread():
    with pytest.raises(EngineError, match="one thread"):
        word2vec.train([["a", "b"]] * 10, min_count=1, backend="reference", threads=2)


@pytest.mark.parametrize("sentences", [[], [[]], [[], []]])
def test_empty_corpus_raises(sentences):
    with pytest.raises(EngineError, match="empty"):
        word2vec.train(sentences)


def test_vocabulary_empty_after_min_count_raises():
    with pytest.raises(EngineError, match="min_count"):
        word2vec.train([["a", "b", "c"]], min_count=2)


@pytest.mark.native
def test_kernel_refuses_bad_arrays_with_a_status():
    """What the wrapper never sends: the C entry point still answers with a status, not a crash."""
    from workbench_engines.nativelib import native

    module = native()
    ffi, lib = module.ffi, module.lib
    syn0 = np.zeros((3, 4), np.float32)
    syn1 = np.zeros((3, 4), np.float32)
    state = np.ones(1, np.uint64)
    table = np.array([0, 1, 2], np.int32)

    def call(ids, starts, table=table, window=2, threads=1):
        return lib.wb_word2vec_train_f32(
            ffi.from_buffer("float[]", syn0), ffi.from_buffer("float[]", syn1), ffi.from_buffer("uint64_t[]", state),
            ffi.NULL, ffi.from_buffer("int32_t[]", ids), len(ids), ffi.from_buffer("int64_t[]", starts), len(starts) - 1,
            ffi.NULL, ffi.from_buffer("int32_t[]", table), len(table), 3, 4, window, 2, 1, 0.025, 0, 100, threads)

    ok = np.array([0, 1, 2, 1], np.int32)
    assert call(ok, np.array([0, 4], np.int64)) == lib.WB_OK
    assert call(np.array([0, 7, 1], np.int32), np.array([0, 3], np.int64)) == lib.WB_ERR_BAD_VOCAB
    assert call(ok, np.array([0, 4], np.int64), table=np.array([5] * 3, np.int32)) == lib.WB_ERR_BAD_VOCAB
    assert call(ok, np.array([2, 1], np.int64)) == lib.WB_ERR_BAD_SIZE
    assert call(ok, np.array([0, 4], np.int64), window=0) == lib.WB_ERR_BAD_SIZE
    assert call(ok, np.array([0, 4], np.int64), threads=0) == lib.WB_ERR_BAD_THREADS
    assert call(ok[:3], np.array([0, 4], np.int64)) == lib.WB_ERR_BAD_SIZE  # the sentence ends past the ids
    long = np.zeros(lib.WB_W2V_MAX_SENTENCE + 1, np.int32)
    assert call(long, np.array([0, len(long)], np.int64)) == lib.WB_ERR_BAD_SIZE


def test_strings_for_sentences_and_windows_past_a_sentence_are_refused():
    """Review: a list of strings trained letter by letter; a window of 10^9 looped 2·10^9 times per word in C."""
    with pytest.raises(EngineError, match="list of word strings"):
        word2vec.train(["the cat sat"] * 20, min_count=1, backend="reference")
    with pytest.raises(EngineError, match="list of word strings"):
        word2vec.train([["the", 3]] * 20, min_count=1, backend="reference")
    with pytest.raises(EngineError, match="window must be at most 1000"):
        word2vec.train([["a", "b"]] * 20, min_count=1, window=10**9)
    with pytest.raises(EngineError, match="negative at most 1000"):
        word2vec.train([["a", "b"]] * 20, min_count=1, negative=10**9)
