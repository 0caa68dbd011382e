"""The outlier problem of integer activations (LLM.int8), measured on a linear layer's real inputs.

LLM.int8 (Dettmers et al., 2022, "LLM.int8(): 8-bit Matrix Multiplication
for Transformers at Scale") found that a few input channels of a
transformer's linear layers carry values far larger than the rest
(magnitude ≥ 6 where most are below 1). Per-tensor absmax int8 (their eq. 1,
x_q = round(127 · x / max|x|)) sets one step for the whole tensor from its
largest value, so those few channels make the step coarse for every other
channel. Their fix is a mixed-precision decomposition (§3.2): the outlier
channels stay in floating point and only the rest is quantised.

This module captures a layer's inputs with a forward hook (at most
``max_rows`` rows are kept, and the forward pass is stopped as soon as the
layer has been seen enough: memory stays bounded whatever the text) and
reports the per-channel magnitude profile and the int8 error of those
activations with and without the outlier channels kept in float.

Example::

    >>> x = capture_inputs(model, "blocks.5.ffn.down", ids)      # (N, 512) float32
    >>> report = outlier_profile(x, weight=dict(model.named_modules())["blocks.5.ffn.down"].weight)
    >>> report.share_above_threshold, report.int8_error, report.int8_error_mixed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench_engines.arrays import require_int, require_int_array

THRESHOLD = 6.0
"""LLM.int8's outlier magnitude: a channel is an outlier where some |x| reaches it."""
SIGMAS = 6.0
"""The relative rule reported beside it: a channel whose max |x| exceeds 6σ of all the layer's inputs."""


class _Enough(Exception):
    """Raised from the hook to stop a forward pass once enough rows are captured."""


def capture_inputs(model: Any, layer: str, ids: Any, *, max_rows: int = 4096):
    """The inputs (N, cols) float32 that ``layer`` (a dotted module name) receives while ``model`` reads ids.

    Args:
        model: A torch module called as model(ids (1, T)) (the small GPT, SmolLM2's ``.model``).
        layer: The linear layer's name in ``model.named_modules()``, e.g. "blocks.3.ffn.down".
        ids: (B, T) or (T,) token ids; windows are run one at a time.
        max_rows: The most input rows kept (N ≤ max_rows): the memory bound.

    Raises:
        ValueError: no module of that name, or ids empty.
    """
    import torch

    modules = dict(model.named_modules())
    if layer not in modules:
        raise ValueError(f"the model has no module {layer!r}; linear layers are named like "
                         f"{next((n for n, m in modules.items() if isinstance(m, torch.nn.Linear)), '?')!r}")
    max_rows = require_int(max_rows, "max_rows", low=1)
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    ids = require_int_array(ids, "ids", low=0, high=vocab - 1 if vocab else None)
    ids = ids.reshape(1, -1) if ids.ndim == 1 else ids
    if ids.ndim != 2 or ids.size == 0:
        raise ValueError(f"ids must be (B, T) or (T,) and not empty, got shape {ids.shape}")
    rows: list = []
    kept = 0

    def hook(module, inputs, output):
        nonlocal kept
        x = inputs[0].detach().reshape(-1, inputs[0].shape[-1])[: max_rows - kept].float()
        rows.append(x.clone())
        kept += x.shape[0]
        if kept >= max_rows:
            raise _Enough

    handle = modules[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            for window in ids:
                if kept >= max_rows:
                    break
                try:
                    model(torch.from_numpy(window).unsqueeze(0))
                except _Enough:
                    break
    finally:
        handle.remove()
    if not rows:
        raise ValueError(f"{layer} was never called while the model read ids")
    return torch.cat(rows)


def int8_absmax(x):
    """Per-tensor absmax int8 of x, dequantised: round(127 · x / max|x|) · max|x| / 127 (LLM.int8, eq. 1)."""
    import torch

    scale = x.abs().max() / 127
    return torch.round(x / scale) * scale if scale > 0 else x.clone()


@dataclass(frozen=True)
class OutlierProfile:
    """How a layer's input channels are spread, and what that does to int8 activations."""

    rows: int
    """Input rows (tokens) measured."""
    channel_max: np.ndarray
    """(cols,) max |x| per input channel."""
    sigma: float
    """Standard deviation of all the inputs."""
    threshold: float
    outliers: tuple[int, ...]
    """Channels whose max |x| ≥ threshold: the ones the mixed decomposition keeps in float."""
    share_above_sigmas: float
    """Share of channels whose max |x| exceeds SIGMAS · σ."""
    int8_error: float
    """‖X − X̂‖ / ‖X‖ with X̂ the per-tensor absmax int8 of X."""
    int8_error_mixed: float
    """The same with the outlier channels kept in float and the rest quantised with their own absmax."""
    output_error: float | None = None
    """‖(X − X̂)Wᵀ‖ / ‖XWᵀ‖ when the layer's weight was given (the weight itself unquantised)."""
    output_error_mixed: float | None = None

    @property
    def share_above_threshold(self) -> float:
        """Share of input channels that are outliers."""
        return len(self.outliers) / self.channel_max.size


def outlier_profile(x: Any, *, threshold: float = THRESHOLD, weight: Any = None) -> OutlierProfile:
    """Profile activations x (N, cols) and measure per-tensor int8 with and without the outlier channels.

    Args:
        x: (N, cols) float activations (``capture_inputs``), finite.
        threshold: The outlier magnitude (LLM.int8's 6).
        weight: The layer's weight (rows, cols), to report the error of its output too.

    Raises:
        TypeError, ValueError: x not a finite 2-D float matrix; a weight of the wrong width.
    """
    import torch

    from workbench_engines.compress.rtn import check_weight

    x = check_weight(x, "x")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    channel_max = x.abs().amax(0)  # (cols,)
    sigma = float(x.std())
    keep = channel_max >= threshold  # (cols,) bool
    x_hat = int8_absmax(x)
    mixed = x.clone()
    mixed[:, ~keep] = int8_absmax(x[:, ~keep])

    def relative(a, b) -> float:
        norm = float(torch.linalg.norm(b))
        return float(torch.linalg.norm(a - b)) / norm if norm else 0.0

    outputs = (None, None)
    if weight is not None:
        weight = check_weight(weight, "weight")
        if weight.shape[1] != x.shape[1]:
            raise ValueError(f"weight has {weight.shape[1]} columns, x has {x.shape[1]} channels")
        y = x @ weight.T
        outputs = (relative(x_hat @ weight.T, y), relative(mixed @ weight.T, y))
    return OutlierProfile(
        rows=x.shape[0], channel_max=channel_max.numpy(), sigma=sigma, threshold=float(threshold),
        outliers=tuple(int(i) for i in torch.nonzero(keep).flatten()),
        share_above_sigmas=float((channel_max > SIGMAS * sigma).float().mean()),
        int8_error=relative(x_hat, x), int8_error_mixed=relative(mixed, x),
        output_error=outputs[0], output_error_mixed=outputs[1])


def layer_outliers(model: Any, layer: str, ids: Any, *, max_rows: int = 4096,
                   threshold: float = THRESHOLD) -> OutlierProfile:
    """capture_inputs then outlier_profile with the layer's own weight: the whole measurement in one call.

    Example: ``layer_outliers(smol.model, "blocks.20.attn.q", windows)`` on SmolLM2 finds channel 247.
    """
    x = capture_inputs(model, layer, ids, max_rows=max_rows)
    return outlier_profile(x, threshold=threshold, weight=dict(model.named_modules())[layer].weight)
