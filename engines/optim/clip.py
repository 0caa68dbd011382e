"""Global-norm gradient clipping written out (Pascanu, Mikolov & Bengio, 2013, "On the difficulty of training
recurrent neural networks", Algorithm 1).

Treat every parameter's gradient as one long vector g. If its norm ‖g‖ exceeds
the threshold c, scale the whole of it by c/‖g‖: the direction is kept and
only the step's length is capped, so one bad batch can move the weights only
so far. The norm is √(Σ over tensors of ‖g_i‖²), taken as the norm of the
per-tensor norms, the order ``torch.nn.utils.clip_grad_norm_`` uses.

As in torch, the scale is ``c / (‖g‖ + 1e-6)``, held at 1: a norm of 0 divides
safely and leaves the gradients alone, and a norm just below c is untouched.

A non-finite norm (an inf or nan anywhere in g) has no direction to keep:
scaling by c/inf would zero every gradient, or turn all of them into nan, and
the next step would silently corrupt the weights. By default this clipping
raises EngineError instead, like torch with ``error_if_nonfinite=True``; with
``error_if_nonfinite=False`` it scales exactly as torch's default does.

Example::

    >>> norm = clip_grad_norm(model.parameters(), 1.0)   # after backward, before the optimizer's step
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from workbench_engines.errors import EngineError

if TYPE_CHECKING:
    import torch

EPS = 1e-6
"""Added to the norm before dividing, as torch adds it."""


def global_norm(grads: Iterable[torch.Tensor]) -> float:
    """√(Σ‖g_i‖²) over the tensors: the norm of all of them as one vector (0.0 for none).

    Args:
        grads: Gradient tensors of any shapes.

    Returns:
        The norm as a Python float (inf or nan when a gradient holds one).
    """
    import torch

    norms = [torch.linalg.vector_norm(g) for g in grads]  # ‖g_i‖ for each tensor
    if not norms:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(norms)))


def clip_scale(norm: float, max_norm: float) -> float:
    """The factor clipping multiplies every gradient by: min(1, max_norm / (norm + 1e-6)).

    Args:
        norm: The gradients' global norm, ≥ 0.
        max_norm: The threshold c.

    Returns:
        The factor (0 for an infinite norm, nan for a nan norm).
    """
    return min(1.0, max_norm / (norm + EPS)) if not math.isnan(norm) else math.nan


def clip_grad_norm(parameters: Iterable[torch.Tensor], max_norm: float, *, error_if_nonfinite: bool = True) -> float:
    """Scale the parameters' gradients in place so their global norm is at most max_norm.

    Args:
        parameters: Tensors whose ``.grad`` is clipped (those without a gradient are skipped).
        max_norm: The threshold c, > 0.
        error_if_nonfinite: Raise on an inf or nan norm (the default) rather than scale by it as torch's default does.

    Returns:
        The global norm before clipping.

    Raises:
        EngineError: max_norm is not a positive finite number, or the norm is not finite and error_if_nonfinite.
    """
    import torch

    if not (math.isfinite(max_norm) and max_norm > 0):
        raise EngineError(f"max_norm must be a positive number, got {max_norm}")
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = global_norm(grads)
    if not math.isfinite(norm) and error_if_nonfinite:
        raise EngineError(f"the gradients' global norm is {norm}: a nan or inf gradient cannot be clipped "
                          "(the loss or a weight has probably blown up; lower the learning rate)")
    scale = clip_scale(norm, max_norm)
    if not scale >= 1.0:  # true for nan too: torch then writes nan into every gradient, and so does this
        with torch.no_grad():
            for g in grads:
                g.mul_(scale)
    return norm
