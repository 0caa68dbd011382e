"""Human-rated sentiment sentences and the VADER lexicon, extracted once from vaderSentiment's source distribution.

Hutto & Gilbert (2014, "VADER: A Parsimonious Rule-based Model for Sentiment
Analysis of Social Media Text", ICWSM) had every sentence of four corpora
rated by 20 people on a scale from −4 (most negative) to +4 (most positive);
their mean is the sentence's valence. The ratings ship inside the
``vadersentiment`` 3.3.2 source distribution (``hutto_ICWSM_2014.tar.gz``,
MIT licence) and nowhere in its wheel, so set-up downloads the source
distribution and :func:`extract` copies out only the data:

- ``movie``: 10,605 snippets of film reviews (from Pang & Lee's sentence polarity data);
- ``amazon``: 3,708 sentences of product reviews;
- ``nyt``: 5,190 sentences of New York Times opinion pieces;
- ``tweets``: 4,200 tweets;
- ``vader_lexicon.txt``: 7,506 distinct words and emoticons with their mean rated valence (what VADER scores with).

Example::

    >>> movie = load_sentences("movie")
    >>> movie[0].valence, movie[0].text[:30]
    (2.266666666667, "The Rock is destined to be the")
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from workbench_engines.errors import EngineError
from workbench_engines.paths import data_dir

SDIST = "vaderSentiment-3.3.2.tar.gz"
INSTALL = ("pip download --no-binary :all: --no-deps vadersentiment==3.3.2 -d build/sdist && "
           f"python -m workbench_engines.finetune.sentiment_data build/sdist/{SDIST}  (make setup does both)")

SOURCES = {
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
}
"""Corpus name -> its ground-truth file (id, mean valence, text; tab-separated)."""
LEXICON = "vader_lexicon.txt"
LICENCE = "LICENSE.txt"
FOLDER = "sentiment"
_RATINGS_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"


@dataclass(frozen=True)
class Sentence:
    """One human-rated sentence."""

    text: str
    valence: float
    """The mean of 20 ratings, in [−4, 4]."""
    source: str
    """A key of SOURCES."""
    id: str
    """The sentence's id in its file."""

    @property
    def positive(self) -> bool:
        """True when the raters leaned positive (valence > 0)."""
        return self.valence > 0


def installed_dir() -> Path:
    """Where set-up puts the data: ``<sys.prefix>/share/workbench/sentiment`` (the environment's data folder)."""
    return Path(sys.prefix) / "share" / "workbench" / FOLDER


def candidate_dirs() -> list[Path]:
    """Folders searched for the data, first match wins: $WB_SENTIMENT_DIR, the data directory, the install's."""
    found = [Path(os.environ["WB_SENTIMENT_DIR"])] if os.environ.get("WB_SENTIMENT_DIR") else []
    return found + [data_dir(create=False) / FOLDER, installed_dir()]


def sentiment_dir() -> Path:
    """The folder holding the extracted data.

    Raises:
        EngineError: none of :func:`candidate_dirs` holds it; the message says how to install it.
    """
    for folder in candidate_dirs():
        if all((folder / name).is_file() for name in (*SOURCES.values(), LEXICON)):
            return folder
    searched = ", ".join(str(folder) for folder in candidate_dirs())
    raise EngineError(f"the VADER sentiment data is not installed (looked in {searched}); install it with: {INSTALL}")


def available() -> bool:
    """True when the data is installed."""
    try:
        sentiment_dir()
    except EngineError:
        return False
    return True


def extract(sdist: str | Path, dest: str | Path | None = None) -> Path:
    """Copy the ratings, the lexicon and the licence out of the source distribution into ``dest``.

    Everything is written to ``dest.tmp`` first and renamed, so an interrupted
    extraction never leaves a folder that looks complete.

    Args:
        sdist: The ``vaderSentiment-3.3.2.tar.gz`` that pip downloaded.
        dest: The destination folder; None for :func:`installed_dir`.

    Returns:
        The destination folder.

    Raises:
        EngineError: the file is missing, not a gzip tar, or lacks a member this needs.
    """
    sdist = Path(sdist)
    dest = Path(dest) if dest is not None else installed_dir()
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(sdist, "r:gz") as outer:
            root = outer.getnames()[0].split("/")[0]
            (tmp / LEXICON).write_bytes(_member(outer, f"{root}/vaderSentiment/{LEXICON}", sdist))
            (tmp / LICENCE).write_bytes(_member(outer, f"{root}/{LICENCE}", sdist))
            ratings = io.BytesIO(_member(outer, f"{root}/{_RATINGS_ARCHIVE}", sdist))
        with tarfile.open(fileobj=ratings, mode="r:gz") as inner:
            for name in SOURCES.values():
                (tmp / name).write_bytes(_member(inner, f"hutto_ICWSM_2014/{name}", sdist))
    except (OSError, tarfile.TarError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EngineError(f"{sdist}: cannot read the VADER source distribution ({exc})") from exc
    except EngineError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(dest, ignore_errors=True)
    tmp.replace(dest)
    return dest


def _member(archive: tarfile.TarFile, name: str, where: Path) -> bytes:
    try:
        handle = archive.extractfile(name)
    except KeyError:
        handle = None
    if handle is None:
        raise EngineError(f"{where}: has no {name}; is it vaderSentiment 3.3.2's source distribution?")
    return handle.read()


def parse_sentences(path: Path, source: str) -> list[Sentence]:
    """Read one ground-truth file: ``id<TAB>valence<TAB>text`` per line (CRLF line ends).

    Raises:
        EngineError: a line without three fields or with a valence that is not a number in [−4, 4],
            reported as ``path:line``.
    """
    sentences = []
    text = path.read_bytes().decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t", 2)
        if len(fields) != 3:
            raise EngineError(f"{path}:{number}: expected id, valence and text separated by tabs")
        try:
            valence = float(fields[1])
        except ValueError:
            raise EngineError(f"{path}:{number}: valence {fields[1]!r} is not a number") from None
        if not -4 <= valence <= 4:
            raise EngineError(f"{path}:{number}: valence {valence} is outside [-4, 4]")
        sentences.append(Sentence(fields[2].strip(), valence, source, fields[0]))
    if not sentences:
        raise EngineError(f"{path}: holds no sentences")
    return sentences


@cache
def load_sentences(source: str = "movie") -> tuple[Sentence, ...]:
    """Every rated sentence of one corpus, in file order.

    Args:
        source: A key of SOURCES.

    Raises:
        EngineError: an unknown source, the data not installed, or a malformed file.
    """
    if source not in SOURCES:
        raise EngineError(f"unknown sentiment corpus {source!r}; choose one of {', '.join(SOURCES)}")
    return tuple(parse_sentences(sentiment_dir() / SOURCES[source], source))


def parse_lexicon(path: Path) -> dict[str, float]:
    """Read ``token<TAB>mean<TAB>std<TAB>[ratings]`` lines into token -> mean valence.

    Raises:
        EngineError: a line without a numeric mean, reported as ``path:line``.
    """
    lexicon = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            lexicon[fields[0]] = float(fields[1])
        except (IndexError, ValueError):
            raise EngineError(f"{path}:{number}: expected a token and its mean valence separated by a tab") from None
    if not lexicon:
        raise EngineError(f"{path}: holds no entries")
    return lexicon


@cache
def load_lexicon() -> dict[str, float]:
    """VADER's lexicon: token (lower case, or an emoticon) -> mean valence in [−4, 4]."""
    return parse_lexicon(sentiment_dir() / LEXICON)


def main(argv: list[str] | None = None) -> int:
    """``python -m workbench_engines.finetune.sentiment_data SDIST [DEST]``: extract the data (set-up runs it)."""
    import argparse

    parser = argparse.ArgumentParser(description="Extract the VADER sentiment data from its source distribution.")
    parser.add_argument("sdist", help=f"the downloaded {SDIST}")
    parser.add_argument("dest", nargs="?", help=f"destination folder (default {installed_dir()})")
    args = parser.parse_args(argv)
    try:
        dest = extract(args.sdist, args.dest)
    except EngineError as exc:
        print(f"sentiment_data: {exc}", file=sys.stderr)
        return 1
    print(f"VADER sentiment data in {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
