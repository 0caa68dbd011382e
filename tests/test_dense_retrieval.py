"""Dense retrieval (engines.retrieval.dense) and the method comparison (engines.retrieval.compare) on BBC slices."""

from __future__ import annotations

import numpy as np
import pytest
from workbench_engines.errors import EngineError
from workbench_engines.progress import sub_progress
from workbench_engines.retrieval import compare, dense
from workbench_engines.retrieval.corpora import bbc_headline_task, headline_task, load_bbc
from workbench_engines.retrieval.fusion import rrf

from tests.conftest import needs_minilm

TOKENS = 24
"""Tokens kept per article in these tests: a cheap forward, still enough to find most articles."""


@pytest.fixture(scope="module")
def articles():
    return load_bbc()[::55]  # 41 articles over the five topics


@pytest.fixture(scope="module")
def retrievers(articles):
    return compare.build_retrievers(articles, max_tokens=TOKENS, cache=False)


@needs_minilm
def test_the_cache_is_reused_and_a_corrupt_or_mismatched_one_is_rebuilt(articles):
    docs = headline_task(articles[:6]).documents
    first = dense.build_dense(docs, max_tokens=TOKENS)
    assert first.seconds is not None and first.path.is_file() and first.path.parent.name == "retrieval"
    again = dense.build_dense(docs, max_tokens=TOKENS)
    assert again.seconds is None and np.array_equal(again.vectors, first.vectors)
    assert dense.cache_path(docs, TOKENS + 1) != first.path and dense.cache_path(docs[:5], TOKENS) != first.path
    first.path.write_bytes(first.path.read_bytes()[:200])  # truncated: np.load fails
    assert dense.build_dense(docs, max_tokens=TOKENS).seconds is not None
    np.save(first.path, np.ones((6, dense.DIM), dtype=np.float32))  # loads, but rows are not unit vectors
    rebuilt = dense.build_dense(docs, max_tokens=TOKENS)
    assert rebuilt.seconds is not None and np.allclose(rebuilt.vectors, first.vectors, atol=1e-6)
    assert not list(first.path.parent.glob("*.tmp"))


def _no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


def test_a_failed_cache_write_removes_its_temporary_file_and_raises(tmp_path, monkeypatch):
    path = tmp_path / "retrieval" / "x.npy"
    monkeypatch.setattr(dense.np, "save", _no_space)
    with pytest.raises(OSError, match="No space"):
        dense.write_cache(path, np.ones((2, dense.DIM), dtype=np.float32))
    assert not list(path.parent.iterdir())


def test_embed_cached_returns_the_vectors_and_no_cache_file_when_the_write_fails(monkeypatch):
    vectors = np.eye(2, dense.DIM, dtype=np.float32)
    monkeypatch.setattr(dense, "embed", lambda texts, **options: vectors)
    monkeypatch.setattr(dense.np, "save", _no_space)
    got, seconds, path = dense.embed_cached(["one text", "another"], max_tokens=TOKENS)
    assert got is vectors and seconds is not None and path is None
    folder = dense.cache_path(["one text", "another"], TOKENS).parent
    assert not list(folder.glob("*.tmp")) and not list(folder.glob("*.npy"))


@needs_minilm
def test_a_cancelled_build_leaves_no_cache(articles):
    docs = headline_task(articles[:20]).documents

    class Stop(Exception):
        """The caller's cancel."""

    def stop(fraction, what):
        raise Stop

    with pytest.raises(Stop):
        dense.build_dense(docs, max_tokens=TOKENS, progress=stop)
    path = dense.cache_path(docs, TOKENS)
    assert not path.exists()
    assert not (path.parent.exists() and list(path.parent.glob("*.tmp")))


@needs_minilm
def test_bad_input_gets_an_engine_error(retrievers):
    index = retrievers.dense
    with pytest.raises(EngineError, match="the query is empty"):
        index.search("   ")
    with pytest.raises(EngineError, match="larger than"):
        index.search("oil prices", k=len(index) + 1)
    with pytest.raises(EngineError, match="empty"):
        dense.build_dense([])
    with pytest.raises(EngineError, match="one str"):
        dense.build_dense("a single document")
    with pytest.raises(EngineError, match="the query is empty"):
        retrievers.top_hits("")
    for k in (0, -1, retrievers.depth + 1, 2.0):
        with pytest.raises(EngineError, match=f"k must be an int in 1..{retrievers.depth}"):
            retrievers.top_hits("oil prices", k)


@needs_minilm
def test_each_method_ranks_every_article_and_fusion_and_rerank_follow_their_rules(retrievers):
    task = retrievers.task
    lists = retrievers.rankings()
    assert set(lists) == set(compare.METHODS) and all(len(v) == len(task.queries) for v in lists.values())
    for q in range(len(task.queries)):
        bm25, dense_list = lists["BM25"][q], lists["dense"][q]
        assert lists["RRF"][q] == rrf([bm25, dense_list], k=60, limit=retrievers.depth).doc_ids
        assert sorted(lists["rerank"][q]) == sorted(bm25)  # the same candidates, reordered
        cosines = retrievers.dense.vectors[lists["rerank"][q]] @ retrievers.query_vectors[q]
        assert np.all(np.diff(cosines) <= 1e-7)
        assert sorted(dense_list) == list(range(len(task.documents)))
    scores = {s.name: s.metrics for s in retrievers.compare().scores}
    assert set(scores["BM25"]) == set(compare.METRICS)
    for metrics in scores.values():
        assert 0 <= metrics["recall@1"] <= metrics["recall@10"] <= 1 and metrics["recall@1"] <= metrics["mrr"] <= 1
    assert scores["BM25"]["recall@1"] > 0.8 and scores["dense"]["recall@10"] > 0.8
    assert scores["rerank"]["recall@100"] == scores["BM25"]["recall@100"]  # reordering adds no document


@needs_minilm
def test_top_hits_name_three_articles_per_method(retrievers):
    hits = retrievers.top_hits(retrievers.task.queries[0], 3)
    assert list(hits) == list(compare.METHODS)
    assert hits["BM25"][0][0] == 0 and all(len(top) == 3 for top in hits.values())
    assert hits["dense"][0][1] >= hits["dense"][1][1]


def test_sub_progress_maps_a_step_onto_its_part_of_the_bar():
    seen = []
    part = sub_progress(lambda f, what: seen.append((f, what)), 0.25, 0.75)
    part(0.0, "start")
    part(0.5, "half")
    part(1.0, "end")
    assert seen == [(0.25, "start"), (0.5, "half"), (0.75, "end")]
    assert sub_progress(None, 0.0, 0.5) is None
    with pytest.raises(EngineError, match="sub-range"):
        sub_progress(print, 0.8, 0.2)


def test_articles_rank_by_their_best_chunk():
    chunk_doc = np.array([0, 0, 1, 2, 1, 3])
    assert compare.by_best_chunk([1, 0, 4, 2, 5, 3], chunk_doc, 10) == [0, 1, 3, 2]
    assert compare.by_best_chunk([1, 0, 4, 2, 5, 3], chunk_doc, 2) == [0, 1]


def test_bm25_over_whole_articles_is_plain_bm25_and_chunks_cover_every_article(articles):
    task = headline_task(articles)
    whole, n = compare.chunk_bm25(task, compare.CHUNKINGS[0])
    assert n == len(task.documents)
    from workbench_engines.retrieval.bm25 import BM25Index
    from workbench_engines.retrieval.metrics import evaluate

    plain = evaluate([h.doc_ids.tolist() for h in BM25Index.from_texts(task.documents).search_many(task.queries, 41)],
                     task.relevant)
    assert whole["recall@1"] == plain["recall@1"] and whole["mrr"] == pytest.approx(plain["mrr"])
    for chunking in compare.CHUNKINGS[1:]:
        chunks = compare.split(task, chunking)
        assert {c.doc_id for c in chunks} == set(range(len(task.documents))) and len(chunks) > n


def test_the_subset_spreads_over_the_topics():
    task = bbc_headline_task()
    sub = compare.chunk_subset(task, 50)
    assert len(sub.documents) == 50 and sub.relevant[7] == {7}
    assert {doc_id.split("/")[0] for doc_id in sub.doc_ids} == {"business", "entertainment", "politics", "sports",
                                                                 "tech"}
    with pytest.raises(EngineError, match="at least 2"):
        compare.chunk_subset(task, 1)


@needs_minilm
def test_chunking_table_scores_bm25_on_all_and_dense_on_the_subset(articles):
    seen = []
    rows = compare.chunking_table(articles[:12], subset=4, chunkings=compare.CHUNKINGS[:2], doc_tokens=TOKENS,
                                  progress=lambda f, what: seen.append(f))
    assert [r.chunking.name for r in rows] == ["whole article", "fixed 100 words"]
    assert rows[0].dense_chunks == 4 and rows[1].dense_chunks > 4 and rows[1].chunks > rows[0].chunks == 12
    assert all(0 <= r.dense["mrr"] <= 1 and 0 <= r.bm25["mrr"] <= 1 for r in rows)
    assert seen[-1] == 1.0 and seen == sorted(seen)
