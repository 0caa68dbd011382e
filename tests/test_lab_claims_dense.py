"""The sentence and hybrid labs show what lessons 04 and 07 of the embeddings track claim, and say it in words."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from workbench_engines.retrieval.compare import (
    CHUNKINGS,
    ChunkRow,
    Comparison,
    MethodScore,
    first_place,
)

from tests.conftest import needs_minilm, plain_text
from tests.test_lab_claims import lesson_params
from workbench.labs import hybrid_labs
from workbench.labs.hybrid_labs import build_line, chunk_table, methods_verdict
from workbench.labs.sentence_labs import contrastive_verdict, lee_verdict

pytestmark = pytest.mark.no_c_path  # MiniLM runs on the C attention only through "auto"; the rest is NumPy/torch


@pytest.mark.slow  # 4 to 6 s on 2 cores, most of it MiniLM over the 50 Lee documents, which is the claim
@needs_minilm
async def test_sentence_lab_shows_the_cosine_the_lee_table_and_infonce(open_lab):
    async with open_lab("emb.sentence", **lesson_params("sentence-embeddings", "emb.sentence")) as h:
        await h.settle()
        first, second, _, near = h.lab.pair
        assert (first, second) == ("A man is playing a guitar.", "Someone is playing an instrument.")
        assert "cos(first, second) = 0.675" in h.readout()
        assert [(n.text, round(n.cosine, 3)) for n in near[:2]] == [
            ("A woman is playing the violin.", 0.301), ("The orchestra performed a symphony last night.", 0.025)]
        await h.press("ctrl+l")
        await h.settle()
        rows = {r.method: (round(r.pearson, 3), round(r.spearman, 3)) for r in h.lab.lee}
        assert rows == {"MiniLM": (0.656, 0.508), "TF-IDF": (0.520, 0.245), "GloVe mean": (0.453, 0.443)}
        assert "MiniLM follows the students' ratings best: Pearson 0.656 (Spearman 0.508)" in h.readout()
        await h.press("ctrl+t")
        await h.settle()
        result = h.lab.contrastive
        assert round(result.losses[0], 2) == 3.60 and round(result.ln_batch, 2) == 4.16
        assert [round(r, 3) for r in (result.recall[0], result.recall[-1])] == [0.486, 0.593]
        assert "48.6% untrained (plain mean GloVe), 59.3% after 6 epochs" in h.readout()
        assert "InfoNCE loss per step" in h.lab.query_one("Figure").title_text


@needs_minilm
async def test_hybrid_lab_waits_for_its_cache_then_scores_and_searches(open_lab, monkeypatch):
    from workbench_engines.retrieval.compare import build_retrievers
    from workbench_engines.retrieval.corpora import load_bbc

    monkeypatch.setattr(hybrid_labs, "_RETRIEVERS", {})
    async with open_lab("retrieval.hybrid", **lesson_params("hybrid-chunking-reranking", "retrieval.hybrid")) as h:
        await h.settle()
        assert h.lab.scores is None and "ctrl+r embeds the 2,087 articles once" in h.status()
        assert "non-commercial research use only" in h.readout()
        hybrid_labs._RETRIEVERS["bbc"] = build_retrievers(load_bbc()[::55], max_tokens=24, cache=False)
        await h.press("ctrl+r")
        await h.settle()
        comparison = h.lab.scores[1]
        assert [s.name for s in comparison.scores] == ["BM25", "dense", "RRF", "rerank"]
        assert sum(comparison.first.values()) == pytest.approx(1.0)
        assert "41 headlines, each finding its own article" in h.readout()
        assert "Embedded 41 articles (first 24 tokens)" in h.readout() and "not cached" in h.readout()
        assert h.lab.hits is not None and h.lab.hits[0] == "Oil prices rise as supply fears grow"
        assert "Top 3 for “Oil prices rise as supply fears grow”" in h.readout()


def test_methods_verdict_names_the_best_method_and_where_each_wins():
    def score(name, r1, mrr):
        return MethodScore(name, {"recall@1": r1, "recall@10": 0.9, "mrr": mrr, "ndcg@10": 0.8})

    first = {"both": 0.5, "BM25 only": 0.1, "dense only": 0.2, "neither": 0.2}
    text = methods_verdict(Comparison([score("BM25", 0.67, 0.75), score("RRF", 0.8, 0.85)], first))
    assert text == ("RRF ranks best: recall@1 80.0% against BM25's 67.0%, MRR 0.850 against 0.750. The right article "
                    "comes first for both BM25 and dense on 50.0% of headlines, for BM25 alone on 10.0%, dense alone "
                    "on 20.0%, neither on 20.0%.")
    other = Comparison([score("BM25", 0.9, 0.95), score("dense", 0.8, 0.85)], first)
    assert methods_verdict(other).startswith("BM25 ranks best here")


def test_first_place_shares():
    shares = first_place([[0, 1], [2, 1], [2], []], [[0], [1], [1], [0]], [{0}, {1}, {2}, {3}])
    assert shares == {"both": 0.25, "BM25 only": 0.25, "dense only": 0.25, "neither": 0.25}


def test_build_line_and_chunk_table_read_well():
    class Index(SimpleNamespace):
        def __len__(self) -> int:
            return 2087

    built = SimpleNamespace(dense=Index(seconds=200.4, max_tokens=128, path=object()))
    assert build_line(built) == "Embedded 2,087 articles (first 128 tokens) in 3 min 20 s, 0.10 s each; cached for " \
        "later runs."
    cached = SimpleNamespace(dense=Index(seconds=None, max_tokens=128, path=SimpleNamespace(name="x.npy")))
    assert build_line(cached) == "Dense vectors of 2,087 articles read from the cache (x.npy)."
    metrics = {"recall@1": 0.5, "recall@10": 0.9, "mrr": 0.6, "ndcg@10": 0.7}
    rows = [ChunkRow(CHUNKINGS[0], 2087, metrics, metrics, 50), ChunkRow(CHUNKINGS[6], 9000, metrics)]
    text = plain_text(chunk_table(rows))
    assert "dense over 50 spread over the topics" in " ".join(text.split())
    assert "recursive 600, overlap 150" in text and "9,000" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_lee_and_infonce_verdicts():
    lee = [SimpleNamespace(method="MiniLM", pearson=0.66, spearman=0.51),
           SimpleNamespace(method="TF-IDF", pearson=0.52, spearman=0.25)]
    assert lee_verdict(lee) == ("MiniLM follows the students' ratings best: Pearson 0.660 (Spearman 0.510) "
                                "against TF-IDF 0.520.")
    run = SimpleNamespace(batch=64, ln_batch=4.1589, losses=[3.6, 0.5], epoch_losses=[1.0, 0.54], scales=[19.8],
                          test_pairs=418, recall=[0.486, 0.6, 0.593], epochs=2)
    assert "best 60.0% at epoch 1." in contrastive_verdict(run)


def test_bm25_numbers_of_lesson_07_whole_articles_and_three_sentence_chunks():
    from workbench_engines.retrieval.compare import chunk_bm25
    from workbench_engines.retrieval.corpora import bbc_headline_task

    task = bbc_headline_task()
    whole, n = chunk_bm25(task, CHUNKINGS[0])
    assert n == 2087 and [round(whole[m], 3) for m in ("recall@1", "recall@10", "recall@100", "mrr", "ndcg@10")] == \
        [0.673, 0.947, 0.990, 0.774, 0.815]
    sentences, n = chunk_bm25(task, CHUNKINGS[3])
    assert n == 13146 and (round(sentences["recall@1"], 3), round(sentences["mrr"], 3)) == (0.617, 0.722)


def test_rrf_probe_takes_whole_ranks_only():
    from workbench.probes import compute_probe

    assert compute_probe("retrieval.rrf_score", {"ranks": [1, 3]}) == pytest.approx(1 / 61 + 1 / 63)
    with pytest.raises(ValueError, match="whole numbers"):
        compute_probe("retrieval.rrf_score", {"ranks": [2.5]})
