"""Training byte-level BPE: count the pieces, then merge the most frequent pair, again and again.

Three trainers produce the same merges (ties go to the smallest pair of ids):

- :func:`train_naive`: the textbook loop (Sennrich et al., 2016): recount
  every pair after every merge. Clear, and slow: O(corpus) per merge.
- :func:`train_reference`: the same merges with counts kept up to date: each
  pair remembers which pieces contain it, so a merge only revisits those, and
  a heap with lazy deletion finds the most frequent pair.
- the C trainer (native/src/wb_bpe_train.c), the reference's algorithm in C.

:func:`train_bpe` drives either of the last two over text or a streamed file,
with progress and cancellation, and assembles the tokenizer.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench_engines import corpus
from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.profiling.profile import Profile
from workbench_engines.tokenizers import pretokenize
from workbench_engines.tokenizers.bpe import BPETokenizer, _special_regex, to_utf8

Pair = tuple[int, int]
ProgressFn = Callable[[int, int, str], None]


class TrainingCancelled(Cancelled):
    """should_stop() returned True during training; nothing was kept."""


@dataclass(frozen=True)
class Merge:
    pair: Pair
    new_id: int
    count: int


def pair_counts(words: list[list[int]], counts: list[int]) -> Counter[Pair]:
    """How often each adjacent pair occurs, each word weighted by its count."""
    stats: Counter[Pair] = Counter()
    for symbols, count in zip(words, counts):
        for pair in zip(symbols, symbols[1:]):
            stats[pair] += count
    return stats


def merge_pair(symbols: list[int], pair: Pair, new_id: int) -> list[int]:
    """symbols with every (a, b) replaced by new_id, left to right."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def train_naive(piece_counts: dict[bytes, int], n_merges: int) -> list[Merge]:
    """The textbook loop: count all pairs, merge the most frequent, repeat."""
    words = [list(piece) for piece in piece_counts]
    counts = list(piece_counts.values())
    merges: list[Merge] = []
    for step in range(n_merges):
        stats = pair_counts(words, counts)
        if not stats:
            break
        pair = min(stats, key=lambda p: (-stats[p], p))
        new_id = 256 + step
        merges.append(Merge(pair, new_id, stats[pair]))
        words = [merge_pair(symbols, pair, new_id) for symbols in words]
    return merges


def iter_merges_reference(piece_counts: dict[bytes, int]) -> Iterator[Merge]:
    """The merges of train_naive, one at a time, with incremental pair counts and a lazy max-heap."""
    words = [list(piece) for piece in piece_counts]
    counts = list(piece_counts.values())
    totals: Counter[Pair] = Counter()
    where: defaultdict[Pair, set[int]] = defaultdict(set)
    for w, (symbols, count) in enumerate(zip(words, counts)):
        for pair in zip(symbols, symbols[1:]):
            totals[pair] += count
            where[pair].add(w)
    # heapq is a min-heap: (-count, pair) pops the most frequent, smallest pair.
    heap = [(-count, pair) for pair, count in totals.items()]
    heapq.heapify(heap)
    new_id = 256
    while heap:
        negative, pair = heapq.heappop(heap)
        current = totals[pair]
        if current != -negative:
            # Stale: the count fell since this entry was pushed.
            if current > 0:
                heapq.heappush(heap, (-current, pair))
            continue
        changed: set[Pair] = set()
        for w in where.pop(pair):
            symbols, count = words[w], counts[w]
            if pair not in zip(symbols, symbols[1:]):
                continue
            for old in zip(symbols, symbols[1:]):
                totals[old] -= count
            symbols = words[w] = merge_pair(symbols, pair, new_id)
            for new in zip(symbols, symbols[1:]):
                totals[new] += count
                if new_id in new:
                    where[new].add(w)
                    changed.add(new)
        for new in changed:
            heapq.heappush(heap, (-totals[new], new))
        yield Merge(pair, new_id, current)
        new_id += 1


def train_reference(piece_counts: dict[bytes, int], n_merges: int) -> list[Merge]:
    """The first n_merges merges of iter_merges_reference."""
    return list(itertools.islice(iter_merges_reference(piece_counts), n_merges))


# ---- counting ---------------------------------------------------------------

def _without_specials(text: str, special_tokens: Iterable[str]) -> list[str]:
    specials = tuple(sorted(special_tokens))
    return _special_regex(specials).split(text) if specials else [text]


def count_pieces(text: str, pattern: str = "cl100k", special_tokens: Iterable[str] = ()) -> Counter[bytes]:
    """How often each pre-tokenised piece occurs (special-token text is left out)."""
    split = pretokenize.compiled(pattern)
    counts: Counter[bytes] = Counter()
    for part in _without_specials(text, special_tokens):
        counts.update(to_utf8(piece) for piece in split.findall(part))
    return counts


class _NativeCounter:
    def __init__(self, pattern: str) -> None:
        from workbench_engines.nativelib import check_status, native

        module = native()
        self.ffi, self.lib, self.check = module.ffi, module.lib, check_status
        self.name = pretokenize.pattern_name(pattern)
        handle = self.ffi.new("wb_bpe_counter **")
        self.check("wb_bpe_counter_new", self.lib.wb_bpe_counter_new(
            handle, pretokenize.native_pattern_id(self.lib, self.name or "whole")))
        self.handle = self.ffi.gc(handle[0], self.lib.wb_bpe_counter_free)
        self.split = None if self.name else pretokenize.compiled(pattern)

    def add(self, text: bytes) -> None:
        if self.split is None:
            status = self.lib.wb_bpe_counter_add(self.handle, self.ffi.from_buffer(text), len(text))
            self.check("wb_bpe_counter_add", status)
            return
        for piece, count in Counter(self.split.findall(text.decode("utf-8"))).items():
            data = piece.encode("utf-8")
            status = self.lib.wb_bpe_counter_add_piece(self.handle, self.ffi.from_buffer(data), len(data), count)
            self.check("wb_bpe_counter_add_piece", status)

    def __len__(self) -> int:
        return int(self.lib.wb_bpe_counter_size(self.handle))


def _iter_merges_native(counter: _NativeCounter) -> Iterator[Merge]:
    """The C trainer's merges, fetched 64 at a time, until no pair is left."""
    ffi, lib = counter.ffi, counter.lib
    handle = ffi.new("wb_bpe_trainer **")
    counter.check("wb_bpe_trainer_new", lib.wb_bpe_trainer_new(handle, counter.handle))
    trainer = ffi.gc(handle[0], lib.wb_bpe_trainer_free)
    batch = 64
    left = np.empty(batch, dtype=np.uint32)
    right = np.empty(batch, dtype=np.uint32)
    counts = np.empty(batch, dtype=np.uint64)
    done = ffi.new("size_t *")
    new_id = 256
    while True:
        status = lib.wb_bpe_trainer_step(
            trainer, batch,
            ffi.from_buffer("uint32_t[]", left, require_writable=True),
            ffi.from_buffer("uint32_t[]", right, require_writable=True),
            ffi.from_buffer("uint64_t[]", counts, require_writable=True),
            done,
        )
        counter.check("wb_bpe_trainer_step", status)
        for k in range(done[0]):
            yield Merge((int(left[k]), int(right[k])), new_id, int(counts[k]))
            new_id += 1
        if done[0] < batch:
            return


# ---- the driver -------------------------------------------------------------

@dataclass
class TrainResult:
    tokenizer: BPETokenizer
    merges: list[Merge]
    """Every merge performed, including any whose bytes were already a token."""
    distinct_pieces: int
    corpus_bytes: int
    seconds: float
    stopped_early: bool
    """True when pairs ran out before reaching vocab_size."""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def profile(self) -> Profile:
        """What training cost: one timed call, with the counting and merging phases in extra."""
        return Profile(self.tokenizer.backend, self.seconds, bytes_moved=float(self.corpus_bytes),
                       note=f"{len(self.merges):,} merges", extra=dict(self.timings))

    def tokens_after_merges(self) -> list[int]:
        """Tokens of the training text before any merge and after each one, from the merges' counts.

        A merge's count is how many adjacent pairs it replaced, so each removes
        that many tokens: exact, except where a pair overlaps itself ("aaa" has
        two (a, a) pairs but one merge), where this slightly overestimates the drop.
        """
        tokens = [self.corpus_bytes]
        for merge in self.merges:
            tokens.append(tokens[-1] - merge.count)
        return tokens


def _check_should_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise TrainingCancelled("training cancelled")


def train_bpe(
    text_or_path: str | Path,
    vocab_size: int,
    *,
    pattern: str = "cl100k",
    special_tokens: Iterable[str] = ("<|endoftext|>",),
    backend: str = "native",
    name: str = "trained",
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Learn a byte-level BPE vocabulary of vocab_size tokens (specials included).

    text_or_path: a str is the training text itself; a Path is a file or a folder
    of text files, streamed in chunks. progress(done, total, phase) reports
    bytes counted, then merges made; should_stop() is polled between chunks and
    merge batches and cancels with TrainingCancelled.
    """
    specials = list(dict.fromkeys(special_tokens))
    if not isinstance(vocab_size, int) or vocab_size < 256 + len(specials):
        raise EngineError(
            f"vocab_size must be at least 256 (one token per byte) plus {len(specials)} special tokens, got {vocab_size}"
        )
    if backend not in ("native", "reference"):
        raise ValueError(f"unknown backend {backend!r}; choose native or reference")
    for special in specials:
        if not special:
            raise EngineError("special tokens must be non-empty strings")
    pretokenize.compiled(pattern)
    started = time.perf_counter()
    report = progress or (lambda done, total, what: None)

    if isinstance(text_or_path, Path):
        chunks = corpus.iter_chunks(corpus.corpus_files(text_or_path))
    elif isinstance(text_or_path, str):
        data = to_utf8(text_or_path)
        chunks = iter([corpus.Chunk(data, len(data), len(data))])
    else:
        raise TypeError(f"train_bpe takes text (str) or a Path, got {type(text_or_path).__name__}")

    native_counter = _NativeCounter(pattern) if backend == "native" else None
    counts: Counter[bytes] = Counter()
    corpus_bytes = 0
    for chunk in chunks:
        _check_should_stop(should_stop)
        text = chunk.data.decode("utf-8")
        for part in _without_specials(text, specials):
            if native_counter is not None:
                native_counter.add(part.encode("utf-8"))
            else:
                counts.update(to_utf8(p) for p in pretokenize.compiled(pattern).findall(part))
        corpus_bytes = chunk.done_bytes
        report(chunk.done_bytes, chunk.total_bytes, "counting pieces")
    counted = time.perf_counter()
    distinct = len(native_counter) if native_counter is not None else len(counts)
    if distinct == 0:
        raise EngineError("the training text is empty")

    target = vocab_size - len(specials)
    stream = _iter_merges_native(native_counter) if native_counter is not None else iter_merges_reference(counts)
    merges: list[Merge] = []
    # Ranks: bytes 0..255, then each merge's bytes. Two merges can spell the same
    # string ((a, bc) and (ab, c)); the second adds no token, so merging goes on
    # until the vocabulary is full or no pair is left.
    by_id = {b: bytes([b]) for b in range(256)}
    ranks = {token: b for b, token in by_id.items()}
    while len(ranks) < target and (merge := next(stream, None)) is not None:
        merges.append(merge)
        token = by_id[merge.pair[0]] + by_id[merge.pair[1]]
        by_id[merge.new_id] = token
        ranks.setdefault(token, len(ranks))
        if len(merges) % 64 == 0:
            report(len(ranks) - 256, target - 256, "merging pairs")
            _check_should_stop(should_stop)
    report(target - 256, target - 256, "merging pairs")
    first_special = len(ranks)
    special_ids = {text: first_special + k for k, text in enumerate(specials)}
    tokenizer = BPETokenizer(name, ranks, pattern, special_ids, backend)
    finished = time.perf_counter()
    return TrainResult(
        tokenizer=tokenizer,
        merges=merges,
        distinct_pieces=distinct,
        corpus_bytes=corpus_bytes,
        seconds=finished - started,
        stopped_early=len(ranks) < target,
        timings={"count": counted - started, "merge": finished - counted},
    )
