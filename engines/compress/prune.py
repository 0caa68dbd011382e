"""Pruning: zeroing weights by magnitude (unstructured and 2:4) and whole attention heads by importance.

- Magnitude pruning keeps the largest |w| of each matrix and zeroes the rest
  (Han et al., 2015): simple, and at moderate sparsity nearly free.
- 2:4 semi-structured sparsity keeps the 2 largest of every 4 consecutive
  weights along a row: exactly half, in a pattern sparse tensor cores (NVIDIA
  Ampere and later) multiply at up to twice the dense rate (Mishra et al.,
  2021, "Accelerating Sparse Deep Neural Networks").
- Head importance (Michel et al., 2019, "Are Sixteen Heads Really Better than
  One?", eq. 3): put a gate ξ_h = 1 on every head's output and take
  I_h = E_x |∂L/∂ξ_h| over data; heads with small I_h can go with little
  loss. The gate is a forward pre-hook on each block's output projection, so
  the model classes are not edited.

Every function returns a changed deep copy; the model passed in is never touched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workbench_engines.errors import Cancelled, EngineError

PRUNING_METHODS = ("magnitude", "2:4")


def magnitude_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Boolean keep-mask of w's shape zeroing round(sparsity · size) weights of smallest |w| (ties: lowest index)."""
    w = _finite(w, "w")
    if not 0.0 <= sparsity <= 1.0:
        raise EngineError(f"sparsity must be between 0 and 1, got {sparsity}")
    drop = int(round(sparsity * w.size))
    keep = np.ones(w.size, dtype=bool)
    keep[np.argsort(np.abs(w), axis=None, kind="stable")[:drop]] = False
    return keep.reshape(w.shape)


def two_four_mask(w: np.ndarray) -> np.ndarray:
    """Boolean keep-mask keeping the 2 largest |w| of every 4 consecutive weights along each row (ties: lowest index)."""
    w = _finite(w, "w")
    if w.ndim != 2 or w.shape[1] % 4:
        raise EngineError(f"2:4 sparsity needs a matrix whose rows are a multiple of 4 long, got shape {w.shape}")
    groups = np.abs(w).reshape(w.shape[0], -1, 4)  # (rows, cols / 4, 4)
    order = np.argsort(-groups, axis=-1, kind="stable")
    keep = np.zeros(groups.shape, dtype=bool)
    np.put_along_axis(keep, order[..., :2], True, axis=-1)
    return keep.reshape(w.shape)


def _finite(w: object, name: str) -> np.ndarray:
    w = np.asarray(w)
    if not np.issubdtype(w.dtype, np.floating):
        raise EngineError(f"{name} must hold floats, got {w.dtype}")
    if not np.isfinite(w).all():
        raise EngineError(f"{name} holds NaN or infinite values")
    return w


@dataclass(frozen=True)
class PrunedModel:
    """A pruned copy and what pruning did to each matrix."""

    model: object
    sparsity: dict[str, float]
    """Per pruned matrix (module name): the share of its weights that are now zero."""

    @property
    def overall(self) -> float:
        """Zeroed share over all pruned matrices, weighted by their sizes."""
        sizes = {name: module.weight.numel() for name, module in _prunable(self.model)}
        return sum(self.sparsity[n] * sizes[n] for n in self.sparsity) / sum(sizes[n] for n in self.sparsity)


def _prunable(model) -> list[tuple[str, object]]:
    """The blocks' float linear layers (attention and feed-forward): the embedding and head are left dense."""
    import torch

    return [(f"blocks.{name}", module) for name, module in model.blocks.named_modules()
            if isinstance(module, torch.nn.Linear)]


def prune_model(model, method: str, sparsity: float = 0.5) -> PrunedModel:
    """A copy of model with every block linear pruned by ``method`` ("magnitude" at ``sparsity``, or "2:4").

    Raises:
        EngineError: an unknown method, a bad sparsity, or a model without float linear layers in its blocks
            (SmolLM2 with quantised weights: load it with weights="fp32").
    """
    import torch

    if method not in PRUNING_METHODS:
        raise EngineError(f"unknown pruning method {method!r}; choose one of {', '.join(PRUNING_METHODS)}")
    pruned = copy.deepcopy(model)
    layers = _prunable(pruned)
    if not layers:
        raise EngineError("the model has no float linear layers in its blocks to prune (quantised weights?)")
    achieved = {}
    with torch.no_grad():
        for name, module in layers:
            w = module.weight.detach().cpu().numpy()
            keep = magnitude_mask(w, sparsity) if method == "magnitude" else two_four_mask(w)
            module.weight.mul_(torch.from_numpy(keep).to(module.weight.dtype))
            achieved[name] = float(1.0 - keep.mean())
    return PrunedModel(pruned, achieved)


def _head_gates(model, gates) -> list:
    """Register, on each block's attention output projection, a pre-hook scaling head h's slice by gates[layer, h]."""
    handles = []
    for layer, block in enumerate(model.blocks):
        head_dim = model.config.head_dim

        def scale(module, args, layer=layer, head_dim=head_dim):
            x = args[0]  # (B, T, NH · HS): the heads side by side, before the output projection
            return (x * gates[layer].repeat_interleave(head_dim).to(x.dtype),) + tuple(args[1:])

        handles.append(block.attn.out.register_forward_pre_hook(scale))
    return handles


def head_importance(model, windows: np.ndarray, *, normalize: bool = False,
                    progress: Callable[[float, str], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Michel et al.'s I_h = E_x |∂L/∂ξ_h| for every head, (layers, heads), from causal-LM loss on ``windows``.

    The absolute value is taken per window, before averaging, as the paper's
    expectation over examples says: averaging gradients over a batch first
    lets opposite signs cancel, and on the small GPT that ranking was no better
    than chance (removing the 6 "least important" heads cost more than 6 random
    ones; per window it cost nothing measurable).

    Args:
        model: A float GPT or Llama (gradients flow through it; it is not changed).
        windows: (N, T + 1) token windows; each one's loss is its mean next-token cross-entropy.
        normalize: Divide each layer's scores by their L2 norm, as Michel et al. do for BERT and their
            translation model; on the small GPT the raw scores ranked heads better across layers.

    Raises:
        EngineError: windows that are not a 2-D integer array of at least 2 columns.
        Cancelled: should_stop() returned True.
    """
    import torch
    import torch.nn.functional as F

    from workbench_engines.arrays import require_int_array

    windows = require_int_array(windows, "windows", low=0, high=model.config.vocab_size - 1)
    if windows.ndim != 2 or windows.shape[1] < 2 or not len(windows):
        raise EngineError(f"windows must be (N, T + 1) with N ≥ 1 and T ≥ 1, got shape {windows.shape}")
    config = model.config
    gates = torch.ones(config.n_layers, config.n_heads, dtype=torch.float32, requires_grad=True)
    total = torch.zeros(config.n_layers, config.n_heads, dtype=torch.float64)
    handles = _head_gates(model, gates)
    was_training = model.training
    model.eval()
    try:
        for i, window in enumerate(torch.from_numpy(windows)):
            if should_stop is not None and should_stop():
                raise Cancelled("head importance cancelled")
            logits = model(window[None, :-1])[0]  # (T, V)
            loss = F.cross_entropy(logits.float(), window[1:])
            (grad,) = torch.autograd.grad(loss, gates)
            total += grad.abs().double()
            if progress is not None:
                progress((i + 1) / len(windows), f"window {i + 1} of {len(windows)}")
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    scores = (total / len(windows)).numpy()
    if normalize:
        norms = np.linalg.norm(scores, axis=1, keepdims=True)
        scores = scores / np.where(norms > 0, norms, 1.0)
    return scores


def prune_heads(model, keep: np.ndarray):
    """A copy of model whose heads with keep[layer, head] False contribute nothing (their output slice is zeroed).

    The copy carries the gates as forward pre-hooks on its output projections.
    """
    import torch

    keep = np.asarray(keep)
    shape = (model.config.n_layers, model.config.n_heads)
    if keep.shape != shape or keep.dtype != bool:
        raise EngineError(f"keep must be a boolean array of shape {shape}, got {keep.dtype} {keep.shape}")
    pruned = copy.deepcopy(model)
    _head_gates(pruned, torch.from_numpy(keep.astype(np.float32)))
    return pruned
