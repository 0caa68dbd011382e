"""Quiz questions: parsed from a lesson's ```quiz block, graded against an answer.

Kinds: ``single`` and ``multiple`` choice, ``numeric`` with a tolerance,
``order`` (put items in sequence), and ``probe``, whose answer an engine
computes at run time from the question's parameters.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from workbench.params import short_repr

KINDS = ("single", "multiple", "numeric", "order", "probe")


class QuizError(ValueError):
    """A quiz block is malformed; the message says which field and why."""


@dataclass(frozen=True)
class Grade:
    """The outcome of one answer."""

    correct: bool
    score: float
    expected: str
    """The right answer, written for the learner."""


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    prompt: str
    explanation: str
    choices: tuple[str, ...] = ()
    """Options for single/multiple; for order, the items in their right order."""
    answer: Any = None
    """Index (single), sorted tuple of indices (multiple), number (numeric)."""
    why: tuple[str, ...] = ()
    """Optional explanation per choice, shown after answering."""
    tolerance: float = 0.0
    rel_tolerance: float = 0.0
    unit: str = ""
    probe: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def shuffled_order(self) -> list[int]:
        """The order-question items as first shown: a fixed shuffle that is never already solved."""
        indices = list(range(len(self.choices)))
        rng = random.Random(self.id)
        while indices == sorted(indices) and len(indices) > 1:
            rng.shuffle(indices)
        return indices

    def accepts(self, response: Any) -> bool:
        """Whether response has the shape this question's answers have (a stored answer may predate an edit
        of the lesson: fewer choices, another kind)."""
        def index(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(self.choices)

        if self.kind == "single":
            return index(response)
        if self.kind == "multiple":
            return isinstance(response, list) and bool(response) and all(index(i) for i in response)
        if self.kind == "order":
            return (isinstance(response, list) and all(index(i) for i in response)
                    and sorted(response) == list(range(len(self.choices))))
        return isinstance(response, (int, float)) and not isinstance(response, bool) and math.isfinite(response)

    def grade(self, response: Any, expected: float | None = None) -> Grade:
        """Grade a response: an index, a list of indices, a number, or an item order.

        ``expected`` is the engine-computed value a probe question is graded against.
        """
        if self.kind == "single":
            return Grade(response == self.answer, float(response == self.answer), self.choices[self.answer])
        if self.kind == "multiple":
            chosen = tuple(sorted(set(response)))
            ok = chosen == self.answer
            return Grade(ok, float(ok), ", ".join(self.choices[i] for i in self.answer))
        if self.kind == "order":
            ok = list(response) == list(range(len(self.choices)))
            return Grade(ok, float(ok), " → ".join(self.choices))
        target = self.answer if self.kind == "numeric" else expected
        if target is None:
            raise ValueError(f"probe question {self.id} needs the computed answer to grade")
        ok = within(float(response), float(target), self.tolerance, self.rel_tolerance)
        return Grade(ok, float(ok), format_number(float(target), self.tolerance) + (f" {self.unit}" if self.unit else ""))


def within(got: float, want: float, tolerance: float, rel_tolerance: float) -> bool:
    """|got - want| <= tolerance + rel_tolerance·|want| (NaN never matches)."""
    if math.isnan(got) or math.isnan(want):
        return False
    return abs(got - want) <= tolerance + rel_tolerance * abs(want)


_MINUS = str.maketrans({"−": "-", "–": "-", "×": "*", "·": "*"})

_BYTES = {
    **dict.fromkeys(("b", "byte", "bytes"), Fraction(1)),
    **dict.fromkeys(("kb", "kilobyte", "kilobytes"), Fraction(10**3)),
    **dict.fromkeys(("mb", "megabyte", "megabytes"), Fraction(10**6)),
    **dict.fromkeys(("gb", "gigabyte", "gigabytes"), Fraction(10**9)),
    **dict.fromkeys(("kib", "kibibyte", "kibibytes"), Fraction(2**10)),
    **dict.fromkeys(("mib", "mebibyte", "mebibytes"), Fraction(2**20)),
    **dict.fromkeys(("gib", "gibibyte", "gibibytes"), Fraction(2**30)),
}
_COUNT = {
    **dict.fromkeys(("k", "thousand", "thousands"), Fraction(10**3)),
    **dict.fromkeys(("m", "mn", "mln", "mil", "million", "millions"), Fraction(10**6)),
    **dict.fromkeys(("b", "bn", "billion", "billions"), Fraction(10**9)),
    **dict.fromkeys(("t", "tn", "trillion", "trillions"), Fraction(10**12)),
}
_PERCENT = dict.fromkeys(("%", "percent", "pct"), Fraction(1))
_TIME = {
    **dict.fromkeys(("ns", "nanosecond", "nanoseconds"), Fraction(1, 10**9)),
    **dict.fromkeys(("us", "µs", "μs", "microsecond", "microseconds"), Fraction(1, 10**6)),
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), Fraction(1, 10**3)),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), Fraction(1)),
}
_UNIT_FAMILIES = (_BYTES, _COUNT, _PERCENT, _TIME)
"""Units a number question may name, by family, lower-cased: each spelling's size in the family's base unit.
A question's unit picks its family (bytes first, so a unit "B" is bytes), and a learner may answer in any
spelling of that family: an answer in millions takes 16.4M, 16,400k and 0.0164 billion alike."""

_BYTE_PREFIXES = {"k": "KB or KiB", "m": "MB or MiB", "g": "GB or GiB"}
"""A bare prefix in a bytes answer: decimal or binary is the learner's to say, not ours to guess."""

_SUFFIX = re.compile(r"^(?P<number>.*?[\d.])\s*(?P<suffix>[^\d\s.,+\-*/^]+)$")
"""A number, then a unit written after it (letters or %): "16.4M", "16.4 millions", "25%"."""


def _unit_family(unit: str) -> dict[str, Fraction] | None:
    """The spellings of the family the question's unit belongs to; None for a unit this module doesn't know."""
    key = unit.strip().lower()
    return next((family for family in _UNIT_FAMILIES if key in family), None)


def _unit_scale(suffix: str, unit: str, typed: str) -> Fraction:
    """How many of the question's unit one ``suffix`` is (1 for the unit itself); ValueError when the suffix
    does not fit the question's unit or could mean two things."""
    key, wanted = suffix.lower(), unit.strip()
    family = _unit_family(wanted)
    if family is None:
        # A unit of the lesson's own: its spelling, in any case, singular or plural.
        if wanted and key in (wanted.lower(), wanted.lower() + "s", wanted.lower().removesuffix("s")):
            return Fraction(1)
        if not wanted:
            raise ValueError(f"{typed.strip()!r}: this answer is a plain number without a unit; "
                             "type just the number, e.g. 0.25.")
        raise ValueError(f"{typed.strip()!r}: type the number in {wanted}, without {suffix!r}.")
    decimal, binary = {"kb", "mb", "gb"}, {"kib", "mib", "gib"}
    if {key, wanted.lower()} & decimal and {key, wanted.lower()} & binary:
        # MB typed for MiB (or the reverse) is a slip to point out, not a conversion to make: 4.9% apart at M.
        raise ValueError(f"{typed.strip()!r}: {suffix} is {'binary' if key in binary else 'decimal'}, this answer "
                         f"is in {wanted}; type the number in {wanted}.")
    if key in family:
        return family[key] / family[wanted.lower()]
    if family is _BYTES and key in _BYTE_PREFIXES:
        raise ValueError(f"{typed.strip()!r}: {suffix} could mean {_BYTE_PREFIXES[key]}; type which, "
                         f"or the number in {wanted}.")
    raise ValueError(f"{typed.strip()!r}: {suffix!r} is not a unit of this answer; type the number in {wanted}.")


def parse_number(typed: str, unit: str = "") -> float:
    """The number a learner typed into a number question, as it will be graded.

    Accepts what people write: ``0.25``, ``1/4``, ``1e-3``, ``3 × 10^-4``,
    ``4,000``, ``25%`` (a quarter, unless the question's unit is itself ``%``,
    when it is 25), a typographic minus, and a unit after the number: the
    question's own, or another spelling or size of it, in any case, singular
    or plural (an answer in ``million`` takes ``16.4M``, ``16.4 Millions``
    and ``16,400k`` as 16.4; one in ``MiB`` takes ``2 GiB`` as 2048). A
    bare number is in the question's unit. Raises ValueError with a message
    for the learner otherwise, and for a unit that does not fit the question
    or could mean two things (``16M`` in bytes: MB or MiB?).
    Infinite and NaN results come back as such; the caller refuses them.
    """
    text = re.sub(r"\s*([*/^%])\s*", r"\1", typed.strip().translate(_MINUS))  # "3 × 10^-4", "1 / 4"
    scale = Fraction(1)
    wanted = unit.strip()
    found = _SUFFIX.match(text)
    if wanted and text.lower().endswith(wanted.lower()) and re.search(r"[\d.\s]$", text[: -len(wanted)]):
        text = text[: -len(wanted)].rstrip()  # the unit as the lesson spells it, "tokens/s" included
    elif found:
        suffix = found["suffix"]
        if suffix == "%" and not wanted:
            scale = Fraction(1, 100)
        else:
            scale = _unit_scale(suffix, unit, typed)
        text = found["number"]
    if re.search(r"\s", text):  # "1 2" is a typo, not 12
        raise ValueError(f"{typed.strip()!r} has a space inside the number; type it without one, e.g. 4000.")
    if not text:
        raise ValueError("Type a number, e.g. 0.25, 1/4, 25% or 3e-4.")
    if "/" in text:
        top, _, bottom = text.partition("/")
        denominator = _plain_number(bottom)
        if denominator == 0:
            raise ValueError(f"{typed.strip()} divides by zero.")
        return _scaled(_plain_number(top) / denominator, scale)
    return _scaled(_plain_number(text), scale)


def _scaled(value: float, scale: Fraction) -> float:
    """value × scale with one rounding where it can: 16384 × 1/1000 is 16.384, not 16.384000000000004."""
    if scale == 1:
        return value
    return value * scale.numerator / scale.denominator


def exact_number(value: float) -> str:
    """A number as it will be graded, every digit the learner typed kept: 1234567.8, 0.000123456789, 1e-20.

    A conversion's last-bit noise is not a digit anyone typed: 3.76% is 0.037599999999999995 in binary,
    shown as 0.0376 (the 15 significant digits a double carries, when they are within 2 ulps of the value).
    """
    if math.isfinite(value) and value == int(value) and abs(value) < 1e16:
        return str(int(value))
    short = f"{value:.15g}"
    if math.isfinite(value) and abs(float(short) - value) <= 2 * math.ulp(value):
        return short
    return repr(float(value))


def _plain_number(text: str) -> float:
    """A decimal, with thousands commas (4,000) and powers written 3*10^-4 or 3e-4."""
    if "*10^" in text:
        mantissa, _, exponent = text.partition("*10^")
        if not mantissa:
            raise ValueError(f"{text!r} needs a number before × 10^, e.g. 3 × 10^-4.")
        text = f"{mantissa}e{exponent}"
    elif text.lstrip("+-").startswith("10^"):
        sign = text[: len(text) - len(text.lstrip("+-"))]
        text = f"{sign}1e{text.lstrip('+-')[3:]}"
    if "," in text:
        whole, _, rest = text.partition(".")
        groups = whole.lstrip("+-").split(",")
        if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
            raise ValueError(f"{text} is not a number; write the decimal point as '.', e.g. 0.25.")
        text = whole.replace(",", "") + ("." + rest if rest or "." in text else "")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number; try e.g. 0.25, 1/4, 25% or 3e-4.") from None


def format_number(value: float, tolerance: float = 0.0) -> str:
    """A number shown with as many decimals as its tolerance makes meaningful (inf and nan as such)."""
    if not math.isfinite(value):
        return str(value)
    if not math.isfinite(tolerance):
        tolerance = 0.0
    if value == int(value) and tolerance < 1 and abs(value) < 1e15:
        return str(int(value))
    if tolerance > 0:
        decimals = max(0, min(8, -math.floor(math.log10(tolerance)) + 1))
        return f"{value:.{decimals}f}"
    return f"{value:.6g}"


def _req(body: dict[str, Any], key: str, typ: type | tuple[type, ...], what: str) -> Any:
    if key not in body:
        raise QuizError(f"missing '{key}' ({what})")
    value = body[key]
    if not isinstance(value, typ) or (isinstance(value, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,))):
        raise QuizError(f"'{key}' must be {what}, got {short_repr(value)}")
    return value


def _strings(body: dict[str, Any], key: str, minimum: int) -> tuple[str, ...]:
    values = _req(body, key, list, f"a list of at least {minimum} strings")
    if len(values) < minimum or not all(isinstance(v, str) for v in values):
        raise QuizError(f"'{key}' must be a list of at least {minimum} strings")
    return tuple(values)


def _number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e300:
        raise QuizError(f"'{key}' must be a finite non-negative number, got {short_repr(value)}")
    return float(value)


def _optional_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise QuizError(f"'{key}' must be a string, got {short_repr(value)}")
    return value


_ALLOWED = {
    "single": {"choices", "answer", "why"},
    "multiple": {"choices", "answer", "why"},
    "numeric": {"answer", "tolerance", "rel_tolerance", "unit"},
    "order": {"items"},
    "probe": {"probe", "params", "tolerance", "rel_tolerance", "unit"},
}


def parse_question(body: dict[str, Any]) -> Question:
    """Build a Question from a quiz block's TOML table, or raise QuizError."""
    kind = _req(body, "kind", str, f"one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise QuizError(f"'kind' must be one of {', '.join(KINDS)}, got {short_repr(kind)}")
    unknown = set(body) - {"id", "kind", "prompt", "explanation"} - _ALLOWED[kind]
    if unknown:
        raise QuizError(f"unknown field(s) for a {kind} question: {', '.join(sorted(unknown))}")
    common = {
        "id": _req(body, "id", str, "a string unique within the lesson"),
        "kind": kind,
        "prompt": _req(body, "prompt", str, "the question text"),
        "explanation": _req(body, "explanation", str, "text shown after answering"),
    }
    if kind in ("single", "multiple"):
        choices = _strings(body, "choices", 2)
        raw_why = body.get("why", [])
        if not isinstance(raw_why, list) or not all(isinstance(w, str) for w in raw_why):
            raise QuizError(f"'why' must be a list of strings, one per choice, got {short_repr(raw_why)}")
        why = tuple(raw_why)
        if why and len(why) != len(choices):
            raise QuizError(f"'why' has {len(why)} entries for {len(choices)} choices")
        if kind == "single":
            answer = _req(body, "answer", int, "the index of the right choice (from 0)")
            indices: tuple[int, ...] = (answer,)
        else:
            raw = _req(body, "answer", list, "a list of indices of the right choices (from 0)")
            if not raw or not all(isinstance(i, int) and not isinstance(i, bool) for i in raw):
                raise QuizError("'answer' must be a non-empty list of choice indices")
            indices = tuple(sorted(set(raw)))
            answer = indices
        for index in indices:
            if not 0 <= index < len(choices):
                raise QuizError(f"answer index {index} is outside the {len(choices)} choices")
        return Question(**common, choices=choices, answer=answer, why=why)
    if kind == "order":
        return Question(**common, choices=_strings(body, "items", 2))
    extra = {
        "tolerance": _number(body, "tolerance", 0.0),
        "rel_tolerance": _number(body, "rel_tolerance", 0.0),
        "unit": _optional_str(body, "unit"),
    }
    if kind == "numeric":
        answer = _req(body, "answer", (int, float), "a number")
        if not -1e300 < answer < 1e300:
            raise QuizError(f"'answer' must be a finite number, got {short_repr(answer)}")
        return Question(**common, answer=float(answer), **extra)
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise QuizError("'params' must be a table")
    return Question(**common, probe=_req(body, "probe", str, "a probe id"), params=params, **extra)
