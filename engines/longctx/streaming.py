"""Attention sinks: reading a stream longer than any cache with a window of recent tokens and the first few kept.

Xiao et al., 2023, "Efficient Streaming Language Models with Attention Sinks"
(StreamingLLM). A model that keeps only the last W tokens' keys and values
(window attention) breaks as soon as the first tokens leave the cache: the
softmax must put its mass somewhere, trained models put a large share of it on
the first tokens whatever they say (the "attention sinks", §3.1), and without
them the rest of the distribution is rescaled into nonsense. StreamingLLM keeps
the first S tokens (S = 4 in the paper) beside the rolling window and gives
every cached token its position *in the cache*, not in the text (§3.2): the
current query sits at S + W − 1, the sinks at 0 … S − 1, so no distance ever
exceeds the cache and RoPE never sees an angle it was not trained on.

Three ways to read the same stream, each a :class:`StreamCurve` of per-token
losses (Figure 3 of the paper plots their perplexity against position):

- ``dense``: every earlier token, positions as in the text.
- ``window``: the last ``cache`` tokens only (the current one included).
- ``sinks``: the first ``sinks`` tokens and the last ``cache − sinks``.

:func:`stream_nll_reference` is the obviously correct version: one token at a
time through an explicit rolling cache of un-rotated keys, RoPE applied at
attention time by each key's index in the cache (as the paper's code does).
:func:`stream_nll` computes the same numbers without a token loop, layer by
layer over the whole stream in chunks of queries. Why that is exact:

- A token's keys and values at layer l depend only on what that token itself
  attended to below l, so one pass in which every query sees exactly its own
  set of keys yields the keys the rolling cache would have held.
- RoPE makes a score depend on the query's position minus the key's. Once the
  cache is full (query t >= S + W), a window key j sits at cache position
  S + (j − (t − W + 1)) and the query at S + W − 1: their distance is t − j,
  the text distance, so window keys and queries may be rotated by their text
  positions. A sink key s sits at s and the query always at S + W − 1, so sink
  scores take the query rotated at the constant position S + W − 1 against the
  sinks rotated at 0 … S − 1.
- Before the cache is full (t < S + W) nothing has been evicted and cache
  positions are text positions: plain causal attention.

So each chunk of queries sees a banded causal block (the window, text
positions) beside S sink columns (query at S + W − 1), masked so a warm-up
query sees neither twice; tests/test_streaming.py checks this against the
token loop.

The paper's strong but slow baseline, a sliding window with re-computation
(every token re-reads its last W tokens from scratch, W token-forwards per
token), is not run here: on two CPU cores it would take hours for a stream
the lab reads in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from workbench_engines.arrays import require_int
from workbench_engines.errors import Cancelled, EngineError

METHODS = ("dense", "window", "sinks")
LABELS = {"dense": "dense", "window": "window", "sinks": "sinks + window"}
CHUNK = 256
"""Queries per block of the fast path: the score block is (heads, CHUNK, keys), small whatever the stream."""


@dataclass(frozen=True)
class StreamCurve:
    """One method's loss at every position of a stream."""

    method: str
    sinks: int
    """First tokens kept (0 for dense and window)."""
    cache: int
    """The most tokens the cache holds at once: sinks + window, or the whole stream for dense."""
    nll: np.ndarray
    """(tokens − 1,) float64: nll[t] = −log p(token t + 1 | what the cache holds at token t)."""
    kv_bytes_per_token: int
    """K and V bytes one cached token costs in this model (all layers, float32)."""

    @property
    def cache_bytes(self) -> int:
        """K and V bytes of the full cache: ``cache`` tokens at kv_bytes_per_token."""
        return self.cache * self.kv_bytes_per_token

    def perplexity(self, lo: int, hi: int) -> float:
        """exp of the mean loss of the predictions made at tokens [lo, hi) (each of the token after it)."""
        part = self.nll[max(lo, 0): hi]
        if part.size == 0:
            raise EngineError(f"no scored token in [{lo}, {hi}) of a {self.nll.size + 1}-token stream")
        return float(np.exp(part.mean()))


def split(method: str, cache: int | None, sinks: int) -> tuple[int, int | None]:
    """(S, W): the sinks kept and the rolling window for a method (W None: no eviction)."""
    if method not in METHODS:
        raise EngineError(f"unknown streaming method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "dense":
        return 0, None
    cache = require_int(cache, "cache", low=2)
    if method == "window":
        return 0, cache
    sinks = require_int(sinks, "sinks", low=1)
    if sinks >= cache:
        raise EngineError(f"{sinks} sinks leave no window in a cache of {cache} tokens")
    return sinks, cache - sinks


def _tables(model, tokens: int):
    """cos, sin (tokens, HS/2): the model's own tables (a ``rope_scaling.rope_scaled`` model's included), or plain
    RoPE's when they are too short (dense past the model's context) and are plain RoPE's themselves.

    Raises:
        EngineError: the model's tables are scaled and shorter than the stream (plain ones would change the method).
    """
    import torch

    from workbench_engines.models.layers import rope_tables

    cos, sin = model.rope_cos, model.rope_sin
    if cos.shape[0] >= tokens:
        return cos[:tokens], sin[:tokens]
    plain_cos, plain_sin = rope_tables(model.config.head_dim, tokens, model.config.rope_base)
    n = cos.shape[0]
    if not (torch.allclose(cos, plain_cos[:n].to(cos.dtype)) and torch.allclose(sin, plain_sin[:n].to(sin.dtype))):
        raise EngineError(f"the model's RoPE tables are scaled and cover {n:,} positions; the stream needs {tokens:,}")
    return plain_cos, plain_sin


def _grouped_scores(q, k, groups: int):
    """q (NH, Q, HS) against k (KVH, K, HS) -> (KVH, G, Q, K): query head h reads key head h // G (GQA)."""
    kvh = k.shape[0]
    return q.reshape(kvh, groups, q.shape[1], q.shape[2]) @ k.transpose(-1, -2)[:, None]


def _attention(attn, h, cos, sin, sinks: int, window: int | None, chunk: int):
    """One layer's attention output (1, T, C) for the normed stream h (1, T, C) under a cache of sinks + window."""
    import torch
    import torch.nn.functional as F

    from workbench_engines.models.layers import apply_rope

    c = attn.config
    t_all = h.shape[1]
    groups = c.n_heads // c.kv_heads
    q = attn.q(h).view(t_all, c.n_heads, c.head_dim).transpose(0, 1)  # (NH, T, HS)
    k, v = attn.kv(h).view(t_all, 2, c.kv_heads, c.head_dim).permute(1, 2, 0, 3)  # (KVH, T, HS) each
    qr, kr = apply_rope(q, cos[:t_all], sin[:t_all]), apply_rope(k, cos[:t_all], sin[:t_all])  # text positions
    y = torch.empty_like(q)  # (NH, T, HS)
    scale = 1.0 / math.sqrt(c.head_dim)
    full = sinks + window if window is not None else None
    if sinks and t_all > full:
        # Every query past the warm-up sits at cache position S + W − 1 (rows before it are never read).
        q_sink = torch.zeros_like(q)
        q_sink[:, full:] = apply_rope(q[:, full:], cos[full - 1: full], sin[full - 1: full])
        k_sink, v_sink = kr[:, :sinks], v[:, :sinks]  # sinks at cache positions 0 … S − 1, their text positions
    for a in range(0, t_all, chunk):
        b = min(a + chunk, t_all)
        rows = torch.arange(a, b)[:, None]
        if window is None:
            mask = torch.arange(b)[None, :] <= rows  # (Q, b): causal
            y[:, a:b] = F.scaled_dot_product_attention(qr[None, :, a:b], kr[None, :, :b], v[None, :, :b],
                                                       attn_mask=mask, enable_gqa=groups > 1)[0]
            continue
        lo = 0 if a < full else a - window + 1  # warm-up rows read from the start
        cols = torch.arange(lo, b)[None, :]
        seen = (cols <= rows) & ((rows < full) | (cols >= rows - window + 1))  # (Q, K): band, or causal in warm-up
        scores = _grouped_scores(qr[:, a:b], kr[:, lo:b], groups) * scale  # (KVH, G, Q, K)
        scores = scores.masked_fill(~seen, float("-inf"))
        values = v[:, lo:b]
        if sinks and b > full:
            sink = _grouped_scores(q_sink[:, a:b], k_sink, groups) * scale  # (KVH, G, Q, S)
            sink = sink.masked_fill(rows < full, float("-inf"))  # warm-up rows read the first tokens in the band
            scores = torch.cat([sink, scores], dim=-1)
            values = torch.cat([v_sink, values], dim=1)
        weights = torch.softmax(scores, dim=-1)  # (KVH, G, Q, S + K)
        y[:, a:b] = (weights @ values[:, None]).reshape(c.n_heads, b - a, c.head_dim)
    return attn.out(y.transpose(0, 1).reshape(1, t_all, c.d_model))


def _losses(model, x, ids, chunk: int) -> np.ndarray:
    """−log p(ids[t + 1]) from the final stream x (1, T, C), the output projection taken a chunk at a time."""
    import torch.nn.functional as F

    x = model.norm(x[:, :-1])  # the last token predicts nothing the stream holds
    target = ids[1:]
    out = []
    for a in range(0, target.shape[0], chunk):
        logits = model.unembed(x[:, a: a + chunk])[0].float()  # (Q, V)
        out.append(F.cross_entropy(logits, target[a: a + chunk], reduction="none").double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _check(model, ids: Sequence[int], cache: int | None, sinks: int, method: str):
    """(S, W, ids as an int64 tensor), after checking the stream and the cache against the model."""
    import torch

    s, w = split(method, cache, sinks)
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    if ids.ndim != 1 or ids.shape[0] < 2:
        raise EngineError("a stream needs at least two tokens, as one flat sequence")
    if w is not None and s + w > model.config.context:
        raise EngineError(f"a cache of {s + w:,} tokens is past the model's context of {model.config.context:,}")
    return s, w, ids


def stream_nll(model, ids: Sequence[int], *, method: str, cache: int | None = None, sinks: int = 4,
               chunk: int = CHUNK, progress: Callable[[float, str], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> StreamCurve:
    """Per-token loss of a stream read with ``method``'s cache, without a token loop (see the module docstring).

    Args:
        model: A workbench GPT or Llama (its blocks, norms and projections are used, its forward is not).
        ids: The stream, one flat sequence of token ids.
        method: "dense", "window" or "sinks".
        cache: Tokens the cache holds at once (window and sinks; sinks keeps ``sinks`` of them for the first).
        sinks: S, the first tokens StreamingLLM keeps.
        chunk: Queries per block.
        progress: progress(fraction, what), called once per layer.
        should_stop: Checked once per layer; raises Cancelled when it says so.

    Raises:
        EngineError: an unknown method, a cache past the model's context, too few sinks, or a stream of < 2 tokens.
        Cancelled: should_stop() said so.
    """
    import torch

    s, w, ids = _check(model, ids, cache, sinks, method)
    chunk = require_int(chunk, "chunk", low=1)
    cos, sin = _tables(model, ids.shape[0] if w is None else max(ids.shape[0], s + w))
    blocks = model.blocks
    with torch.inference_mode():
        x = model.embed(ids[None])  # (1, T, C)
        for layer, block in enumerate(blocks):
            if should_stop and should_stop():
                raise Cancelled("streaming run cancelled")
            if progress:
                progress(layer / (len(blocks) + 1), f"{LABELS[method]}: layer {layer + 1} of {len(blocks)}")
            x = x + _attention(block.attn, block.attn_norm(x), cos, sin, s, w, chunk)
            x = x + block.ffn(block.ffn_norm(x))
        nll = _losses(model, x, ids, chunk)
    if progress:
        progress(1.0, f"{LABELS[method]}: done")
    held = ids.shape[0] if w is None else min(s + w, ids.shape[0])
    return StreamCurve(method, s, held, nll, model.config.kv_bytes_per_token(4))


def stream_nll_reference(model, ids: Sequence[int], *, method: str, cache: int | None = None,
                         sinks: int = 4) -> np.ndarray:
    """The same losses one token at a time through an explicit rolling KV cache (slow; the fast path's oracle).

    Each layer's cache holds un-rotated keys and values; a new token's are
    appended, the oldest non-sink entry is evicted when there are more than
    sinks + window, and RoPE turns the query and every key by its index in
    the cache when they meet (StreamingLLM §3.2).
    """
    import torch

    from workbench_engines.models.layers import apply_rope

    s, w, ids = _check(model, ids, cache, sinks, method)
    c = model.config
    groups = c.n_heads // c.kv_heads
    cos, sin = _tables(model, ids.shape[0] if w is None else s + w)
    keys: list[list] = [[] for _ in model.blocks]
    values: list[list] = [[] for _ in model.blocks]
    nll = []
    with torch.inference_mode():
        for t in range(ids.shape[0] - 1):
            x = model.embed(ids[None, t: t + 1])  # (1, 1, C)
            for layer, block in enumerate(model.blocks):
                attn = block.attn
                h = block.attn_norm(x)
                q = attn.q(h).view(c.n_heads, 1, c.head_dim)  # (NH, 1, HS)
                k, v = attn.kv(h).view(2, c.kv_heads, 1, c.head_dim)  # (KVH, 1, HS) each
                keys[layer].append(k)
                values[layer].append(v)
                if w is not None and len(keys[layer]) > s + w:
                    del keys[layer][s], values[layer][s]  # the oldest token after the sinks leaves
                n = len(keys[layer])
                kc = apply_rope(torch.cat(keys[layer], dim=1), cos[:n], sin[:n])  # (KVH, n, HS), cache positions
                qc = apply_rope(q, cos[n - 1: n], sin[n - 1: n])  # the query is the newest entry
                kc, vc = kc.repeat_interleave(groups, 0), torch.cat(values[layer], dim=1).repeat_interleave(groups, 0)
                weights = torch.softmax(qc @ kc.transpose(-1, -2) / math.sqrt(c.head_dim), dim=-1)  # (NH, 1, n)
                x = x + attn.out((weights @ vc).transpose(0, 1).reshape(1, 1, c.d_model))
                x = x + block.ffn(block.ffn_norm(x))
            logits = model.unembed(model.norm(x))[0, 0].float()  # (V,)
            nll.append(float(torch.logsumexp(logits, 0) - logits[ids[t + 1]]))
    return np.asarray(nll)


def compare(model, ids: Sequence[int], *, cache: int, sinks: int, methods: Sequence[str] = METHODS,
            chunk: int = CHUNK, progress: Callable[[float, str], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> list[StreamCurve]:
    """stream_nll for each method on the same stream, progress spread over them (what the lab runs)."""
    curves = []
    for m, method in enumerate(methods):
        def part(fraction: float, what: str, m=m) -> None:
            if progress:
                progress((m + fraction) / len(methods), what)

        curves.append(stream_nll(model, ids, method=method, cache=cache, sinks=sinks, chunk=chunk, progress=part,
                                 should_stop=should_stop))
    return curves
