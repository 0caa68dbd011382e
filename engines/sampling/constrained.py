"""Constrained decoding: a regex's automaton lifted from characters to tokens (Willard & Louf, 2023).

The regex becomes a deterministic finite automaton over characters
(``interegular`` builds it). For a state s, a token is allowed when walking
its characters from s stays inside the automaton and ends in a state from
which an accepting state can still be reached; the walk's end is the next
state. Masking every other token's logit before sampling makes any output a
prefix of a match, and the end-of-text token is allowed only in accepting
states, so a finished output is a full match. A small JSON Schema subset
compiles to such a regex.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench_engines.errors import EngineError


class ConstraintError(EngineError, ValueError):
    """A regex or schema that cannot be compiled to an automaton."""


@dataclass
class _StateTokens:
    allowed: np.ndarray
    """Token ids allowed from this state (ascending)."""
    finish: np.ndarray
    """For each allowed token, the fewest characters that complete a match after it."""
    next_state: dict[int, int]


class TokenAutomaton:
    """Which tokens may come next, state by state, for one regex and one vocabulary."""

    def __init__(self, pattern: str, token_strings: list[str | None], eos: int | None, fsm=None) -> None:
        """token_strings[i] is token i's text, or None for tokens that can never be allowed
        (special tokens, and bytes that are not a whole UTF-8 character); fsm is pattern's automaton when
        built already (``workbench_engines.generation.constrained.build_fsm`` bounds the build)."""
        import interegular

        try:
            self.fsm = fsm if fsm is not None else interegular.parse_pattern(pattern).to_fsm()
        except Exception as exc:  # noqa: BLE001 - interegular raises several types for bad syntax
            raise ConstraintError(f"cannot compile the regex {pattern!r}: {exc}") from exc
        self.pattern = pattern
        self.tokens = token_strings
        self.eos = eos
        self._other = self.fsm.alphabet[interegular.fsm.anything_else]
        self._to_final = self._distances_to_final()
        self._live = set(self._to_final)
        if self.fsm.initial not in self._live:
            raise ConstraintError(f"the regex {pattern!r} matches nothing")
        self._cache: dict[int, _StateTokens] = {}

    def _distances_to_final(self) -> dict[int, int]:
        """Fewest characters from each live state to an accepting one (breadth-first, backwards).

        The states missing from the result are dead: no match can be finished from them.
        """
        incoming: dict[int, set[int]] = {}
        for state, edges in self.fsm.map.items():
            for target in edges.values():
                incoming.setdefault(target, set()).add(state)
        distance = {state: 0 for state in self.fsm.finals}
        frontier = list(distance)
        while frontier:
            following = []
            for state in frontier:
                for previous in incoming.get(state, ()):
                    if previous not in distance:
                        distance[previous] = distance[state] + 1
                        following.append(previous)
            frontier = following
        return distance

    @property
    def initial(self) -> int:
        return self.fsm.initial

    def walk(self, state: int, text: str) -> int | None:
        """The state after reading text from state, or None if the automaton rejects it."""
        alphabet, edges = self.fsm.alphabet, self.fsm.map
        for ch in text:
            symbol = alphabet[ch] if ch in alphabet else self._other
            state = edges.get(state, {}).get(symbol)
            if state is None or state not in self._live:
                return None
        return state

    def _compute(self, state: int) -> _StateTokens:
        next_state: dict[int, int] = {}
        for token, text in enumerate(self.tokens):
            if text:
                end = self.walk(state, text)
                if end is not None:
                    next_state[token] = end
        if self.eos is not None and state in self.fsm.finals:
            next_state[self.eos] = state
        allowed = np.array(sorted(next_state), dtype=np.int64)
        finish = np.array([self._to_final[next_state[t]] for t in allowed], dtype=np.int64)
        return _StateTokens(allowed, finish, next_state)

    def allowed(self, state: int, budget: int | None = None) -> np.ndarray:
        """Token ids allowed next (the end-of-text token only where the text so far is a full match).

        With a budget of tokens left (this one included), only tokens after which
        the match can still be finished in time are allowed, counting one token
        per character (every character is a token in a byte-level vocabulary), so
        output cut off by the budget is still a full match.
        """
        if state not in self._cache:
            self._cache[state] = self._compute(state)
        entry = self._cache[state]
        if budget is None:
            return entry.allowed
        return entry.allowed[entry.finish <= budget - 1]

    def shortest_completion(self, state: int) -> int | None:
        """Fewest characters that turn the text so far into a full match (None if none can)."""
        return self._to_final.get(state)

    def advance(self, state: int, token: int) -> int:
        self.allowed(state)
        try:
            return self._cache[state].next_state[token]
        except KeyError:
            raise ConstraintError(f"token {token} is not allowed in state {state}") from None

    def is_final(self, state: int) -> bool:
        return state in self.fsm.finals

    def mask(self, logits: np.ndarray, state: int, budget: int | None = None) -> np.ndarray:
        """logits with every disallowed token at -inf."""
        out = np.full_like(logits, -np.inf)
        allowed = self.allowed(state, budget)
        out[allowed] = logits[allowed]
        return out


def token_strings(tokenizer) -> list[str | None]:
    """Each token's text for a byte-level BPE tokenizer; None for specials and partial UTF-8."""
    out: list[str | None] = []
    for token in range(tokenizer.vocab_size):
        if tokenizer.is_special(token):
            out.append(None)
            continue
        try:
            out.append(tokenizer.token_bytes(token).decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)
    return out


# ---- a JSON Schema subset ----------------------------------------------------

_STRING_CHAR = r'[^"\\\x00-\x1f]'


def schema_regex(schema: dict[str, Any]) -> str:
    """A regex matching the compact JSON (``json.dumps`` spacing) of values valid under schema.

    Supported: type object (every property, in the schema's order), string
    (maxLength, default 32; enum), integer and number (up to 6 integer digits),
    boolean, null, array (items, minItems, maxItems default 4). Every length is
    bounded, so the language is finite and generation always ends.
    """
    if not isinstance(schema, dict):
        raise ConstraintError(f"a schema must be an object, got {type(schema).__name__}")
    if "enum" in schema:
        values = schema["enum"]
        if not isinstance(values, list) or not values:
            raise ConstraintError("enum must be a non-empty list")
        return "(" + "|".join(re.escape(json.dumps(v)) for v in values) + ")"
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict) or not properties:
            raise ConstraintError("an object schema needs a non-empty properties map")
        parts = [re.escape(json.dumps(name)) + ": " + schema_regex(sub) for name, sub in properties.items()]
        return r"\{" + ", ".join(parts) + r"\}"
    if kind == "string":
        longest = schema.get("maxLength", 32)
        shortest = schema.get("minLength", 0)
        if not isinstance(longest, int) or not isinstance(shortest, int) or not 0 <= shortest <= longest:
            raise ConstraintError(f"string lengths must satisfy 0 <= minLength <= maxLength, got {shortest}, {longest}")
        return f'"{_STRING_CHAR}{{{shortest},{longest}}}"'
    if kind == "integer":
        return r"-?(0|[1-9][0-9]{0,5})"
    if kind == "number":
        return r"-?(0|[1-9][0-9]{0,5})(\.[0-9]{1,6})?"
    if kind == "boolean":
        return "(true|false)"
    if kind == "null":
        return "null"
    if kind == "array":
        items = schema.get("items")
        if not isinstance(items, dict):
            raise ConstraintError("an array schema needs an items schema")
        low, high = schema.get("minItems", 0), schema.get("maxItems", 4)
        if not isinstance(low, int) or not isinstance(high, int) or not 0 <= low <= high:
            raise ConstraintError(f"array sizes must satisfy 0 <= minItems <= maxItems, got {low}, {high}")
        item = schema_regex(items)
        if high == 0:
            return r"\[\]"
        more = f"(, {item}){{{max(0, low - 1)},{high - 1}}}"
        body = f"{item}{more}"
        return rf"\[({body})?\]" if low == 0 else rf"\[{body}\]"
    raise ConstraintError(f"unsupported schema type {kind!r} (object, string, integer, number, boolean, null, array, enum)")


def validate_json(value: Any, schema: dict[str, Any]) -> str | None:
    """None when value satisfies the schema subset above, else what is wrong (the tests' oracle)."""
    if "enum" in schema:
        return None if value in schema["enum"] else f"{value!r} is not one of {schema['enum']}"
    kind = schema.get("type")
    checks = {
        "string": lambda v: isinstance(v, str) and schema.get("minLength", 0) <= len(v) <= schema.get("maxLength", 32),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kind in checks:
        return None if checks[kind](value) else f"{value!r} is not a valid {kind}"
    if kind == "object":
        if not isinstance(value, dict) or list(value) != list(schema["properties"]):
            return f"{value!r} does not have exactly the properties {list(schema['properties'])}"
        for name, sub in schema["properties"].items():
            problem = validate_json(value[name], sub)
            if problem:
                return f"{name}: {problem}"
        return None
    if kind == "array":
        if not isinstance(value, list) or not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 4):
            return f"{value!r} is not an array of the right size"
        for item in value:
            problem = validate_json(item, schema["items"])
            if problem:
                return problem
        return None
    return f"unsupported schema type {kind!r}"
