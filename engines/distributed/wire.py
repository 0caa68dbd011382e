"""Frames over a pipe between the parent and its ranks: an 8-byte length, then a pickle.

Used both ways: the parent writes the rank's job and later a stop request to
the rank's stdin; the rank writes reports, its result or its traceback to a
pipe of its own (``WB_DIST_FD``). Pickle rather than JSON so that a result can
carry NumPy arrays; both ends are this package, on one machine, in one session.
"""

from __future__ import annotations

import os
import pickle
import struct

HEADER = struct.Struct("<Q")
"""The frame's length in bytes, little-endian unsigned 64-bit."""


def write_frame(fd: int, obj: object) -> None:
    """Pickle ``obj`` and write it to ``fd`` as one frame (blocking until all of it is written)."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(HEADER.pack(len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_frame(fd: int) -> object | None:
    """Read one whole frame from a blocking ``fd``; None at end of file (the writer closed or died)."""
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    body = _read_exactly(fd, HEADER.unpack(header)[0])
    return None if body is None else pickle.loads(body)


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd``, or None when it ends first."""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class FrameBuffer:
    """Reassembles frames from the pieces a non-blocking read returns."""

    def __init__(self) -> None:
        self._data = bytearray()

    def feed(self, chunk: bytes) -> list[object]:
        """Add ``chunk``; return every frame now complete, in order."""
        self._data += chunk
        frames = []
        while len(self._data) >= HEADER.size:
            size = HEADER.unpack_from(self._data)[0]
            if len(self._data) < HEADER.size + size:
                break
            frames.append(pickle.loads(bytes(self._data[HEADER.size : HEADER.size + size])))
            del self._data[: HEADER.size + size]
        return frames
