"""The C byte-level BPE encoder (native/src/wb_bpe.c) behind a small Python handle.

Everything is checked here before a pointer crosses: the vocabulary is packed
into one byte blob with offsets, text arrives as UTF-8 bytes, and output
buffers are sized so that C can never write past them (a token covers at
least one byte, so ``len(text)`` ids always fit).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import sys
import threading
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from workbench_engines.errors import EngineError
from workbench_engines.nativelib import check_status, check_threads, native
from workbench_engines.tokenizers.pretokenize import NATIVE_PATTERNS, native_pattern_id


VIEW_MIN_CHARS = 1 << 16
"""Texts this long are read in place (utf8_view) instead of copied: below it, the copy costs less than asking."""


LIST_MIN_IDS = 4096
"""Outputs shorter than this become lists by ndarray.tolist(): the object array is worth it only for long ones."""
SCRATCH_MAX_IDS = 1 << 22
"""_objects keeps its scratch for outputs up to this many ids; a longer one gets a fresh array. Each NativeBPE
holds its scratch (8 bytes an id, so up to 32 MiB) for as long as it lives."""


class Utf8View(NamedTuple):
    """The UTF-8 bytes a str holds, by address; owner keeps them alive."""

    owner: str
    address: int
    size: int


@functools.cache
def _as_utf8():
    """CPython's PyUnicode_AsUTF8AndSize (a prototype of our own: ctypes.pythonapi's is shared), or None."""
    if sys.implementation.name != "cpython":
        return None
    prototype = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.POINTER(ctypes.c_ssize_t))
    return prototype(("PyUnicode_AsUTF8AndSize", ctypes.pythonapi))


def utf8_view(text: str) -> Utf8View | None:
    """text's UTF-8 bytes in place, or None where they must be copied (text.encode).

    CPython stores an ASCII str as its UTF-8 bytes. Any other str gets its
    UTF-8 made once and kept beside it until the str is freed (tiktoken asks
    the same way): a second copy of the text's size, so a long text encoded
    again is not copied again. On the 5 MB of plays the copy was 3-6 ms of a
    60-70 ms encode. None for a short text, on another Python, or when the text
    has a lone surrogate, which UTF-8 cannot hold.
    """
    if len(text) < VIEW_MIN_CHARS or (function := _as_utf8()) is None:
        return None
    size = ctypes.c_ssize_t()
    try:
        address = function(text, ctypes.byref(size))
    except UnicodeEncodeError:
        return None
    return Utf8View(text, address, size.value)


class NativeBPE:
    """A compiled rank table: encode UTF-8 bytes to ids with the C encoder."""

    utf8_view = staticmethod(utf8_view)

    def __init__(self, tokens_by_rank: list[bytes | None], pattern: str) -> None:
        if pattern not in NATIVE_PATTERNS:
            raise EngineError(f"no native pre-tokeniser for pattern {pattern!r}")
        module = native()
        self._ffi, self._lib = module.ffi, module.lib
        lengths = np.fromiter((len(t) if t else 0 for t in tokens_by_rank), dtype=np.uint64)
        offsets = np.zeros(len(tokens_by_rank) + 1, dtype=np.uint64)
        np.cumsum(lengths, out=offsets[1:])
        blob = b"".join(t for t in tokens_by_rank if t)
        handle = self._ffi.new("wb_bpe **")
        status = self._lib.wb_bpe_new(
            handle,
            self._ffi.from_buffer(blob) if blob else self._ffi.NULL,
            self._ffi.from_buffer("uint64_t[]", offsets),
            len(tokens_by_rank),
            native_pattern_id(self._lib, pattern),
        )
        check_status("wb_bpe_new", status)
        self._bpe = self._ffi.gc(handle[0], self._lib.wb_bpe_free)
        self._n_ranks = len(tokens_by_rank)
        self._int_objects: np.ndarray | None = None
        self._scratch = np.empty(0, dtype=object)
        self._scratch_lock = threading.Lock()

    def to_list(self, ids: np.ndarray) -> list[int]:
        """ids as a list of Python ints, fast for long outputs (see _objects)."""
        if len(ids) < LIST_MIN_IDS:
            return ids.tolist()
        with self._objects(ids) as objects:
            return objects.tolist()

    def to_lists(self, ids: np.ndarray, counts: list[int]) -> list[list[int]]:
        """ids cut into consecutive lists of counts[i] Python ints each, all converted in one pass."""
        ends = list(itertools.accumulate(counts))
        bounds = list(zip([0, *ends[:-1]], ends))
        if len(ids) < LIST_MIN_IDS:
            flat = ids.tolist()
            return [flat[start:end] for start, end in bounds]
        with self._objects(ids) as objects:
            return [objects[start:end].tolist() for start, end in bounds]

    @contextlib.contextmanager
    def _objects(self, ids: np.ndarray) -> Iterator[np.ndarray]:
        """ids as an object array of Python ints, valid inside the with block.

        Creating a Python int per id costs more than the encoding itself; an
        object array holding one int per rank lets numpy copy references instead.
        numpy's take is slower with uint32 indices than with its own intp, by
        more than the cast costs (3 to 6 ms on the plays' 1.5 million ids).

        take writes into a scratch array kept from call to call: a fresh 12 MB
        array faults in every page, which in a VM costs about 3 us each, 9 ms
        of 24 on the plays. A call that finds the scratch in use by another
        thread, or an output over SCRATCH_MAX_IDS, takes a fresh array.
        """
        if self._int_objects is None:
            self._int_objects = np.array(range(self._n_ranks), dtype=object)
        indices = ids.astype(np.intp)
        # mode="clip" because with mode="raise" numpy copies through a buffer when given out. ids come from the C
        # encoder, each below n_ranks (its contract), so clipping never changes one; both paths take them alike.
        if len(ids) > SCRATCH_MAX_IDS or not self._scratch_lock.acquire(blocking=False):
            yield self._int_objects.take(indices, mode="clip")
            return
        try:
            if len(self._scratch) < len(ids):
                self._scratch = np.empty(min(max(len(ids), 2 * len(self._scratch)), SCRATCH_MAX_IDS), dtype=object)
            yield self._int_objects.take(indices, out=self._scratch[: len(ids)], mode="clip")
        finally:
            self._scratch_lock.release()

    def encode(self, data: bytes | Utf8View) -> np.ndarray:
        """uint32 ids of UTF-8 bytes, pre-tokenised in C."""
        if isinstance(data, Utf8View):
            size, text = data.size, self._ffi.cast("const uint8_t *", data.address)
        else:
            size, text = len(data), self._ffi.from_buffer(data)
        out = np.empty(max(size, 1), dtype=np.uint32)
        count = self._ffi.new("size_t *")
        status = self._lib.wb_bpe_encode(
            self._bpe,
            text,
            size,
            self._ffi.from_buffer("uint32_t[]", out, require_writable=True),
            len(out),
            count,
        )
        check_status("wb_bpe_encode", status)
        return out[: count[0]]

    def encode_batch(self, texts: list[bytes], threads: int | None) -> list[np.ndarray]:
        """Ids of each text; texts are shared among ``threads`` C threads (None: nativelib.default_threads())."""
        threads = check_threads(threads)
        starts = np.zeros(len(texts) + 1, dtype=np.uint64)
        np.cumsum([len(t) for t in texts], out=starts[1:])
        blob = b"".join(texts)
        out = np.empty(max(len(blob), 1), dtype=np.uint32)
        counts = np.zeros(max(len(texts), 1), dtype=np.uint64)
        status = self._lib.wb_bpe_encode_batch(
            self._bpe,
            self._ffi.from_buffer(blob) if blob else self._ffi.NULL,
            self._ffi.from_buffer("uint64_t[]", starts),
            len(texts),
            self._ffi.from_buffer("uint32_t[]", out, require_writable=True),
            self._ffi.from_buffer("uint64_t[]", counts, require_writable=True),
            threads,
        )
        check_status("wb_bpe_encode_batch", status)
        return [out[int(s) : int(s) + int(c)] for s, c in zip(starts[:-1], counts[: len(texts)])]

    def encode_batch_lists(self, texts: list[bytes], threads: int | None) -> list[list[int]]:
        """encode_batch with every result as a list of Python ints, converted in one pass."""
        arrays = self.encode_batch(texts, threads)
        if len(arrays) < 2:
            return [self.to_list(a) for a in arrays]
        return self.to_lists(np.concatenate(arrays), [len(a) for a in arrays])

    def rank(self, token: bytes) -> int | None:
        """The rank of a byte string, or None when it is not a token."""
        if not token:
            return None
        rank = self._lib.wb_bpe_rank(self._bpe, self._ffi.from_buffer(token), len(token))
        return None if rank < 0 else int(rank)

    @property
    def long_piece_path(self) -> str:
        """How pieces over 128 bytes are encoded: "backtracking" (linear time, each pair of neighbours tested on
        the merge tree), "backtracking, pairs by encoding" (the same, testing a pair by encoding its bytes, for a
        vocabulary where some token is merged from a newer one or whose merge tree does not match its encoding)
        or "heap" (O(n log n), kept for a vocabulary with a token that its own bytes do not merge back to, or when
        the tables found no memory)."""
        return {2: "backtracking", 1: "backtracking, pairs by encoding"}.get(
            self._lib.wb_bpe_backtracks(self._bpe), "heap")
