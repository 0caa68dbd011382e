"""BM25 lab: a query's top BBC articles with each term's share of the score, Lucene's IDF against the classic one
that goes negative, k1 and b, and the headline -> article task scored after every change.

The corpus is BBC News (Greene & Cunningham, 2006; non-commercial research use
only), de-duplicated to 2,087 articles: each headline is a query whose one
relevant document is its own article's body (``corpora.bbc_headline_task``).
Terms are bm25s's: lower case, words of two or more characters, English stop
words dropped unless the learner keeps them. The tf part is Lucene's
tf / (tf + k1 (1 - b + b |d| / avgdl)); the IDF is Lucene's
log(1 + (N - n + 0.5) / (n + 0.5)) or the classic Okapi (Robertson)
log((N - n + 0.5) / (n + 0.5)), negative for a term in more than half of the
documents and kept negative here, as the formula is written.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Input, Static

from workbench.labs.base import Lab, Progress
from workbench.labs.knobs import knob_keys, shown_as_one, stepped
from workbench_engines.retrieval.corpora import bbc_headline_task

K1S = (0.1, 0.3, 0.6, 0.9, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0)
BS = (0.0, 0.25, 0.5, 0.75, 1.0)
IDFS = {"lucene": "Lucene IDF", "robertson": "classic (Okapi) IDF"}
EVAL_K = 10
"""Ranks kept per headline: recall@10, nDCG@10, and MRR counting a miss past rank 10 as 0."""
TERM_COLUMNS = 4
"""Query terms shown as columns of the top-articles table (80 columns hold four beside the rest)."""
MAX_INDEXES = 4
"""BM25 indexes kept (the last built); an index of the 2,087 articles takes about a second to build."""
_TOKENS: dict[bool, list[list[str]]] = {}
"""The articles' terms with stop words dropped (True) or kept (False)."""
_INDEXES: dict[tuple, Any] = {}
_SCORES: dict[tuple, dict[str, float]] = {}
_LOCK = threading.RLock()
"""Guards the three caches: lab workers and probe threads (a cancelled probe runs on to its end) fill them."""


@dataclass(frozen=True)
class BM25Settings:
    """BM25's knobs as the lab sets them."""

    k1: float = 1.5
    b: float = 0.75
    idf: str = "lucene"
    stopwords: bool = True

    @property
    def key(self) -> tuple:
        return (self.k1, self.b, self.idf, self.stopwords)

    def words(self) -> str:
        kept = "stop words dropped" if self.stopwords else "stop words kept"
        return f"{IDFS[self.idf]}, k1 {self.k1:g}, b {self.b:g}, {kept}"


def bm25_index(settings: BM25Settings):
    """The BM25Index of the task's articles under these settings, built once a session (a few kept)."""
    from workbench_engines.retrieval.bm25 import BM25Index
    from workbench_engines.retrieval.tokenizer import tokenize_many

    stop = "english" if settings.stopwords else None
    with _LOCK:  # check, build and keep as one step; the index returned is the caller's even once evicted
        index = _INDEXES.get(settings.key)
        if index is not None:
            return index
        tokens = _TOKENS.get(settings.stopwords)
        if tokens is None:
            tokens = _TOKENS[settings.stopwords] = tokenize_many(bbc_headline_task().documents, stopwords=stop)
        index = BM25Index.from_tokens(tokens, k1=settings.k1, b=settings.b, method="lucene",
                                      idf_method=settings.idf, negative_idf="keep", stopwords=stop)
        if len(_INDEXES) >= MAX_INDEXES:
            del _INDEXES[next(iter(_INDEXES))]
        _INDEXES[settings.key] = index
        return index


def task_scores(settings: BM25Settings) -> dict[str, float]:
    """recall@1, recall@10, MRR (within the top 10) and nDCG@10 of every headline finding its own article."""
    from workbench_engines.retrieval.metrics import evaluate

    with _LOCK:
        scores = _SCORES.get(settings.key)
        if scores is None:
            task = bbc_headline_task()
            hits = bm25_index(settings).search_many(task.queries, k=EVAL_K)
            scores = _SCORES[settings.key] = evaluate([h.doc_ids.tolist() for h in hits], task.relevant,
                                                      ks=(1, EVAL_K))
        return scores


def idf_of(term: str, settings: BM25Settings) -> float:
    """The IDF of ``term`` over the BBC articles under these settings (an EngineError for a term no article holds)."""
    from workbench_engines.errors import EngineError

    index = bm25_index(settings)
    if term not in index.vocab:
        raise EngineError(f"{term!r} is in no BBC article (as a term after tokenisation)")
    return float(index.idf[index.vocab[term]])


@dataclass(frozen=True)
class Ranked:
    """One query's answer: its terms, the top articles with each term's contribution, and the task's scores."""

    query: str
    settings: BM25Settings
    terms: list[str]
    """The query's terms after tokenisation, in order; a repeated term is kept and counts again."""
    term_rows: list[tuple[str, int, float, float]]
    """Each distinct term: (term, n documents holding it, Lucene IDF, classic IDF); n = 0 for a term in none."""
    hits: list[tuple[int, float, list]]
    """(document, score, its TermContributions) best first."""
    own: int | None
    """The 1-based rank of the article whose headline the query is, if it is one (None otherwise or unranked)."""
    own_id: str | None
    scores: dict[str, float]
    top_length: int = 0
    """|d| of the first article, in terms."""
    avgdl: float = 0.0
    """The mean |d| over the articles."""
    tf_parts: list[float] = field(default_factory=list)
    """The tf part of each of the first article's contributions, in its order: the breakdown draws them on the UI
    thread, which must never build (or rebuild an evicted) index."""


def rank(query: str, settings: BM25Settings, top: int, progress: Progress | None = None) -> Ranked:
    """The lab's run: build the index (once), rank the query, explain each hit term by term, score the task."""
    from workbench_engines.errors import EngineError
    from workbench_engines.retrieval.bm25 import idf, tf_part

    if not query.strip():
        raise EngineError("the query is empty: type some words")
    if progress:
        progress(0.05, "reading the BBC articles")
    task = bbc_headline_task()
    if progress:
        progress(0.3, f"indexing {len(task.documents):,} articles ({settings.words()})")
    index = bm25_index(settings)
    terms = index.query_terms(query)
    if not terms:
        raise EngineError(f"every word of {query!r} is an English stop word or shorter than two letters: nothing "
                          "is left to score (s keeps stop words)")
    if progress:
        progress(0.6, "ranking and scoring every headline")
    found = index.search(terms, k=len(task.documents))
    hits = [(int(d), float(s), index.explain(terms, int(d))) for d, s in zip(found.doc_ids[:top], found.scores[:top])]
    length = int(index.doc_len[hits[0][0]]) if hits else 0
    parts = [float(tf_part(np.asarray([part.tf]), np.asarray([length]), index.avgdl, index.params)[0])
             for part in (hits[0][2] if hits else [])]
    rows = []
    for term in dict.fromkeys(terms):
        n = int(index.df[index.vocab[term]]) if term in index.vocab else 0
        lucene, classic = (float(idf([n], index.n_docs, m)[0]) for m in IDFS) if n else (0.0, 0.0)
        rows.append((term, n, lucene, classic))
    doc = headline_doc(query)
    ranking = found.doc_ids.tolist()
    own = ranking.index(doc) + 1 if doc is not None and doc in ranking else None
    return Ranked(query, settings, terms, rows, hits, own, None if doc is None else task.doc_ids[doc],
                  task_scores(settings), length, float(index.avgdl), parts)


def headline_doc(query: str) -> int | None:
    """The article whose headline ``query`` is (spaces at the ends ignored), or None."""
    wanted = query.strip()
    return next((i for i, headline in enumerate(bbc_headline_task().queries) if headline.strip() == wanted), None)


def own_rank(query: str, settings: BM25Settings) -> int:
    """The 1-based rank BM25 gives the article whose headline ``query`` is; EngineError if it is no headline or
    the article holds none of its terms."""
    from workbench_engines.errors import EngineError

    doc = headline_doc(query)
    if doc is None:
        raise EngineError(f"{query!r} is not the headline of a BBC article")
    ranking = bm25_index(settings).search(query, k=len(bbc_headline_task().documents)).doc_ids.tolist()
    if doc not in ranking:
        raise EngineError(f"the article of {query!r} holds none of its terms")
    return ranking.index(doc) + 1


def signed(value: float) -> Text:
    """A weight or IDF to three decimals; a negative one in bold red (its minus sign says it without colour)."""
    return Text(f"{value:.3f}", style="bold red" if value < 0 else "")


def terms_table(ranked: Ranked) -> Table:
    """Each distinct query term: how many articles hold it and its IDF both ways (the lab's own bold)."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    lucene, classic = ("bold", "") if ranked.settings.idf == "lucene" else ("", "bold")
    table.add_column("term", no_wrap=True)
    table.add_column("articles holding it", justify="right")
    table.add_column("Lucene IDF", justify="right", style=lucene)
    table.add_column("classic IDF", justify="right", style=classic)
    for term, n, idf_lucene, idf_classic in ranked.term_rows:
        table.add_row(term, f"{n:,}", *(signed(v) if n else "-" for v in (idf_lucene, idf_classic)))
    return table


def idf_note(ranked: Ranked, n_docs: int) -> str:
    """In words: the terms held by more than half of the articles, whose classic IDF is negative, and unknown terms."""
    words = []
    common = [(t, n) for t, n, _, classic in ranked.term_rows if n and classic < 0]
    if common:
        named = ", ".join(f"'{t}' ({n:,})" for t, n in common)
        effect = ("lowers the score of every article that holds it" if ranked.settings.idf == "robertson" else
                  "would lower the score of every article holding it under the classic IDF (i switches)")
        words.append(f"In more than half of the {n_docs:,} articles: {named}. A negative IDF {effect}; "
                     "Lucene's 1 + inside the log keeps every IDF above 0.")
    unknown = [t for t, n, _, _ in ranked.term_rows if n == 0]
    if unknown:
        words.append(f"In no article: {', '.join(repr(t) for t in unknown)} (it adds nothing).")
    return " ".join(words)


def hits_table(ranked: Ranked) -> Table:
    """The top articles: score, each query term's contribution (the first TERM_COLUMNS terms), id and headline."""
    task = bbc_headline_task()
    shown = [t for t, n, _, _ in ranked.term_rows][:TERM_COLUMNS]
    table = Table(box=None, header_style="bold", pad_edge=False, expand=True)  # the article takes what is left
    table.add_column("#", justify="right", no_wrap=True, min_width=2)
    table.add_column("score", justify="right", no_wrap=True, min_width=6)
    for term in shown:
        table.add_column(term[:7], justify="right", no_wrap=True, min_width=7)
    table.add_column("article", no_wrap=True, overflow="ellipsis", ratio=1)
    for place, (doc, score, parts) in enumerate(ranked.hits, 1):
        weight = {}
        for part in parts:
            weight[part.term] = weight.get(part.term, 0.0) + part.weight
        table.add_row(str(place), signed(score), *(signed(weight[t]) if weight[t] else "0" for t in shown),
                      f"{task.doc_ids[doc]} {task.queries[doc]}")
    return table


def breakdown(ranked: Ranked) -> Group:
    """The first article term by term: tf, IDF, the tf part and their product, as the formula reads."""
    _, score, parts = ranked.hits[0]
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("term", "tf", "IDF", "tf part", "= weight"):
        table.add_column(name, justify="left" if name == "term" else "right", no_wrap=True)
    for part, share in zip(parts, ranked.tf_parts):
        table.add_row(part.term, str(part.tf), signed(part.idf), f"{share:.3f}", signed(part.weight))
    head = Text(f"#1 term by term: weight = IDF × tf / (tf + k1 (1 − b + b |d|/avgdl)), |d| = {ranked.top_length} "
                f"terms, avgdl = {ranked.avgdl:.1f}; the weights add up to {score:.3f}.")
    return Group(head, table)


def task_line(ranked: Ranked) -> str:
    """The headline task's scores under the lab's settings."""
    m = ranked.scores
    return (f"All {len(bbc_headline_task().queries):,} headlines -> their own article: recall@1 {m['recall@1']:.3f}, "
            f"recall@10 {m['recall@10']:.3f}, MRR {m['mrr']:.3f} (top 10), nDCG@10 {m['ndcg@10']:.3f}.")


def own_line(ranked: Ranked) -> str:
    """Where the article whose headline the query is ranks, when the query is a BBC headline."""
    if ranked.own_id is None:
        return ""
    if ranked.own is None:
        return f"The query is the headline of {ranked.own_id}; that article holds none of its terms."
    return f"The query is the headline of {ranked.own_id}: its article ranks {ranked.own}."


class BM25Lab(Lab):
    """A query's top BBC articles by BM25, term by term, with both IDFs, k1, b and the headline task's scores."""

    BINDINGS = [
        Binding("i", "idf", "IDF", tooltip="Switch Lucene's IDF and the classic (Okapi) IDF"),
        *shown_as_one([*knob_keys("k", "k1", "k1"), *knob_keys("b", "b", "b")], "kK bB", "k1 b±"),
        Binding("s", "stopwords", "Stop words", tooltip="Drop English stop words or keep them"),
    ]
    settings: reactive[BM25Settings | None] = reactive(None, init=False)
    """BM25's knobs; every change ranks the query again and scores the task."""
    ranked: reactive[Ranked | None] = reactive(None, always_update=True, init=False)
    """The last query's answer."""

    def compose_lab(self) -> ComposeResult:
        yield Input(value=self.params["query"], placeholder="a query; Enter ranks the BBC articles")
        yield Static("Enter ranks; i switches the IDF; k/K and b/B move k1 and b; s keeps or drops stop words.",
                     classes="readout")

    def on_mount(self) -> None:
        p = self.params
        self.settings = BM25Settings(p["k1"], p["b"], p["idf"], p["stopwords"])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus()  # so the lab's keys reach it again
        self._rank()

    def action_idf(self) -> None:
        if not self.busy() and self.settings is not None:
            self.settings = replace(self.settings, idf="robertson" if self.settings.idf == "lucene" else "lucene")

    def action_stopwords(self) -> None:
        if not self.busy() and self.settings is not None:
            self.settings = replace(self.settings, stopwords=not self.settings.stopwords)

    def action_knob(self, name: str, step: int) -> None:
        if self.busy() or self.settings is None:
            return
        current = getattr(self.settings, name)
        ladder = sorted({*(K1S if name == "k1" else BS), current})
        new = stepped(ladder, current, step)
        if new == current:
            self.status(f"{name} is already at its {'highest' if step > 0 else 'lowest'} setting, {current:g}")
            return
        self.settings = replace(self.settings, **{name: new})

    def watch_settings(self, settings: BM25Settings | None) -> None:
        if settings is not None:
            self._rank()

    def _rank(self) -> None:
        from workbench_engines.retrieval.tokenizer import tokenize

        settings, top = self.settings, self.params["top"]
        query = self.query_one(Input).value
        if not query.strip():
            self.status("Type a query first: the box is empty.")
            return
        if not tokenize(query, stopwords="english" if settings.stopwords else None):
            self.status(f"Every word of {query!r} is an English stop word or a single letter: nothing is left to "
                        "score. Type other words, or s to keep stop words.")
            return
        self.start(lambda progress: rank(query, settings, top, progress),
                   lambda ranked: setattr(self, "ranked", ranked), "Ranking")

    def watch_ranked(self, ranked: Ranked | None) -> None:
        from workbench_engines.retrieval.corpora import BBC_NOTICE

        if ranked is None:
            return
        n_docs = len(bbc_headline_task().documents)
        parts: list = [terms_table(ranked)]
        note = idf_note(ranked, n_docs)
        if note:
            parts.append(Text(note))
        if ranked.hits:
            cut = len(ranked.term_rows) > TERM_COLUMNS
            parts += [Text(f"Top {len(ranked.hits)} of {n_docs:,} articles, {ranked.settings.words()}"
                           + (f" (the first {TERM_COLUMNS} terms' columns; #1's lists all)" if cut else "") + ":",
                           style="bold"),
                      hits_table(ranked), breakdown(ranked)]
        else:
            parts.append(Text("No article holds any of the query's terms.", style="bold"))
        own = own_line(ranked)
        parts += [Text(own)] if own else []
        parts += [Text(task_line(ranked)), Text(BBC_NOTICE, style="dim")]
        self.readout(Group(*parts))
        self.status(f"{ranked.settings.words()}. i IDF, kK k1, bB b, s stop words")
