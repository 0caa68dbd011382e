"""Pretraining objectives for the mini-former, as loss functions the training loop takes.

- causal LM (GPT): predict every next token, each position seeing only the past;
- masked LM (BERT, Devlin et al., 2019): corrupt 15% of tokens (80% → [MASK],
  10% → a random token, 10% unchanged) and predict the originals, seeing both sides;
- prefix LM (T5 / UniLM style: Raffel et al., 2020; Dong et al., 2019): a random
  prefix is read bidirectionally and only the tokens after it are predicted, causally.

Each takes (model, window (B, T+1) int64) and returns a scalar loss, with the MoE
balancing loss added at ``balance`` weight. Shapes: B batch, T time, V vocab.

Example::

    >>> loss_fn = objective("masked")
    >>> train(model, data, config, loss_fn=loss_fn)   # workbench_engines.models.train
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

OBJECTIVES = ("causal", "masked", "prefix")


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits (B, T, V) against targets (B, T), skipping -100; computed in float32."""
    import torch.nn.functional as F

    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100)


def causal_lm(model, window: torch.Tensor, balance: float = 0.01) -> torch.Tensor:
    """GPT's objective: every position predicts the next token, seeing only the past.

    Args:
        model: A MiniFormer.
        window: (B, T+1) int64; inputs are window[:, :-1], targets window[:, 1:].
        balance: Weight of the MoE balancing loss.

    Returns:
        A 0-d float32 loss.
    """
    out = model(window[:, :-1], attention="causal")  # logits (B, T, V)
    return _cross_entropy(out.logits, window[:, 1:]) + balance * out.aux_loss


def mask_tokens(ids: torch.Tensor, mask_token: int, vocab_size: int, rate: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted ids, targets with -100 where nothing is predicted), BERT's 80/10/10 rule.

    Leaving 10% unchanged and swapping 10% for random tokens keeps the model
    from relying on [MASK], which never appears once it is put to use
    (Devlin et al., 2019, §3.1).

    Args:
        ids: (B, T) int64 token ids.
        mask_token: The [MASK] id.
        vocab_size: V; random replacements are drawn from [0, V).
        rate: The fraction of positions chosen for prediction.
        generator: Seeds the draws, for reproducible masks.

    Returns:
        (corrupted, targets), each (B, T) int64.
    """
    import torch

    chosen = torch.rand(ids.shape, generator=generator) < rate  # (B, T) bool
    roll = torch.rand(ids.shape, generator=generator)
    corrupted = ids.clone()
    corrupted[chosen & (roll < 0.8)] = mask_token
    random_slots = chosen & (roll >= 0.8) & (roll < 0.9)
    corrupted[random_slots] = torch.randint(0, vocab_size, (int(random_slots.sum()),), generator=generator)
    targets = torch.where(chosen, ids, torch.full_like(ids, -100))
    return corrupted, targets


def masked_lm(model, window: torch.Tensor, balance: float = 0.01, rate: float = 0.15) -> torch.Tensor:
    """BERT's objective: predict the corrupted tokens, attending both ways.

    Args:
        model: A MiniFormer (its config supplies the [MASK] id and V).
        window: (B, T+1) int64; the last column is unused, so every objective reads the same windows.
        balance: Weight of the MoE balancing loss.
        rate: The fraction of tokens masked.

    Returns:
        A 0-d float32 loss.
    """
    ids = window[:, :-1]  # (B, T)
    corrupted, targets = mask_tokens(ids, model.config.mask_token, model.config.vocab_size, rate)
    out = model(corrupted, attention="bidirectional")
    return _cross_entropy(out.logits, targets) + balance * out.aux_loss


def prefix_lm(model, window: torch.Tensor, balance: float = 0.01) -> torch.Tensor:
    """Prefix LM: a random prefix of each row is context, read bidirectionally; the rest is predicted causally.

    Args:
        model: A MiniFormer.
        window: (B, T+1) int64.
        balance: Weight of the MoE balancing loss.

    Returns:
        A 0-d float32 loss.
    """
    import torch

    ids, following = window[:, :-1], window[:, 1:]  # (B, T) each
    b, length = ids.shape
    prefix = torch.randint(1, length, (b,))  # (B,), 1..T-1 tokens
    out = model(ids, attention="prefix", prefix=prefix)
    return _cross_entropy(out.logits, prefix_targets(following, prefix)) + balance * out.aux_loss


def prefix_targets(following: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
    """Next-token targets with -100 (ignored) inside each prefix.

    Position i predicts token i + 1, so with a prefix of p tokens the first
    target sits at position p − 1.

    Args:
        following: (B, T) int64, the token after each position.
        prefix: (B,) int64 prefix lengths.

    Returns:
        (B, T) int64 targets.
    """
    import torch

    length = following.shape[1]
    inside = torch.arange(length)[None, :] < prefix[:, None] - 1  # (B, T) bool
    return torch.where(inside, torch.full_like(following, -100), following)


def objective(name: str, balance: float = 0.01) -> Callable:
    """The loss function of objective ``name`` for workbench_engines.models.train.train(loss_fn=...).

    Args:
        name: One of OBJECTIVES.
        balance: Weight of the MoE balancing loss, bound into the function.

    Returns:
        loss_fn(model, window) -> 0-d loss.

    Raises:
        ValueError: an unknown name.
    """
    functions = {"causal": causal_lm, "masked": masked_lm, "prefix": prefix_lm}
    if name not in functions:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return partial(functions[name], balance=balance)


def expected_targets(objective_name: str, length: int, prefix: int = 1) -> float:
    """Positions of one window of ``length`` tokens that are training targets under an objective.

    Causal: every position. Prefix LM with a prefix of ``prefix`` tokens: the
    positions after it. Masked LM picks positions at random (15%), so the
    mean over a large seeded sample of windows.
    """
    import torch

    if objective_name not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective_name!r}; choose one of {', '.join(OBJECTIVES)}")
    if objective_name == "causal":
        return float(length)
    if objective_name == "prefix":
        if not 1 <= prefix <= length:
            raise ValueError(f"prefix must be between 1 and {length}")
        following = torch.zeros((1, length), dtype=torch.long)
        return float((prefix_targets(following, torch.tensor([prefix])) != -100).sum())
    _, targets = mask_tokens(torch.zeros((2000, length), dtype=torch.long), 1, 2,
                             generator=torch.Generator().manual_seed(0))
    return float((targets != -100).sum()) / 2000
