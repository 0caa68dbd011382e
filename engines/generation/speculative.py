"""Speculative decoding (Leviathan et al., 2023; Chen et al., 2023): a small draft guesses, the target checks.

Each round the draft proposes k tokens d_1..d_k, drawn from its distributions
q_i. The target scores all of them in one forward pass, giving p_i. Token d_i
is accepted with probability min(1, p_i(d_i) / q_i(d_i)); at the first
rejection a replacement is drawn from norm(max(0, p_i − q_i)) and the round
ends; if all k pass, one more token is drawn from p_{k+1}. Every token then has
exactly the target's distribution (the papers' Theorem 1 / Theorem 3.5), so
the draft changes only the speed. Under greedy decoding the rule reduces to
"accept while the draft's token is the target's argmax".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from workbench_engines.errors import EngineError
from workbench_engines.generation.generate import check_prompt
from workbench_engines.sampling.settings import Sampler


@dataclass
class SpeculativeResult:
    tokens: list[int]
    rounds: int
    proposed: int
    accepted: int
    seconds: float
    accepted_per_round: list[int] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        """Fraction of drafted tokens the target accepted."""
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def tokens_per_round(self) -> float:
        """Tokens produced per target forward pass (1 without speculation)."""
        return len(self.tokens) / self.rounds if self.rounds else 0.0


def expected_tokens_per_round(alpha: float, k: int) -> float:
    """Tokens one target pass yields when each draft token is accepted with probability alpha
    independently: 1 + α + … + α^k = (1 − α^(k+1)) / (1 − α) (Leviathan et al., eq. 1)."""
    if not 0 <= alpha <= 1 or k < 0:
        raise EngineError(f"need 0 <= alpha <= 1 and k >= 0, got {alpha} and {k}")
    return float(k + 1) if alpha == 1 else (1 - alpha ** (k + 1)) / (1 - alpha)


def _draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    cumulative = np.cumsum(probs)
    return min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), len(probs) - 1)


def verify(drafted: list[int], q: list[np.ndarray], p: list[np.ndarray], rng: np.random.Generator,
           greedy: bool = False) -> tuple[int, int]:
    """One round's acceptance rule: how many drafted tokens stand, and the token that follows them.

    q[i] is the draft's distribution for drafted[i]; p has one more row than
    drafted, the target's distributions at the same positions and after the
    last draft token.
    """
    for i, token in enumerate(drafted):
        if greedy:
            ok = token == int(np.argmax(p[i]))
        else:
            ok = rng.random() < min(1.0, p[i][token] / q[i][token])
        if not ok:
            if greedy:
                return i, int(np.argmax(p[i]))
            residual = np.maximum(p[i] - q[i], 0.0)
            return i, _draw(residual if residual.sum() > 0 else p[i], rng)
    n = len(drafted)
    return n, int(np.argmax(p[n])) if greedy else _draw(p[n], rng)


def draft_confidence(logits: np.ndarray, q: np.ndarray, token: int, greedy: bool) -> float:
    """The draft's probability of the token it drafted: q's, or under greedy (q one-hot) its softmax's."""
    if not greedy:
        return float(q[token])
    top = float(np.max(logits))
    return 1.0 / float(np.exp(logits - top).sum())  # softmax at the argmax


def speculative_generate(target, draft, prompt: list[int], max_new_tokens: int, *, k: int = 4,
                         sampler: Sampler = Sampler(temperature=1.0), seed: int | None = 0,
                         stop_tokens: tuple[int, ...] = (), confidence: float = 0.0) -> SpeculativeResult:
    """Generate with ``draft`` proposing up to k tokens a round and ``target`` verifying them.

    Both models must share the vocabulary. The sampler (temperature, top-k, …)
    defines the distributions on both sides; penalties are not supported here
    (they would make q depend on tokens the target has not accepted yet).

    ``confidence`` > 0 ends a round's draft early, after the first token the
    draft gives less than that probability: a guess it doubts is likely to be
    rejected, and every token after it is then wasted, so the round is checked
    sooner and the target verifies fewer tokens (a fixed-threshold form of
    dynamic speculation lookahead, Mamou et al., 2024; transformers calls it
    ``assistant_confidence_threshold``). Any drafting policy leaves the output's
    distribution the target's: only the speed changes.
    """
    import torch

    from workbench_engines.kvcache import ContiguousCache

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise EngineError(f"the draft length k must be a positive integer, got {k!r}")
    if target.config.vocab_size != draft.config.vocab_size:
        raise EngineError(f"the draft's vocabulary ({draft.config.vocab_size}) differs from the target's "
                          f"({target.config.vocab_size})")
    if not 0.0 <= confidence <= 1.0:
        raise EngineError(f"confidence must be a probability in [0, 1], got {confidence!r}")
    if sampler.repetition_penalty != 1 or sampler.frequency_penalty or sampler.presence_penalty:
        raise EngineError("speculative decoding here takes no penalties; use generate() for those")
    prompt = check_prompt(prompt, max_new_tokens, target.config)
    check_prompt(prompt, max_new_tokens, draft.config)
    rng = np.random.default_rng(seed)
    # Room for a full round past the end, which is then cut back.
    room = len(prompt) + max_new_tokens + k + 1
    t_cache = ContiguousCache(target.config, 1, min(room, target.config.context))
    d_cache = ContiguousCache(draft.config, 1, min(room, draft.config.context))
    out: list[int] = []
    # Tokens each model has not yet seen: everything is fed lazily, so a
    # rejected round only needs its caches cut back.
    t_pending, d_pending = list(prompt), list(prompt)
    rounds = proposed = accepted = 0
    per_round: list[int] = []
    started = time.perf_counter()
    with torch.inference_mode():
        while len(out) < max_new_tokens:
            n = min(k, max_new_tokens - len(out) - 1, d_cache.max_len - d_cache.length - len(d_pending))
            n = max(n, 0)
            drafted: list[int] = []
            q: list[np.ndarray] = []
            for _ in range(n):
                logits = draft(torch.tensor([d_pending]), d_cache)[0, -1].float().numpy()
                q.append(sampler.distribution(logits))
                token = _draw(q[-1], rng) if not sampler.greedy else int(np.argmax(q[-1]))
                drafted.append(token)
                d_pending = [token]
                if confidence and draft_confidence(logits, q[-1], token, sampler.greedy) < confidence:
                    break
            n = len(drafted)
            base = t_cache.length
            logits = target(torch.tensor([t_pending + drafted]), t_cache)[0, -(n + 1):].float().numpy()
            p = [sampler.distribution(row) for row in logits]
            rounds += 1
            proposed += n
            taken, extra = verify(drafted, q, p, rng, sampler.greedy)
            accepted += taken
            per_round.append(taken)
            new = drafted[:taken] + [extra]
            # The target's cache keeps everything it saw up to the last accepted draft token.
            t_cache.truncate(base + len(t_pending) + taken)
            if n:
                # The draft's cache holds the accepted text plus drafted[:n-1]; keep the accepted part.
                in_cache = min(taken, n - 1)
                d_cache.truncate(d_cache.length - (n - 1) + in_cache)
                d_pending = drafted[in_cache:taken] + [extra]
            else:
                d_pending = d_pending + [extra]
            t_pending = [extra]
            for token in new:
                out.append(token)
                if token in stop_tokens or len(out) == max_new_tokens:
                    return SpeculativeResult(out, rounds, proposed, accepted, time.perf_counter() - started,
                                             per_round)
    return SpeculativeResult(out, rounds, proposed, accepted, time.perf_counter() - started, per_round)
