"""BM25, dense, hybrid (RRF) and reranked retrieval, and chunking's effect, measured on the BBC headline task.

Each headline is a query whose one relevant document is its own article
(:func:`workbench_engines.retrieval.corpora.headline_task`). Four ways to rank,
each cut at :data:`DEPTH` documents:

- **BM25** (:class:`~workbench_engines.retrieval.bm25.BM25Index`, Lucene's variant, k1 = 1.5, b = 0.75);
- **dense**: MiniLM cosine of the headline and the article's first 128 tokens
  (:mod:`workbench_engines.retrieval.dense`);
- **RRF**: the two top-100 lists fused by reciprocal rank, k = 60 (Cormack et al., 2009);
- **rerank**: BM25's top 100 put in order of dense cosine. A production
  reranker is usually a cross-encoder reading query and document together
  (Nogueira & Cho, 2019); this one rescores with the same bi-encoder, which
  shows the two-stage shape (cheap recall, then a better order) at no extra cost.

Scores: recall@1, recall@10, recall@100, MRR (over the 100 kept; a relevant
document below 100 counts 0) and nDCG@10 (:func:`~workbench_engines.retrieval.metrics.evaluate`).
The reranker's recall@100 is BM25's by construction: it reorders, it can't add.

Chunking: every article is split (fixed words, sentences or recursive
separators, each with and without overlap), chunks are ranked, and an
article's score is its best chunk's (max aggregation). BM25 runs over the
chunks of every article; dense over the chunks of :data:`CHUNK_SUBSET`
articles spread evenly over the five topics (their headlines as queries), as
embedding every chunk of 2,087 articles would take far longer than a lab
should. Chunks are embedded whole (up to 256 tokens); the "whole article" row
of the dense column is the 128-token truncation of the main table.

Every entry point takes ``articles`` (a list of :class:`Article`; default the
whole corpus) so the tests run on a few dozen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench_engines.embeddings.sentence import MAX_TOKENS, check_texts
from workbench_engines.errors import EngineError
from workbench_engines.progress import Progress, sub_progress
from workbench_engines.retrieval.bm25 import BM25Index
from workbench_engines.retrieval.chunking import chunk_documents
from workbench_engines.retrieval.corpora import RetrievalTask, bbc_headline_task, headline_task
from workbench_engines.retrieval.dense import DOC_TOKENS, DenseIndex, build_dense, embed_cached
from workbench_engines.retrieval.fusion import RRF_K, rrf
from workbench_engines.retrieval.metrics import evaluate

DEPTH = 100
"""Documents each method returns, and BM25's candidates for the reranker."""
METHODS = ("BM25", "dense", "RRF", "rerank")
METRICS = ("recall@1", "recall@10", "recall@100", "mrr", "ndcg@10")
CHUNK_SUBSET = 50
"""Articles whose chunks the dense column of the chunking table embeds."""
CHUNK_FANOUT = 10
"""BM25 over chunks returns DEPTH × this many chunks, enough to name DEPTH distinct articles."""
ARTICLE_SHARE = 0.91
"""The share of build_retrievers' progress bar for the articles, the rest for the headlines: their real costs
(measured on 2 cores with NumPy's BLAS on one thread: about 100 s for the 2,087 articles, 10 s for the headlines)."""


def task_of(articles=None) -> RetrievalTask:
    """The headline task of ``articles``; of the whole BBC corpus (built once per process, shared) by default."""
    return bbc_headline_task() if articles is None else headline_task(articles)


@dataclass(frozen=True)
class MethodScore:
    """One method's mean metrics over the queries."""

    name: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class Comparison:
    """The methods' scores, and the share of queries each of BM25 and dense ranks right."""

    scores: list[MethodScore]
    first: dict[str, float]
    """Share of queries whose relevant document is first for "both", "BM25 only", "dense only" or "neither"."""


def first_place(bm25: list[list[int]], dense: list[list[int]], relevant: list[set[int]]) -> dict[str, float]:
    """How often each list puts a relevant document first: both, only one, or neither (shares summing to 1)."""
    hit_b = np.array([bool(r) and r[0] in g for r, g in zip(bm25, relevant)])
    hit_d = np.array([bool(r) and r[0] in g for r, g in zip(dense, relevant)])
    return {"both": float(np.mean(hit_b & hit_d)), "BM25 only": float(np.mean(hit_b & ~hit_d)),
            "dense only": float(np.mean(~hit_b & hit_d)), "neither": float(np.mean(~hit_b & ~hit_d))}


@dataclass
class Retrievers:
    """Everything the comparison needs, built once: the task, BM25, the dense index and the queries' vectors."""

    task: RetrievalTask
    bm25: BM25Index
    dense: DenseIndex
    query_vectors: np.ndarray
    """(Q, 384) unit vectors of the task's queries."""
    query_seconds: float | None
    """Time the queries took to embed; None when they came from the cache."""

    @property
    def depth(self) -> int:
        return min(DEPTH, len(self.task.documents))

    def rankings(self, query_vectors: np.ndarray | None = None,
                 queries: Sequence[str] | None = None) -> dict[str, list[list[int]]]:
        """Each method's ranked document ids for each query (the task's own by default)."""
        queries = self.task.queries if queries is None else list(queries)
        vectors = self.query_vectors if query_vectors is None else query_vectors
        depth = self.depth
        bm25 = [h.doc_ids.tolist() for h in self.bm25.search_many(queries, depth)]
        dense = [h.doc_ids.tolist() for h in self.dense.search_vectors(vectors, depth)]
        fused = [rrf([b, d], k=RRF_K, limit=depth).doc_ids for b, d in zip(bm25, dense)]
        reranked = [rerank(b, self.dense.vectors, v) for b, v in zip(bm25, vectors)]
        return {"BM25": bm25, "dense": dense, "RRF": fused, "rerank": reranked}

    def compare(self) -> Comparison:
        """The four methods' metrics on the task, and where BM25 and dense each put the right article first."""
        lists = self.rankings()
        scores = [MethodScore(name, _metrics(ranked, self.task.relevant)) for name, ranked in lists.items()]
        return Comparison(scores, first_place(lists["BM25"], lists["dense"], self.task.relevant))

    def top_hits(self, query: str, k: int = 3) -> dict[str, list[tuple[int, float]]]:
        """Each method's top ``k`` (document index, score) for one typed query: BM25 score, cosine, RRF score,
        cosine (rerank).

        Raises:
            EngineError: an empty query, or k not an int in 1..depth (the most each method returns).
        """
        check_texts([query], "query")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.depth:
            raise EngineError(f"k must be an int in 1..{self.depth} (the documents each method returns), got {k!r}")
        vector = self.dense.embed_queries([query])
        lists = self.rankings(vector, [query])
        q = vector[0]
        bm25_scores = self.bm25.scores(query)
        out = {}
        for name, (ranked,) in lists.items():
            top = ranked[:k]
            if name == "BM25":
                scores = [float(bm25_scores[d]) for d in top]
            elif name == "RRF":
                scores = rrf([lists["BM25"][0], lists["dense"][0]], k=RRF_K, limit=k).scores
            else:
                scores = [float(self.dense.vectors[d] @ q) for d in top]
            out[name] = list(zip(top, scores))
        return out


def rerank(candidates: Sequence[int], doc_vectors: np.ndarray, query_vector: np.ndarray) -> list[int]:
    """``candidates`` in order of cosine with the query, highest first (ties keep the first stage's order)."""
    ids = np.asarray(candidates, dtype=np.int64)
    if not len(ids):
        return []
    scores = doc_vectors[ids] @ query_vector  # (K,)
    return ids[np.argsort(-scores, kind="stable")].tolist()


def _metrics(lists: list[list[int]], relevant: list[set[int]]) -> dict[str, float]:
    values = evaluate(lists, relevant, ks=(1, 10, DEPTH))
    return {name: values[name] for name in METRICS}


def build_retrievers(articles=None, *, max_tokens: int = DOC_TOKENS, cache: bool = True, backend: str = "auto",
                     progress: Progress | None = None) -> Retrievers:
    """The headline task with BM25, the dense index (from the cache when it holds them) and the headlines' vectors.

    progress follows the embedding (articles, then headlines) and may raise to cancel.
    """
    task = task_of(articles)
    bm25 = BM25Index.from_texts(task.documents)
    dense = build_dense(task.documents, max_tokens=max_tokens, cache=cache, backend=backend,
                        progress=sub_progress(progress, 0.0, ARTICLE_SHARE))
    vectors, seconds, _ = embed_cached(task.queries, max_tokens=MAX_TOKENS, cache=cache, backend=backend,
                                       progress=sub_progress(progress, ARTICLE_SHARE, 1.0), what="headlines")
    return Retrievers(task, bm25, dense, vectors, seconds)


def dense_cached(articles=None, *, max_tokens: int = DOC_TOKENS) -> bool:
    """Whether the dense vectors of the task's articles and headlines are both in the cache already."""
    from workbench_engines.retrieval.dense import cache_path, read_cache

    task = task_of(articles)
    return all(read_cache(cache_path(texts, tokens), len(texts)) is not None
               for texts, tokens in ((task.documents, max_tokens), (task.queries, MAX_TOKENS)))


# --- chunking --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunking:
    """One way to split the articles; ``method`` None keeps each article whole."""

    name: str
    method: str | None
    options: tuple[tuple[str, int], ...] = ()


CHUNKINGS = (
    Chunking("whole article", None),
    Chunking("fixed 100 words", "fixed", (("size", 100),)),
    Chunking("fixed 100, overlap 50", "fixed", (("size", 100), ("overlap", 50))),
    Chunking("3 sentences", "sentence", (("per_chunk", 3),)),
    Chunking("3 sentences, overlap 1", "sentence", (("per_chunk", 3), ("overlap", 1))),
    Chunking("recursive 600 chars", "recursive", (("size", 600),)),
    Chunking("recursive 600, overlap 150", "recursive", (("size", 600), ("overlap", 150))),
)
"""The rows of the chunking table: a 100-word chunk and a 600-character one are about the same length."""


@dataclass(frozen=True)
class ChunkRow:
    """One chunking's scores: BM25 over every article, dense over the subset (None where not run)."""

    chunking: Chunking
    chunks: int
    """Chunks made of every article (the whole corpus)."""
    bm25: dict[str, float]
    dense: dict[str, float] | None = None
    dense_chunks: int = 0
    """Chunks of the subset that the dense column embedded."""


def split(task: RetrievalTask, chunking: Chunking):
    """The chunks of every document of the task (each document whole for "whole article"); chunk.doc_id is the
    document's index."""
    if chunking.method is None:
        from workbench_engines.retrieval.chunking import Chunk

        return [Chunk(i, 0, len(d), d) for i, d in enumerate(task.documents)]
    return chunk_documents(task.documents, chunking.method, **dict(chunking.options))


def by_best_chunk(chunk_ids: Sequence[int], chunk_doc: np.ndarray, depth: int) -> list[int]:
    """Documents in order of their best-ranked chunk (max aggregation), at most ``depth``."""
    seen: dict[int, None] = {}
    for c in chunk_ids:
        seen.setdefault(int(chunk_doc[c]))
        if len(seen) == depth:
            break
    return list(seen)


def chunk_bm25(task: RetrievalTask, chunking: Chunking) -> tuple[dict[str, float], int]:
    """(BM25's metrics with articles ranked by their best chunk, the number of chunks)."""
    chunks = split(task, chunking)
    chunk_doc = np.fromiter((c.doc_id for c in chunks), dtype=np.int64, count=len(chunks))
    index = BM25Index.from_texts([c.text for c in chunks])
    depth = min(DEPTH, len(task.documents))
    hits = index.search_many(task.queries, min(len(chunks), depth * CHUNK_FANOUT))
    lists = [by_best_chunk(h.doc_ids, chunk_doc, depth) for h in hits]
    return _metrics(lists, task.relevant), len(chunks)


def chunk_subset(task: RetrievalTask, size: int = CHUNK_SUBSET) -> RetrievalTask:
    """``size`` documents spread evenly over the task (its articles are in topic order), with their queries."""
    n = len(task.documents)
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise EngineError(f"the dense chunking subset needs at least 2 articles, got {size!r}")
    picked = np.unique(np.linspace(0, n - 1, min(size, n)).round().astype(int)).tolist()
    return RetrievalTask([task.queries[i] for i in picked], [task.documents[i] for i in picked],
                         [{j} for j in range(len(picked))], [task.doc_ids[i] for i in picked], task.notice)


def chunk_dense(subset: RetrievalTask, chunking: Chunking, query_vectors: np.ndarray, *, doc_tokens: int = DOC_TOKENS,
                cache: bool = True, backend: str = "auto",
                progress: Progress | None = None) -> tuple[dict[str, float], int]:
    """(dense metrics with articles ranked by their best chunk's cosine, the number of chunks embedded)."""
    chunks = split(subset, chunking)
    tokens = doc_tokens if chunking.method is None else MAX_TOKENS
    vectors, _, _ = embed_cached([c.text for c in chunks], max_tokens=tokens, cache=cache, backend=backend,
                                 progress=progress, what="chunks")
    chunk_doc = np.fromiter((c.doc_id for c in chunks), dtype=np.int64, count=len(chunks))
    scores = np.full((len(query_vectors), len(subset.documents)), -np.inf, dtype=np.float32)  # (Q, N)
    np.maximum.at(scores.T, chunk_doc, (query_vectors @ vectors.T).T)  # each article's best chunk
    lists = np.argsort(-scores, axis=1, kind="stable")[:, :DEPTH].tolist()
    return _metrics(lists, subset.relevant), len(chunks)


def chunking_table(articles=None, *, subset: int = CHUNK_SUBSET, dense: bool = True, chunkings=CHUNKINGS,
                   doc_tokens: int = DOC_TOKENS, cache: bool = True, backend: str = "auto",
                   progress: Progress | None = None) -> list[ChunkRow]:
    """A row per chunking: BM25 over every article's chunks and, with ``dense``, MiniLM over the subset's.

    The subset's vectors are cached like the dense index's (later runs are instant).
    """
    task = task_of(articles)
    rows = []
    sub = chunk_subset(task, subset) if dense else None
    query_vectors = None
    steps = len(chunkings)
    for i, chunking in enumerate(chunkings):
        bm25, count = chunk_bm25(task, chunking)
        if progress is not None:
            progress(i / steps, f"BM25 over {chunking.name} chunks")
        if not dense:
            rows.append(ChunkRow(chunking, count, bm25))
            continue
        if query_vectors is None:
            query_vectors, _, _ = embed_cached(sub.queries, max_tokens=MAX_TOKENS, cache=cache, backend=backend,
                                               what="headlines")
        scores, embedded = chunk_dense(sub, chunking, query_vectors, doc_tokens=doc_tokens, cache=cache,
                                       backend=backend, progress=sub_progress(progress, i / steps, (i + 1) / steps))
        rows.append(ChunkRow(chunking, count, bm25, scores, embedded))
    if progress is not None:
        progress(1.0, "done")
    return rows
