"""Quantise a whole model, layer by layer, with RTN, GPTQ or AWQ, and report each layer's output error.

Works on the project's GPT-shaped models (the shipped small GPT and SmolLM2
loaded with ``weights="fp32"``): token embedding, then blocks, each called as
``block(x, cos, sin, layer, cache)``. Every ``nn.Linear`` inside the blocks
is quantised; the embedding and the tied output projection stay float (the
GPTQ and AWQ papers leave them too).

The pass is sequential, as GPTQ's reference code runs it ("true sequential"):
the calibration windows go through the embedding once; then for each block,
for each of its linear layers in order, the block is run on its inputs with
every earlier layer already quantised, the layer's inputs are gathered into
its Hessian (and mean |x|), and the layer is quantised; the block's output
then becomes the next block's input. ``sequential=False`` calibrates every
layer on the float model's activations instead (AWQ's reference code does
that): one pass of the float block gathers all its layers' inputs before any
of them is quantised.

The result is a deep copy whose weights are fake-quantised (dequantised
float32 on the integer grids); the model given is left as it was.

Example::

    >>> ids = calibration_windows(tokenizer, windows=16, length=256)          # from the train split
    >>> result = quantize_model(model, ids, method="gptq", bits=3, group=64)
    >>> result.model, [(r.name, r.rtn_error, r.error) for r in result.layers]
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench_engines.arrays import require_int, require_int_array
from workbench_engines.errors import Cancelled, EngineError
from workbench_engines.profiling.profile import Profile

METHODS = ("rtn", "gptq", "awq")


@dataclass(frozen=True)
class LayerReport:
    """One linear layer: its output error on its calibration inputs under RTN and under the method used."""

    name: str
    shape: tuple[int, int]
    """(rows, cols) of the weight."""
    rtn_error: float
    """‖X(W − Ŵ_RTN)ᵀ‖ / ‖XWᵀ‖: round-to-nearest at the same bits and group, on the same inputs X."""
    error: float
    """The same for the method's weights (equal to rtn_error for "rtn")."""
    detail: str = ""
    """What the method chose, e.g. AWQ's α."""


@dataclass
class QuantizedModel:
    """A quantised copy of a model and what quantising each layer did."""

    model: Any
    """The deep copy, its linear layers' weights fake-quantised (float32)."""
    method: str
    bits: int
    group: str | int
    symmetric: bool
    calibration_tokens: int
    layers: list[LayerReport] = field(default_factory=list)
    profile: Profile | None = None
    """Wall time of the whole pass (torch; peak memory not measured: tracemalloc cannot see torch's)."""


def calibration_windows(tokenizer: Any, *, windows: int = 16, length: int = 256, seed: int = 0,
                        limit_bytes: int | None = None) -> np.ndarray:
    """``windows`` random windows of ``length`` tokens from the plays' train split: (windows, length) int64.

    Never the validation split: the end of every play is the held-out text perplexity is measured on.
    """
    from workbench_engines.models.data import encode_corpus

    windows = require_int(windows, "windows", low=1)
    length = require_int(length, "length", low=1)
    train = encode_corpus(tokenizer, limit_bytes=limit_bytes).train
    if len(train) < length:
        raise EngineError(f"the train split has {len(train)} tokens, fewer than one window of {length}")
    starts = np.random.default_rng(seed).integers(0, len(train) - length + 1, size=windows)
    return np.stack([train[s : s + length] for s in starts]).astype(np.int64)


def lesson_calibration(tokenizer: Any) -> np.ndarray:
    """The calibration every lesson lab and its probes use: 8 windows of 128 tokens from the train split of the
    first 1.5 MB of the plays (the same windows every time, so a probe reproduces its lab's row)."""
    return calibration_windows(tokenizer, windows=8, length=128, limit_bytes=1_500_000)


def block_linears(block: Any) -> list[tuple[str, Any]]:
    """(name within the block, module) of every nn.Linear in the block, in the order the block defines them."""
    from torch import nn

    return [(name, m) for name, m in block.named_modules() if isinstance(m, nn.Linear)]


def _gpt_of(model: Any):
    """The torch module (a Pretrained or LoadedModel gives its .model), checked to be GPT-shaped."""
    module = getattr(model, "model", model)
    if not all(hasattr(module, a) for a in ("embed", "blocks", "rope_cos", "rope_sin")):
        raise EngineError(f"{type(module).__name__} is not a GPT-shaped model (embed, blocks, RoPE tables)")
    if not any(block_linears(b) for b in module.blocks):
        raise EngineError("the model's blocks hold no float Linear layers (load SmolLM2 with weights='fp32')")
    return module


def _copy(module: Any):
    """A deep copy that leaves behind the C kernels' prepared weights (rebuilt from the new weights on use)."""
    prepared = {id(m._prepared): None for m in module.modules() if getattr(m, "_prepared", None) is not None}
    return copy.deepcopy(module, prepared)


class _Seen(Exception):
    """Raised by the gathering hook: the rest of the block's forward pass is not needed."""


def _hessians(block: Any, args: tuple, linears: list, *, stop: bool = True) -> tuple[list, Any]:
    """Run block(*args) once, gathering each linear's inputs into a Hessian: (hessians, the block's output).

    With ``stop`` the pass ends as soon as the last of the linears has its inputs (the output is then None).
    """
    from workbench_engines.compress.gptq import Hessian

    hessians = [Hessian(linear.in_features) for linear in linears]

    def hook(hessian, last):
        def gather(module, inputs, output):
            hessian.add(inputs[0])
            if last:
                raise _Seen

        return gather

    handles = [linear.register_forward_hook(hook(h, stop and i == len(linears) - 1))
               for i, (linear, h) in enumerate(zip(linears, hessians))]
    try:
        return hessians, block(*args)
    except _Seen:
        return hessians, None
    finally:
        for handle in handles:
            handle.remove()


def _quantize_layer(method: str, w, hessian, bits: int, group, symmetric: bool) -> tuple[Any, float, float, str]:
    """(Ŵ, RTN's error, the method's error, detail) for one layer's weight and its inputs' Hessian."""
    from workbench_engines.compress import awq, gptq, rtn

    h = hessian.matrix()
    rtn_weight = rtn.fake_quantize(w, bits, symmetric=symmetric, group=group)
    rtn_error = gptq.output_error(w, rtn_weight, h)
    if method == "rtn":
        return rtn_weight, rtn_error, rtn_error, ""
    if method == "gptq":
        result = gptq.gptq_quantize(w, h, bits, group=group, symmetric=symmetric)
        return result.weight, rtn_error, gptq.output_error(w, result.weight, h), f"loss {result.loss:.3g}"
    result = awq.awq_quantize(w, h, hessian.mean_abs(), bits, group=group, symmetric=symmetric)
    return result.weight, rtn_error, gptq.output_error(w, result.weight, h), f"alpha {result.alpha:.2f}"


def quantize_model(model: Any, calibration: Any, *, method: str = "gptq", bits: int = 4, group: str | int = 64,
                   symmetric: bool = False, sequential: bool = True,
                   progress: Callable[[float, str], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> QuantizedModel:
    """Quantise every linear layer of the model's blocks with ``method``, on calibration windows.

    Args:
        model: The small GPT (or its ``Pretrained``), or SmolLM2 loaded with weights="fp32" (or its LoadedModel).
        calibration: (B, T) token ids from the train split (``calibration_windows``), T ≤ the context.
        method: "rtn", "gptq" or "awq".
        bits: One of rtn.BITS.
        group: g (dividing every layer's input width), or "channel".
        symmetric: absmax grids instead of zero-point grids.
        sequential: Calibrate each layer on the outputs of the already-quantised layers before it.
        progress: Called with (fraction done, the layer just quantised).
        should_stop: Polled before each layer; True raises Cancelled.

    Raises:
        EngineError: not a GPT-shaped float model; an unknown method.
        TypeError, ValueError: bad bits, group or calibration ids.
        Cancelled: should_stop() returned True (the model given is untouched).
    """
    import torch

    from workbench_engines.compress import rtn

    source = _gpt_of(model)
    if method not in METHODS:
        raise EngineError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    bits = rtn.check_bits(bits)
    if group == "tensor":
        raise ValueError("quantize_model takes a group size or 'channel'; GPTQ keeps one grid per row at least")
    for block in source.blocks:
        for _, linear in block_linears(block):
            rtn.check_group(group, linear.in_features)
    config = source.config
    ids = require_int_array(calibration, "calibration", low=0, high=config.vocab_size - 1)
    if ids.ndim != 2 or ids.size == 0 or ids.shape[1] > config.context:
        raise ValueError(f"calibration must be (B, T) token ids with 1 ≤ T ≤ {config.context}, got shape {ids.shape}")
    started = time.perf_counter()
    quantized = _copy(source)
    result = QuantizedModel(quantized, method, bits, group, bool(symmetric), int(ids.size))
    total = sum(len(block_linears(b)) for b in quantized.blocks)
    t = ids.shape[1]
    cos, sin = quantized.rope_cos[:t], quantized.rope_sin[:t]  # (T, HS/2) each
    with torch.no_grad():
        x = quantized.embed(torch.from_numpy(ids))  # (B, T, C): the first block's calibration inputs
        for index, block in enumerate(quantized.blocks):
            linears = block_linears(block)
            if not sequential:  # every layer of the block calibrated on the float block, before any is quantised
                ahead, x_next = _hessians(block, (x, cos, sin, index, None), [m for _, m in linears], stop=False)
            for i, (name, linear) in enumerate(linears):
                if should_stop is not None and should_stop():
                    raise Cancelled("quantisation cancelled")
                hessian = _hessians(block, (x, cos, sin, index, None), [linear])[0][0] if sequential else ahead[i]
                w = linear.weight.detach().float()
                w_hat, rtn_error, error, detail = _quantize_layer(method, w, hessian, bits, group, bool(symmetric))
                linear.weight.copy_(w_hat.to(linear.weight.dtype))
                if hasattr(linear, "_prepared"):
                    linear._prepared = None  # SmolLM2's DecodeLinear: its C copy of the weight is stale now
                full_name = f"blocks.{index}.{name}"
                result.layers.append(LayerReport(full_name, tuple(w.shape), rtn_error, error, detail))
                if progress is not None:
                    progress(len(result.layers) / total, full_name)
            x = block(x, cos, sin, index, None) if sequential else x_next
    result.profile = Profile("torch", time.perf_counter() - started, memory_source="not measured",
                             note=f"{method} {bits}-bit, {total} layers",
                             extra={"calibration_tokens": int(ids.size), "threads": torch.get_num_threads()})
    return result
