"""The vector-search and BM25 labs (issue 15) mount, draw, move their knobs and answer bad input with a status line.

The vector-search lab runs on a slice of GloVe small enough to build and race in about a second; the BM25 lab on
the whole BBC headline task, which it indexes in about a second (built once per process).
"""

from __future__ import annotations

import pytest

from workbench.labs.base import RaceResult
from workbench.widgets.plots import Figure
from workbench.widgets.profile_panel import ProfilePanel

SMALL = {"database": 2_000, "queries": 50, "nlist": 16, "nprobe": 4, "M": 8, "ef_construction": 32, "ef_search": 32}
"""A slice that builds both indexes and races every setting in about a second."""


async def measured(h) -> None:
    """Settle until the lab is idle: a run builds on one worker, and the race starts on a second once it ends."""
    for _ in range(5):
        await h.settle()
        if not h.lab.running:
            return
    raise AssertionError("the lab is still running after five settles")


@pytest.mark.native
async def test_ann_lab_races_every_setting_and_plots_recall_against_speed(open_lab):
    async with open_lab("search.ann", **SMALL) as h:
        assert h.lab.run is None and "s builds IVF (nlist 16) and HNSW (M 8, efConstruction 32)" in h.status()
        await h.press("s")
        await measured(h)
        run = h.lab.run
        assert run is not None and isinstance(run.race, RaceResult)
        names = [row.name for row in run.race.rows]
        assert names[0] == "exact" and "IVF p=16" in names and "IVF p=32" not in names  # nprobe <= nlist
        assert "HNSW ef=512" in names and all(row.matches for row in run.race.rows)
        assert run.points["exact"][0].recall == 1.0
        assert run.points["ivf"][16].recall == 1.0  # nprobe = nlist scans every list: exact
        recalls = [run.points["hnsw"][e].recall for e in sorted(run.points["hnsw"])]
        assert recalls[-1] >= recalls[0] and 0 < recalls[0] < 1
        figure = h.lab.query_one(Figure)
        assert "recall@10 against queries/s, 2,000 vectors" in figure.title_text
        assert "IVF nlist 16" in figure.key_text and "HNSW M 8 efC 32" in figure.key_text
        readout = h.readout()
        assert "IVF nlist 16 at nprobe 4: recall@10" in readout and "HNSW M 8 efC 32 at efSearch 32" in readout
        assert "bytes/vector" in readout and "the first 2,000 words are the database" in readout
        assert len(h.lab.query_one(ProfilePanel).rows) == len(names)


@pytest.mark.native
async def test_ann_lab_search_knobs_pick_points_and_build_knobs_rebuild_one_index(open_lab):
    async with open_lab("search.ann", **SMALL) as h:
        await h.press("s")
        await measured(h)
        race = h.lab.run.race
        await h.press("o")  # nprobe 4 -> 8: a point already measured, nothing runs
        await h.settle()
        assert h.lab.settings.nprobe == 8 and h.lab.run.race is race
        assert "at nprobe 8:" in h.readout()
        ivf_points = h.lab.run.points["ivf"]
        await h.press("m")  # M 8 -> 12: only the graph is rebuilt and raced again
        await measured(h)
        run = h.lab.run
        assert run.race is not race and run.labels["hnsw"] == "HNSW M 12 efC 32"
        assert not any(row.name.startswith("IVF") for row in run.race.rows)
        assert run.points["ivf"] == ivf_points
        for _ in range(3):
            await h.press("O")
        await h.settle()
        assert h.lab.settings.nprobe == 1
        await h.press("O")
        assert "nprobe is already at its lowest setting" in h.status()


@pytest.mark.native
async def test_ann_lab_says_when_nlist_is_too_large_for_the_database(open_lab):
    async with open_lab("search.ann", **{**SMALL, "database": 1_000, "nlist": 2048}) as h:
        assert "nlist 2048 needs 8,192 vectors or more: using 128. s builds IVF (nlist 128)" in h.status()
        await h.press("s")
        await measured(h)
        assert "nlist 2048 needs 8,192 vectors or more: using 128." in h.readout()
        assert h.lab.settings.nlist == 128 and h.lab.run.labels["ivf"] == "IVF nlist 128"
        await h.press("l")
        assert "nlist is already at its highest setting" in h.status()


@pytest.mark.native
@pytest.mark.parametrize("stop, said", [("failed", "Failed: no room for the graph"), ("cancelled", "Cancelled.")])
async def test_ann_lab_races_nothing_after_a_failed_or_cancelled_build(open_lab, monkeypatch, stop, said):
    from workbench.labs import search_labs
    from workbench.labs.base import LabCancelled
    from workbench_engines.errors import EngineError

    def build_hnsw(settings, progress=None):
        raise EngineError("no room for the graph") if stop == "failed" else LabCancelled

    monkeypatch.setattr(search_labs, "build_hnsw", build_hnsw)
    async with open_lab("search.ann", **SMALL) as h:
        await h.press("s")
        await measured(h)
        assert h.lab.run is None and said in h.status()


@pytest.mark.native
def test_the_race_check_passes_approximate_answers_and_catches_wrong_ones():
    """IVF padding (id -1 where the probed lists hold fewer than 10 vectors) passes; a wrong score, a repeated id
    or an order that is not best first does not."""
    from workbench.labs.search_labs import AnnSettings, build_ivf, glove_split, honest
    from workbench_engines.search import FlatIndex, SearchResult

    rows, held, _ = glove_split(2_000, 50)
    check = honest(rows, held)
    exact = FlatIndex(rows).search(held, 10, threads=1)
    padded = build_ivf(AnnSettings(2_000, 50, 256, 1, 8, 32, 32)).index.search(held, 10, nprobe=1, threads=1)
    assert (padded.ids == -1).any() and check(exact, padded) is None and check(exact, exact) is None

    def changed(edit) -> SearchResult:
        ids, values = exact.ids.copy(), exact.values.copy()
        edit(ids, values)
        return SearchResult(ids, values, "ip")

    assert "off its id's cosine" in check(exact, changed(lambda i, v: v.__setitem__((0, 0), v[0, 0] + 0.1)))
    assert "twice" in check(exact, changed(lambda i, v: i.__setitem__((0, 1), i[0, 0])))
    assert "outside" in check(exact, changed(lambda i, v: i.__setitem__((0, 1), len(rows))))
    swapped = changed(lambda i, v: (i.__setitem__(0, i[0, ::-1].copy()), v.__setitem__(0, v[0, ::-1].copy())))
    assert "best first" in check(exact, swapped)


@pytest.mark.no_c_path
async def test_bm25_lab_answers_empty_and_stop_word_queries_with_a_status(open_lab):
    from textual.widgets import Input

    async with open_lab("retrieval.bm25") as h:
        await h.settle()
        assert h.lab.ranked is not None and h.lab.ranked.own == 1
        box = h.lab.query_one(Input)
        for text, said in (("   ", "the box is empty"), ("the and of a", "is an English stop word")):
            box.value = text
            box.focus()
            await h.press("enter")
            await h.settle()
            assert said in h.status(), h.status()
        box.value = "zzyzx qwxv"
        box.focus()
        await h.press("enter")
        await h.settle()
        assert "No article holds any of the query's terms." in h.readout()
        assert "In no article: 'zzyzx', 'qwxv'" in h.readout()


@pytest.mark.no_c_path
async def test_bm25_lab_knobs_change_the_index_and_keep_stop_words_on_request(open_lab):
    from textual.widgets import Input

    async with open_lab("retrieval.bm25", query="the said") as h:
        await h.settle()
        assert [row[0] for row in h.lab.ranked.term_rows] == ["said"]
        await h.press("s")
        await h.settle()
        assert h.lab.settings.stopwords is False
        assert [row[0] for row in h.lab.ranked.term_rows] == ["the", "said"]
        await h.press("k", "b")  # k1 1.5 -> 2, b 0.75 -> 1; each waits while the other's run goes
        await h.settle()
        await h.press("b")
        await h.settle()
        assert h.lab.settings.k1 == 2.0 and h.lab.settings.b == 1.0
        assert "k1 2, b 1, stop words kept" in h.readout()
        h.lab.query_one(Input).value = "the"
        await h.press("i")
        await h.settle()
        assert h.lab.settings.idf == "robertson"
        assert "In more than half of the 2,087 articles: 'the'" in h.readout()
