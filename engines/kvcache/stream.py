"""Serve a stream of requests of mixed lengths and measure how much KV memory each cache wastes.

Each request has a prompt, a limit on new tokens (what a contiguous cache must
reserve for) and the length it actually generates before it stops. Requests
run a few at a time; at every decoding step the real caches report their
allocated and stored bytes, and the waste is their time-averaged difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from workbench_engines.kvcache.contiguous import ContiguousCache
from workbench_engines.kvcache.paged import PagedCache


@dataclass(frozen=True)
class Request:
    prompt: int
    max_new: int
    generated: int
    """Tokens produced before an end-of-text token (≤ max_new)."""


@dataclass(frozen=True)
class StreamReport:
    kind: str
    requests: int
    steps: int
    allocated: int
    """Allocated bytes summed over every step."""
    stored: int
    peak_allocated: int

    @property
    def waste_fraction(self) -> float:
        return 1 - self.stored / self.allocated if self.allocated else 0.0


def mixed_requests(n: int, seed: int = 0, context: int = 2048) -> list[Request]:
    """Chat-like traffic: prompts of 16–512 tokens, a max_new of 512, outputs stopping anywhere before it."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        prompt = int(rng.integers(16, 513))
        max_new = min(512, context - prompt)
        out.append(Request(prompt, max_new, int(rng.integers(1, max_new + 1))))
    return out


# One layer, one head, two values: the accounting scales by bytes per token, the shape does not matter.
_TINY = SimpleNamespace(n_layers=1, kv_heads=1, head_dim=2)


def serve_stream(requests: list[Request], kind: str, *, block_size: int = 16, concurrency: int = 8) -> StreamReport:
    """Run the requests ``concurrency`` at a time through a cache of ``kind`` ("contiguous" or "paged")."""
    if kind not in ("contiguous", "paged"):
        raise ValueError(f"kind must be 'contiguous' or 'paged', got {kind!r}")
    queue = list(requests)
    paged = None
    if kind == "paged":
        worst = max(r.prompt + r.generated for r in requests)
        paged = PagedCache(_TINY, concurrency * (-(-worst // block_size)), block_size, prefix_caching=False)
    active: list[tuple[Request, object, int]] = []  # (request, cache or sequence id, tokens left)
    allocated = stored = peak = steps = 0
    while queue or active:
        while queue and len(active) < concurrency:
            request = queue.pop(0)
            if paged is None:
                handle = ContiguousCache(_TINY, 1, request.prompt + request.max_new)
                handle.reserve(request.prompt)
                handle.commit(request.prompt)
            else:
                handle, _ = paged.add_sequence()
                paged.reserve(request.prompt)
                paged.commit(request.prompt)
            active.append((request, handle, request.generated))
        # One decoding step: every active request stores one more token.
        for i, (request, handle, left) in enumerate(active):
            if paged is None:
                handle.reserve(1)
                handle.commit(1)
            else:
                paged.select([handle])
                paged.reserve(1)
                paged.commit(1)
            active[i] = (request, handle, left - 1)
        if paged is None:
            memories = [handle.memory() for _, handle, _ in active]
            step_allocated = sum(m.allocated for m in memories)
            step_stored = sum(m.stored for m in memories)
        else:
            memory = paged.memory()
            step_allocated, step_stored = memory.allocated, memory.stored
        allocated += step_allocated
        stored += step_stored
        peak = max(peak, step_allocated)
        steps += 1
        for request, handle, left in [a for a in active if a[2] == 0]:
            if paged is not None:
                paged.free(handle)
        active = [a for a in active if a[2] > 0]
    return StreamReport(kind, len(requests), steps, allocated, stored, peak)


@dataclass(frozen=True)
class ServedRequest:
    """One request served into a shared paged cache."""

    sequence: int
    """Its sequence id in the cache (free it with cache.free)."""
    prompt_tokens: int
    cached_tokens: int
    """Prompt tokens found in the prefix cache, so not computed again."""
    generated: list[int]


def serve_request(model, cache, prompt: list[int], new_tokens: int) -> ServedRequest:
    """Add a request to a PagedCache, prefill only the prompt tokens the prefix cache lacks, then
    decode ``new_tokens`` greedily; the sequence stays in the cache until freed."""
    import torch

    sequence, cached = cache.add_sequence(prompt)
    generated: list[int] = []
    with torch.inference_mode():
        logits = model(torch.tensor([prompt[cached:]]), cache, last_only=True)[0, -1]
        for _ in range(new_tokens):
            generated.append(int(logits.argmax()))
            logits = model(torch.tensor([[generated[-1]]]), cache, last_only=True)[0, -1]
    return ServedRequest(sequence, len(prompt), cached, generated)
