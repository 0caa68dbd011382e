"""Round-to-nearest (RTN) integer weights: absmax or zero point, per tensor, per output channel or per group.

A grid of 2^b levels, one step ``scale`` apart, is laid over a run of
weights (the whole matrix, one output row, or g consecutive weights of a
row along the input dimension) and every weight moves to its nearest level:

- symmetric (absmax, as LLM.int8's eq. 1): scale = max|w| / (2^(b−1) − 1),
  q = round(w / scale) ∈ [−(2^(b−1) − 1), 2^(b−1) − 1], w ≈ q · scale.
  Zero is a level; the most negative code is left unused so the grid is
  symmetric (at 2 bits only −1, 0, 1 remain: the collapse the lesson shows).
- asymmetric (zero point): the range [min(w, 0), max(w, 0)] is cut into
  2^b − 1 steps, scale = (max − min) / (2^b − 1), the integer zero point
  z = round(−min / scale), q = clamp(round(w / scale) + z, 0, 2^b − 1),
  w ≈ (q − z) · scale. Including 0 in the range keeps z a valid code, as the
  GPTQ reference implementation does.

Either way a weight inside its run's range moves by at most half a step,
|w − ŵ| ≤ scale / 2 (:meth:`QuantizedWeight.error_bound`): smaller runs
(groups) have smaller ranges, so smaller steps, at the price of one scale
(and zero) per run.

Example::

    >>> qw = quantize(w, bits=4, group=64)       # w (rows, cols) float, cols a multiple of 64
    >>> qw.codes.shape, qw.scale.shape           # (rows, cols) integers, (rows, cols / 64) float32
    >>> w_hat = qw.dequantize()                  # == fake_quantize(w, bits=4, group=64)

torch is imported inside the functions (engines must import without it);
NumPy arrays are accepted and turned into torch tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench_engines.arrays import require_int

BITS = (2, 3, 4, 8)
"""Bit widths offered: 8 and 4 are the common formats, 3 where RTN starts to break, 2 to show the collapse."""
GROUPS = ("tensor", "channel")
"""Named granularities; an integer g is a group of g weights along the input dimension."""


def check_bits(bits: object) -> int:
    """bits as an int from BITS; ValueError (TypeError for a non-integer) otherwise."""
    bits = require_int(bits, "bits")
    if bits not in BITS:
        raise ValueError(f"unsupported bit width {bits}; choose one of {', '.join(map(str, BITS))}")
    return bits


def check_group(group: object, cols: int) -> str | int:
    """"tensor", "channel" or a group size g ≥ 1 that divides cols (the input dimension)."""
    if isinstance(group, str):
        if group not in GROUPS:
            raise ValueError(f"group must be 'tensor', 'channel' or a group size, got {group!r}")
        return group
    group = require_int(group, "group", low=1)
    if cols % group:
        raise ValueError(f"a group of {group} weights does not divide a row of {cols}; "
                         f"choose a divisor of {cols} (or 'channel')")
    return group


def check_weight(w: Any, name: str = "w"):
    """w as a float32 torch tensor (rows, cols), refused if it is not 2-D, not floating, empty or not finite."""
    import torch

    if not isinstance(w, torch.Tensor):
        if type(w).__module__.split(".")[0] != "numpy":
            raise TypeError(f"{name} must be a torch tensor or a numpy array, got {type(w).__name__}")
        w = torch.from_numpy(w)
    if not w.is_floating_point():
        raise TypeError(f"{name} must hold floating-point weights, got {w.dtype}")
    if w.ndim != 2:
        raise ValueError(f"{name} must be a (rows, cols) matrix, got shape {tuple(w.shape)}")
    if w.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(w.shape)})")
    if not torch.isfinite(w).all():
        raise ValueError(f"{name} holds inf or nan; only finite weights can be put on a grid")
    return w.detach().float()


def levels(bits: int, symmetric: bool) -> tuple[int, int]:
    """The smallest and largest integer code: (−(2^(b−1) − 1), 2^(b−1) − 1) or (0, 2^b − 1)."""
    if symmetric:
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def grid(w, bits: int, symmetric: bool):
    """(scale, zero) for each row of runs w (..., n): the grid that covers each run's range.

    zero is None for symmetric grids. An all-zero run gets scale 1 (every code 0)
    rather than a division by zero.
    """
    import torch

    high = levels(bits, symmetric)[1]
    if symmetric:
        scale = w.abs().amax(dim=-1, keepdim=True) / high
        return torch.where(scale > 0, scale, torch.ones_like(scale)), None
    lo = w.amin(dim=-1, keepdim=True).clamp(max=0)
    hi = w.amax(dim=-1, keepdim=True).clamp(min=0)
    scale = (hi - lo) / high
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return scale, torch.round(-lo / scale)


def round_to_grid(w, scale, zero, bits: int):
    """Integer codes of w on the grid (scale, zero): round(w / scale) (+ zero), clamped to the levels."""
    import torch

    low, high = levels(bits, zero is None)
    q = torch.round(w / scale)
    return torch.clamp(q if zero is None else q + zero, low, high)


def from_grid(q, scale, zero):
    """ŵ = q · scale (symmetric) or (q − zero) · scale (zero point)."""
    return q * scale if zero is None else (q - zero) * scale


def _runs(w, group: str | int):
    """w (rows, cols) viewed as (R, G, n): R rows of G runs of n weights, one grid per run."""
    rows, cols = w.shape
    if group == "tensor":
        return w.reshape(1, 1, rows * cols)
    if group == "channel":
        return w.reshape(rows, 1, cols)
    return w.reshape(rows, cols // group, group)


@dataclass(frozen=True)
class QuantizedWeight:
    """A weight matrix as integers and one grid per run: what an integer kernel would store."""

    codes: Any
    """(rows, cols) integer codes (torch.int8 when symmetric, torch.uint8 with a zero point)."""
    scale: Any
    """(R, G) float32 steps: (1, 1) per tensor, (rows, 1) per channel, (rows, cols / g) per group."""
    zero: Any
    """(R, G) integer zero points as float32 (whole numbers), or None for symmetric grids."""
    bits: int
    group: str | int
    """"tensor", "channel" or the group size g."""

    @property
    def symmetric(self) -> bool:
        return self.zero is None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.codes.shape)

    def _expand(self, per_run):
        """(R, G) per-run values as (rows, cols), one per weight."""
        rows, cols = self.shape
        runs = _runs(self.codes, self.group)
        return per_run.unsqueeze(-1).expand(runs.shape).reshape(rows, cols)

    def dequantize(self):
        """ŵ (rows, cols) float32: the weights the integers stand for."""
        zero = None if self.zero is None else self._expand(self.zero)
        return from_grid(self.codes.float(), self._expand(self.scale), zero)

    def error_bound(self):
        """(rows, cols) float32: half a step, the most any weight may have moved (|w − ŵ| ≤ scale / 2)."""
        return self._expand(self.scale) / 2

    def bits_per_weight(self) -> float:
        """b plus the grids' overhead, counting a scale and a zero point as 16 bits each (fp16, as stored)."""
        rows, cols = self.shape
        per_run = 16 if self.zero is None else 32
        return self.bits + per_run * self.scale.numel() / (rows * cols)


def quantize(w: Any, bits: int = 4, *, symmetric: bool = False, group: str | int = "channel") -> QuantizedWeight:
    """Round w (rows = output channels, cols = inputs) to ``bits``-bit integers, one grid per run.

    Args:
        w: (rows, cols) float torch tensor or numpy array, finite.
        bits: One of BITS.
        symmetric: absmax grid (True) or zero-point grid (False).
        group: "tensor", "channel" (one grid per output row) or g, a group of g
            consecutive weights along a row (g must divide cols).

    Raises:
        TypeError: w not a float tensor or array, bits or group not integers.
        ValueError: w not 2-D, empty or not finite; unsupported bits; g not dividing cols.
    """
    import torch

    w = check_weight(w)
    bits = check_bits(bits)
    group = check_group(group, w.shape[1])
    runs = _runs(w, group)  # (R, G, n)
    scale, zero = grid(runs, bits, bool(symmetric))
    q = round_to_grid(runs, scale, zero, bits).reshape(w.shape)
    dtype = torch.int8 if symmetric else torch.uint8
    return QuantizedWeight(q.to(dtype), scale.squeeze(-1), None if zero is None else zero.squeeze(-1), bits, group)


def dequantize(qw: QuantizedWeight):
    """ŵ (rows, cols) float32 from its integers and grids."""
    if not isinstance(qw, QuantizedWeight):
        raise TypeError(f"expected a QuantizedWeight (from quantize), got {type(qw).__name__}")
    return qw.dequantize()


def fake_quantize(w: Any, bits: int = 4, *, symmetric: bool = False, group: str | int = "channel"):
    """quantize then dequantize: the float weight a model runs with once its weights are ``bits``-bit integers."""
    return quantize(w, bits, symmetric=symmetric, group=group).dequantize()
