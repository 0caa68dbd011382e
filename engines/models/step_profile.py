"""Where one decoding step's time goes: every layer's operators timed, for the lesson on the real model.

Forward hooks on the model's modules read the wall clock before and after
each one runs (module hooks, so the model's code is not touched); one decode
step (one new token against a KV cache) is run a few times and the median of
each (layer, operator) kept. The operators of a block:

- norms: the two RMSNorms;
- attention projections: Q, K/V and output matrices;
- attention: RoPE, the cache write and softmax(QKᵀ/√d)V (the block's
  attention time minus its projections);
- feed-forward: the SwiGLU's three matrices and its gate;

plus the output projection, the final norm and sampling the next token.
Timing a module costs a clock read either side (well under a microsecond),
small beside the matrices even of a 135M model.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

OPERATORS = ("norms", "attention projections", "attention", "feed-forward", "output projection", "sampling")


@dataclass(frozen=True)
class StepProfile:
    """Median seconds per (layer, operator) of one decode step; layer -1 is outside the blocks."""

    seconds: dict[tuple[int, str], float]
    step_seconds: float
    """Median wall time of the whole step, sampling included."""
    context: int
    """Tokens in the cache when the step ran."""

    def by_operator(self) -> dict[str, float]:
        """Seconds per operator, summed over layers, in OPERATORS order."""
        totals: dict[str, float] = defaultdict(float)
        for (_, op), s in self.seconds.items():
            totals[op] += s
        return {op: totals[op] for op in OPERATORS if op in totals}

    def by_layer(self, operator: str) -> list[float]:
        """Seconds of one operator in each block, in order."""
        layers = sorted({layer for layer, _ in self.seconds if layer >= 0})
        return [self.seconds.get((layer, operator), 0.0) for layer in layers]

    @property
    def unaccounted(self) -> float:
        """Step time no hook saw: Python between modules, the embedding lookup, the cache bookkeeping."""
        return max(0.0, self.step_seconds - sum(self.seconds.values()))


def profile_decode_step(model, prompt: list[int], *, repeats: int = 5, cache: str = "contiguous") -> StepProfile:
    """Prefill ``prompt`` into a cache, then time ``repeats`` decode steps of one token each, operator by operator."""
    import numpy as np
    import torch

    from workbench_engines.kvcache import make_cache
    from workbench_engines.sampling.settings import GREEDY

    samples: dict[tuple[int, str], list[float]] = defaultdict(list)
    current: dict[tuple[int, str], float] = defaultdict(float)
    started: dict[int, float] = {}
    handles = []

    def watch(module, layer: int, op: str, subtract: tuple = ()) -> None:
        def before(*_):
            started[id(module)] = time.perf_counter()

        def after(*_):
            elapsed = time.perf_counter() - started.pop(id(module))
            current[(layer, op)] += elapsed
            for other in subtract:  # an enclosing module's time excludes what its parts were charged
                current[(layer, other)] -= elapsed

        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))

    for i, block in enumerate(model.blocks):
        watch(block.attn_norm, i, "norms")
        watch(block.ffn_norm, i, "norms")
        watch(block.attn, i, "attention")
        for proj in (block.attn.q, block.attn.kv, block.attn.out):
            watch(proj, i, "attention projections", subtract=("attention",))
        watch(block.ffn, i, "feed-forward")
    watch(model.norm, -1, "norms")
    unembed = model.unembed

    def timed_unembed(x):
        t0 = time.perf_counter()
        out = unembed(x)
        current[(-1, "output projection")] += time.perf_counter() - t0
        return out

    model.unembed = timed_unembed  # an instance attribute, removed again below
    kv = make_cache(cache, model.config, max_len=len(prompt) + repeats + 1)
    steps = []
    try:
        with torch.inference_mode():
            logits = model(torch.tensor([prompt]), kv, last_only=True)[0, -1]
            history = list(prompt)
            for _ in range(repeats):
                current.clear()
                t0 = time.perf_counter()
                token = GREEDY.choose(logits.float().numpy(), history, np.random.default_rng(0))
                sampled = time.perf_counter() - t0
                history.append(token)
                logits = model(torch.tensor([[token]]), kv, last_only=True)[0, -1]
                steps.append(time.perf_counter() - t0)
                current[(-1, "sampling")] = sampled
                for key, value in current.items():
                    samples[key].append(value)
    finally:
        del model.unembed
        for handle in handles:
            handle.remove()
    medians = {key: float(np.median(values)) for key, values in samples.items()}
    return StepProfile(medians, float(np.median(steps)), len(prompt))
