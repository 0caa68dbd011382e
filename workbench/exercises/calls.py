"""One call of a function on one case's inputs, kept as plain data: what it returned or raised.

The child makes a :class:`Call` of the learner's function and sends it to the
parent (:meth:`Call.to_plain`, then :mod:`workbench.exercises.wire`); the
parent makes one of the engines' reference on its own copy of the same inputs
and compares the two. For functions that work in place (the KV-cache append)
the arguments after the call are part of the answer.
"""

from __future__ import annotations

import copy
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workbench.exercises.wire import WireError

MESSAGE_LIMIT = 2000


@dataclass
class Call:
    returned: Any = None
    error: str | None = None
    """``"TypeError: message"`` when the call raised, with the learner's line that raised."""
    error_type: str = ""
    """The exception's nearest built-in class, for specs where raising is the answer (``ValueError`` on overflow)."""
    args_after: tuple | None = None
    """The arguments after the call, for functions that write into them; else None."""

    def to_plain(self) -> dict[str, Any]:
        return {"returned": self.returned, "error": self.error, "error_type": self.error_type,
                "args_after": self.args_after}

    @classmethod
    def from_plain(cls, data: Any) -> Call:
        """The Call that to_plain wrote; WireError for anything shaped otherwise."""
        if not (isinstance(data, dict) and set(data) == {"returned", "error", "error_type", "args_after"}
                and isinstance(data["error"], (str, type(None))) and isinstance(data["error_type"], str)
                and isinstance(data["args_after"], (tuple, type(None)))):
            raise WireError("a malformed call record")
        return cls(data["returned"], data["error"], data["error_type"], data["args_after"])


def fresh(args: tuple) -> tuple:
    """Copies of mutable arguments, so no call sees another's writes (dicts and sets are read-only inputs)."""
    import numpy as np

    return tuple(a.copy() if isinstance(a, np.ndarray) else copy.deepcopy(a) if isinstance(a, list) else a
                 for a in args)


def where(exc: BaseException, learner_file: str, entry: str = "") -> str:
    """The learner's line that raised, if the traceback passes through their file.

    learner_file ending in a path separator is a folder (the learner's package): the deepest frame in any
    file within it is named, with the file, since the line may be in an earlier step's module; when that is
    not entry (the file being checked), the deepest line of entry that led there is named too.
    """
    folder = learner_file.endswith(("/", "\\"))
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if (f.filename.startswith(learner_file) if folder else f.filename == learner_file)]
    except Exception:  # noqa: BLE001 - a traceback we cannot read only loses the line number
        return ""
    if not frames:
        return ""
    if not folder:
        return f" (line {frames[-1].lineno}: {frames[-1].line})"
    deepest = frames[-1]
    text = f"{deepest.filename[len(learner_file):]} line {deepest.lineno}: {deepest.line}"
    callers = [f for f in frames if f.filename == entry]
    if entry and deepest.filename != entry and callers:
        text += f", reached from {entry[len(learner_file):]} line {callers[-1].lineno}: {callers[-1].line}"
    return f" ({text})"


def describe_exception(exc: BaseException, learner_file: str = "", entry: str = "") -> str:
    """``Type: message (line n: source)``, never raising even if the exception's __str__ does."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 - the learner's own exception class may fail to print
        text = f"{type(exc).__name__} (its message could not be printed)"
    if isinstance(exc, MemoryError):
        text = "MemoryError: ran out of memory"
    return text[:MESSAGE_LIMIT] + where(exc, learner_file, entry)


def invoke(fn: Callable[..., Any], args: tuple, *, keep_args: bool = False, learner_file: str = "",
           entry: str = "") -> Call:
    """Call fn(*args) and record what happened; never raises for what fn does."""
    try:
        returned = fn(*args)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - even sys.exit() in a solution is its answer, not ours
        return Call(error=describe_exception(exc, learner_file, entry), error_type=builtin_type(exc),
                    args_after=args if keep_args else None)
    return Call(returned=returned, args_after=args if keep_args else None)


def builtin_type(exc: BaseException) -> str:
    """The name of the nearest built-in class of exc (a learner's ``class Full(ValueError)`` is a ValueError)."""
    return next(c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins")
