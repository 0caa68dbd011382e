"""BM25 with eager scoring: every (term, document) weight is computed at index time, a query adds columns.

BM25 (Robertson & Zaragoza, 2009, "The Probabilistic Relevance Framework: BM25
and Beyond", eq. 3.15) scores document d for query q as

    score(q, d) = sum over terms t of q:  idf(t) * tf(t,d) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))

where tf(t,d) counts t in d, |d| is d's length in terms (after stop words) and
avgdl the mean length: k1 saturates repeated terms, b normalises for length.
Since tf, |d| and idf are fixed once the corpus is, the weight of each term in
each document can be precomputed (the "eager" BM25 of bm25s, Lù 2024): the
index is a compressed sparse column (CSC) matrix whose column t lists the
documents holding t and their weights, and a query sums its terms' columns.

Variants, named as bm25s names them (Kamphuis et al., 2020, "Which BM25 do you
mean?"): ``method`` picks the term-frequency part, ``idf_method`` the IDF:

- ``lucene`` / ``robertson`` tf part: tf / (tf + k1 * norm), norm = 1 - b + b |d|/avgdl;
  ``atire``: (k1 + 1) tf / (tf + k1 * norm); ``bm25l`` (Lv & Zhai, 2011):
  (k1 + 1)(c + delta) / (k1 + c + delta) with c = tf / norm; ``bm25+``
  (Lv & Zhai, 2011): (k1 + 1) tf / (tf + k1 * norm) + delta.
- IDF with N documents, n of them holding t: ``lucene`` log(1 + (N - n + .5)/(n + .5));
  ``robertson`` log((N - n + .5)/(n + .5)) (classic Okapi), ``atire`` log(N/n),
  ``bm25l`` log((N + 1)/(n + .5)), ``bm25+`` log((N + 1)/n).

The classic Robertson IDF is negative for a term in more than half of the
documents: such a term then *lowers* the score of every document that holds it,
so a document that matches more of the query can rank below one that matches
less. ``negative_idf`` says what to do: ``"keep"`` (the formula as written),
``"zero"`` (bm25s's ``robertson``: the ratio is floored at 1, so IDF ≥ 0), or
``"epsilon"`` (rank_bm25's ``BM25Okapi``: a negative IDF becomes
``epsilon`` × the mean IDF over the vocabulary). rank_bm25's ``BM25Okapi`` is
``method="atire", idf_method="robertson", negative_idf="epsilon"``.

BM25L and BM25+ give a document a non-zero weight for a query term it does not
hold (tf = 0). As bm25s does, that weight is subtracted from the stored weights
and added back, per query term, to every document at query time.

Numerics follow bm25s: IDF is computed in float64 and rounded to ``dtype``; the
weight of each posting is computed in float64 from that rounded IDF and stored
in ``dtype``. A query sums its columns in float64 (bm25s adds in ``dtype``), so
float32 scores agree with bm25s's to about one unit in the last place.

Only documents holding at least one query term are hits; ties are broken by
the lower document id, so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from workbench_engines.errors import EngineError
from workbench_engines.retrieval.tokenizer import stopword_set, tokenize_many

METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
NEGATIVE_IDF = ("keep", "zero", "epsilon")
_BLOCK_CELLS = 1 << 22  # queries × documents scored at once: 32 MiB of float64


@dataclass(frozen=True)
class BM25Params:
    """BM25's knobs; the defaults are bm25s's (k1 = 1.5, b = 0.75, Lucene)."""

    k1: float = 1.5
    b: float = 0.75
    delta: float = 0.5
    """BM25L and BM25+ only."""
    method: str = "lucene"
    idf_method: str | None = None
    """None: the same as ``method``."""
    negative_idf: str = "keep"
    epsilon: float = 0.25
    """With ``negative_idf="epsilon"``: the floor as a fraction of the mean IDF."""

    def check(self) -> None:
        if self.method not in METHODS:
            raise EngineError(f"BM25 method {self.method!r}: use one of {', '.join(METHODS)}")
        if self.idf_method is not None and self.idf_method not in METHODS:
            raise EngineError(f"BM25 idf_method {self.idf_method!r}: use one of {', '.join(METHODS)}")
        if self.negative_idf not in NEGATIVE_IDF:
            raise EngineError(f"negative_idf {self.negative_idf!r}: use one of {', '.join(NEGATIVE_IDF)}")
        if not (np.isfinite(self.k1) and self.k1 > 0):
            raise EngineError(f"k1 must be finite and > 0 (BM25L and BM25+ divide by it), got {self.k1}")
        if not (np.isfinite(self.b) and 0 <= self.b <= 1):
            raise EngineError(f"b must lie in [0, 1], got {self.b}")
        if not (np.isfinite(self.delta) and self.delta >= 0):
            raise EngineError(f"delta must be finite and ≥ 0, got {self.delta}")

    @property
    def idf_name(self) -> str:
        return self.idf_method or self.method


def idf(df: np.ndarray, n_docs: int, method: str = "lucene", negative_idf: str = "keep", epsilon: float = 0.25) -> np.ndarray:
    """IDF of terms held by ``df`` (V,) of ``n_docs`` documents (each df ≥ 1), float64 (formulas in the module docstring)."""
    df = np.asarray(df, dtype=np.float64)  # (V,)
    n = float(n_docs)
    if method == "lucene":
        out = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
    elif method == "robertson":
        ratio = (n - df + 0.5) / (df + 0.5)
        out = np.log(np.maximum(ratio, 1.0) if negative_idf == "zero" else ratio)
    elif method == "atire":
        out = np.log(n / df)
    elif method == "bm25l":
        out = np.log((n + 1.0) / (df + 0.5))
    elif method == "bm25+":
        out = np.log((n + 1.0) / df)
    else:
        raise EngineError(f"IDF method {method!r}: use one of {', '.join(METHODS)}")
    if negative_idf == "epsilon" and out.size and (out < 0).any():
        out = np.where(out < 0, epsilon * out.mean(), out)
    return out


def tf_part(tf: np.ndarray, doc_len: np.ndarray, avgdl: float, p: BM25Params) -> np.ndarray:
    """The term-frequency factor of a posting, float64 (formulas in the module docstring)."""
    tf = np.asarray(tf, dtype=np.float64)
    norm = (1.0 - p.b) + p.b * np.asarray(doc_len, dtype=np.float64) / avgdl if avgdl > 0 else np.ones_like(tf)
    if p.method in ("lucene", "robertson"):
        return tf / (p.k1 * norm + tf)
    if p.method == "atire":
        return tf * (p.k1 + 1.0) / (tf + p.k1 * norm)
    if p.method == "bm25l":
        c = tf / norm
        return (p.k1 + 1.0) * (c + p.delta) / (p.k1 + c + p.delta)
    return (p.k1 + 1.0) * tf / (p.k1 * norm + tf) + p.delta  # bm25+


@dataclass(frozen=True)
class Hits:
    """The top documents for one query, best first."""

    doc_ids: np.ndarray
    """(K,) int64, K ≤ k: only documents holding a query term."""
    scores: np.ndarray
    """(K,) the index's dtype, non-increasing."""

    def __len__(self) -> int:
        return len(self.doc_ids)


@dataclass(frozen=True)
class TermContribution:
    """One query term's share of a document's score (for showing BM25 term by term)."""

    term: str
    tf: int
    df: int
    idf: float
    weight: float
    """idf × tf part, less the tf = 0 weight for BM25L/BM25+ (which every document gets)."""


def _params(params: BM25Params | None, knobs: dict) -> BM25Params:
    """params, or BM25Params(**knobs); both at once is ambiguous (the knobs would be dropped)."""
    if params is not None and knobs:
        raise EngineError(f"give BM25Params or knobs ({', '.join(sorted(knobs))}), not both")
    return params if params is not None else BM25Params(**knobs)


class BM25Index:
    """An eager BM25 index over a fixed corpus. Build with :meth:`from_texts` or :meth:`from_tokens`.

    >>> index = BM25Index.from_texts(["the cat sat", "a dog barked", "cat and dog"])
    >>> index.search("cat", k=5).doc_ids.tolist()
    [0, 2]
    """

    def __init__(self, doc_tokens: Sequence[Sequence[str]], params: BM25Params, dtype, lower: bool, stopwords) -> None:
        params.check()
        self.params = params
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise EngineError(f"BM25 dtype must be float32 or float64, got {self.dtype}")
        self.lower = lower
        self.stopwords = stopword_set(stopwords)
        n = len(doc_tokens)
        if n == 0:
            raise EngineError("BM25 needs at least one document (the corpus is empty)")
        if any(isinstance(toks, str) for toks in doc_tokens):
            raise EngineError("from_tokens needs a list of token lists per document, got a str")
        lens = np.fromiter(map(len, doc_tokens), dtype=np.int64, count=n)
        # ids in order of first occurrence; dict.fromkeys and map keep the loops in C
        vocab = {t: i for i, t in enumerate(dict.fromkeys(chain.from_iterable(doc_tokens)))}
        term_of = np.fromiter(map(vocab.__getitem__, chain.from_iterable(doc_tokens)), dtype=np.int64, count=int(lens.sum()))  # (T,)
        self.vocab = vocab
        self.terms = list(vocab)
        self.n_docs = n
        self.doc_len = lens  # (N,)
        self.avgdl = float(lens.mean())
        v = len(vocab)
        doc_of = np.repeat(np.arange(n, dtype=np.int64), lens)  # (T,)
        key, tf = np.unique(term_of * n + doc_of, return_counts=True)  # sorted by term, then document
        post_term = key // n  # (P,)
        self.doc_ids = (key % n).astype(np.int32)  # (P,)
        self.tf = tf.astype(np.int32)  # (P,)
        self.df = np.bincount(post_term, minlength=v).astype(np.int64)  # (V,)
        self.indptr = np.zeros(v + 1, dtype=np.int64)
        np.cumsum(self.df, out=self.indptr[1:])
        p = params
        self.idf = idf(self.df, n, p.idf_name, p.negative_idf, p.epsilon).astype(self.dtype)  # (V,)
        idf64 = self.idf.astype(np.float64)
        weight = idf64[post_term] * tf_part(self.tf, lens[self.doc_ids], self.avgdl, p)  # (P,)
        if p.method in ("bm25l", "bm25+"):
            # weight of a term absent from a document of average length (norm = 1)
            self.nonoccurrence = (idf64 * tf_part(np.zeros(v), np.full(v, self.avgdl), self.avgdl, p)).astype(self.dtype)
            weight -= self.nonoccurrence[post_term]
        else:
            self.nonoccurrence = None
        self.data = weight.astype(self.dtype)  # (P,)

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        params: BM25Params | None = None,
        *,
        dtype="float32",
        lower: bool = True,
        stopwords: str | Iterable[str] | None = "english",
        **knobs,
    ) -> BM25Index:
        """Tokenise ``texts`` as bm25s does by default (see ``tokenizer``) and index them.

        ``knobs`` are :class:`BM25Params` fields (``k1=1.2, method="atire"``...).
        """
        if isinstance(texts, str):
            raise EngineError("from_texts needs a list of documents, got one str")
        return cls(tokenize_many(texts, lower=lower, stopwords=stopwords), _params(params, knobs), dtype, lower,
                   stopwords)

    @classmethod
    def from_tokens(
        cls,
        doc_tokens: Sequence[Sequence[str]],
        params: BM25Params | None = None,
        *,
        dtype="float32",
        lower: bool = True,
        stopwords: str | Iterable[str] | None = "english",
        **knobs,
    ) -> BM25Index:
        """Index documents already split into terms; text queries will be tokenised with ``lower``/``stopwords``."""
        return cls(list(doc_tokens), _params(params, knobs), dtype, lower, stopwords)

    # --- queries ---------------------------------------------------------

    def query_terms(self, query: str | Sequence[str]) -> list[str]:
        """The terms of a query: a str is tokenised like the documents; a list is taken as terms."""
        if isinstance(query, str):
            if not query.strip():
                raise EngineError("empty query: type some words")
            return tokenize_many([query], lower=self.lower, stopwords=self.stopwords)[0]
        if isinstance(query, Sequence) and all(isinstance(t, str) for t in query):
            return list(query)
        raise EngineError(f"a query is a str or a list of str terms, got {type(query).__name__}")

    def query_ids(self, query: str | Sequence[str]) -> np.ndarray:
        """(Tq,) int64 vocabulary ids of the query's terms in the index (unknown terms and stop words drop out)."""
        vocab = self.vocab
        return np.asarray([vocab[t] for t in self.query_terms(query) if t in vocab], dtype=np.int64)

    def scores(self, query: str | Sequence[str]) -> np.ndarray:
        """(N,) score of every document, as bm25s's ``get_scores``: 0 for a document holding no query term, except
        under BM25L and BM25+, which give every document each query term's tf = 0 weight."""
        ids = self.query_ids(query)
        s, _ = self._score_block([ids])
        return s[0].astype(self.dtype)

    def search(self, query: str | Sequence[str], k: int = 10) -> Hits:
        """The ``k`` best documents holding a query term (fewer if fewer hold one)."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str | Sequence[str]], k: int = 10) -> list[Hits]:
        """:meth:`search` for each query, scored a block of queries at a time (one bincount per block)."""
        _check_k(k)
        if isinstance(queries, str):
            raise EngineError("search_many needs a list of queries, got one str (use search)")
        ids = [self.query_ids(q) for q in queries]
        block = max(1, _BLOCK_CELLS // self.n_docs)
        out: list[Hits] = []
        for start in range(0, len(ids), block):
            s, hit = self._score_block(ids[start : start + block])
            out.extend(_top_k(s, hit, k, self.dtype))
        return out

    def explain(self, query: str | Sequence[str], doc: int) -> list[TermContribution]:
        """Each query term's contribution to document ``doc``'s score (they sum to ``scores(query)[doc]``,
        apart from the tf = 0 weight BM25L/BM25+ give every document, listed in :attr:`nonoccurrence`)."""
        if isinstance(doc, bool) or not isinstance(doc, (int, np.integer)) or not 0 <= doc < self.n_docs:
            raise EngineError(f"document must be an int in 0..{self.n_docs - 1}, got {doc!r}")
        rows = []
        for term in self.query_terms(query):
            t = self.vocab.get(term)
            if t is None:
                rows.append(TermContribution(term, 0, 0, 0.0, 0.0))
                continue
            lo, hi = self.indptr[t], self.indptr[t + 1]
            at = lo + int(np.searchsorted(self.doc_ids[lo:hi], doc))
            held = at < hi and self.doc_ids[at] == doc
            rows.append(
                TermContribution(
                    term,
                    int(self.tf[at]) if held else 0,
                    int(self.df[t]),
                    float(self.idf[t]),
                    float(self.data[at]) if held else 0.0,
                )
            )
        return rows

    def _score_block(self, ids: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Scores (Q, N) float64 and hit mask (Q, N) for a block of queries' term ids."""
        q, n = len(ids), self.n_docs
        lens = np.fromiter((len(i) for i in ids), dtype=np.int64, count=q)
        terms = np.concatenate(ids) if q else np.zeros(0, np.int64)  # (Tq,)
        starts = self.indptr[terms]
        counts = self.indptr[terms + 1] - starts  # postings per query term
        total = int(counts.sum())
        # gather the columns: position j of column i is starts[i] + j
        first = np.cumsum(counts) - counts
        pos = np.repeat(starts - first, counts) + np.arange(total, dtype=np.int64)  # (total,)
        row = np.repeat(np.repeat(np.arange(q, dtype=np.int64), lens), counts)
        cell = row * n + self.doc_ids[pos]
        s = np.bincount(cell, weights=self.data[pos], minlength=q * n).reshape(q, n)
        hit = np.zeros(q * n, dtype=bool)
        hit[cell] = True
        if self.nonoccurrence is not None and len(terms):
            s += np.bincount(np.repeat(np.arange(q), lens), weights=self.nonoccurrence[terms], minlength=q)[:, None]
        return s, hit.reshape(q, n)


def _check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise EngineError(f"k must be an int, got {type(k).__name__}")
    if k <= 0:
        raise EngineError(f"k must be ≥ 1, got {k}")


def _top_k(s: np.ndarray, hit: np.ndarray, k: int, dtype) -> list[Hits]:
    """Best ``k`` hits per row of ``s`` (Q, N): score descending, then document id ascending."""
    q, n = s.shape
    s = s.astype(dtype)  # rank on the scores we return, so that equal returned scores tie
    s[~hit] = -np.inf
    kk = min(k, n)
    if kk < n:
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]  # (Q, kk), unordered
    else:
        part = np.broadcast_to(np.arange(n), (q, n)).copy()
    vals = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    part = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    kth = vals[:, -1]  # (Q,)
    straddle = (kth > -np.inf) & ((s >= kth[:, None]).sum(axis=1) > kk) if kk < n else np.zeros(q, dtype=bool)
    out = []
    for r in range(q):
        ids, sc = part[r], vals[r]
        if straddle[r]:
            kth_r = kth[r]
            # ties straddle the cut: keep the lowest ids among the tied
            above = np.flatnonzero(s[r] > kth_r)
            above = above[np.lexsort((above, -s[r][above]))]
            tied = np.flatnonzero(s[r] == kth_r)[: kk - len(above)]
            ids = np.concatenate([above, tied])
            sc = s[r][ids]
        keep = sc > -np.inf
        out.append(Hits(ids[keep].astype(np.int64), sc[keep].astype(dtype)))
    return out
