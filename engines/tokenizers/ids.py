"""Checks on a vocabulary's id space, shared by the tokenizers that index a list by id.

A decoder table is as long as the largest id, so one stray id (a rank of
10^7 in a 257-line rank file) would allocate hundreds of megabytes for a
few hundred tokens. Ids may leave small gaps (cl100k_base puts its special
tokens a little past its ranks), but the id space must stay within
``id_limit(tokens)``.
"""

from __future__ import annotations

from collections.abc import Iterable

from workbench_engines.arrays import require_int
from workbench_engines.errors import EngineError


def id_limit(tokens: int) -> int:
    """The smallest id refused for a vocabulary of ``tokens`` tokens: twice the count, plus a byte table's worth."""
    return 2 * tokens + 256


def check_id_space(ids: Iterable[object], tokens: int, name: str) -> int:
    """One more than the largest id, after checking every id is a non-negative integer below id_limit(tokens);
    EngineError naming the first offender otherwise.

    Runs on every tokenizer load (200k ids for o200k_base), so plain ints take a fast path: one pass for
    their types, then min and max; only a vocabulary holding something else is checked id by id.
    """
    values = list(ids)
    if not values:
        return 0
    if set(map(type, values)) != {int}:
        for i in values:
            try:
                require_int(i, "id", low=0)
            except (TypeError, ValueError):
                raise EngineError(f"{name}: ids must be non-negative integers, got {i!r}") from None
    lowest, top, limit = min(values), max(values), id_limit(tokens)
    if lowest < 0:
        raise EngineError(f"{name}: ids must be non-negative integers, got {lowest!r}")
    if top >= limit:
        raise EngineError(f"{name}: id {top} for {tokens} tokens; ids must be dense, below {limit}")
    return int(top) + 1
