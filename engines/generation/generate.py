"""Autoregressive generation with or without a KV cache, through one function.

Without a cache every step runs the whole sequence again (work grows with the
square of the length); with one, the prompt runs once ("prefill") and then
each step runs only the newest token ("decode").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.profiling.profile import Profile
from workbench_engines.sampling.settings import GREEDY, Sampler

if TYPE_CHECKING:
    from workbench_engines.kvcache import Memory


@dataclass
class Generation:
    prompt: list[int]
    tokens: list[int]
    """The new tokens only."""
    cache: str
    seconds: float
    prefill_seconds: float
    step_seconds: list[float] = field(default_factory=list)
    memory: "Memory | None" = None
    """The cache's memory at the end (None without a cache)."""
    attention: str = "torch (SDPA)"
    """Which attention read the cache, and why it was chosen."""

    @property
    def tokens_per_s(self) -> float:
        return len(self.tokens) / self.seconds if self.seconds else 0.0

    @property
    def profile(self) -> Profile:
        """What the generation cost: one timed call, with prefill and per-token decode figures in extra."""
        decode = sorted(self.step_seconds)
        return Profile("torch", self.seconds, note=f"{self.tokens_per_s:,.0f} tok/s", extra={
            "cache": self.cache, "attention": self.attention, "prefill_s": self.prefill_seconds,
            "decode_median_s": decode[len(decode) // 2] if decode else 0.0, "tokens": len(self.tokens)})


def check_prompt(prompt: list[int], max_new_tokens: int, config) -> list[int]:
    prompt = [int(t) for t in prompt]
    if not prompt:
        raise EngineError("the prompt is empty: give at least one token (e.g. the end-of-text token)")
    if max_new_tokens < 0:
        raise EngineError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    bad = [t for t in prompt if not 0 <= t < config.vocab_size]
    if bad:
        raise EngineError(f"token id {bad[0]} is outside the vocabulary of {config.vocab_size}")
    if len(prompt) + max_new_tokens > config.context:
        raise EngineError(
            f"prompt of {len(prompt)} tokens + {max_new_tokens} new tokens exceeds the context of {config.context}"
        )
    return prompt


def generate(
    model,
    prompt: list[int],
    max_new_tokens: int,
    *,
    sampler: Sampler = GREEDY,
    cache: str = "contiguous",
    seed: int | None = 0,
    stop_tokens: tuple[int, ...] = (),
    on_token: Callable[[int, np.ndarray], None] | None = None,
    on_logits: Callable[[int, np.ndarray], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    block_size: int = 16,
) -> Generation:
    """Generate up to max_new_tokens after prompt; stops early after a token in stop_tokens.

    cache: "none" (recompute everything each step), "contiguous" or "paged".
    on_token(token, probs) is called after each token with the distribution it
    was drawn from (one-hot when greedy); on_logits(token, logits) with the
    model's raw logits for that position (what it believed, before any knob).
    """
    import torch

    from workbench_engines.kvcache import make_cache

    config = model.config
    prompt = check_prompt(prompt, max_new_tokens, config)
    rng = np.random.default_rng(seed)
    kv = make_cache(cache, config, max_len=len(prompt) + max_new_tokens, block_size=block_size)
    tokens: list[int] = []
    history = list(prompt)
    steps: list[float] = []
    started = time.perf_counter()
    prefill = 0.0
    with torch.inference_mode():
        feed = prompt
        for step in range(max_new_tokens):
            if should_stop is not None and should_stop():
                raise Cancelled("generation cancelled")
            t0 = time.perf_counter()
            if kv is None:
                logits = model(torch.tensor([history]), last_only=True)[0, -1]
            else:
                logits = model(torch.tensor([feed]), kv, last_only=True)[0, -1]
            row = logits.float().numpy()
            token = sampler.choose(row, history, rng)
            elapsed = time.perf_counter() - t0
            if step == 0:
                prefill = elapsed
            else:
                steps.append(elapsed)
            if on_token is not None:
                on_token(token, sampler.distribution(row, history))
            if on_logits is not None:
                on_logits(token, row)
            tokens.append(token)
            history.append(token)
            feed = [token]
            if token in stop_tokens:
                break
    return Generation(prompt, tokens, cache, time.perf_counter() - started, prefill, steps,
                      kv.memory() if kv is not None else None,
                      str(getattr(kv, "attention_choice", "torch (SDPA)")))


def next_token_logits(model, ids: list[int]) -> np.ndarray:
    """The model's logits for the token after ids (one uncached forward pass)."""
    import torch

    check_prompt(ids, 0, model.config)
    with torch.inference_mode():
        return model(torch.tensor([ids]), last_only=True)[0, -1].float().numpy()
