"""Beam search: keep the ``width`` most probable continuations at every step, not just one.

A hypothesis's score is its total log-probability divided by length^alpha
(Wu et al., 2016, use ((5 + len)/6)^alpha; the plain power is the form HF
transformers' ``length_penalty`` uses). alpha = 0 ranks by total
log-probability, which favours short endings; alpha = 1 ranks by the mean
per-token log-probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench_engines.errors import EngineError
from workbench_engines.generation.generate import check_prompt


@dataclass(frozen=True)
class Hypothesis:
    tokens: tuple[int, ...]
    """Generated tokens (the prompt not included)."""
    logprob: float
    finished: bool = False

    def score(self, alpha: float) -> float:
        return self.logprob / max(1, len(self.tokens)) ** alpha


@dataclass
class BeamResult:
    hypotheses: list[Hypothesis]
    """Finished and unfinished, best score first."""
    steps: list[list[Hypothesis]] = field(default_factory=list)
    """The live beams after each step, for the lesson's view."""
    alpha: float = 1.0

    @property
    def best(self) -> Hypothesis:
        return self.hypotheses[0]

    def dropped_at(self, tokens: tuple[int, ...] | list[int]) -> int | None:
        """The first step (1-based) after which no live beam starts with ``tokens``' prefix of that length.

        None when that prefix stayed in the beam as long as ``tokens`` lasts:
        how a learner sees where beam search lost a path greedy kept.
        """
        tokens = tuple(tokens)
        for step, live in enumerate(self.steps[: len(tokens)], start=1):
            if all(h.tokens[:step] != tokens[:step] for h in live):
                return step
        return None


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def beam_search(model, prompt: list[int], max_new_tokens: int, *, width: int = 4, alpha: float = 1.0,
                eos: int | None = None) -> BeamResult:
    """The best-scoring continuations of prompt found with ``width`` beams."""
    import torch

    from workbench_engines.kvcache import ContiguousCache

    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise EngineError(f"width must be a positive integer, got {width!r}")
    if alpha < 0:
        raise EngineError(f"alpha must be >= 0, got {alpha}")
    config = model.config
    prompt = check_prompt(prompt, max_new_tokens, config)
    cache = ContiguousCache(config, width, len(prompt) + max_new_tokens)
    live = [Hypothesis((), 0.0)] + [Hypothesis((), -np.inf)] * (width - 1)
    finished: list[Hypothesis] = []
    steps: list[list[Hypothesis]] = []
    with torch.inference_mode():
        logits = model(torch.tensor([prompt] * width), cache, last_only=True)[:, -1]
        for step in range(max_new_tokens):
            logprobs = _log_softmax(logits.float().numpy())
            totals = np.array([h.logprob for h in live])[:, None] + logprobs
            flat = totals.reshape(-1)
            order = np.argsort(-flat, kind="stable")[: 2 * width]
            chosen: list[tuple[int, int, float]] = []
            for index in order:
                if not np.isfinite(flat[index]):
                    break
                beam, token = divmod(int(index), logprobs.shape[1])
                if eos is not None and token == eos:
                    finished.append(Hypothesis(live[beam].tokens + (token,), float(flat[index]), True))
                    continue
                chosen.append((beam, token, float(flat[index])))
                if len(chosen) == width:
                    break
            if not chosen:
                break
            while len(chosen) < width:  # keep the batch shape; the padding beams can never win
                chosen.append((chosen[0][0], chosen[0][1], -np.inf))
            live = [Hypothesis(live[b].tokens + (t,), lp) for b, t, lp in chosen]
            steps.append([h for h in live if np.isfinite(h.logprob)])
            if step == max_new_tokens - 1 or _done(finished, live, width, alpha):
                break
            cache.reorder(torch.tensor([b for b, _, _ in chosen]))
            logits = model(torch.tensor([[t] for _, t, _ in chosen]), cache, last_only=True)[:, -1]
    pool = finished + [h for h in live if np.isfinite(h.logprob)]
    pool.sort(key=lambda h: -h.score(alpha))
    return BeamResult(pool, steps, alpha)


def _done(finished: list[Hypothesis], live: list[Hypothesis], width: int, alpha: float) -> bool:
    """Stop once ``width`` hypotheses have finished and no live beam scores better than the worst of them."""
    if len(finished) < width:
        return False
    worst_kept = sorted(h.score(alpha) for h in finished)[-width]
    return max(h.score(alpha) for h in live) < worst_kept
