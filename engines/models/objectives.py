"""Pretraining objectives for the mini-former, as loss functions the training loop takes.

- causal LM (GPT): predict every next token, each position seeing only the past;
- masked LM (BERT, Devlin et al., 2019): corrupt 15% of tokens (80% → [MASK],
  10% → a random token, 10% unchanged) and predict the originals, seeing both sides;
- prefix LM (T5 / UniLM style): a random prefix is read bidirectionally and only
  the tokens after it are predicted, causally.

Each takes (model, window [B, L+1]) and returns a scalar loss, with the MoE
balancing loss added at ``balance`` weight.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F

OBJECTIVES = ("causal", "masked", "prefix")


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100)


def causal_lm(model, window: torch.Tensor, balance: float = 0.01) -> torch.Tensor:
    out = model(window[:, :-1], attention="causal")
    return _cross_entropy(out.logits, window[:, 1:]) + balance * out.aux_loss


def mask_tokens(ids: torch.Tensor, mask_token: int, vocab_size: int, rate: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted ids, targets with -100 where nothing is predicted), BERT's 80/10/10 rule."""
    chosen = torch.rand(ids.shape, generator=generator) < rate
    roll = torch.rand(ids.shape, generator=generator)
    corrupted = ids.clone()
    corrupted[chosen & (roll < 0.8)] = mask_token
    random_slots = chosen & (roll >= 0.8) & (roll < 0.9)
    corrupted[random_slots] = torch.randint(0, vocab_size, (int(random_slots.sum()),), generator=generator)
    targets = torch.where(chosen, ids, torch.full_like(ids, -100))
    return corrupted, targets


def masked_lm(model, window: torch.Tensor, balance: float = 0.01, rate: float = 0.15) -> torch.Tensor:
    ids = window[:, :-1]
    corrupted, targets = mask_tokens(ids, model.config.mask_token, model.config.vocab_size, rate)
    out = model(corrupted, attention="bidirectional")
    return _cross_entropy(out.logits, targets) + balance * out.aux_loss


def prefix_lm(model, window: torch.Tensor, balance: float = 0.01) -> torch.Tensor:
    ids, following = window[:, :-1], window[:, 1:]
    b, length = ids.shape
    prefix = torch.randint(1, length, (b,))
    out = model(ids, attention="prefix", prefix=prefix)
    return _cross_entropy(out.logits, prefix_targets(following, prefix)) + balance * out.aux_loss


def prefix_targets(following: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
    """Next-token targets with -100 (ignored) inside each prefix.

    Position i predicts token i + 1, so with a prefix of p tokens the first
    target sits at position p − 1.
    """
    length = following.shape[1]
    inside = torch.arange(length)[None, :] < prefix[:, None] - 1
    return torch.where(inside, torch.full_like(following, -100), following)


def objective(name: str, balance: float = 0.01) -> Callable:
    """The loss function of objective ``name`` for workbench_engines.models.train.train(loss_fn=...)."""
    functions = {"causal": causal_lm, "masked": masked_lm, "prefix": prefix_lm}
    if name not in functions:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return partial(functions[name], balance=balance)
