"""Cases for ``workbench bench search``: vector search on GloVe and BM25 on the BBC headlines, ours against the peers.

Vector search runs on GloVe 6B 50d, every row scaled to unit length: the
database is the first 399,000 rows and the queries the last 1,000 (held out,
so no query finds itself), k = 10, inner product (the cosine). Everything
runs on one thread: our ``threads=1`` and, through threadpoolctl, NumPy's and
faiss's BLAS and OpenMP pools (faiss.omp_set_num_threads(1) where
threadpoolctl is missing). Cases, each ours against faiss-cpu:

    exact N x D          FlatIndex vs IndexFlatIP; ids validated equal (except near-ties)
    IVF L, nprobe P      IVFFlatIndex vs IndexIVFFlat, L = nlist 1,024 lists, k-means of 10 iterations both sides
    HNSW M/efC, ef E     HNSWIndex vs IndexHNSWFlat, M 16, efConstruction 100, efSearch E

Each index is built once, outside every timer, the first time a case needs
it (the HNSW builds take about 90 s each at 400,000 vectors, so a full run
takes several minutes); its build time and bytes per vector are noted on the
kind's first row. Approximate rows are validated by their recall@10 against the
exact answer: at least RECALL_FLOOR, and at most RECALL_SLACK below the
peer's at the same knob.

BM25 runs the headline -> article task on BBC News (2,087 de-duplicated
articles; the text is for non-commercial research use only), Lucene's BM25
with k1 1.5 and b 0.75, top 10, one thread, each side tokenising its
queries inside the timed run: ours (BM25Index.search_many) vs bm25s
(validated against it: top-10 ids equal except exact ties, scores to 1e-5
relative) vs rank_bm25. rank_bm25 has no Lucene variant: it races with its
BM25Okapi (ATIRE's tf, Robertson's IDF floored at epsilon), validated against
our index built with that variant. A peer that is not installed loses its
rows; the summary says which and why.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench_engines.backends import available, unavailable_reason
from workbench_engines.errors import EngineError
from workbench_engines.profiling.bench import (
    Case,
    Contender,
    blas_threads,
    can_limit_blas,
)
from workbench_engines.profiling.profile import Profile, Timer

K = 10
QUERIES = 1_000
QUICK_ROWS, QUICK_QUERIES = 5_000, 200
NLIST, QUICK_NLIST = 1024, 64
NPROBES, QUICK_NPROBES = (8, 32, 128), (4, 16)
KMEANS_ITERATIONS = 10
"""faiss's default; ours runs the same number so the IVF build times compare."""
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 100
EF_SEARCH, QUICK_EF_SEARCH = (16, 32, 64, 128, 256), (16, 64)
RECALL_FLOOR = 0.5
RECALL_SLACK = 0.1
RECALL_GOAL = 0.95
SCORE_ATOL = 1e-5
BM25_RTOL = 1e-5
K1, B = 1.5, 0.75
"""Lucene's (and bm25s's) defaults."""
QUICK_ARTICLES = 100
PEERS = {
    "faiss": "pip install faiss-cpu",
    "bm25s": "pip install bm25s",
    "rank_bm25": "pip install rank-bm25",
}
THREADPOOLCTL = "pip install threadpoolctl"


def peer(name: str) -> Any | None:
    """The peer's module, or None where it is not installed (its rows are then left out)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def one_thread() -> tuple[Callable[[], None], Callable[[], None]]:
    """(setup, teardown) for a Contender: BLAS and OpenMP pools on one thread, restored afterwards (faiss's own
    OpenMP setting where threadpoolctl is missing)."""
    if can_limit_blas():
        return blas_threads(1)
    held: list[int | None] = []

    def setup() -> None:
        faiss = peer("faiss")
        held.append(None if faiss is None else faiss.omp_get_max_threads())
        if faiss is not None:
            faiss.omp_set_num_threads(1)  # NumPy's BLAS keeps its own setting (the summary says so)

    def teardown() -> None:
        previous = held.pop()
        if previous is not None:
            peer("faiss").omp_set_num_threads(previous)

    return setup, teardown


class Built:
    """An index built once, on first use and outside every timer, with its build time and size (the benchmark's
    cases and the vector-search lab both keep their indexes in one; threads sharing one guard get() themselves)."""

    def __init__(self, build: Callable[[], tuple[Any, float]]) -> None:
        self._build = build
        self.index: Any = None
        self.seconds = 0.0
        self.bytes_per_vector = 0.0

    def get(self) -> Any:
        if self.index is None:
            with Timer() as t:
                self.index, self.bytes_per_vector = self._build()
            self.seconds = t.seconds
        return self.index

    def note(self) -> str:
        return f"build {self.seconds:.1f} s, {self.bytes_per_vector:.0f} B/vec"


@dataclass(frozen=True)
class Neighbours:
    """One run's answer, (Q, K) ids and scores (id -1 where fewer than K were found), and the index behind it."""

    ids: np.ndarray
    scores: np.ndarray
    built: Built | None = None
    variant: str = ""
    """"okapi" for rank_bm25's BM25Okapi, validated against our index with that variant."""


def same_ranking(expected: Neighbours, got: Neighbours, atol: float, rtol: float = 0.0) -> str | None:
    """None when got ranks as expected: scores equal within atol + rtol |score| rank by rank, and ids equal except
    where the score ties a neighbouring rank's (or sits at the cut, where a tie with rank K + 1 can't be seen)."""
    if got.ids.shape != expected.ids.shape:
        return f"shape {got.ids.shape} != {expected.ids.shape}"
    e = expected.scores.astype(np.float64)
    tol = atol + rtol * np.abs(e)
    gap = np.abs(got.scores.astype(np.float64) - e) - tol
    if (gap > 0).any():
        return f"scores differ beyond the tolerance by up to {gap.max():.3g}"
    tied = np.zeros(e.shape, dtype=bool)
    close = np.abs(np.diff(e, axis=1)) <= tol[:, 1:]  # (Q, K-1) rank r ties rank r+1
    tied[:, :-1] |= close
    tied[:, 1:] |= close
    tied[:, -1] = True
    bad = (got.ids != expected.ids) & ~tied
    if bad.any():
        query = int(np.argwhere(bad)[0][0])
        return f"{int(bad.sum())} ids differ away from ties (first in query {query})"
    return None


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    from workbench_engines.search import recall_at_k

    return recall_at_k(found, truth)


# ---------------------------------------------------------------- vector search


def glove_split(quick: bool) -> tuple[np.ndarray, np.ndarray]:
    """(database, queries): GloVe's unit rows, the last held out as queries (of the first QUICK_ROWS if quick)."""
    from workbench_engines.embeddings.glove import load_matrix
    from workbench_engines.search import normalize_rows

    matrix = load_matrix()
    rows, queries = (QUICK_ROWS, QUICK_QUERIES) if quick else (matrix.shape[0], QUERIES)
    unit = normalize_rows(np.ascontiguousarray(matrix[:rows], dtype=np.float32))
    return np.ascontiguousarray(unit[:-queries]), np.ascontiguousarray(unit[-queries:])


def _faiss_bytes(faiss: Any, index: Any) -> float:
    """Bytes per vector of a faiss index: its serialised size over the vectors it holds."""
    return faiss.serialize_index(index).size / index.ntotal


def vector_cases(quick: bool) -> list[Case]:
    """Exact, IVF and HNSW search on GloVe, ours vs faiss, one thread, paired at equal knobs."""
    from workbench_engines.search import FlatIndex, HNSWIndex, IVFFlatIndex

    database, queries = glove_split(quick)
    n, dim = database.shape
    nq = len(queries)
    faiss = peer("faiss")
    truth = FlatIndex(database).search(queries, K).ids  # (Q, K) the exact answer every recall is measured against

    def recall_of(out: Neighbours) -> float:
        return _recall(out.ids, truth)

    def describe(out: Neighbours) -> str:
        return f"recall@{K} {recall_of(out):.3f}" + (f"; {out.built.note()}" if out.built else "")

    def figures(out: Neighbours) -> dict[str, float]:
        return {"recall@10": recall_of(out), "queries": float(nq)}

    def check_recall(expected: Neighbours, got: Neighbours) -> str | None:
        got_recall, floor = recall_of(got), max(RECALL_FLOOR, recall_of(expected) - RECALL_SLACK)
        return None if got_recall >= floor else f"recall@{K} {got_recall:.3f} below {floor:.3f}"

    def ours_flat() -> tuple[FlatIndex, float]:
        index = FlatIndex(database)
        return index, index.bytes_per_vector()

    def ours_ivf() -> tuple[IVFFlatIndex, float]:
        index = IVFFlatIndex(dim, nlist)
        index.train(database, iterations=KMEANS_ITERATIONS, threads=1)
        index.add(database, threads=1)
        return index, index.bytes_per_vector()

    def ours_hnsw() -> tuple[HNSWIndex, float]:
        index = HNSWIndex.build(database, M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
        return index, index.bytes_per_vector()

    def faiss_flat() -> tuple[Any, float]:
        index = faiss.IndexFlatIP(dim)
        index.add(database)
        return index, _faiss_bytes(faiss, index)

    def faiss_ivf() -> tuple[Any, float]:
        quantiser = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantiser, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = KMEANS_ITERATIONS
        index.train(database)
        index.add(database)
        return index, _faiss_bytes(faiss, index)

    def faiss_hnsw() -> tuple[Any, float]:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.add(database)
        return index, _faiss_bytes(faiss, index)

    def faiss_search(index: Any) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = index.search(queries, K)
        return ids, scores

    nlist = QUICK_NLIST if quick else NLIST
    built = {name: Built(build) for name, build in (("ours flat", ours_flat), ("ours ivf", ours_ivf),
                                                    ("ours hnsw", ours_hnsw))}
    if faiss is not None:
        built |= {name: Built(build) for name, build in (("faiss flat", faiss_flat), ("faiss ivf", faiss_ivf),
                                                         ("faiss hnsw", faiss_hnsw))}

    def contender(who: str, kind: str, search: Callable[[Any], tuple[np.ndarray, np.ndarray]],
                  first: bool) -> Contender:
        index = built[f"{who} {kind}"]
        limit, unlimit = one_thread()

        def setup() -> None:
            limit()
            index.get()  # built once, under the same one-thread limit, outside the timer

        def run() -> Neighbours:
            ids, scores = search(index.get())
            return Neighbours(ids, scores, index if first else None)  # the build noted on a kind's first row

        return Contender(who, run, "native" if who == "ours" else who, setup, unlimit)

    def race(name: str, kind: str, ours: Callable[[Any], Any], theirs: Callable[[Any], Any], check,
             first: bool = True, warmup: int | None = None) -> Case:
        contenders = [contender("ours", kind, ours, first)]
        if faiss is not None:
            contenders.append(contender("faiss", kind, theirs, first))
        return Case(name, contenders, check, reference=contenders[-1].name, baselines=("faiss",), describe=describe,
                    figures=figures, interleave=True, warmup=warmup, per_run=(float(nq), "queries"))

    def exact_check(expected: Neighbours, got: Neighbours) -> str | None:
        return same_ranking(expected, got, SCORE_ATOL)

    def ours_exact(index: FlatIndex) -> tuple[np.ndarray, np.ndarray]:
        result = index.search(queries, K, threads=1)
        return result.ids, result.values

    cases = [race(f"exact {n:,}x{dim}", "flat", ours_exact, faiss_search, exact_check, warmup=1)]
    for nprobe in QUICK_NPROBES if quick else NPROBES:
        def ours_ivf_search(index: IVFFlatIndex, nprobe: int = nprobe) -> tuple[np.ndarray, np.ndarray]:
            result = index.search(queries, K, nprobe=nprobe, threads=1)
            return result.ids, result.values

        def faiss_ivf_search(index: Any, nprobe: int = nprobe) -> tuple[np.ndarray, np.ndarray]:
            index.nprobe = nprobe
            return faiss_search(index)

        cases.append(race(f"IVF {nlist}, nprobe {nprobe}", "ivf", ours_ivf_search, faiss_ivf_search,
                          check_recall, first=len(cases) == 1))
    for ef in QUICK_EF_SEARCH if quick else EF_SEARCH:
        def ours_hnsw_search(index: HNSWIndex, ef: int = ef) -> tuple[np.ndarray, np.ndarray]:
            result = index.search(queries, K, ef_search=ef, threads=1)
            return result.ids, result.values

        def faiss_hnsw_search(index: Any, ef: int = ef) -> tuple[np.ndarray, np.ndarray]:
            index.hnsw.efSearch = ef
            return faiss_search(index)

        cases.append(race(f"HNSW {HNSW_M}/{HNSW_EF_CONSTRUCTION}, ef {ef}", "hnsw", ours_hnsw_search,
                          faiss_hnsw_search, check_recall, first=not cases[-1].name.startswith("HNSW")))
    return cases


# ---------------------------------------------------------------- BM25


def _padded(rows: list[tuple[np.ndarray, np.ndarray]]) -> Neighbours:
    """Per-query (ids, scores) best first as (Q, K) arrays: hits only (score > 0), padded with id -1 and score 0."""
    ids = np.full((len(rows), K), -1, dtype=np.int64)
    scores = np.zeros((len(rows), K), dtype=np.float64)
    for i, (doc_ids, values) in enumerate(rows):
        keep = np.asarray(values[:K], dtype=np.float64) > 0
        count = int(keep.sum())
        ids[i, :count] = np.asarray(doc_ids[:K])[keep]
        scores[i, :count] = np.asarray(values[:K], dtype=np.float64)[keep]
    return Neighbours(ids, scores)


def bm25_case(quick: bool) -> Case:
    """Lucene BM25 on the BBC headline task: ours vs bm25s, and rank_bm25's BM25Okapi beside them."""
    from workbench_engines.retrieval.bm25 import BM25Index
    from workbench_engines.retrieval.corpora import headline_task, load_bbc
    from workbench_engines.retrieval.tokenizer import tokenize_many

    articles = load_bbc()
    task = headline_task(articles[:QUICK_ARTICLES] if quick else articles)
    docs, queries = task.documents, task.queries
    bm25s, rank_bm25 = peer("bm25s"), peer("rank_bm25")
    ours = Built(lambda: (BM25Index.from_texts(docs, k1=K1, b=B, method="lucene"), 0.0))

    def run_ours() -> Neighbours:
        return _padded([(h.doc_ids, h.scores) for h in ours.get().search_many(queries, k=K)])

    contenders = [Contender("ours", run_ours, "numpy", setup=lambda: ours.get())]
    if bm25s is not None:
        def build_bm25s() -> tuple[Any, float]:
            retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
            retriever.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
            return retriever, 0.0

        theirs = Built(build_bm25s)

        def run_bm25s() -> Neighbours:
            tokens = bm25s.tokenize(queries, stopwords="en", show_progress=False)
            ids, scores = theirs.get().retrieve(tokens, k=min(K, len(docs)), show_progress=False, n_threads=0,
                                                backend_selection="numpy")
            return _padded(list(zip(ids, scores)))

        contenders.append(Contender("bm25s", run_bm25s, "bm25s", setup=lambda: theirs.get()))
    okapi_expected: list[Neighbours] = []
    if rank_bm25 is not None:
        tokens = tokenize_many(docs)
        okapi = Built(lambda: (rank_bm25.BM25Okapi(tokens, k1=K1, b=B, epsilon=0.25), 0.0))

        def run_rank_bm25() -> Neighbours:
            rows = []
            for terms in tokenize_many(queries):
                scores = okapi.get().get_scores(terms)  # (N,) float64
                best = np.argsort(-scores, kind="stable")[:K]
                rows.append((best, scores[best]))
            padded = _padded(rows)
            return Neighbours(padded.ids, padded.scores, variant="okapi")

        def expect_okapi() -> None:
            okapi.get()
            if not okapi_expected:
                index = BM25Index.from_tokens(tokens, k1=K1, b=B, method="atire", idf_method="robertson",
                                              negative_idf="epsilon", epsilon=0.25, dtype="float64")
                okapi_expected.append(_padded([(h.doc_ids, h.scores) for h in index.search_many(queries, k=K)]))

        contenders.append(Contender("rank_bm25", run_rank_bm25, "rank_bm25", setup=expect_okapi, repeats=2, warmup=0,
                                    note="BM25Okapi"))

    def check(expected: Neighbours, got: Neighbours) -> str | None:
        if got.variant == "okapi":  # rank_bm25: against our index with its variant
            return same_ranking(okapi_expected[0], got, 1e-9, 1e-9)
        return same_ranking(expected, got, 1e-6, BM25_RTOL)

    reference = "bm25s" if bm25s is not None else "ours"
    return Case(f"BM25, {len(queries):,} headlines", contenders, check, reference=reference, baselines=("bm25s",),
                interleave=True, per_run=(float(len(queries)), "queries"))


# ---------------------------------------------------------------- the benchmark


def _missing() -> list[str]:
    """Why rows or cases are missing: peers not installed, data not installed."""
    from workbench_engines.embeddings.glove import package_dir
    from workbench_engines.retrieval.corpora import bbc_dir

    lines = [f"{name} not installed ({PEERS[name]}): its rows are left out" for name in PEERS if peer(name) is None]
    if not can_limit_blas():
        lines.append(f"threadpoolctl not installed ({THREADPOOLCTL}): NumPy's BLAS ran at its own thread setting")
    if not available("native"):
        lines.append(f"vector search cases left out: our C kernels can't run ({unavailable_reason('native')})")
    for what, find in (("GloVe 6B 50d", package_dir), ("the BBC corpus", bbc_dir)):
        try:
            find()
        except EngineError as exc:
            lines.append(f"{what} not found, its cases left out: {exc}")
    return lines


def cases(quick: bool = False) -> list[Case]:
    """The vector-search cases (where GloVe is installed) and the BM25 case (where the BBC corpus is)."""
    from workbench_engines.embeddings.glove import package_dir
    from workbench_engines.retrieval.corpora import bbc_dir

    out: list[Case] = []
    errors = []
    for find, make in ((package_dir, vector_cases), (bbc_dir, lambda q: [bm25_case(q)])):
        try:
            find()
        except EngineError as exc:
            errors.append(str(exc))
            continue
        if make is vector_cases and not available("native"):
            errors.append(f"our C kernels can't run ({unavailable_reason('native')})")
            continue
        out += make(quick)
    if not out:
        raise EngineError("bench search needs GloVe or the BBC corpus: " + "; ".join(errors))
    return out


def _qps(row: Profile) -> float:
    return row.extra.get("queries", 0.0) / row.wall_s if row.wall_s > 0 else 0.0


def summary(rows: list[Profile]) -> str:
    """The goals beside what this run measured, and what was left out."""
    by_case: dict[str, dict[str, Profile]] = {}
    for row in rows:
        by_case.setdefault(row.case, {})[row.name] = row
    lines = []

    def ratio(prefix: str) -> float | None:
        pairs = [c for name, c in by_case.items() if name.startswith(prefix)]
        ratios = [c["ours"].ratios.get(base) for c in pairs for base in ("faiss", "bm25s") if "ours" in c]
        found = [r for r in ratios if r is not None]
        return found[0] if found else None

    exact, bm25 = ratio("exact"), ratio("BM25")
    if exact is not None:
        lines.append(f"exact search: ours {exact:.2f}x faiss IndexFlatIP at one thread (goal >= 1.0x)")
    hnsw = {name: c for name, c in by_case.items() if name.startswith("HNSW")}
    best = {}
    for who in ("ours", "faiss"):
        reaching = [c[who] for c in hnsw.values() if who in c and c[who].extra.get("recall@10", 0) >= RECALL_GOAL]
        if reaching:
            best[who] = max(reaching, key=_qps)
    if len(best) == 2:
        o, f = best["ours"], best["faiss"]
        lines.append(f"HNSW at recall@10 >= {RECALL_GOAL}: ours {_qps(o):,.0f} q/s ({o.case.split(', ')[-1]}, recall "
                     f"{o.extra['recall@10']:.3f}) vs faiss {_qps(f):,.0f} q/s ({f.case.split(', ')[-1]}, recall "
                     f"{f.extra['recall@10']:.3f}): {_qps(o) / _qps(f):.2f}x (goal >= 0.7x)")
    elif hnsw:
        lines.append(f"HNSW: no efSearch reached recall@10 >= {RECALL_GOAL} on both sides in this run")
    if bm25 is not None:
        lines.append(f"BM25: ours {bm25:.2f}x bm25s (goal >= 1.0x)")
    lines += _missing()
    return "\n".join(lines)
