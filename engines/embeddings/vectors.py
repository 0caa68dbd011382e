"""WordVectors: a vocabulary and its matrix, with nearest neighbours, analogies and the standard evaluations.

Rows are expected in descending frequency (GloVe's order, and word2vec's
here): ``restrict_vocab`` keeps the first rows, as gensim does.

Analogies a : b :: c : ? (Levy & Goldberg, 2014, "Linguistic Regularities
in Sparse and Explicit Word Representations"), over unit vectors:
    3CosAdd  argmax_x cos(x, b) - cos(x, a) + cos(x, c)
             = argmax_x cos(x, b - a + c)           (Mikolov et al., 2013)
    3CosMul  argmax_x cos'(x, b) cos'(x, c) / (cos'(x, a) + eps)
             with cos' = (cos + 1) / 2 in [0, 1] and eps = 0.001.
The three question words are never answers.

evaluate_analogies and evaluate_pairs count exactly as gensim's
KeyedVectors.evaluate_word_analogies / evaluate_word_pairs do (case folded to
upper case, the first row of a case-folded word wins, questions with a word
outside the first restrict_vocab rows skipped), so the figures compare.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench_engines.errors import EngineError

METHODS = ("3CosAdd", "3CosMul")
COSMUL_EPS = 0.001
CANDIDATES = 5
"""gensim's analogy evaluation looks at the 5 best answers and takes the first that is not a question word."""
BLOCK_ELEMENTS = 1 << 22
"""Scores computed at once during an evaluation: restrict_vocab x questions <= this (16 MB of float32)."""


@dataclass(frozen=True)
class SectionScore:
    """One section of an analogy test set: how many answered right out of those asked."""

    name: str
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True)
class AnalogyResult:
    """Per-section and total accuracy; ``oov`` questions had a word outside the vocabulary and were skipped."""

    method: str
    sections: list[SectionScore]
    total: SectionScore
    oov: int
    questions: int

    @property
    def accuracy(self) -> float:
        return self.total.accuracy

    @property
    def oov_ratio(self) -> float:
        """Percent of questions skipped (gensim's figure)."""
        return 100.0 * self.oov / self.questions if self.questions else 0.0


@dataclass(frozen=True)
class PairsResult:
    """Correlation of model cosines with human ratings; ``oov_ratio`` is the percent of pairs skipped."""

    pearson: float
    spearman: float
    oov_ratio: float
    pairs: int
    oov: int


class WordVectors:
    """Words and their vectors, one row each, with a unit-normalised view for cosines.

    Args:
        words: the vocabulary, row order (most frequent first); no duplicates.
        matrix: (V, D) float32 array (a memory map is fine: it is read, never written).
    """

    def __init__(self, words: Sequence[str], matrix: np.ndarray) -> None:
        if not isinstance(matrix, np.ndarray) or matrix.ndim != 2 or matrix.dtype != np.float32:
            raise EngineError(f"matrix must be a 2-D float32 array, got {getattr(matrix, 'dtype', type(matrix))} "
                              f"{getattr(matrix, 'shape', '')}")
        words = list(words)
        if len(words) != matrix.shape[0]:
            raise EngineError(f"{len(words)} words but {matrix.shape[0]} rows")
        if not words or matrix.shape[1] == 0:
            raise EngineError("WordVectors needs at least one word and one dimension")
        self.words = words
        self.matrix = matrix  # (V, D)
        self.index = {w: i for i, w in enumerate(words)}
        if len(self.index) != len(words):
            raise EngineError("words must be unique")
        self._norms: np.ndarray | None = None
        self._unit: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    @property
    def norms(self) -> np.ndarray:
        """(V,) float32 Euclidean norms of the rows."""
        if self._norms is None:
            self._norms = np.linalg.norm(self.matrix, axis=1)
        return self._norms

    @property
    def unit(self) -> np.ndarray:
        """(V, D) float32 rows divided by their norms (a zero row stays zero)."""
        if self._unit is None:
            norms = self.norms
            self._unit = self.matrix / np.where(norms > 0, norms, 1)[:, None]
        return self._unit

    def row(self, word: str) -> int:
        try:
            return self.index[word]
        except KeyError:
            raise EngineError(f"{word!r} is not in the vocabulary ({len(self.words):,} words)") from None

    def vector(self, word: str) -> np.ndarray:
        """(D,) the word's raw vector."""
        return np.asarray(self.matrix[self.row(word)])

    def similarity(self, a: str, b: str) -> float:
        """cos(a, b)."""
        return float(self.unit[self.row(a)] @ self.unit[self.row(b)])

    def _restrict(self, restrict: int | None) -> int:
        if restrict is None:
            return len(self.words)
        if not isinstance(restrict, int) or isinstance(restrict, bool) or restrict < 1:
            raise EngineError(f"restrict must be a positive int, got {restrict!r}")
        return min(restrict, len(self.words))

    @staticmethod
    def _check_k(k: object) -> int:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise EngineError(f"k must be a positive int, got {k!r}")
        return k

    def _top(self, scores: np.ndarray, k: int, exclude: set[int]) -> list[tuple[str, float]]:
        take = min(len(scores), k + len(exclude))
        best = np.argpartition(-scores, take - 1)[:take] if take < len(scores) else np.arange(len(scores))
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self.words[i], float(scores[i])) for i in best if i not in exclude][:k]

    def nearest(self, query: str | np.ndarray, k: int = 10, *, exclude: Iterable[str] = (),
                restrict: int | None = None) -> list[tuple[str, float]]:
        """The k words of highest cosine to ``query`` (a word, itself excluded, or a (D,) vector)."""
        k, limit = self._check_k(k), self._restrict(restrict)
        skip = {self.row(w) for w in exclude}
        if isinstance(query, str):
            skip.add(self.row(query))
            target = self.unit[self.row(query)]
        else:
            target = np.asarray(query, dtype=np.float32)
            if target.shape != (self.dim,):
                raise EngineError(f"query vector must have shape ({self.dim},), got {target.shape}")
            norm = np.linalg.norm(target)
            if not np.isfinite(norm) or norm == 0:
                raise EngineError("query vector must be finite and non-zero")
            target = target / norm
        return self._top(self.unit[:limit] @ target, k, skip)  # (V,)

    def analogy(self, a: str, b: str, c: str, k: int = 1, *, method: str = "3CosAdd",
                restrict: int | None = None) -> list[tuple[str, float]]:
        """a : b :: c : ?  — the k best answers with their 3CosAdd or 3CosMul scores (a, b, c excluded)."""
        k, limit = self._check_k(k), self._restrict(restrict)
        rows = [self.row(w) for w in (a, b, c)]
        scores = analogy_scores(self.unit[:limit], self.unit[rows], _check_method(method))[0]
        return self._top(scores, k, set(rows))

    def evaluate_analogies(self, path: str | Path, restrict_vocab: int = 300_000, *, method: str = "3CosAdd",
                           case_insensitive: bool = True, sections: Collection[str] | None = None) -> AnalogyResult:
        """Accuracy on an analogy file (': section' headers, then 'a b c d' lines), per section and in total;
        ``sections`` names the sections to ask (None: all)."""
        return evaluate_analogies(self, path, restrict_vocab, method=method, case_insensitive=case_insensitive,
                                  sections=sections)

    def evaluate_pairs(self, path: str | Path, restrict_vocab: int = 300_000, *, case_insensitive: bool = True,
                       delimiter: str = "\t") -> PairsResult:
        """Pearson and Spearman correlation of cosines with human ratings ('w1<TAB>w2<TAB>score' lines)."""
        return evaluate_pairs(self, path, restrict_vocab, case_insensitive=case_insensitive, delimiter=delimiter)


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise EngineError(f"unknown analogy method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def analogy_scores(unit: np.ndarray, abc: np.ndarray, method: str) -> np.ndarray:
    """Scores of every row as the answer to Q analogies.

    Args:
        unit: (V, D) unit rows (the candidates).
        abc: (Q, 3, D) or (3, D) unit vectors of a, b, c for each question.
    Returns:
        (Q, V) float32: cos(x, b - a + c) for 3CosAdd, the 3CosMul ratio otherwise.
    """
    if abc.ndim == 2:
        abc = abc[None]
    va, vb, vc = abc[:, 0], abc[:, 1], abc[:, 2]  # (Q, D) each
    if method == "3CosAdd":
        # gensim's order of operations: mean of the unit vectors with weights +1, +1, -1, then normalised
        mean = ((vb + vc) - va) / np.float32(3)  # (Q, D)
        mean /= np.linalg.norm(mean, axis=1, keepdims=True)
        return mean @ unit.T  # (Q, V)
    half = np.float32(0.5)
    cos_a, cos_b, cos_c = ((v @ unit.T + 1) * half for v in (va, vb, vc))  # (Q, V) each, in [0, 1]
    return cos_b * cos_c / (cos_a + np.float32(COSMUL_EPS))


def _ok_vocab(vectors: WordVectors, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
    """Folded word -> row among the first restrict_vocab rows; the earliest row of a folded word wins."""
    if not isinstance(restrict_vocab, int) or isinstance(restrict_vocab, bool) or restrict_vocab < 1:
        raise EngineError(f"restrict_vocab must be a positive int, got {restrict_vocab!r}")
    ok: dict[str, int] = {}
    for i, word in enumerate(vectors.words[:restrict_vocab]):
        ok.setdefault(word.upper() if case_insensitive else word, i)
    return ok


def _read_lines(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EngineError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise EngineError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def evaluate_analogies(vectors: WordVectors, path: str | Path, restrict_vocab: int = 300_000, *,
                       method: str = "3CosAdd", case_insensitive: bool = True,
                       sections: Collection[str] | None = None) -> AnalogyResult:
    """See WordVectors.evaluate_analogies; gensim's counting (its dummy4unknown=False).

    Questions outside ``sections`` (names; one string is one name) are neither
    asked nor counted; EngineError when a section named there is not in the file.
    """
    method = _check_method(method)
    wanted = None if sections is None else {sections} if isinstance(sections, str) else set(sections)
    ok = _ok_vocab(vectors, restrict_vocab, case_insensitive)
    limit = min(restrict_vocab, len(vectors))
    names: list[str] = []
    seen: dict[str, None] = {}  # every section of the file, in order
    asked: list[tuple[int, int, int, int, int]] = []  # section, rows of a b c d (earliest row of each folded word)
    oov = questions = 0
    skipping = False
    for number, line in enumerate(_read_lines(path), 1):
        if line.startswith(": "):
            name = line.lstrip(": ").strip()
            seen[name] = None
            skipping = wanted is not None and name not in wanted
            if not skipping:
                names.append(name)
            continue
        if not seen:
            raise EngineError(f"{path}: line {number} comes before any ': section' header")
        words = [w.upper() if case_insensitive else w for w in line.split()]
        if skipping or len(words) != 4:
            continue
        questions += 1
        if any(w not in ok for w in words):
            oov += 1
            continue
        asked.append((len(names) - 1, *(ok[w] for w in words)))
    if not seen:
        raise EngineError(f"{path}: no ': section' header; not an analogy file")
    if wanted is not None and wanted - seen.keys():
        raise EngineError(f"{path} has no section {', '.join(sorted(wanted - seen.keys()))}; "
                          f"it has {', '.join(seen)}")
    correct = np.zeros(len(names), dtype=np.int64)
    total = np.zeros(len(names), dtype=np.int64)
    if asked:
        table = np.array(asked, dtype=np.int64)  # (Q, 5)
        np.add.at(total, table[:, 0], 1)
        predicted = _predictions(vectors, table[:, 1:4], limit, ok, case_insensitive, method)  # (Q,)
        np.add.at(correct, table[:, 0], predicted == table[:, 4])
    scores = [SectionScore(n, int(c), int(t)) for n, c, t in zip(names, correct, total, strict=True)]
    overall = SectionScore("Total accuracy", int(correct.sum()), int(total.sum()))
    return AnalogyResult(method, scores, overall, oov, questions)


def _predictions(vectors: WordVectors, abc: np.ndarray, limit: int, ok: dict[str, int], case_insensitive: bool,
                 method: str) -> np.ndarray:
    """gensim's answer to each question, as the earliest row of its folded word (-1: none).

    Args:
        abc: (Q, 3) rows of a, b, c, each the earliest row of its folded word.
    As gensim: the CANDIDATES best rows other than a, b, c themselves, best first;
    the answer is the first whose folded word is none of a, b, c, else the last.
    Questions go through in blocks of BLOCK_ELEMENTS scores, one matrix product each.
    """
    canon = np.array([ok[w.upper() if case_insensitive else w] for w in vectors.words[:limit]],
                     dtype=np.int64)  # (V',) row -> earliest row of its folded word
    unit = vectors.unit[:limit]  # (V', D)
    take = min(CANDIDATES, limit)
    out = np.full(len(abc), -1, dtype=np.int64)
    block = max(1, BLOCK_ELEMENTS // limit)
    for start in range(0, len(abc), block):
        rows = abc[start:start + block]  # (Q, 3)
        scores = analogy_scores(unit, vectors.unit[rows], method)  # (Q, V')
        scores[np.arange(len(rows))[:, None], rows] = -np.inf  # the question words are never answers
        best, valid = _top_rows(scores, take)  # (Q, take) each
        folded = canon[best]  # (Q, take)
        fresh = valid & (folded != rows[:, :1]) & (folded != rows[:, 1:2]) & (folded != rows[:, 2:3])
        last = valid.sum(axis=1) - 1  # (Q,) the last candidate, where none is fresh
        pick = np.where(fresh.any(axis=1), fresh.argmax(axis=1), last)  # (Q,)
        chosen = folded[np.arange(len(rows)), np.maximum(pick, 0)]
        out[start:start + len(rows)] = np.where(pick >= 0, chosen, -1)
    return out


def _top_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The columns of the k highest scores in each row, best first, and which of them are real (> -inf).

    A full argpartition of every row costs most of an evaluation; instead a
    bound: the k-th largest of the rows' chunk maxima is at most the k-th
    largest score (k chunks each hold a score at least that high), so the top
    k lie among the few scores at or above it.
    Args:
        scores: (Q, V) with V >= k.
    Returns:
        (Q, k) int64 columns and (Q, k) bool.
    """
    q, v = scores.shape
    chunk = max(1, v // (16 * k))
    whole = v // chunk * chunk  # the last v - whole columns only add scores: the bound still holds
    maxima = scores[:, :whole].reshape(q, -1, chunk).max(axis=2)  # (Q, v // chunk >= k)
    bound = np.partition(maxima, -k, axis=1)[:, -k]  # (Q,)
    hit_row, hit_col = np.nonzero(scores >= bound[:, None])  # row-major: grouped by row
    order = np.lexsort((hit_col, -scores[hit_row, hit_col], hit_row))
    hit_row, hit_col = hit_row[order], hit_col[order]
    rank = np.arange(len(hit_row)) - np.searchsorted(hit_row, hit_row)  # place within its row
    keep = rank < k
    best = np.zeros((q, k), dtype=np.int64)
    found = np.zeros((q, k), dtype=bool)
    best[hit_row[keep], rank[keep]] = hit_col[keep]
    found[hit_row[keep], rank[keep]] = True
    return best, found & (np.take_along_axis(scores, best, 1) > -np.inf)


def evaluate_pairs(vectors: WordVectors, path: str | Path, restrict_vocab: int = 300_000, *,
                   case_insensitive: bool = True, delimiter: str = "\t") -> PairsResult:
    """See WordVectors.evaluate_pairs; gensim's counting (its dummy4unknown=False)."""
    from scipy import stats

    ok = _ok_vocab(vectors, restrict_vocab, case_insensitive)
    gold: list[float] = []
    model: list[float] = []
    oov = 0
    for line in _read_lines(path):
        if not line or line.startswith("#"):
            continue
        parts = [w.upper() if case_insensitive else w for w in line.split(delimiter)]
        if len(parts) != 3:
            continue
        try:
            score = float(parts[2])
        except ValueError:
            continue
        a, b = parts[0], parts[1]
        if a not in ok or b not in ok:
            oov += 1
            continue
        va, vb = (np.asarray(vectors.matrix[ok[w]], dtype=np.float64) for w in (a, b))  # no float32 near-ties
        gold.append(score)
        model.append(float((va / np.linalg.norm(va)) @ (vb / np.linalg.norm(vb))))
    if len(gold) < 2:
        raise EngineError(f"{path}: {len(gold)} pairs with both words in the vocabulary; need at least 2")
    pearson = float(stats.pearsonr(gold, model)[0])
    spearman = float(stats.spearmanr(gold, model)[0])
    return PairsResult(pearson, spearman, 100.0 * oov / (len(gold) + oov), len(gold), oov)
