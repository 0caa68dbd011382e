"""``workbench bench embeddings --quality``: is the race run at equal quality? Both trainers over several seeds.

The race trains each side once, with one seed, and word2vec's vectors (and
so its analogy accuracy) move with the seed: on the plays at the race's
settings, gensim's questions-words accuracy ranged 1.70-2.11% over seeds
1-6, ours 1.70-1.74%. One seed's gap says little. This table trains ours
(C) and gensim with the race's hyperparameters (bench.py) on each of SEEDS
seeds, at each thread count, and scores every model on three test sets:
    questions-words   analogy accuracy, 3CosAdd, gensim's counting;
    WordSim-353       Spearman correlation of cosines with human relatedness;
    SimLex-999        Spearman correlation with human similarity.
A row gives the mean, the sample standard deviation and the range over the
seeds. The verdict compares the means: the difference against its standard
error, sqrt(s_ours^2 / n + s_gensim^2 / n). "equal" means within two
standard errors; a difference smaller than one test item counts as none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workbench_engines.embeddings import bench
from workbench_engines.errors import EngineError

SEEDS, QUICK_SEEDS = 5, 2
VERDICT_SE = 2.0
"""A difference of means within this many standard errors is reported as equal quality."""
METRICS = ("analogies", "WordSim-353", "SimLex-999")


@dataclass(frozen=True)
class Spread:
    """One metric of one trainer over the seeds: its values in seed order."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sd(self) -> float:
        """Sample standard deviation (0 for one seed)."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0


@dataclass(frozen=True)
class MetricRow:
    """One metric at one thread count: ours beside gensim, and the verdict on their means."""

    metric: str
    items: int
    """Questions or word pairs scored (both sides share the vocabulary, so the same items)."""
    ours: Spread
    gensim: Spread

    @property
    def difference(self) -> float:
        return self.ours.mean - self.gensim.mean

    @property
    def standard_error(self) -> float:
        n = len(self.ours.values)
        return math.sqrt((self.ours.sd ** 2 + self.gensim.sd ** 2) / n)

    @property
    def verdict(self) -> str:
        """"equal", or which side is better and by how many standard errors."""
        tiny = 1.0 / self.items if self.metric == "analogies" else 1e-3
        if abs(self.difference) < tiny:
            return "equal"
        se = self.standard_error
        if se > 0 and abs(self.difference) <= VERDICT_SE * se:
            return f"equal ({abs(self.difference) / se:.1f} s.e.)"
        side = "ours" if self.difference > 0 else "gensim"
        return f"{side} better ({abs(self.difference) / se:.1f} s.e.)" if se > 0 else f"{side} better"


@dataclass(frozen=True)
class SeedQualityTable:
    """Every metric at one thread count, over the same seeds for both trainers."""

    threads: int
    seeds: tuple[int, ...]
    epochs: int
    words: int
    """Corpus words per epoch."""
    rows: list[MetricRow]

    def as_dict(self) -> dict:
        return {"threads": self.threads, "seeds": list(self.seeds), "epochs": self.epochs, "words": self.words,
                "rows": [{"metric": r.metric, "items": r.items, "ours": list(r.ours.values),
                          "gensim": list(r.gensim.values), "difference": r.difference,
                          "standard_error": r.standard_error, "verdict": r.verdict} for r in self.rows]}


def scores(trained: bench.Trained) -> dict[str, tuple[float, int]]:
    """(score, items scored) per metric for one model."""
    from workbench_engines.embeddings.evaldata import simlex999_path, wordsim353_path

    analogies = trained.analogies
    out = {"analogies": (analogies.accuracy, analogies.total.total)}
    for name, path in (("WordSim-353", wordsim353_path()), ("SimLex-999", simlex999_path())):
        pairs = trained.vectors.evaluate_pairs(path)
        out[name] = (pairs.spearman, pairs.pairs)
    return out


def quality_tables(*, quick: bool = False, progress: Callable[[float, str], None] | None = None
                   ) -> list[SeedQualityTable]:
    """One table per thread count of the race (bench.THREADS): ours and gensim on seeds 1..SEEDS.

    Raises:
        EngineError: gensim is not installed (there is nothing to compare against) or the C build is missing.
    """
    from workbench_engines.backends import available, unavailable_reason
    from workbench_engines.embeddings.evaldata import analogies_path
    from workbench_engines.embeddings.word2vec import corpus_sentences

    gensim = bench.gensim_module()
    if gensim is None:
        raise EngineError(f"the quality tables compare against gensim, which is not installed: {bench.GENSIM_INSTALL}")
    if not available("native"):
        raise EngineError(f"bench embeddings trains our C word2vec, which can't run here: {unavailable_reason('native')}")
    sentences = corpus_sentences(None, bench.QUICK_BYTES if quick else None)
    epochs = bench.QUICK_EPOCHS if quick else bench.EPOCHS
    seeds = tuple(range(1, 1 + (QUICK_SEEDS if quick else SEEDS)))
    path = str(analogies_path())
    words = sum(map(len, sentences))
    runs = len(bench.THREADS) * len(seeds) * 2
    done = 0
    tables = []
    for threads in bench.THREADS:
        measured: dict[str, list[dict[str, tuple[float, int]]]] = {"ours": [], "gensim": []}
        for seed in seeds:
            for side, train in (("ours", bench.train_ours), ("gensim", bench.train_gensim)):
                if progress is not None:
                    progress(done / runs, f"{threads} thread(s), seed {seed}: {side}")
                measured[side].append(scores(train(sentences, threads, epochs, seed, path)))
                done += 1
        rows = [MetricRow(metric, measured["ours"][0][metric][1],
                          Spread(tuple(run[metric][0] for run in measured["ours"])),
                          Spread(tuple(run[metric][0] for run in measured["gensim"])))
                for metric in METRICS]
        tables.append(SeedQualityTable(threads, seeds, epochs, words, rows))
    if progress is not None:
        progress(1.0, "done")
    return tables
