"""Hybrid retrieval lab: BM25, dense, RRF and reranking scored on the BBC headline task, chunking's effect, and
each method's top 3 for a typed query."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Input, Static
from workbench_engines.profiling.bench import one_blas_thread

from workbench.labs.base import Lab, Progress

_RETRIEVERS: dict[str, object] = {}
"""The built Retrievers, kept for the session: the dense index loads once."""
_CHUNK_ROWS: dict[str, list] = {}
"""The chunking table, kept for the session."""
METRIC_LABELS = {"recall@1": "R@1", "recall@10": "R@10", "recall@100": "R@100", "mrr": "MRR", "ndcg@10": "nDCG@10"}


def load_retrievers(progress: Progress | None = None):
    """The headline task's retrievers, built once per session (the dense vectors from the cache when there).

    MiniLM runs with NumPy's BLAS on one thread: on 2 cores beside the app, two BLAS threads spin against each
    other and embedding takes about twice as long."""
    from workbench_engines.retrieval.compare import build_retrievers

    if "bbc" not in _RETRIEVERS:
        with one_blas_thread():
            _RETRIEVERS["bbc"] = build_retrievers(progress=progress)
    return _RETRIEVERS["bbc"]


def run_methods(progress: Progress | None = None):
    """(the Retrievers, their Comparison) on the whole headline task."""
    retrievers = load_retrievers(progress)
    return retrievers, retrievers.compare()


def cached_methods(progress: Progress | None = None):
    """run_methods when the dense vectors are cached already (instant), else None: embedding waits for ctrl+r."""
    from workbench_engines.retrieval.compare import dense_cached

    return run_methods(progress) if "bbc" in _RETRIEVERS or dense_cached() else None


def run_chunking(progress: Progress | None = None) -> list:
    """The chunking table: BM25 over every article, MiniLM over the subset (embedded once, then cached)."""
    from workbench_engines.retrieval.compare import chunking_table

    if "bbc" not in _CHUNK_ROWS:
        with one_blas_thread():
            _CHUNK_ROWS["bbc"] = chunking_table(progress=progress)
    return _CHUNK_ROWS["bbc"]


def build_line(retrievers) -> str:
    """How the dense vectors came: embedded now (and how long it took) or read from the cache."""
    dense = retrievers.dense
    n = len(dense)
    if dense.seconds is None:
        return f"Dense vectors of {n:,} articles read from the cache ({dense.path.name})."
    minutes, seconds = divmod(round(dense.seconds), 60)
    took = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    where = "cached for later runs" if dense.path is not None else "not cached: the data folder could not be written"
    return (f"Embedded {n:,} articles (first {dense.max_tokens} tokens) in {took}, {dense.seconds / n:.2f} s each; "
            f"{where}.")


def methods_verdict(comparison) -> str:
    """In words: the best method by recall@1 and MRR against BM25, and where BM25 and dense each win."""
    scores = comparison.scores
    bm25 = next(s.metrics for s in scores if s.name == "BM25")
    best = max(scores, key=lambda s: (s.metrics["recall@1"], s.metrics["mrr"]))
    if best.name == "BM25":
        words = f"BM25 ranks best here: recall@1 {bm25['recall@1']:.1%}, MRR {bm25['mrr']:.3f}."
    else:
        words = (f"{best.name} ranks best: recall@1 {best.metrics['recall@1']:.1%} against BM25's "
                 f"{bm25['recall@1']:.1%}, MRR {best.metrics['mrr']:.3f} against {bm25['mrr']:.3f}.")
    first = comparison.first
    return (words + f" The right article comes first for both BM25 and dense on {first['both']:.1%} of headlines, "
            f"for BM25 alone on {first['BM25 only']:.1%}, dense alone on {first['dense only']:.1%}, "
            f"neither on {first['neither']:.1%}.")


def methods_table(scores, queries: int) -> Group:
    """The four methods' metrics under a line saying what was measured."""
    table = Table(box=None, header_style="bold")
    table.add_column("method")
    for label in METRIC_LABELS.values():
        table.add_column(label, justify="right")
    for s in scores:
        table.add_row(s.name, *(f"{s.metrics[m]:.3f}" for m in METRIC_LABELS))
    return Group(Text(f"{queries:,} headlines, each finding its own article among the rest", style="bold"), table)


def chunk_table(rows) -> Group:
    """The chunking rows under a line saying where each column ran."""
    subset = next((r.dense_chunks for r in rows if r.chunking.method is None), 0)
    table = Table(box=None, header_style="bold")
    for name in ("chunking", "chunks", "BM25 R@1", "MRR", "dense R@1", "MRR"):
        table.add_column(name, justify="left" if name == "chunking" else "right")
    for r in rows:
        dense = ("-", "-") if r.dense is None else (f"{r.dense['recall@1']:.3f}", f"{r.dense['mrr']:.3f}")
        table.add_row(r.chunking.name, f"{r.chunks:,}", f"{r.bm25['recall@1']:.3f}", f"{r.bm25['mrr']:.3f}", *dense)
    head = (f"Articles ranked by their best chunk: BM25 over every article, dense over {subset} spread over the "
            "topics")
    return Group(Text(head, style="bold"), table)


def hits_text(retrievers, query: str, hits) -> Text:
    out = Text(f"Top 3 for “{query}”:\n", style="bold")
    for method, top in hits.items():
        for rank, (doc, score) in enumerate(top, 1):
            headline = retrievers.task.queries[doc]
            out.append(f"{method if rank == 1 else '':7}{rank}. {headline[:52]:52} {score:7.4g}\n")
    return out


class HybridLab(Lab):
    """BM25, dense, RRF and rerank on the BBC headline task; chunking's effect; a typed query's top 3."""

    BINDINGS = [Binding("ctrl+r", "methods", "Score methods", tooltip="BM25, dense, RRF and rerank on every headline"),
                Binding("ctrl+g", "chunking", "Chunking", tooltip="Chunked retrieval, best chunk per article")]
    scores = reactive(None, always_update=True)
    """(Retrievers, Comparison) once scored."""
    chunks = reactive(None, always_update=True)
    """The chunking table's rows."""
    hits = reactive(None, always_update=True)
    """(query, each method's top 3) of the last Enter."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["query"], placeholder="a headline-like query; Enter searches", id="query")
        yield Static("", classes="readout")

    def on_mount(self) -> None:
        self._draw()
        self._score(cached_methods, "Looking for the dense cache")

    def _score(self, methods, what: str) -> None:
        """Score the methods (``methods(progress)``) and search the box's query with the same retrievers."""
        query = self.query_one("#query", Input).value

        def work(progress: Progress):
            outcome = methods(progress)
            if outcome is None or not query.strip():
                return outcome, None
            return outcome, (query, outcome[0].top_hits(query, 3))

        self.start(work, self._scored, what)

    def _scored(self, outcome) -> None:
        scores, hits = outcome
        if scores is None:
            self.status("ctrl+r embeds the 2,087 articles once (2 min, then cached); ctrl+g chunking")
            return
        self.scores, self.hits = scores, hits

    def action_methods(self) -> None:
        self.focus()  # so that x reaches the lab rather than the text box
        self._score(run_methods, "Building the BM25 and dense indexes")

    def action_chunking(self) -> None:
        self.focus()
        self.start(run_chunking, lambda rows: setattr(self, "chunks", rows), "Chunking and scoring")

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._search()

    def _search(self) -> None:
        if self.scores is None:
            self.status("ctrl+r first: the dense index is not built yet.")
            return
        query = self.query_one("#query", Input).value
        if not query.strip():
            self.status("Type a query, then Enter.")
            return
        retrievers = self.scores[0]
        self.start(lambda progress: (query, retrievers.top_hits(query, 3)),
                   lambda hits: setattr(self, "hits", hits), "Searching")

    def watch_scores(self) -> None:
        self._draw()

    def watch_chunks(self) -> None:
        self._draw()

    def watch_hits(self) -> None:
        self._draw()

    def _draw(self) -> None:
        from workbench_engines.retrieval.corpora import BBC_NOTICE

        parts = []
        if self.scores is not None:
            retrievers, comparison = self.scores
            parts += [methods_table(comparison.scores, len(retrievers.task.queries)), Text(methods_verdict(comparison)),
                      Text(build_line(retrievers), style="dim")]
            if self.hits is not None:
                parts.append(hits_text(retrievers, *self.hits))
        else:
            parts.append(Text("ctrl+r scores BM25, dense (MiniLM), RRF and rerank on the BBC headline task. "
                              "The first run embeds every article, about 2 minutes on two cores; later runs "
                              "read the cache."))
        if self.chunks is not None:
            parts.append(chunk_table(self.chunks))
        parts.append(Text(BBC_NOTICE, style="dim"))
        self.readout(Group(*parts))
