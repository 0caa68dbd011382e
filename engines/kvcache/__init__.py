"""KV caches: keep each token's keys and values so decoding computes only the new token.

- :class:`ContiguousCache`: one slab reserved per sequence up to a maximum length;
- :class:`PagedCache`: a pool of fixed-size blocks with block tables, prefix
  sharing and copy-on-write (PagedAttention);
- :func:`kv_bytes` and :class:`Memory`: exact accounting of what a cache
  reserves, allocates and fills; :func:`serve_stream` measures the waste on
  a stream of requests.

The caches hold torch tensors; torch is imported when one of them is first
used, not with this package (the accounting needs none).
"""

from __future__ import annotations

import importlib

from workbench_engines.backends import Choice, resolve

from workbench_engines.kvcache.accounting import (
    DTYPE_BYTES,
    REAL_MODELS,
    CacheFull,
    Memory,
    ModelShape,
    kv_bytes,
    paged_slots,
)

KINDS = ("none", "contiguous", "paged")

_LAZY = {
    "ContiguousCache": "workbench_engines.kvcache.contiguous",
    "BlockPool": "workbench_engines.kvcache.paged",
    "PagedCache": "workbench_engines.kvcache.paged",
    "Request": "workbench_engines.kvcache.stream",
    "ServedRequest": "workbench_engines.kvcache.stream",
    "serve_request": "workbench_engines.kvcache.stream",
    "StreamReport": "workbench_engines.kvcache.stream",
    "mixed_requests": "workbench_engines.kvcache.stream",
    "serve_stream": "workbench_engines.kvcache.stream",
}

__all__ = ["DTYPE_BYTES", "KINDS", "REAL_MODELS", "CacheFull", "Memory", "ModelShape", "kv_bytes", "make_cache",
           "paged_attention", "paged_slots", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def paged_attention(config, block_size: int, attention: str = "auto") -> Choice:
    """How a paged cache's decode steps attend: "native" reads the blocks in place in C, "torch"
    gathers them for SDPA; "auto" takes the C kernel where it loads and the shapes fit."""
    limits = {}
    if block_size > 256 or config.head_dim > 256:
        limits["native"] = f"the C decode kernel takes block sizes and head dims up to 256 (here {block_size}, " \
                           f"{config.head_dim})"
    return resolve(attention, offers=("native", "torch"), unsupported=limits)


def make_cache(kind: str, config, *, batch: int = 1, max_len: int | None = None, block_size: int = 16,
               attention: str = "auto"):
    """A cache for ``batch`` sequences of up to max_len tokens (default: the model's context), or None for "none".

    ``attention`` picks a paged cache's decode path (see :func:`paged_attention`); the cache's
    ``attention_choice`` says which ran and why.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown cache {kind!r}; choose one of {', '.join(KINDS)}")
    max_len = max_len or config.context
    if kind == "none":
        return None
    if kind == "contiguous":
        from workbench_engines.kvcache.contiguous import ContiguousCache

        return ContiguousCache(config, batch, max_len)
    from workbench_engines.kvcache.paged import PagedCache

    choice = paged_attention(config, block_size, attention)
    cache = PagedCache(config, batch * -(-max_len // block_size), block_size,
                       attention="native" if choice.name == "native" else "gather")
    cache.attention_choice = choice
    ids = [cache.add_sequence()[0] for _ in range(batch)]
    cache.select(ids)
    return cache
