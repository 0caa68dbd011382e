"""Vector-search lab: exact, IVF and HNSW search over GloVe, recall@10 against exact and queries/s, live.

The database is the first N rows of GloVe 6B 50d (GloVe keeps its words in
frequency order) and the queries its last rows, held out of every database
as ``workbench bench search`` holds them out; every row is scaled to unit
length, so the inner product is the cosine. With N = 399,000 the lab runs
the benchmark's own data.

A run builds what it lacks on one worker (IVF: k-means and the inverted
lists; HNSW: the graph; each build timed by the benchmark's own ``Built``),
then, once that worker has ended, races exact search against every step of
the IVF nprobe ladder and the HNSW efSearch ladder through the benchmark
runner, one thread each as the benchmark runs them. Recall@10 is measured
against the exact answer of the same queries.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from workbench.labs.base import Lab, Progress, RaceResult
from workbench.labs.knobs import knob_keys, shown_as_one, stepped
from workbench.labs.registry import LABS
from workbench.widgets.plots import Figure, Series, bar_label
from workbench.widgets.profile_panel import ProfilePanel
from workbench_engines.profiling.bench import one_blas_thread
from workbench_engines.search.bench import Built

K = 10
"""Neighbours asked for: every recall here is recall@10."""
FULL_DATABASE = 399_000
"""Every GloVe row but the 1,000 held out as queries: the benchmark's database."""
MAX_QUERIES = 1_000
_KNOBS = LABS["search.ann"].params
NLISTS, NPROBES, MS = _KNOBS["nlist"].choices, _KNOBS["nprobe"].choices, _KNOBS["M"].choices
EF_CONSTRUCTIONS, EF_SEARCHES = _KNOBS["ef_construction"].choices, _KNOBS["ef_search"].choices
"""The knobs' ladders: the values the lab's parameters may take, one key step apart."""
KMEANS_ITERATIONS = 10
"""k-means iterations of the IVF build, as ``workbench bench search`` trains it."""
POINTS_PER_LIST = 4
"""nlist may be at most database / POINTS_PER_LIST: k-means needs points to place every centroid."""
SCORE_ATOL = 1e-5
"""How far a returned score may sit from the float32 cosine of its id (one float32 dot product's round-off)."""
ANN_BUILT: dict[tuple, Built] = {}
"""Built indexes by (kind, database, knobs), the MAX_BUILT last kept: a rebuild takes seconds to minutes."""
MAX_BUILT = 4
_SPLIT: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
"""(database, queries) splits with their exact top-10 ids, the MAX_SPLITS last kept (the full set is 80 MB)."""
MAX_SPLITS = 2
_LOCK = threading.RLock()
"""Guards _SPLIT and ANN_BUILT: lab workers and probe threads (a cancelled probe runs on to its end) fill them,
and one build at a time is all two cores hold anyway."""
T = TypeVar("T")


@dataclass(frozen=True)
class AnnSettings:
    """What the learner set: the database size and every knob of the two approximate indexes."""

    database: int
    queries: int
    nlist: int
    nprobe: int
    M: int
    ef_construction: int
    ef_search: int

    @property
    def ivf_key(self) -> tuple:
        return ("ivf", self.database, self.nlist)

    @property
    def hnsw_key(self) -> tuple:
        return ("hnsw", self.database, self.M, self.ef_construction)


@dataclass(frozen=True)
class Point:
    """One measured setting: recall@10 against exact, queries per second, and speed against exact search timed in
    the same race (the runner's ratio)."""

    recall: float
    qps: float
    speedup: float


@dataclass(frozen=True)
class AnnRun:
    """Everything the lab shows: the settings measured, the builds, and each method's measured points."""

    settings: AnnSettings
    builds: dict[str, Built]
    """"ivf" / "hnsw" -> Built."""
    points: dict[str, dict[int, Point]]
    """"exact" -> {0: Point}; "ivf" -> {nprobe: Point}; "hnsw" -> {efSearch: Point}."""
    race: RaceResult | None = None
    """The last race's rows, for the table."""
    labels: dict[str, str] = field(default_factory=dict)
    """"ivf" / "hnsw" -> the index's build settings in words, for the plot's legend."""


# --- data and indexes (also what the probes call) ----------------------------------------------


def _kept(store: dict[tuple, T], key: tuple, limit: int, make: Callable[[], T]) -> T:
    """store[key], made by make() the first time; the oldest entry goes once ``limit`` are kept. Under _LOCK,
    so two threads never build the same thing, and the value returned is the caller's even if a later call
    evicts it (a split or C graph is freed once nothing holds it)."""
    with _LOCK:
        value = store.get(key)
        if value is None:
            value = make()
            while len(store) >= limit:
                store.pop(next(iter(store)))
            store[key] = value
        return value


def glove_split(database: int, queries: int = MAX_QUERIES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(database rows (N, 50), query rows (Q, 50), exact top-10 ids (Q, 10)): unit GloVe rows, the queries the
    last Q rows of GloVe, never in a database of at most FULL_DATABASE rows."""
    from workbench_engines.embeddings.glove import load_matrix
    from workbench_engines.errors import EngineError
    from workbench_engines.search import FlatIndex, normalize_rows

    if not (K <= database <= FULL_DATABASE and 1 <= queries <= MAX_QUERIES):
        raise EngineError(f"database must be {K}..{FULL_DATABASE:,} rows and queries 1..{MAX_QUERIES:,}, "
                          f"got {database:,} and {queries:,}")

    def split() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        matrix = load_matrix()
        rows = normalize_rows(matrix[:database])
        held = normalize_rows(matrix[-queries:])
        with one_blas_thread():
            return rows, held, FlatIndex(rows).search(held, K, threads=1).ids

    return _kept(_SPLIT, (database, queries), MAX_SPLITS, split)


def _index(key: tuple, build: Callable[[], tuple[Any, float]], progress: Progress | None, fraction: float,
           what: str) -> Built:
    """The index ``build`` makes (with its bytes per vector), kept under ``key``: built and timed by the engine on
    first use, as the benchmark builds its indexes, on one BLAS thread."""
    def made() -> Built:
        if progress:
            progress(fraction, what)
        built = Built(build)
        with one_blas_thread():
            built.get()
        return built

    return _kept(ANN_BUILT, key, MAX_BUILT, made)


def build_ivf(settings: AnnSettings, progress: Progress | None = None) -> Built:
    """The IVF index of these settings (k-means of KMEANS_ITERATIONS iterations, seed 0), built once a session."""
    from workbench_engines.search import IVFFlatIndex

    rows = glove_split(settings.database, settings.queries)[0]

    def build() -> tuple[IVFFlatIndex, float]:
        index = IVFFlatIndex(rows.shape[1], settings.nlist)
        index.train(rows, iterations=KMEANS_ITERATIONS, seed=0, threads=1)
        index.add(rows, threads=1)
        return index, index.bytes_per_vector()

    return _index(settings.ivf_key, build, progress, 0.05,
                  f"k-means: {settings.nlist} lists over {settings.database:,} vectors")


def build_hnsw(settings: AnnSettings, progress: Progress | None = None) -> Built:
    """The HNSW graph of these settings (seed 0, one C call: the same graph every time), built once a session."""
    from workbench_engines.search import HNSWIndex

    rows = glove_split(settings.database, settings.queries)[0]

    def build() -> tuple[HNSWIndex, float]:
        index = HNSWIndex.build(rows, M=settings.M, ef_construction=settings.ef_construction)
        return index, index.bytes_per_vector()

    return _index(settings.hnsw_key, build, progress, 0.3,
                  f"HNSW graph: {settings.database:,} vectors, M {settings.M}, efConstruction "
                  f"{settings.ef_construction} (x stops once the build returns)")


def ivf_recall(settings: AnnSettings) -> float:
    """Recall@10 of the IVF index of these settings at their nprobe, against exact search."""
    from workbench_engines.search import recall_at_k

    _, held, truth = glove_split(settings.database, settings.queries)
    with one_blas_thread():
        found = build_ivf(settings).index.search(held, K, nprobe=settings.nprobe, threads=1).ids
    return recall_at_k(found, truth)


def hnsw_recall(settings: AnnSettings) -> float:
    """Recall@10 of the HNSW graph of these settings at their efSearch, against exact search."""
    from workbench_engines.search import recall_at_k

    _, held, truth = glove_split(settings.database, settings.queries)
    found = build_hnsw(settings).index.search(held, K, ef_search=settings.ef_search, threads=1).ids
    return recall_at_k(found, truth)


def nlists_for(database: int) -> list[int]:
    """The nlist ladder a database of this size allows (POINTS_PER_LIST vectors a list at least)."""
    return [n for n in NLISTS if n * POINTS_PER_LIST <= database] or [NLISTS[0]]


def honest(rows: np.ndarray, held: np.ndarray):
    """The runner's check for a search: every id a real row, none twice for a query, each score the float32 cosine
    of its id, best first. An approximate index passes it while missing neighbours (recall says how many it found),
    and so does IVF padding a row with id -1 where its probed lists hold fewer than k vectors."""
    def check(expected, got) -> str | None:
        ids, values = got.ids, got.values
        if ids.shape != expected.ids.shape:
            return f"shape {ids.shape}, expected {expected.ids.shape}"
        found = ids >= 0  # (Q, K) False where the index padded
        if ids.max() >= len(rows) or (ids[~found] != -1).any():
            return "an id outside the database"
        if any(len(set(row)) != len(row) for row in np.where(found, ids, -np.arange(1, K + 1) - 1).tolist()):
            return "an id returned twice for one query"
        true = np.einsum("qkd,qd->qk", rows[np.where(found, ids, 0)], held)  # (Q, K)
        off = np.abs(np.where(found, true - values, 0.0)).max()
        if off > SCORE_ATOL:
            return f"a score off its id's cosine by {off:.2g}"
        shown = np.where(found, values, -2.0)  # padding below every cosine, so it may only come last
        if (np.diff(shown, axis=1) > SCORE_ATOL).any():
            return "scores not best first"
        return None

    return check


def sweep_cases(settings: AnnSettings, kinds: tuple[str, ...], builds: dict[str, Built]) -> list:
    """One case: exact search (the reference and the baseline) against the ladder of each kind in ``kinds``,
    every contender on one thread (ours and NumPy's BLAS), as ``workbench bench search`` runs them."""
    from workbench_engines.profiling import Case, Contender
    from workbench_engines.search import FlatIndex, recall_at_k
    from workbench_engines.search.bench import one_thread

    rows, held, truth = glove_split(settings.database, settings.queries)
    flat = FlatIndex(rows)

    def contender(name: str, run) -> Contender:
        setup, teardown = one_thread()
        return Contender(name, run, "native", setup, teardown)

    contenders = [contender("exact", lambda: flat.search(held, K, threads=1))]
    if "ivf" in kinds:
        ivf = builds["ivf"].index
        contenders += [contender(f"IVF p={p}", lambda p=p: ivf.search(held, K, nprobe=p, threads=1))
                       for p in NPROBES if p <= settings.nlist]
    if "hnsw" in kinds:
        hnsw = builds["hnsw"].index
        contenders += [contender(f"HNSW ef={e}", lambda e=e: hnsw.search(held, K, ef_search=e, threads=1))
                       for e in EF_SEARCHES]
    return [Case(f"{settings.database:,} vectors", contenders,
                 honest(rows, held), reference="exact", baselines=("exact",),
                 describe=lambda out: f"recall@{K} {recall_at_k(out.ids, truth):.3f}",
                 figures=lambda out: {"recall": recall_at_k(out.ids, truth)})]


def points_of(race: RaceResult, queries: int) -> dict[str, dict[int, Point]]:
    """Each contender's recall and queries/s, by kind and knob (the number ending its name)."""
    out: dict[str, dict[int, Point]] = {}
    for row in race.rows:
        kind = "exact" if row.name == "exact" else "ivf" if row.name.startswith("IVF") else "hnsw"
        knob = 0 if kind == "exact" else int(row.name.rsplit("=", 1)[1])
        out.setdefault(kind, {})[knob] = Point(row.extra["recall"], queries / row.wall_s, row.ratios["exact"])
    return out


def log_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Ticks for a log10 axis from 10^low to 10^high: 1, 2, 5 of each decade, labelled 2k, 10k."""
    marks = [(math.log10(m * 10.0 ** d), bar_label(m * 10.0 ** d))
             for d in range(math.floor(low), math.ceil(high) + 1) for m in (1, 2, 5)]
    inside = [(v, t) for v, t in marks if low - 1e-9 <= v <= high + 1e-9]
    return [v for v, _ in inside], [t for _, t in inside]


def selected_line(run: AnnRun) -> str:
    """The selected nprobe and efSearch in words: recall, queries/s, and speed against exact."""
    s, points = run.settings, run.points
    parts = []
    for kind, knob, name in (("ivf", s.nprobe, "nprobe"), ("hnsw", s.ef_search, "efSearch")):
        point = points.get(kind, {}).get(knob)
        if point is not None:
            parts.append(f"{run.labels[kind]} at {name} {knob}: recall@10 {point.recall:.3f}, "
                         f"{point.qps:,.0f} q/s, {point.speedup:.2f}× exact.")
    exact = points.get("exact", {}).get(0)
    if exact is not None:
        parts.append(f"Exact: recall 1, {exact.qps:,.0f} q/s.")
    return " ".join(parts)


class AnnLab(Lab):
    """Exact, IVF and HNSW search over GloVe: recall@10 against queries/s as the knobs move."""

    DEFAULT_CSS = "AnnLab Figure PlotextPlot { height: 12; }"
    BINDINGS = [
        # One footer item for the five knobs (the status line and help name each): 80 columns hold no more.
        *shown_as_one([*knob_keys("o", "nprobe", "nprobe"), *knob_keys("e", "ef_search", "efSearch"),
                       *knob_keys("l", "nlist", "nlist"), *knob_keys("m", "M", "M"),
                       *knob_keys("c", "ef_construction", "efConstruction")], "oO eE lL mM cC", "knobs±"),
        Binding("f", "full", "Full", tooltip="Switch between the lesson's database and all 399,000 words"),
        Binding("s", "sweep", "Run", tooltip="Build what is missing, then race exact search and every nprobe and "
                "efSearch"),
    ]
    settings: reactive[AnnSettings | None] = reactive(None, init=False)
    """The database and knobs: a build knob rebuilds its index, a search knob picks a measured point."""
    run: reactive[AnnRun | None] = reactive(None, always_update=True, init=False)
    """What the races measured, with the builds behind them."""
    notice = reactive("", init=False)
    """A lesson's parameter the lab had to change, said above the figures."""
    _built: tuple[AnnSettings, tuple[str, ...], dict[str, Built]] | None = None
    """A finished build waiting for its race: (settings, kinds, "ivf" / "hnsw" -> Built)."""

    def compose_lab(self) -> ComposeResult:
        yield Figure()
        yield Static(f"s builds the indexes over GloVe's first {self.params['database']:,} words and races exact "
                     "search against every nprobe and efSearch. Then oO nprobe and eE efSearch pick a measured "
                     "point; lL nlist, mM M and cC efConstruction rebuild an index; f switches to all 399,000 words.",
                     classes="readout")
        yield ProfilePanel("The race's table comes here.")

    def on_mount(self) -> None:
        p = self.params
        nlist, allowed = p["nlist"], nlists_for(p["database"])
        settings = AnnSettings(p["database"], p["queries"], min(nlist, allowed[-1]), p["nprobe"], p["M"],
                               p["ef_construction"], p["ef_search"])
        if nlist > allowed[-1]:
            self.notice = f"nlist {nlist} needs {nlist * POINTS_PER_LIST:,} vectors or more: using {allowed[-1]}."
        self.settings = settings

    # --- keys ----------------------------------------------------------------------------------

    def action_knob(self, name: str, step: int) -> None:
        if self.busy() or self.settings is None:
            return
        ladders = {"nprobe": [p for p in NPROBES if p <= self.settings.nlist], "ef_search": list(EF_SEARCHES),
                   "nlist": nlists_for(self.settings.database), "M": list(MS),
                   "ef_construction": list(EF_CONSTRUCTIONS)}
        new = stepped(ladders[name], getattr(self.settings, name), step)
        if new == getattr(self.settings, name):
            self.status(f"{name} is already at its {'highest' if step > 0 else 'lowest'} setting")
            return
        changed = replace(self.settings, **{name: new})
        if name == "nlist":
            changed = replace(changed, nprobe=min(changed.nprobe, new))
        self.settings = changed

    def action_full(self) -> None:
        if self.busy() or self.settings is None:
            return
        database = self.params["database"] if self.settings.database == FULL_DATABASE else FULL_DATABASE
        nlist = min(self.settings.nlist, nlists_for(database)[-1])
        self.settings = replace(self.settings, database=database, nlist=nlist, nprobe=min(self.settings.nprobe, nlist))

    def action_sweep(self) -> None:
        if not self.busy() and self.settings is not None:
            self._measure(self.settings, ("ivf", "hnsw"))

    def watch_settings(self, old: AnnSettings | None, new: AnnSettings | None) -> None:
        if new is None:
            return
        if self.run is None:  # nothing measured yet: s starts (a build takes seconds, the full set minutes)
            notice = f"{self.notice} " if self.notice else ""
            self.status(f"{notice}s builds IVF (nlist {new.nlist}) and HNSW (M {new.M}, efConstruction "
                        f"{new.ef_construction}) over {new.database:,} GloVe vectors and races them")
        elif old is None or old.database != new.database or old.queries != new.queries:
            self._measure(new, ("ivf", "hnsw"))
        elif old.ivf_key != new.ivf_key:
            self._measure(new, ("ivf",))
        elif old.hnsw_key != new.hnsw_key:
            self._measure(new, ("hnsw",))
        elif self.run is not None:
            self.run = replace(self.run, settings=new)

    # --- measuring -------------------------------------------------------------------------------

    def _measure(self, settings: AnnSettings, kinds: tuple[str, ...]) -> None:
        """Build what ``kinds`` need on a worker (progress in the bar, x stops it), then race them."""
        def build(progress: Progress) -> dict[str, Built]:
            progress(0.0, f"reading {settings.database:,} GloVe vectors")
            glove_split(settings.database, settings.queries)
            made = {}
            if "ivf" in kinds:
                made["ivf"] = build_ivf(settings, progress)
            if "hnsw" in kinds:
                made["hnsw"] = build_hnsw(settings, progress)
            return made

        self._built = None
        self.start(build, lambda made: setattr(self, "_built", (settings, kinds, made)), f"Building {named(kinds)}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The race starts once the build's worker has ended (a lab runs one worker at a time); the build's result
        # was queued before this event, so _built holds it unless the build failed or was cancelled.
        if event.worker is not self._worker or event.state is not WorkerState.SUCCESS or self._built is None:
            return
        (settings, kinds, made), self._built = self._built, None
        self.race(lambda: sweep_cases(settings, kinds, made), f"Racing {named(kinds)}",
                  lambda race: self._raced(settings, made, race))

    def _raced(self, settings: AnnSettings, made: dict[str, Built], race: RaceResult) -> None:
        old = self.run if self.run is not None and self.run.settings.database == settings.database else None
        points = {**(old.points if old else {}), **points_of(race, settings.queries)}
        builds = {**(old.builds if old else {}), **made}
        labels = {**(old.labels if old else {}), **{kind: index_label(kind, settings) for kind in made}}
        self.run = AnnRun(self.settings or settings, builds, points, race, labels)

    def watch_run(self, run: AnnRun | None) -> None:
        if run is None:
            return
        self._plot(run)
        self.readout(Group(*([Text(self.notice, style="bold")] if self.notice else []), Text(selected_line(run)),
                           builds_table(run),
                           Text(f"GloVe 6B 50d (Pennington et al., 2014), unit rows: the first "
                                f"{run.settings.database:,} words are the database, the last "
                                f"{run.settings.queries:,} the queries. One thread.", style="dim")))
        self.status("oO nprobe, eE efSearch (measured points); lL nlist, mM M, cC efConstruction (rebuild); "
                    "f full set; s run again")
        if run.race is not None:
            self.query_one(ProfilePanel).show(
                run.race.rows, run.race.baselines,
                f"ms: one batch of {run.settings.queries:,} queries. matches: every id returned is a real row with "
                "its own cosine, best first; recall@10 says how many of the true 10 nearest it found")

    def _plot(self, run: AnnRun) -> None:
        s = run.settings
        series, chosen = [], []
        for kind, knob in (("exact", 0), ("ivf", s.nprobe), ("hnsw", s.ef_search)):
            measured = run.points.get(kind)
            if not measured:
                continue
            knobs = sorted(measured)
            series.append(Series(run.labels.get(kind, "exact"), [measured[k].recall for k in knobs],
                                 [math.log10(measured[k].qps) for k in knobs], points=kind == "exact"))
            if knob in measured:
                chosen.append(measured[knob])
        if chosen:
            series.append(Series("selected", [p.recall for p in chosen], [math.log10(p.qps) for p in chosen],
                                 points=True))
        ys = [y for one in series for y in one.y]
        low, high = min(ys), max(ys)
        pad = max(0.05, 0.05 * (high - low))
        self.query_one(Figure).lines(
            f"recall@10 against queries/s, {s.database:,} vectors", series, xlabel="recall@10 (1 = exact)",
            hint="q/s on a log scale", ylim=(low - pad, high + pad), yticks=log_ticks(low - pad, high + pad))


def named(kinds: tuple[str, ...]) -> str:
    """The index kinds in words: "IVF and HNSW"."""
    return " and ".join({"ivf": "IVF", "hnsw": "HNSW"}[k] for k in kinds)


def index_label(kind: str, settings: AnnSettings) -> str:
    """An index's build settings in words, for the legend and the readout."""
    if kind == "ivf":
        return f"IVF nlist {settings.nlist}"
    return f"HNSW M {settings.M} efC {settings.ef_construction}"


def builds_table(run: AnnRun) -> Table:
    """Each index: its build settings, build time and bytes per vector (exact keeps the float32 rows alone)."""
    from workbench_engines.embeddings.glove import DIM

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name, justify in (("index", "left"), ("build", "right"), ("bytes/vector", "right")):
        table.add_column(name, justify=justify, no_wrap=True)
    table.add_row("exact (flat)", "none", f"{4 * DIM:,.0f}")
    for kind in ("ivf", "hnsw"):
        built = run.builds.get(kind)
        if built is not None:
            table.add_row(run.labels[kind], f"{built.seconds:.1f} s", f"{built.bytes_per_vector:,.0f}")
    return table
