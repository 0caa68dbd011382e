"""Lessons 05 (vector search) and 06 (BM25) of the embeddings track claim what their labs show on these settings.

Only deterministic figures are pinned: recall (the HNSW build is seeded and single-threaded, k-means seeded),
BM25 scores, IDFs, ranks and the headline task's metrics. Queries per second differ by machine and are not.
"""

from __future__ import annotations

import pytest

from tests.test_lab_claims import LESSONS, lesson_params
from workbench.curriculum import load_curriculum
from workbench.curriculum.model import LabBlock
from workbench_engines.retrieval.corpora import bbc_headline_task


def lab_blocks(lesson_id: str, lab_id: str) -> list[dict]:
    """The parameters of every block of lab_id in the lesson, in order."""
    lesson = load_curriculum(LESSONS).lesson(lesson_id)
    return [dict(b.params) for step in lesson.steps for b in step.blocks
            if isinstance(b, LabBlock) and b.lab_id == lab_id]


def weights(hit) -> dict[str, float]:
    """A hit's weight per term, rounded as the lab prints them."""
    return {part.term: round(part.weight, 3) for part in hit[2]}


# --- lesson 06: BM25 -----------------------------------------------------------------------------------------


@pytest.mark.no_c_path
async def test_bm25_lab_ranks_the_time_warner_article_first_term_by_term(open_lab):
    async with open_lab("retrieval.bm25", **lesson_params("lexical-search-bm25", "retrieval.bm25")) as h:
        await h.settle()
        ranked = h.lab.ranked
        assert ranked.own_id == "business/001" and ranked.own == 1
        top = ranked.hits[0]
        assert round(top[1], 3) == 7.781
        assert weights(top) == {"ad": 0.0, "sales": 1.546, "boost": 0.0, "time": 0.542, "warner": 3.297,
                                "profit": 2.396}
        rows = {term: (n, round(lucene, 3), round(classic, 3)) for term, n, lucene, classic in ranked.term_rows}
        assert rows["ad"] == (10, 5.293, 5.288) and rows["time"] == (775, 0.99, 0.526)
        assert {k: round(v, 3) for k, v in ranked.scores.items() if k != "ndcg@1"} == {
            "recall@1": 0.673, "recall@10": 0.947, "mrr": 0.772, "ndcg@10": 0.815}
        text = h.readout()
        assert "The query is the headline of business/001: its article ranks 1." in text
        assert "recall@1 0.673, recall@10 0.947, MRR 0.772 (top 10), nDCG@10 0.815" in text
        assert "for non-commercial research use only" in text


@pytest.mark.no_c_path
async def test_classic_idf_sinks_the_ford_article_below_one_without_from(open_lab):
    second = lab_blocks("lexical-search-bm25", "retrieval.bm25")[1]
    assert second["query"] == "Ford gains from finance not cars" and second["idf"] == "robertson"
    async with open_lab("retrieval.bm25", **second) as h:
        await h.settle()
        ranked = h.lab.ranked
        rows = {term: (n, round(classic, 3)) for term, n, _, classic in ranked.term_rows}
        assert rows["from"] == (1462, -0.849)
        assert ranked.own_id == "business/479" and ranked.own == 2
        first, ford = ranked.hits[0], ranked.hits[1]
        task = bbc_headline_task()
        assert task.doc_ids[first[0]] == "business/410"
        assert task.queries[first[0]] == "DaimlerChrysler's 2004 sales rise"
        assert round(first[1], 3) == 5.575 and "business/410 DaimlerChrysler's" in h.readout()
        assert round(ford[1], 3) == 5.303 and weights(ford)["from"] == -0.559
        without_from = ford[1] - sum(part.weight for part in ford[2] if part.term == "from")
        assert round(without_from, 3) == 5.862 > round(first[1], 3)  # lacking "from" is business/410's gain
        assert "|d| = 124 terms, avgdl = 261.6" in h.readout()  # the breakdown, from what the worker carried
        assert "'from' (1,462). A negative IDF lowers the score of every article that holds it" in h.readout()
        await h.press("i")
        await h.settle()
        ranked = h.lab.ranked
        assert ranked.own == 1 and round(ranked.hits[0][1], 3) == 6.116 and round(ranked.hits[1][1], 3) == 5.588
        assert weights(ranked.hits[0])["from"] == 0.234


@pytest.mark.no_c_path
def test_bm25_figures_the_lesson_quotes():
    from workbench.labs.bm25_labs import BM25Settings, bm25_index, idf_of, task_scores
    from workbench_engines.retrieval.bm25 import BM25Params, tf_part

    assert [round(float(tf_part(tf, 100, 100.0, BM25Params())), 2) for tf in (1, 2, 10)] == [0.4, 0.57, 0.87]
    assert round(idf_of("said", BM25Settings()), 3) == 0.164
    assert round(idf_of("said", BM25Settings(idf="robertson")), 3) == -1.722
    index = bm25_index(BM25Settings())
    common = sorted((t for t in index.vocab if index.df[index.vocab[t]] > index.n_docs / 2),
                    key=lambda t: -index.df[index.vocab[t]])
    assert common == ["said", "has", "have", "from", "he", "which", "been", "also", "up", "had", "year", "would",
                      "were"]
    assert index.df[index.vocab["said"]] == 1771
    assert round(idf_of("the", BM25Settings(idf="robertson", stopwords=False)), 3) == -8.337
    recall_1 = {settings: round(task_scores(settings)["recall@1"], 3) for settings in (
        BM25Settings(idf="robertson"), BM25Settings(stopwords=False), BM25Settings(idf="robertson", stopwords=False),
        BM25Settings(b=0.0))}
    assert list(recall_1.values()) == [0.672, 0.67, 0.633, 0.64]


# --- lesson 05: vector search --------------------------------------------------------------------------------


@pytest.mark.native
def test_vector_search_figures_the_lesson_quotes():
    """The second lab block (10,000 words) in full, and IVF on the first block's 50,000 (HNSW there takes seconds
    to build; its figures are the lesson's measured run)."""
    from workbench.labs.search_labs import (
        EF_SEARCHES,
        NPROBES,
        AnnSettings,
        build_hnsw,
        hnsw_recall,
        ivf_recall,
    )

    blocks = lab_blocks("vector-search", "search.ann")
    assert blocks[0]["database"] == 50_000 and blocks[1]["database"] == 10_000
    assert all((b["nlist"], b["nprobe"], b["M"], b["ef_construction"], b["ef_search"]) == (256, 8, 16, 100, 64)
               for b in blocks)
    small = AnnSettings(10_000, 1_000, 256, 8, 16, 100, 64)
    assert [round(hnsw_recall(AnnSettings(10_000, 1_000, 256, 8, 16, 100, e)), 3) for e in EF_SEARCHES] == [
        0.549, 0.649, 0.78, 0.884, 0.948, 0.981, 0.994]
    assert [round(ivf_recall(AnnSettings(10_000, 1_000, 256, p, 16, 100, 64)), 3) for p in NPROBES] == [
        0.248, 0.378, 0.528, 0.672, 0.795, 0.889, 0.951]
    assert round(build_hnsw(small).bytes_per_vector) == 345
    assert [round(ivf_recall(AnnSettings(50_000, 1_000, 256, p, 16, 100, 64)), 3) for p in NPROBES] == [
        0.264, 0.391, 0.517, 0.647, 0.766, 0.862, 0.938]


@pytest.mark.slow
@pytest.mark.native
def test_hnsw_on_the_lessons_50000_words():
    """The first lab block's graph (about 7 s to build on one core): recall at efSearch 64 and 512, and its size."""
    from workbench.labs.search_labs import AnnSettings, build_hnsw, hnsw_recall

    settings = AnnSettings(50_000, 1_000, 256, 8, 16, 100, 64)
    assert round(hnsw_recall(settings), 3) == 0.823
    assert round(hnsw_recall(AnnSettings(50_000, 1_000, 256, 8, 16, 100, 512)), 3) == 0.973
    assert round(build_hnsw(settings).bytes_per_vector) == 346
