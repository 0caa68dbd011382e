"""Typed parameters for labs and probes, validated from a lesson's TOML block.

A lesson is data: these specs are how it may configure the code it names,
and every mistake becomes a message an author can act on.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 2, 60, 60, 40


def short_repr(value: Any) -> str:
    """repr(value) cut to a line: a lesson's value in an error message, however long or deep it is."""
    return _REPR.repr(value)


class ParamError(ValueError):
    """A lab or probe parameter is unknown, missing, of the wrong type or out of range."""


_TYPES = ("float", "int", "str", "bool", "list[float]", "list[str]")
MAX_TEXT = 20_000
"""Longest string a parameter takes unless its spec says otherwise (a lab's sample text fits many times)."""
MAX_ITEMS = 4_096
"""Most items a list parameter takes unless its spec says otherwise."""


@dataclass(frozen=True)
class Param:
    """One parameter: its type, default and allowed range.

    Every number has a range (``min`` and ``max``, or ``choices``) and every
    string and list a longest length (``max_len``, by default MAX_TEXT
    characters or MAX_ITEMS items): a lesson is data, and no value it may
    write can ask an engine for unbounded time or memory.
    """

    type: str
    default: Any = None
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    min_len: int = 0
    max_len: int | None = None
    """Most characters (str) or items (lists); None for MAX_TEXT or MAX_ITEMS."""

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"unknown param type {self.type!r}")
        numeric = self.type in ("int", "float", "list[float]")
        if numeric and self.choices is None and (self.min is None or self.max is None):
            raise ValueError(f"a {self.type} param needs a range: give it min and max (or choices)")

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def longest(self) -> int:
        """The most characters (str) or items (lists) this parameter takes."""
        if self.max_len is not None:
            return self.max_len
        return MAX_ITEMS if self.type.startswith("list[") else MAX_TEXT

    def coerce(self, name: str, value: Any) -> Any:
        """Return value converted to this type, or raise ParamError saying what was wrong."""
        if self.type.startswith("list["):
            if not isinstance(value, list):
                raise ParamError(f"{name} must be a list, got {type(value).__name__}")
            if len(value) > self.longest:
                raise ParamError(f"{name} takes at most {self.longest} items, got {len(value)}")
            item = Param(self.type[5:-1], min=self.min, max=self.max, choices=self.choices)
            items = [item.coerce(f"{name}[{i}]", v) for i, v in enumerate(value)]
            if len(items) < self.min_len:
                raise ParamError(f"{name} needs at least {self.min_len} items, got {len(items)}")
            return items
        if self.type == "bool":
            if not isinstance(value, bool):
                raise ParamError(f"{name} must be true or false, got {short_repr(value)}")
            return value
        if self.type == "str":
            if not isinstance(value, str):
                raise ParamError(f"{name} must be a string, got {short_repr(value)}")
            if len(value) > self.longest:
                raise ParamError(f"{name} takes at most {self.longest:,} characters, got {len(value):,}")
            out: Any = value
        elif self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParamError(f"{name} must be an integer, got {short_repr(value)}")
            out = value
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParamError(f"{name} must be a number, got {short_repr(value)}")
            out = float(value) if abs(value) < 1e308 else math.inf
            if not math.isfinite(out):
                raise ParamError(f"{name} must be a finite number, got {short_repr(value)}")
        if self.choices is not None and out not in self.choices:
            raise ParamError(f"{name} must be one of {', '.join(map(repr, self.choices))}, got {short_repr(out)}")
        if self.min is not None and out < self.min:
            raise ParamError(f"{name} must be >= {self.min}, got {short_repr(out)}")
        if self.max is not None and out > self.max:
            raise ParamError(f"{name} must be <= {self.max}, got {short_repr(out)}")
        return out


def validate_params(spec: dict[str, Param], given: dict[str, Any], owner: str) -> dict[str, Any]:
    """Check given against spec; return the full parameter dict with defaults filled in.

    Raises ParamError naming the owner (lab or probe id) and every problem found.
    """
    problems = []
    unknown = sorted(set(given) - set(spec))
    if unknown:
        known = ", ".join(sorted(spec)) or "none"
        problems.append(f"unknown parameter(s) {', '.join(unknown)} (known: {known})")
    values: dict[str, Any] = {}
    for name, param in spec.items():
        if name in given:
            try:
                values[name] = param.coerce(name, given[name])
            except ParamError as exc:
                problems.append(str(exc))
        elif param.required:
            problems.append(f"missing required parameter {name}")
        else:
            values[name] = param.default
    if problems:
        raise ParamError(f"{owner}: " + "; ".join(problems))
    return values
