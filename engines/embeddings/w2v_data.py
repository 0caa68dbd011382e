"""The data side of word2vec: sentences from a corpus, the vocabulary, subsampling thresholds, the noise table.

Tokeniser (documented because the vectors depend on it): the text is
lower-cased; a sentence is a paragraph (lines between blank lines) with
Markdown headings ('#'), speaker names ('**NAME**') and stage directions
('_Exit_') left out; a word is a run of ASCII letters, with inner
apostrophes kept ("woo'd", "o'er"). Everything else separates words.

Vocabulary order: count descending, ties broken by the word's code points
ascending, so row 0 is the most frequent word and the order never depends
on dict iteration.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench_engines import corpus
from workbench_engines.errors import EngineError

WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
MAX_SENTENCE = 1000
"""word2vec.c's MAX_SENTENCE_LENGTH; longer sentences are cut into pieces of this many words (WB_W2V_MAX_SENTENCE)."""
NOISE_POWER = 0.75


def tokenize(text: str) -> list[list[str]]:
    """Sentences of lower-cased words (see the module docstring for the rules)."""
    sentences: list[list[str]] = []
    words: list[str] = []
    for line in text.lower().splitlines():
        stripped = line.strip()
        if not stripped:
            if words:
                sentences.append(words)
                words = []
            continue
        if stripped.startswith(("#", "**", "_")):
            continue
        words.extend(WORD.findall(stripped))
    if words:
        sentences.append(words)
    return sentences


def corpus_sentences(path: str | Path | None = None, limit: int | None = None) -> list[list[str]]:
    """Sentences of a corpus (the plays by default; ``limit``: its first bytes only), via workbench_engines.corpus."""
    sentences = tokenize(corpus.read_text(path, limit))
    if not sentences:
        raise EngineError(f"{path or 'the default corpus'}: no words to train on")
    return sentences


@dataclass(frozen=True)
class Vocab:
    """Words kept (count >= min_count), most frequent first, with their counts."""

    words: list[str]
    counts: np.ndarray  # (V,) int64
    index: dict[str, int]

    def __len__(self) -> int:
        return len(self.words)

    @property
    def total(self) -> int:
        """N: the corpus words that are in the vocabulary (word2vec.c's train_words)."""
        return int(self.counts.sum())


def build_vocab(sentences: Iterable[Sequence[str]], min_count: int = 5) -> Vocab:
    """Count words; keep those seen min_count times or more; order by count descending, then word ascending."""
    if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
        raise EngineError(f"min_count must be a positive int, got {min_count!r}")
    sentences = list(sentences)  # read twice: checked, then counted
    for sentence in sentences:
        if isinstance(sentence, (str, bytes)) or not all(isinstance(word, str) for word in sentence):
            raise EngineError("each sentence must be a list of word strings (see tokenize), got "
                              f"{type(sentence).__name__} {str(sentence)[:40]!r}")
    counts = Counter(word for sentence in sentences for word in sentence)
    if not counts:
        raise EngineError("the corpus is empty: no words to build a vocabulary from")
    kept = sorted(((w, c) for w, c in counts.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0]))
    if not kept:
        raise EngineError(f"no word occurs {min_count} times or more ({len(counts)} distinct words); "
                          "lower min_count or use a larger corpus")
    words = [w for w, _ in kept]
    return Vocab(words, np.array([c for _, c in kept], dtype=np.int64), {w: i for i, w in enumerate(words)})


@dataclass(frozen=True)
class Encoded:
    """The corpus as vocabulary ids: sentence s is ids[starts[s]:starts[s + 1]]."""

    ids: np.ndarray  # (N,) int32
    starts: np.ndarray  # (S + 1,) int64

    @property
    def sentences(self) -> int:
        return len(self.starts) - 1

    @property
    def words(self) -> int:
        return len(self.ids)


def encode(sentences: Iterable[Sequence[str]], vocab: Vocab, max_sentence: int = MAX_SENTENCE) -> Encoded:
    """Ids of in-vocabulary words (others dropped, as word2vec.c drops them on reading), sentences cut at
    ``max_sentence`` words, empty ones left out."""
    ids: list[int] = []
    starts = [0]
    index = vocab.index
    for sentence in sentences:
        row = [index[w] for w in sentence if w in index]
        for at in range(0, len(row), max_sentence):
            ids.extend(row[at:at + max_sentence])
            starts.append(len(ids))
    if len(ids) == 0:
        raise EngineError("no in-vocabulary words in the corpus")
    return Encoded(np.array(ids, dtype=np.int32), np.array(starts, dtype=np.int64))


def keep_thresholds(counts: np.ndarray, sample: float) -> np.ndarray | None:
    """word2vec.c's subsampling: word w is kept when (sqrt(f/(tN)) + 1) tN / f >= u, u ~ U[0, 1).

    f is w's count, N the corpus words, t = ``sample``. With s = sqrt(f/(tN))
    the threshold is (s + 1) / s^2, at least 1 exactly when s <= phi = (1 + sqrt 5)/2:
    words seen at most phi^2 t N ~ 2.62 t N times are always kept (the paper's
    1 - sqrt(t/p) discard rule keeps only those up to t N). A word making up a
    share p >> t of the corpus is kept with probability about sqrt(t / p).
    ``sample`` = 0 turns it off (None).
    Returns (V,) float32.
    """
    if not sample > 0:
        return None
    tn = float(sample) * float(counts.sum())
    f = counts.astype(np.float64)
    return ((np.sqrt(f / tn) + 1.0) * tn / f).astype(np.float32)


def noise_table(counts: np.ndarray, size: int, power: float = NOISE_POWER) -> np.ndarray:
    """The unigram^0.75 noise distribution as a table of ``size`` word ids (Mikolov et al., 2013, sec. 2.2).

    Word w fills a share count_w^0.75 / sum count^0.75 of the slots, in
    vocabulary order: slot j holds the first word whose cumulative share
    exceeds (j + 0.5) / size. A uniform slot then draws from the noise
    distribution in O(1). Returns (size,) int32.
    """
    weights = counts.astype(np.float64) ** power
    cumulative = np.cumsum(weights / weights.sum())  # (V,)
    slots = (np.arange(size, dtype=np.float64) + 0.5) / size
    # Slot j holds #{w : cumulative[w] <= slots[j]}, so word w's first slot is #{j : slots[j] < cumulative[w]}:
    # V binary searches into the slots instead of one per slot (the same table, 10x sooner).
    first = np.searchsorted(slots, cumulative, side="left")  # (V,)
    runs = np.diff(np.concatenate(([0], first, [size])))  # (V + 1,) slots per word, the last run past every word
    table = np.repeat(np.arange(len(counts) + 1, dtype=np.int32), runs)
    return np.minimum(table, len(counts) - 1)
