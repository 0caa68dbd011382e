"""AWQ: scale up the input channels that carry large activations before rounding, so their weights round finer.

Unlike GPTQ (:mod:`.gptq`), AWQ (Lin et al., 2023, "AWQ: Activation-aware
Weight Quantization for LLM Compression and Acceleration", §3.2) changes no
weight by hand: it rounds W·diag(s) instead of W, for per-input-channel
scales s, and divides the input by s, which leaves the float product
unchanged, x Wᵀ = (x / s)(W·diag(s))ᵀ. A channel with s > 1 has its weights
stretched across more grid steps, so its relative rounding error shrinks;
the channels that matter most are those whose activations are large, hence

    s = mean|x|^α  (normalised so that max(s) · min(s) = 1),

with α found by a grid search: the reference code tries α = 0, 1/20, …,
19/20 and keeps the one with the least output error on calibration inputs.
α = 0 is plain round-to-nearest, so AWQ never does worse than RTN on the
calibration set.

The output error of a candidate is ‖X(W − Ŵ_α)ᵀ‖², computed from the
Hessian XᵀX (:class:`.gptq.Hessian`) instead of the inputs themselves. Two
simplifications against the reference code, both stated: the search is per
linear layer (the reference searches one s for q, k and v together, and
measures the whole attention block's output), and the weight-clipping
search (``auto_clip``) is left out.

1/s is kept as an explicit per-input-channel scale: ``AWQResult.weight`` is
Q(W·diag(s))·diag(1/s), the float weight that runs with it folded in, and
``AWQResult.input_scale`` is 1/s for a kernel that keeps the integers of
Q(W·diag(s)) and scales x (or folds 1/s into the RMSNorm before the layer,
as the reference does).

Example::

    >>> result = awq_quantize(w, h, mean_abs, bits=3, group=64)     # h: gptq.Hessian over the layer's inputs
    >>> result.alpha, result.weight.shape
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench_engines.arrays import require_int
from workbench_engines.compress import rtn

GRID = 20
"""α candidates: 0, 1/20, …, 19/20 (the reference code's n_grid)."""


@dataclass(frozen=True)
class AWQResult:
    """One layer quantised by AWQ."""

    weight: Any
    """Q(W·diag(s))·diag(1/s), (rows, cols) float32: the layer's weight with the scales folded back in."""
    quantized: rtn.QuantizedWeight
    """The integers and grids of W·diag(s)."""
    input_scale: Any
    """1/s (cols,) float32: what the input is multiplied by before the integer weights."""
    alpha: float
    """The α the search chose."""
    errors: tuple[float, ...]
    """Relative output error on the calibration inputs for each α tried, in order."""


def channel_scales(mean_abs, alpha: float):
    """s = mean|x|^α per input channel, divided by √(max · min) as the reference code does (keeps s near 1)."""
    s = mean_abs.clamp(min=1e-4).pow(alpha)  # the reference's floor: a silent channel gets no huge 1/s
    return s / (s.max() * s.min()).sqrt()


def awq_quantize(w: Any, h: Any, mean_abs: Any, bits: int = 4, *, group: str | int = "channel", symmetric: bool = False,
        grid: int = GRID) -> AWQResult:
    """Search α ∈ {0, 1/grid, …, (grid − 1)/grid} for the scales s = mean|x|^α that minimise the output error.

    Args:
        w: (rows, cols) float weights, finite.
        h: (cols, cols) float, XᵀX (any positive factor) over calibration inputs.
        mean_abs: (cols,) float, mean |x| per input channel over the same inputs.
        bits, group, symmetric: The RTN grid, as rtn.quantize.
        grid: How many α to try.

    Raises:
        TypeError, ValueError: as rtn.quantize; h or mean_abs of the wrong shape or not finite.
    """
    import torch

    from workbench_engines.compress.gptq import output_error

    w = rtn.check_weight(w)
    h = rtn.check_weight(h, "h")
    cols = w.shape[1]
    if h.shape != (cols, cols):
        raise ValueError(f"h must be ({cols}, {cols}) for weights of {cols} columns, got {tuple(h.shape)}")
    mean_abs = torch.as_tensor(mean_abs, dtype=torch.float32)
    if mean_abs.shape != (cols,) or not torch.isfinite(mean_abs).all():
        raise ValueError(f"mean_abs must be ({cols},) and finite, got shape {tuple(mean_abs.shape)}")
    grid = require_int(grid, "grid", low=1)
    best = None
    errors = []
    for k in range(grid):
        alpha = k / grid
        s = channel_scales(mean_abs, alpha)  # (cols,)
        quantized = rtn.quantize(w * s, bits, symmetric=symmetric, group=group)
        w_hat = quantized.dequantize() / s
        errors.append(output_error(w, w_hat, h))
        if best is None or errors[-1] < best[0]:
            best = (errors[-1], alpha, quantized, w_hat, s)
    _, alpha, quantized, w_hat, s = best
    return AWQResult(w_hat, quantized, 1 / s, alpha, tuple(errors))
