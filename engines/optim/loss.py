"""Cross-entropy written out: the loss through logsumexp, and its gradient, softmax minus one-hot.

For logits x (one row of V scores) and a target class t, the loss is
``−log softmax(x)_t = logsumexp(x) − x_t``. Computed naively, ``exp(x)``
overflows float32 once a logit passes about 88.7 (float64: about 709.8) and
the loss becomes inf or nan; subtracting the row's maximum m first,
``logsumexp(x) = m + log Σ_j exp(x_j − m)``, keeps every exponent ≤ 0, so the
sum lies in [1, V] and nothing overflows (Blanchard, Higham & Higham, 2021,
"Accurately computing the log-sum-exp and softmax functions").

The gradient needs no autograd: ``∂/∂x_j (logsumexp(x) − x_t) = softmax(x)_j − [j = t]``,
and the mean over n counted targets divides each row by n. Rows whose target
is ``ignore_index`` add nothing to the loss, to n or to the gradient, as
``torch.nn.functional.cross_entropy`` does.

Two entry points: :func:`cross_entropy_and_grad` returns the loss and the
gradient side by side (what the lesson explains), and :func:`cross_entropy`
is a ``torch.autograd.Function`` whose backward is that hand gradient, so it
drops into a training loop in place of ``F.cross_entropy``. Shapes: N
targets, V vocab (classes), B batch, T time.

Example::

    >>> loss, dlogits = cross_entropy_and_grad(torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0]))
    >>> round(loss.item(), 4)   # logsumexp(2, 0, −1) − 2
    0.1698
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from workbench_engines.errors import EngineError

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100
"""The target value that marks a position to skip: torch's default, so padding and prompt masks carry over."""


def _flatten(logits: torch.Tensor, targets: torch.Tensor,
             ignore_index: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits as (N, V), targets as (N,) and which targets count (N,) bool, after checking shapes, dtypes and the
    targets' range.

    Raises:
        EngineError: not tensors; logits not floating point; targets not integers; shapes other than
            (N, V)/(N,) or (B, T, V)/(B, T); V or N zero; a target outside [0, V) that is not ignore_index;
            every target ignored.
    """
    import torch

    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise EngineError("cross_entropy takes torch tensors (logits, targets)")
    if not logits.is_floating_point():
        raise EngineError(f"logits must be floating point, got {logits.dtype}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise EngineError(f"targets must be integer class indices, got {targets.dtype}")
    if logits.ndim not in (2, 3) or tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise EngineError(f"logits (N, V) or (B, T, V) need targets (N,) or (B, T): got logits "
                          f"{tuple(logits.shape)} and targets {tuple(targets.shape)}")
    if logits.numel() == 0:
        raise EngineError(f"cross_entropy needs at least one target and one class, got logits {tuple(logits.shape)}")
    vocab = logits.shape[-1]
    flat_logits = logits.reshape(-1, vocab)  # (N, V)
    flat_targets = targets.reshape(-1).long()  # (N,)
    if ignore_index is None:
        counted = torch.ones_like(flat_targets, dtype=torch.bool)
    else:
        counted = flat_targets != ignore_index
    if not bool(counted.any()):
        raise EngineError(f"every target is ignore_index ({ignore_index}): no targets to average over")
    kept = flat_targets[counted]
    low, high = int(kept.min()), int(kept.max())
    if low < 0 or high >= vocab:
        raise EngineError(f"targets must lie in [0, {vocab}) (or equal ignore_index {ignore_index}), "
                          f"got values from {low} to {high}")
    return flat_logits, flat_targets, counted


def cross_entropy_and_grad(logits: torch.Tensor, targets: torch.Tensor,
                           ignore_index: int | None = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean cross-entropy and its gradient with respect to the logits, both by hand.

    Args:
        logits: (N, V) or (B, T, V), any floating dtype; the arithmetic stays in that dtype.
        targets: (N,) or (B, T) integer class indices in [0, V), or ignore_index.
        ignore_index: Targets equal to it are skipped; None counts every target.

    Returns:
        (loss, dlogits): the 0-d mean over the counted targets, and ∂loss/∂logits in the logits' shape.

    Raises:
        EngineError: bad shapes, dtypes or target values (see the checks in ``_flatten``).
    """
    import torch

    x, t, counted = _flatten(logits, targets, ignore_index)  # (N, V), (N,), (N,)
    n = counted.sum()
    safe_t = torch.where(counted, t, 0).unsqueeze(1)  # (N, 1): any valid column for skipped rows
    with torch.no_grad():
        m = x.max(dim=1, keepdim=True).values  # (N, 1)
        shifted = x - m  # (N, V), every entry ≤ 0
        exps = shifted.exp()  # (N, V), in (0, 1], 1 at the maximum
        total = exps.sum(dim=1, keepdim=True)  # (N, 1), in [1, V]
        # loss_i = logsumexp(x_i) − x_i,t = (m + log total) − (shifted_i,t + m)
        per_row = (total.log() - shifted.gather(1, safe_t)).squeeze(1)  # (N,)
        loss = torch.where(counted, per_row, 0).sum() / n
        weight = (counted.to(x.dtype) / n).unsqueeze(1)  # (N, 1): 1/n for a counted row, 0 for a skipped one
        grad = exps.mul_(weight / total)  # softmax / n, in place of exps
        grad.scatter_add_(1, safe_t, -weight)  # − one-hot / n
    return loss, grad.reshape(logits.shape)


@cache
def _function() -> type:
    """The autograd Function, built on first use so that importing this module does not import torch."""
    import torch
    from torch.autograd.function import once_differentiable

    class CrossEntropy(torch.autograd.Function):
        """Forward: the hand loss; backward: the hand gradient, scaled by the incoming gradient."""

        @staticmethod
        def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
            """The hand loss; its gradient (softmax − one-hot)/n is kept for backward."""
            loss, grad = cross_entropy_and_grad(logits, targets, ignore_index)
            ctx.save_for_backward(grad)
            return loss

        @staticmethod
        @once_differentiable
        def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
            """The saved gradient times the incoming one (chain rule); targets and ignore_index get none."""
            (grad,) = ctx.saved_tensors
            return grad_output * grad, None, None

    return CrossEntropy


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int | None = IGNORE_INDEX
                  ) -> torch.Tensor:
    """The mean cross-entropy as an autograd op whose backward is the hand gradient (softmax − one-hot) / n.

    A drop-in for ``torch.nn.functional.cross_entropy(logits, targets)`` on (N, V) logits, and on (B, T, V)
    logits without the reshape. The gradient (N, V) is kept for backward, as torch keeps its log-softmax.

    Args:
        logits: (N, V) or (B, T, V), floating point.
        targets: (N,) or (B, T) integer class indices, or ignore_index.
        ignore_index: Targets equal to it are skipped; None counts every target.

    Returns:
        The 0-d mean loss.

    Raises:
        EngineError: bad shapes, dtypes or target values.
    """
    return _function().apply(logits, targets, ignore_index)
