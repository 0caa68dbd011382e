"""Plain data across the pipe between the judge and the sandboxed child, both ways, without pickle.

The judge sends a case's inputs to the child and gets back what the
learner's function returned; it must trust nothing from the child beyond
plain data. So values travel as one JSON document naming their type (None,
bool, int, float, str, bytes, list, tuple, set, frozenset, dict, NumPy scalar
and ndarray), with the arrays' bytes appended after it and rebuilt by
:func:`numpy.frombuffer` as base ndarrays of a numeric, boolean or string
dtype. Anything else (an ndarray subclass, an object dtype, a class of the
learner's own) is sent only as a description, :class:`Opaque`, which no
comparison accepts. A dict or set reached twice (the cl100k ranks shared by
every case) is sent once.

The parent decodes what an untrusted child wrote, on a thread that shares
the interpreter lock with the screen, so :func:`decode` refuses a JSON
document past :data:`DOCUMENT_LIMIT` or with more than
:data:`CONTAINER_LIMIT` lists and objects before parsing it: arrays travel
as bytes outside the document, so no real output comes near either, while a
forged one could otherwise take seconds and hundreds of MiB to parse.

>>> import numpy as np
>>> decode(encode((b"ab", {(1, 2): 3}, np.arange(3, dtype=np.int16))))
(b'ab', {(1, 2): 3}, array([0, 1, 2], dtype=int16))
"""

from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

MAGIC = b"WBW1"
HEADER = struct.Struct("<4sQ")
MAX_DEPTH = 64
"""Deeper nesting than any exercise's output is sent as Opaque (and refused when decoding)."""
DOCUMENT_LIMIT = 4 * 2**20
"""The largest JSON document a reply may carry; the largest real one (count_pairs' race) is under 1 MiB."""
CONTAINER_LIMIT = 500_000
"""The most lists and objects a reply's document may open; the most a real one opens is about 120,000.
Each costs the parser far more than its few bytes (allocation and garbage-collector passes)."""
ARRAY_KINDS = frozenset("biufcSU")
"""dtype kinds rebuilt as arrays: bool, integers, floats, complex, bytes and str; never objects or records."""


class WireError(ValueError):
    """The bytes are not a message this module wrote (truncated, forged, or too deep)."""


@dataclass(frozen=True)
class Opaque:
    """A value that cannot cross as plain data; only its description did."""

    description: str

    def __str__(self) -> str:
        return self.description


def describe(value: Any) -> str:
    """What a value is, for an Opaque: its type, and for an array subclass, that it is one."""
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__
    if isinstance(value, np.ndarray):
        return f"{name} (a subclass of numpy.ndarray, not an ndarray)" if kind is not np.ndarray \
            else f"an ndarray of dtype {value.dtype}, which the checker does not read"
    return f"an object of type {name}"


class _Encoder:
    def __init__(self) -> None:
        self.blobs: list[bytes] = []
        self.size = 0
        self.seen: dict[int, int] = {}
        self.open: set[int] = set()
        self.keep: list[Any] = []  # holds memoised objects so their ids stay unique while encoding

    def blob(self, data: bytes) -> list[int]:
        at = [self.size, len(data)]
        self.blobs.append(data)
        self.size += len(data)
        return at

    def node(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            return {"o": "a structure nested more than 64 levels deep"}
        kind = type(value)
        if value is None or kind in (bool, str):
            return value
        if kind is int:
            return value if abs(value) < 2**63 else {"I": str(value)}
        if kind is float:
            return value if math.isfinite(value) else {"f": repr(value)}
        if kind is bytes:
            return {"b": base64.b64encode(value).decode("ascii")}
        if kind is np.ndarray:
            if value.dtype.kind not in ARRAY_KINDS or value.dtype.fields is not None:
                return {"o": describe(value)}
            data = value.copy(order="C")  # not np.ascontiguousarray, which makes a 0-d array 1-d
            return {"a": [data.dtype.str, list(data.shape), self.blob(data.tobytes())]}
        if isinstance(value, np.generic) and kind.__module__ == "numpy" and np.dtype(kind).kind in ARRAY_KINDS:
            return {"n": [value.dtype.str, self.blob(value.tobytes())]}
        if kind in (list, tuple):
            return {"l" if kind is list else "t": [self.node(v, depth + 1) for v in value]}
        if kind in (dict, set, frozenset):
            if id(value) in self.open:
                return {"o": "a dict that contains itself"}
            memo = self.seen.get(id(value))
            if memo is not None:
                return {"r": memo}
            self.open.add(id(value))
            if kind is dict:
                body = [[self.node(k, depth + 1), self.node(v, depth + 1)] for k, v in value.items()]
            else:
                body = [self.node(v, depth + 1) for v in value]
            self.open.discard(id(value))
            self.seen[id(value)] = len(self.seen)
            self.keep.append(value)
            return {{dict: "d", set: "s", frozenset: "z"}[kind]: body, "id": self.seen[id(value)]}
        return {"o": describe(value)}


def encode(value: Any) -> bytes:
    """value as one message: header, JSON document, then the arrays' bytes."""
    encoder = _Encoder()
    document = json.dumps(encoder.node(value), separators=(",", ":"), allow_nan=False).encode("utf-8")
    return HEADER.pack(MAGIC, len(document)) + document + b"".join(encoder.blobs)


class _Decoder:
    def __init__(self, blob: memoryview) -> None:
        self.blob = blob
        self.memo: dict[int, Any] = {}

    def bytes_at(self, at: Any) -> memoryview:
        if not (isinstance(at, list) and len(at) == 2 and all(type(x) is int and x >= 0 for x in at)):
            raise WireError("a malformed array reference")
        start, length = at
        if start + length > len(self.blob):
            raise WireError("an array reaches past the end of the message")
        return self.blob[start : start + length]

    @staticmethod
    def dtype(text: Any) -> np.dtype:
        if not isinstance(text, str) or len(text) > 16:
            raise WireError("a malformed dtype")
        try:
            dtype = np.dtype(text)
        except TypeError as exc:
            raise WireError(f"an unknown dtype {text!r}") from exc
        if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise WireError(f"a dtype that is not plain data: {text!r}")
        return dtype

    def node(self, node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH + 1:
            raise WireError("nested too deep")
        if node is None or type(node) in (bool, int, float, str):
            return node
        tags = [key for key in node if key != "id"] if isinstance(node, dict) else []
        if len(tags) != 1:
            raise WireError("a malformed value")
        tag, body = tags[0], node[tags[0]]
        if tag == "I" and isinstance(body, str) and len(body) < 4300:
            return int(body)
        if tag == "f" and body in ("inf", "-inf", "nan"):
            return float(body)
        if tag == "b" and isinstance(body, str):
            return base64.b64decode(body, validate=True)
        if tag == "o" and isinstance(body, str):
            return Opaque(body[:300])
        if tag == "a" and isinstance(body, list) and len(body) == 3:
            dtype, shape = self.dtype(body[0]), body[1]
            if not (isinstance(shape, list) and len(shape) <= 32 and all(type(n) is int and n >= 0 for n in shape)):
                raise WireError("a malformed shape")
            data = self.bytes_at(body[2])
            if len(data) != math.prod(shape) * dtype.itemsize:
                raise WireError("an array's bytes do not match its shape")
            return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
        if tag == "n" and isinstance(body, list) and len(body) == 2:
            dtype, data = self.dtype(body[0]), self.bytes_at(body[1])
            if len(data) != dtype.itemsize:
                raise WireError("a scalar's bytes do not match its dtype")
            return np.frombuffer(data, dtype=dtype)[0]
        if tag in ("l", "t") and isinstance(body, list):
            items = [self.node(v, depth + 1) for v in body]
            return items if tag == "l" else tuple(items)
        if tag == "r" and type(body) is int and body in self.memo:
            return self.memo[body]
        if tag in ("d", "s", "z") and isinstance(body, list) and type(node.get("id")) is int:
            if tag == "d":
                if not all(isinstance(pair, list) and len(pair) == 2 for pair in body):
                    raise WireError("a malformed dict")
                value: Any = {self.node(k, depth + 1): self.node(v, depth + 1) for k, v in body}
            else:
                value = (set if tag == "s" else frozenset)(self.node(v, depth + 1) for v in body)
            self.memo[node["id"]] = value
            return value
        raise WireError(f"a malformed value tagged {tag!r}")


def decode(message: bytes | bytearray | memoryview, *, limited: bool = True) -> Any:
    """The value encode wrote; raises WireError for anything else, never runs code from the message.

    Args:
        message: what :func:`encode` wrote, or what a child forged in its place.
        limited: refuse documents past :data:`DOCUMENT_LIMIT` or :data:`CONTAINER_LIMIT` before parsing;
            False only for a message from the parent (the child's request), which can be larger.
    """
    view = memoryview(message)
    if len(view) < HEADER.size:
        raise WireError("the message is truncated")
    magic, length = HEADER.unpack(view[: HEADER.size])
    if magic != MAGIC or HEADER.size + length > len(view):
        raise WireError("the message is not one the checker wrote")
    if limited and length > DOCUMENT_LIMIT:
        raise WireError(f"its plain-data part is larger than {DOCUMENT_LIMIT // 2**20} MiB")
    text = bytes(view[HEADER.size : HEADER.size + length])
    # Brackets inside strings count too: an overestimate, and a cheap one (no parsing).
    if limited and text.count(b"[") + text.count(b"{") > CONTAINER_LIMIT:
        raise WireError(f"it holds more than {CONTAINER_LIMIT:,} lists and dicts")
    try:
        document = json.loads(text)
        return _Decoder(view[HEADER.size + length :]).node(document)
    except WireError:
        raise
    except (ValueError, TypeError, RecursionError, MemoryError, OverflowError) as exc:
        raise WireError(f"the message is unreadable: {type(exc).__name__}: {exc}") from exc
