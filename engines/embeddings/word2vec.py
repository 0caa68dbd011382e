"""word2vec: skip-gram and CBOW with negative sampling, as the original word2vec.c trains them.

Mikolov et al., 2013, "Efficient Estimation of Word Representations in
Vector Space" and "Distributed Representations of Words and Phrases and
their Compositionality". Two trainers, one algorithm:
    reference  NumPy, one word at a time: the code a lesson explains.
    native     native/src/wb_word2vec.c, Hogwild threads as word2vec.c.
Both draw from the same random stream (word2vec.c's LCG, next = next *
25214903917 + 11 mod 2^64; thread t starts at seed + 1 + t, the initial
vectors come from the stream starting at seed) in the same order, so with
threads=1 they agree step for step.

One training step, for a centre word o at position pos of a sentence
(after subsampling):
    b = next % window                    the dynamic window: span window - b
    skip-gram: for each context word c:  h = syn0[c], targets o and `negative`
                                         noise words drawn from the table
    CBOW:      h = mean of syn0[c] over the context, same targets
    for each target u with label l (1 for o, 0 for noise):
        g = alpha (l - sigma(h . u))     minus alpha times dL/d(h . u) of
        err += g u;  u += g h            L = -log sigma(h.u_o) - sum log sigma(-h.u_n)
    skip-gram: syn0[c] += err            CBOW: every context row += err
alpha falls linearly from alpha to alpha * 1e-4 over epochs x corpus words
(by a sentence's position). Example::

    >>> model = train(corpus_sentences(limit=200_000), dim=50, epochs=1)
    >>> model.vectors().nearest("king", 5)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from workbench_engines.backends import resolve
from workbench_engines.embeddings.vectors import WordVectors
from workbench_engines.embeddings.w2v_data import (
    MAX_SENTENCE,
    Encoded,
    Vocab,
    build_vocab,
    corpus_sentences,
    encode,
    keep_thresholds,
    noise_table,
)
from workbench_engines.errors import EngineError
from workbench_engines.nativelib import check_status, check_threads, native
import itertools

__all__ = [
    "Word2VecConfig",
    "Word2VecModel",
    "build_vocab",
    "corpus_sentences",
    "init_vectors",
    "lcg_stream",
    "sgns_gradients",
    "sgns_loss",
    "train",
    "train_plays",
]

BACKENDS = ("native", "reference")
MODES = ("skipgram", "cbow")
LCG_A, LCG_C, MASK64 = 25214903917, 11, (1 << 64) - 1
MAX_EXP = 6.0
"""|h . u| beyond this saturates sigma to 0 or 1 (word2vec.c's MAX_EXP)."""
MIN_ALPHA_FRACTION = 1e-4
MAX_NEGATIVE = 1000
"""The most noise words per target (WB_W2V_MAX_NEGATIVE)."""
Progress = Callable[[float, str], None]
EpochHook = Callable[[int, "Word2VecModel"], None]
"""on_epoch(epochs done, the model so far): see train."""


@dataclass(frozen=True)
class Word2VecConfig:
    """Hyperparameters: word2vec.c's and gensim's skip-gram settings (both tools default to CBOW, and word2vec.c
    to alpha 0.05 for it), except table_size: word2vec.c uses 10^8."""

    mode: str = "skipgram"
    dim: int = 100
    window: int = 5
    negative: int = 5
    sample: float = 1e-3
    min_count: int = 5
    epochs: int = 5
    alpha: float = 0.025
    seed: int = 1
    table_size: int = 10_000_000
    chunk_words: int = 100_000
    """Corpus words per native call; progress is reported (and cancelling checked) between chunks."""

    def checked(self) -> Word2VecConfig:
        """Self, or EngineError naming the bad field."""
        if self.mode not in MODES:
            raise EngineError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name, low in (("dim", 1), ("window", 1), ("negative", 1), ("min_count", 1), ("epochs", 1),
                          ("table_size", 1), ("chunk_words", 1), ("seed", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise EngineError(f"{name} must be an int >= {low}, got {value!r}")
        if self.window > MAX_SENTENCE or self.negative > MAX_NEGATIVE:
            raise EngineError(f"window must be at most {MAX_SENTENCE} (no sentence is longer) and negative at most "
                              f"{MAX_NEGATIVE}, got window={self.window}, negative={self.negative}")
        if self.seed > MASK64 - 1024:
            raise EngineError("seed must fit in 64 bits")
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha > 0):
            raise EngineError(f"alpha must be a finite positive number, got {self.alpha!r}")
        if not (isinstance(self.sample, (int, float)) and math.isfinite(self.sample) and self.sample >= 0):
            raise EngineError(f"sample must be a finite number >= 0, got {self.sample!r}")
        return self


@dataclass
class Word2VecModel:
    """A trained model: the vocabulary, input vectors syn0 (the embeddings) and output vectors syn1neg."""

    vocab: Vocab
    syn0: np.ndarray  # (V, D) float32
    syn1neg: np.ndarray  # (V, D) float32
    config: Word2VecConfig
    backend: str = "native"
    threads: int = 1
    words_seen: int = 0
    """Corpus words read over all epochs (before subsampling)."""
    words_trained: int = 0
    """Words kept after subsampling, over all epochs: the centre words that were trained."""
    seconds: float = 0.0
    rng: list[int] = field(default_factory=list)

    def vectors(self) -> WordVectors:
        """The input vectors as WordVectors (rows most frequent first)."""
        return WordVectors(self.vocab.words, self.syn0)

    @property
    def words_per_second(self) -> float:
        """Corpus words read per second of training (word2vec.c's and gensim's "words/s")."""
        return self.words_seen / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------- random numbers and initial vectors

def lcg_next(state: int) -> int:
    """word2vec.c's generator: next = next * 25214903917 + 11 (mod 2^64)."""
    return (state * LCG_A + LCG_C) & MASK64


def lcg_stream(state: int, n: int) -> np.ndarray:
    """The next n states after ``state``, (n,) uint64, computed at once: x_k = a^k x_0 + c (1 + a + ... + a^(k-1))."""
    powers = np.cumprod(np.full(n, LCG_A, dtype=np.uint64))  # a^1 .. a^n, wrapping mod 2^64
    sums = np.cumsum(np.concatenate((np.ones(1, dtype=np.uint64), powers[:-1])))  # 1 + a + ... + a^(k-1)
    return powers * np.uint64(state) + sums * np.uint64(LCG_C)


def init_vectors(vocab_size: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """word2vec.c's start: syn0 uniform in [-0.5/dim, 0.5/dim) from the LCG, syn1neg zero. Both (V, D) float32."""
    states = lcg_stream(seed, vocab_size * dim)
    syn0 = (((states & np.uint64(0xFFFF)).astype(np.float32) / np.float32(65536)) - np.float32(0.5)) / np.float32(dim)
    return syn0.reshape(vocab_size, dim), np.zeros((vocab_size, dim), dtype=np.float32)


# ---------------------------------------------------------------- the loss, for the gradient check

def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def sgns_loss(h: np.ndarray, outputs: np.ndarray, labels: np.ndarray) -> float:
    """L = -sum_k [l_k log sigma(h.u_k) + (1 - l_k) log sigma(-h.u_k)] for input h (D,), outputs (K, D)."""
    f = outputs @ h  # (K,)
    return float(-np.sum(labels * _log_sigmoid(f) + (1 - labels) * _log_sigmoid(-f)))


def sgns_gradients(h: np.ndarray, outputs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dL/dh (D,), dL/du (K, D)): dL/df_k = sigma(f_k) - l_k, f_k = h . u_k."""
    f = outputs @ h  # (K,)
    delta = 1.0 / (1.0 + np.exp(-f)) - labels  # (K,)
    return delta @ outputs, delta[:, None] * h[None, :]


# ---------------------------------------------------------------- the NumPy reference trainer

def train_targets_reference(syn1neg: np.ndarray, h: np.ndarray, word: int, alpha: np.float32, negative: int,
                            table: np.ndarray, state: int) -> tuple[np.ndarray, int]:
    """One input h against the true word and ``negative`` noise draws; updates syn1neg rows in place.

    Returns (err, state): err (D,) is what the input row(s) must add, -alpha dL/dh.
    """
    err = np.zeros_like(h)  # (D,)
    one = np.float32(1)
    for d in range(negative + 1):
        target, label = word, one
        if d > 0:
            state = lcg_next(state)
            target = int(table[(state >> 16) % len(table)])
            if target == word:
                continue
            label = np.float32(0)
        u = syn1neg[target]  # (D,) a view: updated in place
        f = np.float32(h @ u)
        if f > MAX_EXP:
            g = (label - one) * alpha
        elif f < -MAX_EXP:
            g = label * alpha
        else:
            g = (label - one / (one + np.exp(-f))) * alpha
        err += g * u
        u += g * h
    return err, state


def chunk_alpha(alpha: float, position: int, words_total: int) -> np.float32:
    """The learning rate of a sentence starting at corpus ``position`` (over all epochs): linear decay."""
    rate = np.float32(alpha * (1.0 - position / (words_total + 1.0)))
    return max(rate, np.float32(alpha * MIN_ALPHA_FRACTION))


def train_chunk_reference(syn0: np.ndarray, syn1neg: np.ndarray, state: int, data: Encoded, first: int, last: int,
                          keep: np.ndarray | None, table: np.ndarray, config: Word2VecConfig, words_before: int,
                          words_total: int) -> tuple[int, int]:
    """Train sentences first..last-1 on one thread, exactly as wb_word2vec.c does. Returns (state, words kept)."""
    window, kept = config.window, 0
    base = int(data.starts[first])
    for s in range(first, last):
        alpha = chunk_alpha(config.alpha, words_before + int(data.starts[s]) - base, words_total)
        sentence = []
        for w in data.ids[data.starts[s]:data.starts[s + 1]].tolist():
            if keep is not None:
                state = lcg_next(state)
                if keep[w] < np.float32((state & 0xFFFF) / 65536):
                    continue  # subsampled away
            sentence.append(w)
        kept += len(sentence)
        for pos, word in enumerate(sentence):
            state = lcg_next(state)
            b = state % window
            context = [sentence[c] for c in range(pos - window + b, pos + window - b + 1)
                       if c != pos and 0 <= c < len(sentence)]
            if config.mode == "skipgram":
                for c in context:
                    err, state = train_targets_reference(syn1neg, syn0[c], word, alpha, config.negative, table, state)
                    syn0[c] += err
            elif context:
                h = np.zeros(syn0.shape[1], dtype=np.float32)
                for c in context:
                    h += syn0[c]
                h /= np.float32(len(context))  # (D,) the mean of the context
                err, state = train_targets_reference(syn1neg, h, word, alpha, config.negative, table, state)
                for c in context:
                    syn0[c] += err
    return state, kept


# ---------------------------------------------------------------- the C trainer

def _train_chunk_native(syn0: np.ndarray, syn1neg: np.ndarray, rng: np.ndarray, data: Encoded, first: int,
                        last: int, keep: np.ndarray | None, table: np.ndarray, config: Word2VecConfig,
                        words_before: int, words_total: int, threads: int) -> int:
    """Train sentences first..last-1 in C on ``threads`` Hogwild threads (rng: (threads,) uint64). Returns words kept.

    Private: ``train`` builds every array (float32 (V, D) matrices, int32 ids, one rng state per thread) and
    checks the settings before this hands pointers to C.
    """
    module = native()
    ffi, lib = module.ffi, module.lib
    kept = ffi.new("int64_t *")
    starts = data.starts[first:last + 1]
    status = lib.wb_word2vec_train_f32(
        ffi.from_buffer("float[]", syn0, require_writable=True),
        ffi.from_buffer("float[]", syn1neg, require_writable=True),
        ffi.from_buffer("uint64_t[]", rng, require_writable=True), kept,
        ffi.from_buffer("int32_t[]", data.ids), len(data.ids), ffi.from_buffer("int64_t[]", starts), last - first,
        ffi.NULL if keep is None else ffi.from_buffer("float[]", keep), ffi.from_buffer("int32_t[]", table),
        len(table), syn0.shape[0], syn0.shape[1], config.window, config.negative, int(config.mode == "skipgram"),
        float(config.alpha), words_before, words_total, threads)
    check_status("wb_word2vec_train_f32", status)
    return int(kept[0])


# ---------------------------------------------------------------- training

def _chunks(starts: np.ndarray, chunk_words: int) -> list[tuple[int, int]]:
    """Sentence ranges of about chunk_words words each (a sentence is never split)."""
    bounds = np.searchsorted(starts, np.arange(0, starts[-1], chunk_words), side="left")
    bounds = sorted(set(bounds.tolist()) | {len(starts) - 1})
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _threads(threads: object, backend: str) -> int:
    try:
        n = check_threads(threads)
    except (TypeError, ValueError) as exc:
        raise EngineError(str(exc)) from exc
    if backend == "reference" and n != 1:
        raise EngineError(f"the reference trainer runs one thread; got threads={n}")
    return n


def train(sentences: Sequence[Sequence[str]], config: Word2VecConfig | None = None, *, backend: str = "auto",
          threads: int | None = None, progress: Progress | None = None, on_epoch: EpochHook | None = None,
          **overrides: object) -> Word2VecModel:
    """Train word2vec on tokenised sentences.

    Args:
        sentences: lists of words (see w2v_data.tokenize / corpus_sentences).
        config: hyperparameters; keyword ``overrides`` replace single fields (``dim=50``).
        backend: "native" (C, Hogwild threads), "reference" (NumPy, one thread) or "auto".
        threads: native threads (None: this process's CPUs); the reference takes 1 only.
        progress: called as progress(fraction done, what) between chunks; an exception it raises
            stops training and propagates (the caller's cancel).
        on_epoch: called as on_epoch(epochs done, model so far) after each epoch, with copies of the
            vectors (a lab shows the neighbours forming).
    Raises:
        EngineError: bad hyperparameters, an empty corpus, a vocabulary empty after min_count.
    """
    config = (config or Word2VecConfig())
    if overrides:
        unknown = set(overrides) - set(Word2VecConfig.__dataclass_fields__)
        if unknown:
            raise EngineError(f"unknown word2vec settings: {', '.join(sorted(unknown))}")
        config = dataclasses.replace(config, **overrides)  # type: ignore[arg-type]
    config = config.checked()
    choice = resolve(backend, offers=BACKENDS)
    n_threads = _threads(1 if threads is None and choice.name == "reference" else threads, choice.name)
    vocab = build_vocab(sentences, config.min_count)
    data = encode(sentences, vocab, MAX_SENTENCE)
    keep = keep_thresholds(vocab.counts, config.sample)
    table = noise_table(vocab.counts, config.table_size)
    syn0, syn1neg = init_vectors(len(vocab), config.dim, config.seed)
    rng = np.array([config.seed + 1 + t for t in range(n_threads)], dtype=np.uint64)
    words_total = config.epochs * data.words
    chunks = _chunks(data.starts, config.chunk_words)
    seen = trained = 0
    seconds = 0.0

    def model(copy: bool) -> Word2VecModel:
        vectors = (syn0.copy(), syn1neg.copy()) if copy else (syn0, syn1neg)
        return Word2VecModel(vocab, *vectors, config, choice.name, n_threads, seen, trained, seconds,
                             [int(x) for x in rng])

    for epoch in range(config.epochs):
        for first, last in chunks:
            if progress is not None:
                progress(seen / words_total, f"epoch {epoch + 1}/{config.epochs}")
            words_before = epoch * data.words + int(data.starts[first])
            began = time.perf_counter()
            if choice.name == "native":
                trained += _train_chunk_native(syn0, syn1neg, rng, data, first, last, keep, table, config,
                                               words_before, words_total, n_threads)
            else:
                state, kept = train_chunk_reference(syn0, syn1neg, int(rng[0]), data, first, last, keep, table,
                                                    config, words_before, words_total)
                rng[0], trained = np.uint64(state), trained + kept
            seconds += time.perf_counter() - began
            seen += int(data.starts[last] - data.starts[first])
        if on_epoch is not None:
            on_epoch(epoch + 1, model(copy=True))
    if progress is not None:
        progress(1.0, "done")
    return model(copy=False)


def train_plays(config: Word2VecConfig | None = None, *, limit: int | None = None, backend: str = "auto",
                threads: int | None = None, progress: Progress | None = None, on_epoch: EpochHook | None = None,
                **overrides: object) -> Word2VecModel:
    """Train on the plays (workbench_engines.corpus's default corpus; ``limit``: its first bytes)."""
    return train(corpus_sentences(None, limit), config, backend=backend, threads=threads, progress=progress,
                 on_epoch=on_epoch, **overrides)
