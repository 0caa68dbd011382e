"""Cases for ``workbench bench embeddings``: word2vec skip-gram training on the plays, ours (C) against gensim.

Both sides train skip-gram with negative sampling on the same tokenised
sentences (the plays, 839,000 words; w2v_data's tokeniser) with the same
hyperparameters: dim 100, window 5, negative 5, sample 1e-3, min_count 5,
alpha 0.025 falling linearly to alpha * 1e-4, EPOCHS epochs. One case per
thread count, 1 and 2: our ``threads=`` and gensim's ``workers=``. A timed run
is end to end, as a user calls it: vocabulary, tables, initial vectors and
training (our ``train``; gensim's ``Word2Vec(sentences, ...)``); the rate
is corpus words x epochs over that time. The note also gives each side's
words/s inside its training loop alone (our model.seconds, gensim's
total_train_time).

The vectors differ by randomness, so they are validated by a sanity floor,
not equality, against the case's reference (gensim where installed):
  - neighbour overlap: the mean share of the 10 nearest neighbours (among the
    3,000 most frequent words) that the two models agree on, over the 200 most
    frequent words, at least OVERLAP_OVER_CHANCE times what random vectors
    would share (10 / 3,000);
  - analogy accuracy on questions-words (3CosAdd, gensim's counting) at least
    half the reference's, less two standard errors.
Garbage vectors fail both. The accuracy of each side is in the note.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from workbench_engines.backends import available, unavailable_reason
from workbench_engines.embeddings.vectors import AnalogyResult, WordVectors
from workbench_engines.errors import EngineError
from workbench_engines.profiling.bench import Case, Contender
from workbench_engines.profiling.profile import Profile

DIM, WINDOW, NEGATIVE, SAMPLE, MIN_COUNT, ALPHA = 100, 5, 5, 1e-3, 5, 0.025
MIN_ALPHA_FRACTION = 1e-4
"""word2vec.c's floor on the decaying rate; gensim's min_alpha is set to the same alpha * 1e-4."""
EPOCHS, QUICK_EPOCHS = 2, 1
QUICK_BYTES = 150_000
"""--quick trains on the plays' first 150,000 bytes (24,364 words, 635 of them in the vocabulary): the neighbour check
still clears its floor about threefold, in a second for all four trainings."""
THREADS = (1, 2)
SEED = 1
NEIGHBOURS, AMONG, PROBES = 10, 3_000, 200
OVERLAP_OVER_CHANCE = 3.0
GENSIM_INSTALL = "pip install gensim==4.4.0"


def gensim_module() -> Any | None:
    """gensim's word2vec module, or None where gensim is not installed (its rows are then left out)."""
    try:
        return importlib.import_module("gensim.models.word2vec")
    except ImportError:
        return None


@dataclass
class Trained:
    """One run's vectors, the corpus words it read (x epochs), and the seconds its training loop took."""

    vectors: WordVectors
    words: int
    loop_seconds: float
    analogies_file: str = field(repr=False, default="")

    @cached_property
    def analogies(self) -> AnalogyResult:
        return self.vectors.evaluate_analogies(self.analogies_file)

    def nearest(self, word: str) -> set[str]:
        """The NEIGHBOURS nearest words to word among the AMONG most frequent (word itself excluded)."""
        unit = self.vectors.unit[:AMONG]  # (A, D)
        scores = unit @ self.vectors.unit[self.vectors.row(word)]  # (A,)
        order = np.argsort(-scores, kind="stable")
        return set([w for w in (self.vectors.words[i] for i in order[:NEIGHBOURS + 1]) if w != word][:NEIGHBOURS])


def neighbour_overlap(a: Trained, b: Trained) -> float:
    """Mean share of the NEIGHBOURS nearest words a and b agree on, over a's PROBES most frequent words."""
    words = [w for w in a.vectors.words[:PROBES] if w in b.vectors]
    shares = [len(a.nearest(w) & b.nearest(w)) / NEIGHBOURS for w in words]
    return float(np.mean(shares)) if shares else 0.0


def check(expected: Trained, got: Trained) -> str | None:
    """The sanity floor of the module docstring: None when got's vectors are plausibly trained."""
    chance = NEIGHBOURS / min(AMONG, len(expected.vectors))
    overlap = neighbour_overlap(got, expected)
    if overlap < OVERLAP_OVER_CHANCE * chance:
        return (f"neighbour overlap {overlap:.3f} with the reference, "
                f"below {OVERLAP_OVER_CHANCE:g}x chance ({chance:.3f})")
    p, n = expected.analogies.accuracy, expected.analogies.total.total
    floor = p / 2 - 2 * math.sqrt(p * (1 - p) / n) if n else 0.0
    if got.analogies.accuracy < floor:
        return f"analogy accuracy {got.analogies.accuracy:.4f}, below the floor {floor:.4f} (reference {p:.4f})"
    return None


def describe(out: Trained) -> str:
    result = out.analogies
    loop = out.words / out.loop_seconds
    return f"analogies {100 * result.accuracy:.2f}% of {result.total.total:,}; loop {loop:,.0f} words/s"


def figures(out: Trained) -> dict[str, float]:
    return {"analogy accuracy": out.analogies.accuracy, "loop words/s": out.words / out.loop_seconds}


def train_ours(sentences: list[list[str]], threads: int, epochs: int, seed: int, analogies_file: str) -> Trained:
    """Our C trainer (Hogwild on ``threads``) with the module's hyperparameters."""
    from workbench_engines.embeddings.word2vec import train

    model = train(sentences, backend="native", threads=threads, mode="skipgram", dim=DIM, window=WINDOW,
                  negative=NEGATIVE, sample=SAMPLE, min_count=MIN_COUNT, alpha=ALPHA, epochs=epochs, seed=seed)
    words = sum(map(len, sentences)) * epochs
    return Trained(model.vectors(), words, model.seconds, analogies_file)


def train_gensim(sentences: list[list[str]], threads: int, epochs: int, seed: int, analogies_file: str) -> Trained:
    """gensim's Word2Vec (``workers=threads``) with the same hyperparameters; gensim must be installed."""
    gensim = gensim_module()
    if gensim is None:
        raise EngineError(f"gensim is not installed: {GENSIM_INSTALL}")
    model = gensim.Word2Vec(sentences, vector_size=DIM, window=WINDOW, negative=NEGATIVE, hs=0, sg=1, sample=SAMPLE,
                            min_count=MIN_COUNT, alpha=ALPHA, min_alpha=ALPHA * MIN_ALPHA_FRACTION, epochs=epochs,
                            workers=threads, seed=seed)
    wv = model.wv
    words = sum(map(len, sentences)) * epochs
    return Trained(WordVectors(list(wv.index_to_key), wv.vectors), words, model.total_train_time, analogies_file)


def cases(quick: bool = False) -> list[Case]:
    """One case per thread count: ours (C, Hogwild) and gensim (where installed) on the same sentences."""
    from workbench_engines.embeddings.evaldata import analogies_path
    from workbench_engines.embeddings.word2vec import corpus_sentences

    if not available("native"):
        raise EngineError(f"bench embeddings races our C trainer, which can't run here: {unavailable_reason('native')}")
    sentences = corpus_sentences(None, QUICK_BYTES if quick else None)
    epochs = QUICK_EPOCHS if quick else EPOCHS
    path = str(analogies_path())
    words = sum(map(len, sentences)) * epochs  # the corpus words read, both sides' count
    gensim = gensim_module()
    out = []
    for threads in THREADS:
        def ours(threads: int = threads) -> Trained:
            return train_ours(sentences, threads, epochs, SEED, path)

        contenders = [Contender("ours", ours, "native")]
        if gensim is not None:
            def theirs(threads: int = threads) -> Trained:
                return train_gensim(sentences, threads, epochs, SEED, path)

            contenders.append(Contender("gensim", theirs, "gensim"))
        name = f"{threads} thread{'s' * (threads > 1)}, {epochs} x {words // epochs:,} words"
        out.append(Case(name, contenders, check, reference=contenders[-1].name, baselines=("gensim",), repeats=3,
                        warmup=0, describe=describe, figures=figures, interleave=True,
                        per_run=(float(words), "words")))
    return out


def summary(rows: list[Profile]) -> str:
    """The goal beside what this run measured (end to end, and the training loops alone), and what was left out."""
    lines = []
    by_case: dict[str, dict[str, Profile]] = {}
    for row in rows:
        by_case.setdefault(row.case, {})[row.name] = row
    for case, pair in by_case.items():
        if "ours" in pair and "gensim" in pair:
            ours, theirs = pair["ours"], pair["gensim"]
            loops = ours.extra["loop words/s"] / theirs.extra["loop words/s"]
            accuracy = [f"{100 * row.extra['analogy accuracy']:.2f}%" for row in (ours, theirs)]
            lines.append(f"{case.split(', ')[0]}: ours {ours.ratios['gensim']:.2f}x gensim end to end, "
                         f"{loops:.2f}x in the training loops alone (goal >= 1.0x at equal quality); analogies "
                         f"{accuracy[0]} vs {accuracy[1]} (one seed)")
    if lines:
        lines.append("One seed's accuracy moves with the seed: --quality compares both trainers over several seeds.")
    if gensim_module() is None:
        lines.append(f"gensim not installed ({GENSIM_INSTALL}): its rows are left out")
    return "\n".join(lines)
