"""Perplexity and bits per byte over a long text, scored window by window with a stride.

A model with a context of C tokens cannot read a 100,000-token text at once.
The sliding-window evaluation (the one Hugging Face's perplexity guide
describes) moves a window of ``window`` tokens forward by ``stride`` tokens
and scores only the tokens that are new in each window, so every token is
scored once, conditioned on up to ``window − stride`` tokens before the
first new one. A stride near the window is fastest and gives the early
tokens of each window little context; stride = 1 gives every token a full
window of context and costs a forward pass per token.

Perplexity exp(mean NLL per token) depends on the tokenizer: a model whose
tokens are longer has fewer, harder predictions. Bits per byte, the total
NLL in bits divided by the UTF-8 bytes the scored tokens cover, does not, so
it compares models with different vocabularies.

Example::

    >>> result = sliding_window_nll(model, ids, window=256, stride=128, token_bytes=tokenizer.token_bytes)
    >>> result.perplexity, result.bits_per_byte
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from workbench_engines.arrays import require_int, require_int_array
from workbench_engines.errors import Cancelled, EngineError


@dataclass(frozen=True)
class TextScore:
    """What a model's next-token predictions cost over one text."""

    nll: float
    """Total negative log-likelihood of the scored tokens, in nats."""
    tokens: int
    """Tokens scored: every token but the first, which has nothing to be predicted from."""
    bytes: int
    """UTF-8 bytes the scored tokens decode to (0 when unknown)."""
    windows: int
    """Forward passes made."""

    @property
    def mean_nll(self) -> float:
        """Nats per token: the cross-entropy."""
        return self.nll / self.tokens

    @property
    def perplexity(self) -> float:
        """exp(mean NLL): the number of equally likely tokens the model is, on average, choosing between."""
        return math.exp(self.mean_nll)

    @property
    def bits_per_byte(self) -> float:
        """Total NLL in bits over the bytes the scored tokens cover; comparable across tokenizers."""
        if not self.bytes:
            raise EngineError("bits per byte needs the bytes of each token (pass token_bytes)")
        return self.nll / math.log(2) / self.bytes


def bits_per_byte_from(perplexity: float, bytes_per_token: float) -> float:
    """log₂(perplexity) / bytes per token: the same NLL counted in bits and spread over bytes instead of tokens."""
    if not perplexity >= 1 or not bytes_per_token > 0:
        raise EngineError(f"need perplexity >= 1 and bytes per token > 0, got {perplexity} and {bytes_per_token}")
    return math.log2(perplexity) / bytes_per_token


def window_spans(n: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first) of every window over n tokens: the pass reads [begin, end) and scores first..end−1.

    The first window scores tokens 1..window−1; each later one scores the
    next ``stride`` tokens and reads the window − stride tokens before them
    as context, so every token after the first is scored exactly once.
    """
    end = min(window, n)
    spans = [(0, end, 1)]
    while end < n:
        first, end = end, min(end + stride, n)
        spans.append((max(0, end - window), end, first))
    return spans


def check_window(window: int, stride: int, context: int | None) -> tuple[int, int]:
    """window and stride as ints, refused before any model runs: 2 ≤ window ≤ context, 1 ≤ stride < window.

    stride = window would leave the first new token of each window with no
    context at all (the window starts at it), so the largest stride keeps one.
    """
    window, stride = require_int(window, "window"), require_int(stride, "stride")
    if window < 2:
        raise EngineError(f"window must be at least 2 tokens, got {window}")
    if context is not None and window > context:
        raise EngineError(f"window {window} is longer than the model's context of {context} tokens")
    if not 1 <= stride < window:
        raise EngineError(f"stride must be at least 1 and less than the window ({window}), got {stride}")
    return window, stride


def sliding_window_nll(model, ids: Sequence[int], *, window: int, stride: int,
                       token_bytes: Callable[[int], bytes] | None = None,
                       progress: Callable[[float, str], None] | None = None,
                       should_stop: Callable[[], bool] | None = None) -> TextScore:
    """Score every token of ids after the first with ``model`` (logits = model(ids (1, T)), shape (1, T, V)).

    Args:
        model: A workbench GPT or Llama (or any module with that call), in eval mode.
        ids: The text's tokens, at least 2.
        window: Tokens per forward pass, at most the model's context.
        stride: Tokens each later window scores (1 … window − 1); it reads window − stride before them.
        token_bytes: token id → its bytes, for bits per byte.
        progress: Called with (fraction done, what) after each window.
        should_stop: Polled before each window; True raises Cancelled.

    Raises:
        EngineError: fewer than 2 tokens, or a bad window or stride.
        TypeError, ValueError: ids that are not integers, or outside the vocabulary.
        Cancelled: should_stop() returned True.
    """
    ids, window, stride = _checked_ids(ids, (model,), window, stride)
    nll = 0.0
    spans = window_spans(ids.size, window, stride)
    for i, targets, logprobs in _scored_windows((model,), ids, spans, should_stop):
        nll -= float(logprobs[0].gather(1, targets.unsqueeze(1)).sum())
        if progress is not None:
            progress((i + 1) / len(spans), f"window {i + 1} of {len(spans)}")
    return TextScore(nll, int(ids.size - 1), _covered_bytes(ids, token_bytes), len(spans))


def _checked_ids(ids: Sequence[int], models: Sequence, window: int, stride: int) -> tuple[np.ndarray, int, int]:
    """ids as int64, window and stride checked against every model's context and vocabulary."""
    configs = [getattr(m, "config", None) for m in models]
    contexts = [c.context for c in configs if getattr(c, "context", None) is not None]
    window, stride = check_window(window, stride, min(contexts) if contexts else None)
    vocabs = {c.vocab_size for c in configs if getattr(c, "vocab_size", None) is not None}
    if len(vocabs) > 1:
        raise EngineError(f"the models have different vocabularies ({', '.join(map(str, sorted(vocabs)))}); "
                          "compare models that share a tokenizer")
    ids = require_int_array(ids, "ids", low=0, high=min(vocabs) - 1 if vocabs else None).reshape(-1)
    if ids.size < 2:
        raise EngineError(f"a text of {ids.size} token(s) has nothing to score; give at least 2")
    return ids, window, stride


def _scored_windows(models: Sequence, ids: np.ndarray, spans: list[tuple[int, int, int]],
                    should_stop: Callable[[], bool] | None):
    """Per window: (index, the scored tokens (S,), each model's log-probabilities for them (S, V) in float64)."""
    import torch

    with torch.inference_mode():
        for i, (begin, end, first) in enumerate(spans):
            if should_stop is not None and should_stop():
                raise Cancelled("evaluation cancelled")
            chunk = torch.from_numpy(ids[begin:end]).unsqueeze(0)  # (1, T)
            # Position t predicts token t + 1: tokens first..end−1 are predicted at positions first−1..end−2.
            rows = slice(first - 1 - begin, end - 1 - begin)
            logprobs = [torch.log_softmax(model(chunk)[0, rows].double(), dim=-1) for model in models]
            yield i, chunk[0, first - begin : end - begin], logprobs


def _covered_bytes(ids: np.ndarray, token_bytes: Callable[[int], bytes] | None) -> int:
    """UTF-8 bytes of every token but the first (0 without token_bytes)."""
    return sum(len(token_bytes(int(t))) for t in ids[1:]) if token_bytes is not None else 0


@dataclass(frozen=True)
class Comparison:
    """How far a changed model (quantised, pruned, distilled) moved from the original, token by token."""

    reference: TextScore
    changed: TextScore
    kl: float
    """Mean KL(P_reference ‖ P_changed) per scored token, in nats: 0 when the distributions are identical."""
    same_top: float
    """Share of positions where both models' most probable next token is the same."""
    delta_p_correct: float
    """Mean change in the probability of the token that came next (changed − reference)."""
    overlap: float
    """Mean Σ_x min(P_reference(x), P_changed(x)) per position: 1 minus their total-variation distance, and the
    rate at which a target (reference) accepts a draft's (changed) sampled tokens (Leviathan et al., 2023, §3.1)."""


def compare_models(reference, changed, ids: Sequence[int], *, window: int, stride: int,
                   token_bytes: Callable[[int], bytes] | None = None,
                   progress: Callable[[float, str], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> Comparison:
    """Score ids with both models over the same windows and measure how the changed one's predictions moved.

    Perplexity alone hides changes that cancel out; the KL divergence from the
    original's distributions and the same-top-token rate do not, which is why
    quantisation studies report them beside it.

    Raises:
        EngineError: as sliding_window_nll, or models with different vocabularies.
    """
    import torch

    ids, window, stride = _checked_ids(ids, (reference, changed), window, stride)
    spans = window_spans(ids.size, window, stride)
    nll = [0.0, 0.0]
    kl = same = delta = overlap = 0.0
    for i, targets, (ref, new) in _scored_windows((reference, changed), ids, spans, should_stop):
        picked = targets.unsqueeze(1)
        nll[0] -= float(ref.gather(1, picked).sum())
        nll[1] -= float(new.gather(1, picked).sum())
        kl += float((ref.exp() * (ref - new)).sum())
        same += float((ref.argmax(-1) == new.argmax(-1)).sum())
        delta += float((new.gather(1, picked).exp() - ref.gather(1, picked).exp()).sum())
        overlap += float(torch.minimum(ref.exp(), new.exp()).sum())
        if progress is not None:
            progress((i + 1) / len(spans), f"window {i + 1} of {len(spans)}")
    n, covered = int(ids.size - 1), _covered_bytes(ids, token_bytes)
    return Comparison(TextScore(nll[0], n, covered, len(spans)), TextScore(nll[1], n, covered, len(spans)),
                      kl / n, same / n, delta / n, overlap / n)
