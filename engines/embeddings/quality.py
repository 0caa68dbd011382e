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
seeds. The verdict is Welch's t-test on the two means at the 5% level: the
difference over its standard error, t = d / sqrt(s_ours^2 / n + s_gensim^2 / n),
against Student's t at the Welch-Satterthwaite degrees of freedom (about 2.3
for five seeds a side). "no clear difference" is the seeds' answer to "equal
quality"; a side is called better only past that bar. Differences below one
question (analogies) or 0.001 (a Spearman correlation) count as none, and one
seed, no spread at all or a NaN leaves the verdict undetermined.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workbench_engines.embeddings import bench
from workbench_engines.errors import EngineError

SEEDS, QUICK_SEEDS = 5, 2
LEVEL = 0.05
"""Two-sided level of the Welch t-test behind a verdict."""
TINY_CORRELATION = 1e-3
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
        """sqrt(s_ours^2 / n + s_gensim^2 / n): the standard error of the difference of the means."""
        return math.sqrt(self.ours.sd ** 2 / len(self.ours.values) + self.gensim.sd ** 2 / len(self.gensim.values))

    @property
    def verdict(self) -> str:
        """"equal" (a difference below one item), "no clear difference (t)", "<side> better (t)", or
        "undetermined (why)" when the seeds cannot say."""
        values = (*self.ours.values, *self.gensim.values)
        if any(math.isnan(v) for v in values):
            return "undetermined (a NaN score)"
        tiny = 1.0 / self.items if self.metric == "analogies" and self.items else TINY_CORRELATION
        if abs(self.difference) < tiny:
            return "equal"
        if min(len(self.ours.values), len(self.gensim.values)) < 2:
            return "undetermined (one seed)"
        se = self.standard_error
        if se == 0:
            return "undetermined (no spread)"
        from scipy import stats

        t = abs(self.difference) / se
        welch = stats.ttest_ind_from_stats(self.ours.mean, self.ours.sd, len(self.ours.values), self.gensim.mean,
                                           self.gensim.sd, len(self.gensim.values), equal_var=False)
        if welch.pvalue >= LEVEL:
            return f"no clear difference (t {t:.1f})"
        return f"{'ours' if self.difference > 0 else 'gensim'} better (t {t:.1f})"


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
        def number(x: float) -> float | None:
            return None if math.isnan(x) else x  # JSON has no NaN

        return {"threads": self.threads, "seeds": list(self.seeds), "epochs": self.epochs, "words": self.words,
                "rows": [{"metric": r.metric, "items": r.items, "ours": [number(v) for v in r.ours.values],
                          "gensim": [number(v) for v in r.gensim.values], "difference": number(r.difference),
                          "standard_error": number(r.standard_error), "verdict": r.verdict} for r in self.rows]}


def scores(trained: bench.Trained) -> dict[str, tuple[float, int]]:
    """(score, items scored) per metric for one model."""
    from workbench_engines.embeddings.evaldata import simlex999_path, wordsim353_path

    analogies = trained.analogies
    out = {"analogies": (analogies.accuracy, analogies.total.total)}
    for name, path in (("WordSim-353", wordsim353_path()), ("SimLex-999", simlex999_path())):
        pairs = trained.vectors.evaluate_pairs(path)
        out[name] = (pairs.spearman, pairs.pairs)
    return out


def _shared_items(measured: dict[str, list[dict[str, tuple[float, int]]]], metric: str) -> int:
    """The items every run scored on metric; EngineError if the trainers' vocabularies made them differ."""
    counts = {run[metric][1] for runs in measured.values() for run in runs}
    if len(counts) != 1:
        raise EngineError(f"{metric}: the runs scored different numbers of items ({sorted(counts)}); the trainers' "
                          "vocabularies differ, so their scores are not comparable")
    return counts.pop()


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
        raise EngineError("bench embeddings trains our C word2vec, which can't run here: "
                          f"{unavailable_reason('native')}")
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
        rows = [MetricRow(metric, _shared_items(measured, metric),
                          Spread(tuple(run[metric][0] for run in measured["ours"])),
                          Spread(tuple(run[metric][0] for run in measured["gensim"])))
                for metric in METRICS]
        tables.append(SeedQualityTable(threads, seeds, epochs, words, rows))
    if progress is not None:
        progress(1.0, "done")
    return tables
