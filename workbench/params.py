"""Typed parameters for labs and probes, validated from a lesson's TOML block.

A lesson is data: these specs are how it may configure the code it names,
and every mistake becomes a message an author can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ParamError(ValueError):
    """A lab or probe parameter is unknown, missing, of the wrong type or out of range."""


_TYPES = ("float", "int", "str", "bool", "list[float]", "list[str]")


@dataclass(frozen=True)
class Param:
    """One parameter: its type, default and allowed range."""

    type: str
    default: Any = None
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    min_len: int = 0

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"unknown param type {self.type!r}")

    @property
    def required(self) -> bool:
        return self.default is None

    def coerce(self, name: str, value: Any) -> Any:
        """Return value converted to this type, or raise ParamError saying what was wrong."""
        if self.type.startswith("list["):
            if not isinstance(value, list):
                raise ParamError(f"{name} must be a list, got {type(value).__name__}")
            item = Param(self.type[5:-1], min=self.min, max=self.max, choices=self.choices)
            items = [item.coerce(f"{name}[{i}]", v) for i, v in enumerate(value)]
            if len(items) < self.min_len:
                raise ParamError(f"{name} needs at least {self.min_len} items, got {len(items)}")
            return items
        if self.type == "bool":
            if not isinstance(value, bool):
                raise ParamError(f"{name} must be true or false, got {value!r}")
            return value
        if self.type == "str":
            if not isinstance(value, str):
                raise ParamError(f"{name} must be a string, got {value!r}")
            out: Any = value
        elif self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParamError(f"{name} must be an integer, got {value!r}")
            out = value
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParamError(f"{name} must be a number, got {value!r}")
            out = float(value)
        if self.choices is not None and out not in self.choices:
            raise ParamError(f"{name} must be one of {', '.join(map(repr, self.choices))}, got {out!r}")
        if self.min is not None and out < self.min:
            raise ParamError(f"{name} must be >= {self.min}, got {out!r}")
        if self.max is not None and out > self.max:
            raise ParamError(f"{name} must be <= {self.max}, got {out!r}")
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
