"""``workbench bench embeddings`` and ``workbench bench search`` (issue 15, Speed): quick runs through the CLI
validate every row against the peers; a missing peer, data set or C build is left out with the reason; the
checks catch garbage (random word vectors, a swapped neighbour)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from workbench.cli import main
from workbench_engines.embeddings import bench as emb_bench
from workbench_engines.errors import EngineError
from workbench_engines.search import bench as search_bench
from workbench_engines.search.bench import Neighbours, same_ranking


def _need(what: str, find) -> None:
    try:
        find()
    except EngineError as exc:
        pytest.skip(f"{what} is not installed: {exc}")


def _glove() -> None:
    from workbench_engines.embeddings.glove import package_dir

    _need("GloVe 6B 50d", package_dir)


def _bbc() -> None:
    from workbench_engines.retrieval.corpora import bbc_dir

    _need("the BBC corpus", bbc_dir)


def _quick_json(capsys, name: str) -> dict:
    assert main(["bench", name, "--quick", "--repeats", "1", "--warmup", "0", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _by_case(report: dict) -> dict[str, dict[str, dict]]:
    cases: dict[str, dict[str, dict]] = {}
    for row in report["rows"]:
        cases.setdefault(row["case"], {})[row["name"]] = row
    return cases


@pytest.mark.native
def test_bench_embeddings_quick_validates_ours_against_gensim(capsys):
    pytest.importorskip("gensim")
    report = _quick_json(capsys, "embeddings")
    cases = _by_case(report)
    assert [name.split(", ")[0] for name in cases] == ["1 thread", "2 threads"]
    for pair in cases.values():
        assert set(pair) == {"ours", "gensim"}
        assert all(row["matches"] for row in pair.values()), [row["mismatch"] for row in pair.values()]
        assert pair["ours"]["ratios"]["gensim"] > 0
        assert "words/s" in pair["ours"]["note"] and "analogies" in pair["gensim"]["note"]
    assert "x gensim end to end" in report["summary"] and "training loops alone" in report["summary"]


@pytest.mark.native
def test_bench_search_quick_validates_ours_against_faiss_and_bm25s(capsys):
    for name in ("faiss", "bm25s", "rank_bm25"):
        pytest.importorskip(name)
    _glove()
    _bbc()
    report = _quick_json(capsys, "search")
    cases = _by_case(report)
    assert list(cases) == ["exact 4,800x50", "IVF 64, nprobe 4", "IVF 64, nprobe 16", "HNSW 16/100, ef 16",
                           "HNSW 16/100, ef 64", "BM25, 100 headlines"]
    bad = [(row["case"], row["name"], row["mismatch"]) for row in report["rows"] if not row["matches"]]
    assert not bad
    for name, pair in cases.items():
        if name.startswith("BM25"):
            assert set(pair) == {"ours", "bm25s", "rank_bm25"} and pair["ours"]["ratios"]["bm25s"] > 0
            continue
        assert set(pair) == {"ours", "faiss"} and pair["ours"]["ratios"]["faiss"] > 0
        for row in pair.values():
            assert row["extra"]["recall@10"] >= (1.0 if name.startswith("exact") else search_bench.RECALL_FLOOR)
    assert "B/vec" in cases["HNSW 16/100, ef 16"]["ours"]["note"]
    assert "exact search: ours" in report["summary"] and "BM25: ours" in report["summary"]


@pytest.mark.native
def test_a_missing_peer_is_left_out_with_the_reason(monkeypatch):
    _glove()
    _bbc()
    for name in ("gensim.models.word2vec", "faiss", "rank_bm25"):
        monkeypatch.setitem(sys.modules, name, None)  # import_module now raises ImportError
    embeddings = emb_bench.cases(quick=True)
    assert [[c.name for c in case.contenders] for case in embeddings] == [["ours"], ["ours"]]
    assert all(case.reference == "ours" for case in embeddings)
    assert "gensim not installed (pip install gensim==4.4.0)" in emb_bench.summary([])
    search = search_bench.cases(quick=True)
    assert {tuple(c.name for c in case.contenders) for case in search} == {("ours",), ("ours", "bm25s")}
    why = search_bench.summary([])
    assert "faiss not installed (pip install faiss-cpu)" in why and "rank_bm25 not installed" in why


@pytest.mark.no_c_path
def test_without_the_c_build_search_keeps_bm25_and_embeddings_says_why(monkeypatch):
    _bbc()
    for module in (emb_bench, search_bench):
        monkeypatch.setattr(module, "available", lambda name: False)
        monkeypatch.setattr(module, "unavailable_reason", lambda name: "disabled for the test")
    with pytest.raises(EngineError, match="disabled for the test"):
        emb_bench.cases(quick=True)
    assert [case.name for case in search_bench.cases(quick=True)] == ["BM25, 100 headlines"]
    assert "vector search cases left out: our C kernels can't run (disabled for the test)" in search_bench.summary([])


@pytest.mark.no_c_path
def test_word2vec_check_rejects_random_vectors_and_keeps_trained_ones():
    """GloVe's first 3,000 words stand in for trained vectors: slightly perturbed they pass, random ones fail."""
    _glove()
    from workbench_engines.embeddings.evaldata import analogies_path
    from workbench_engines.embeddings.glove import load_glove
    from workbench_engines.embeddings.vectors import WordVectors

    path = str(analogies_path())
    glove = load_glove(limit=3000)
    rng = np.random.default_rng(0)
    matrix = np.asarray(glove.matrix)

    def trained(m: np.ndarray) -> emb_bench.Trained:
        return emb_bench.Trained(WordVectors(glove.words, m.astype(np.float32)), 1, 1.0, path)

    reference = trained(matrix)
    assert emb_bench.check(reference, trained(matrix + 0.05 * rng.standard_normal(matrix.shape))) is None
    garbage = emb_bench.check(reference, trained(rng.standard_normal(matrix.shape)))
    assert garbage is not None and "neighbour overlap" in garbage


@pytest.mark.no_c_path
def test_same_ranking_allows_swapped_ties_only():
    ids = np.array([[4, 7, 9, 2]])
    scores = np.array([[0.9, 0.5, 0.5, 0.1]])
    expected = Neighbours(ids, scores)
    assert same_ranking(expected, Neighbours(np.array([[4, 9, 7, 2]]), scores), 1e-6) is None  # a tie swapped
    assert same_ranking(expected, Neighbours(np.array([[4, 7, 9, 5]]), scores), 1e-6) is None  # a tie at the cut
    assert "ids differ" in same_ranking(expected, Neighbours(np.array([[7, 4, 9, 2]]), scores), 1e-6)
    drift = Neighbours(ids, scores + np.array([[0, 0, 0, 1e-3]]))
    assert "scores differ" in same_ranking(expected, drift, 1e-6)


@pytest.mark.native
def test_bench_embeddings_quality_quick_scores_both_trainers_on_every_seed(capsys):
    pytest.importorskip("gensim")
    assert main(["bench", "embeddings", "--quality", "--quick", "--json"]) == 0
    tables = json.loads(capsys.readouterr().out)["tables"]
    assert [table["threads"] for table in tables] == list(emb_bench.THREADS)
    for table in tables:
        assert [row["metric"] for row in table["rows"]] == ["analogies", "WordSim-353", "SimLex-999"]
        for row in table["rows"]:
            assert len(row["ours"]) == len(row["gensim"]) == len(table["seeds"]) == 2 and row["items"] > 0
            assert row["difference"] == pytest.approx(np.mean(row["ours"]) - np.mean(row["gensim"]))
            assert row["verdict"].startswith(("equal", "no clear difference", "ours better", "gensim better",
                                              "undetermined"))


def test_seed_quality_verdict_is_welchs_t_test_at_five_percent():
    from scipy import stats

    from workbench_engines.embeddings.quality import MetricRow, Spread

    def row(ours, gensim, metric="SimLex-999", items=500):
        return MetricRow(metric, items, Spread(tuple(ours)), Spread(tuple(gensim)))

    rng = np.random.default_rng(3)
    for _ in range(40):
        ours, gensim = rng.normal(0.1, 0.02, 5), rng.normal(0.1 + rng.uniform(-0.05, 0.05), 0.03, 5)
        r = row(ours, gensim)
        welch = stats.ttest_ind(ours, gensim, equal_var=False)
        assert abs(r.difference) / r.standard_error == pytest.approx(abs(welch.statistic))
        called = r.verdict.startswith(("ours better", "gensim better"))
        assert called == (welch.pvalue < 0.05), (r.verdict, welch.pvalue)
        assert called or r.verdict.startswith(("no clear difference", "equal"))
    apart = row([0.30, 0.31, 0.32], [0.10, 0.11, 0.12])
    assert apart.verdict.startswith("ours better (t ") and apart.difference == pytest.approx(0.2)
    assert row([0.10, 0.20, 0.30], [0.15, 0.25, 0.35]).verdict == "no clear difference (t 0.6)"
    # The seeds cannot say: one seed, no spread at all, a NaN score.
    assert row([0.1], [0.3]).verdict == "undetermined (one seed)"
    assert row([0.1, 0.1], [0.3, 0.3]).verdict == "undetermined (no spread)"
    assert row([0.1, float("nan")], [0.3, 0.2]).verdict == "undetermined (a NaN score)"
    # Fewer than one analogy question apart is no difference, whatever the spread; no questions at all is fine.
    assert row([0.0170, 0.0170], [0.0171, 0.0171], metric="analogies").verdict == "equal"
    assert row([0.0, 0.0], [0.0, 0.0], metric="analogies", items=0).verdict == "equal"
