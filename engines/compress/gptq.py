"""GPTQ: quantise a linear layer's weights column by column, moving each column's rounding error onto the rest.

Unlike round-to-nearest (:mod:`.rtn`), which rounds every weight on its own,
GPTQ (Frantar et al., 2022, "GPTQ: Accurate Post-Training Quantization for
Generative Pre-trained Transformers", Algorithm 1) minimises the layer's
output error ‖XWᵀ − XŴᵀ‖² on calibration inputs X (N, cols). That error is
a quadratic form in the Hessian H = 2XᵀX (cols, cols), the same for every
output row, so after rounding column j the columns not yet quantised can
absorb its error (the Optimal Brain Surgeon update):

    δ = (w_j − q_j) / [H⁻¹]_jj,        W[:, j+1:] −= δ · [H⁻¹]_{j, j+1:}

where H⁻¹ is the inverse Hessian of the columns still free. Algorithm 1 gets
every such H⁻¹ at once from the upper Cholesky factor U of H⁻¹ (row j of U,
scaled, is row j of the free columns' inverse), with H damped by λ = 1% of
its mean diagonal so the factorisation exists. Updates are applied lazily:
inside a block of B = 128 columns at once, and to the columns after the
block in one matrix product when the block is done (same result, far fewer
memory passes).

With groups of g weights, each group's grid (scale, zero) is computed from
the current, already-updated weights when the quantiser reaches the group's
first column, as the reference implementation (github.com/IST-DASLab/gptq,
``gptq.py``) does: the grid sees the error compensation of every block
before it but, as there, not the in-block updates of the current block. So
where g < B a group that starts inside a block gets a grid from weights that
lack part of their compensation, and the lazy batches give a slightly
different result from eager updates (B = 1): on a random 64 × 128 layer at
3 bits, g = 32, an output error of 0.1254 at B = 64 and 0.1265 at B = 128
against 0.1251 eager. Where B divides g the two agree (tests/test_compress.py).

Example::

    >>> h = Hessian(cols); h.add(x)                      # x (..., cols): the layer's real inputs
    >>> result = gptq_quantize(w, h.matrix(), bits=3, group=64)   # w (rows, cols)
    >>> result.weight                                    # Ŵ (rows, cols) float32, on the 3-bit grids
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench_engines.arrays import require_int
from workbench_engines.compress import rtn

BLOCK = 128
"""B, the columns quantised before the lazy update reaches the columns after them (the paper's choice)."""
DAMP = 0.01
"""λ as a share of H's mean diagonal (the paper's 1%)."""


class Hessian:
    """H = 2XᵀX / N over the inputs seen so far, accumulated batch by batch: (cols, cols) memory, whatever N.

    Divided by N (a running mean, as the reference code keeps it) so its size
    does not grow with the calibration set; GPTQ's result does not depend on
    that factor because the damping is relative.
    """

    def __init__(self, cols: int) -> None:
        import torch

        self.cols = require_int(cols, "cols", low=1)
        self.sum = torch.zeros(cols, cols, dtype=torch.float64)
        """Σ xxᵀ over every input row seen."""
        self.rows = 0
        """N, input rows seen."""
        self.abs_sum = torch.zeros(cols, dtype=torch.float64)
        """Σ |x| per input channel (AWQ's activation statistic, gathered in the same pass)."""

    def add(self, x) -> None:
        """Add inputs x (..., cols) float."""
        x = x.detach().reshape(-1, x.shape[-1]).float()  # (N, cols)
        if x.shape[1] != self.cols:
            raise ValueError(f"inputs have {x.shape[1]} channels, the Hessian {self.cols}")
        self.sum += (x.T @ x).double()  # float32 products, float64 running sum
        self.abs_sum += x.abs().sum(0).double()
        self.rows += x.shape[0]

    def matrix(self):
        """H = 2XᵀX / N, float32 (cols, cols)."""
        if not self.rows:
            raise ValueError("no calibration inputs were seen: add(x) first")
        return (2 * self.sum / self.rows).float()

    def mean_abs(self):
        """mean |x| per input channel, float32 (cols,)."""
        if not self.rows:
            raise ValueError("no calibration inputs were seen: add(x) first")
        return (self.abs_sum / self.rows).float()


def output_error(w, w_hat, h) -> float:
    """Relative output error ‖X(W − Ŵ)ᵀ‖ / ‖XWᵀ‖ on the inputs whose Hessian is h (undamped).

    ‖XΔᵀ‖²_F = tr(Δ XᵀX Δᵀ), so the Hessian alone gives the error on every
    calibration input without keeping the inputs.
    """
    import torch

    h, w = h.float(), w.float()
    delta = w - w_hat.float()
    den = float(((w @ h) * w).sum(dtype=torch.float64))
    return (float(((delta @ h) * delta).sum(dtype=torch.float64)) / den) ** 0.5 if den > 0 else 0.0


@dataclass(frozen=True)
class GPTQResult:
    """One layer quantised by GPTQ."""

    weight: Any
    """Ŵ (rows, cols) float32: the dequantised weights the layer runs with."""
    quantized: rtn.QuantizedWeight
    """The same weights as integer codes and per-group grids (``quantized.dequantize()`` is ``weight``)."""
    loss: float
    """Σ (w − q)² / [H⁻¹]_jj / 2 over all weights: the paper's estimate of the output error it left."""


def inverse_hessian_factor(h, damp: float = DAMP):
    """The upper Cholesky factor U of (H + λI)⁻¹ (UᵀU = (H + λI)⁻¹), λ = damp · mean diag(H).

    Raises:
        ValueError: H + λI is not positive definite (inputs with inf or nan, or a negative damp).
    """
    import torch

    h = h.clone()
    h += damp * torch.mean(torch.diag(h)) * torch.eye(h.shape[0], dtype=h.dtype)
    lower, info = torch.linalg.cholesky_ex(h)
    if info:
        raise ValueError("the damped Hessian is not positive definite; raise damp or check the calibration inputs")
    return torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True)


def gptq_quantize(w: Any, h: Any, bits: int = 4, *, group: str | int = "channel", symmetric: bool = False,
         block: int = BLOCK, damp: float = DAMP) -> GPTQResult:
    """Quantise w (rows, cols) to ``bits`` bits with GPTQ, given the Hessian h (cols, cols) of its inputs.

    Args:
        w: (rows, cols) float weights, finite.
        h: (cols, cols) float, 2XᵀX over calibration inputs (``Hessian.matrix()``).
        bits: One of rtn.BITS.
        group: "channel" (one grid per row, set before the first column) or g dividing cols.
        symmetric: absmax grids (rtn's ±(2^(b−1) − 1) levels) instead of zero-point grids; the reference
            code's symmetric grid differs (2^b levels about a fixed mid-point zero), its zero-point grid is this one.
        block: B, columns per lazy batch.
        damp: λ as a share of mean diag(H).

    Raises:
        TypeError, ValueError: as rtn.quantize for w, bits and group; h of the wrong shape or not finite;
            "tensor" granularity (a GPTQ grid is per row); a Hessian that cannot be factored.
    """
    import torch

    w = rtn.check_weight(w).clone()
    h = rtn.check_weight(h, "h")
    bits = rtn.check_bits(bits)
    cols = w.shape[1]
    group = rtn.check_group(group, cols)
    if group == "tensor":
        raise ValueError("GPTQ sets a grid per output row ('channel') or per group of g weights, not per tensor")
    block = require_int(block, "block", low=1)
    if h.shape != (cols, cols):
        raise ValueError(f"h must be ({cols}, {cols}) for weights of {cols} columns, got {tuple(h.shape)}")
    if not damp >= 0:
        raise ValueError(f"damp must be >= 0, got {damp}")
    symmetric = bool(symmetric)
    h = h.clone()
    # A per-row grid is set before the dead columns are zeroed, group grids after: the reference's order.
    row_grid = rtn.grid(w, bits, symmetric) if group == "channel" else None
    dead = torch.diag(h) == 0  # an input that was always 0: its weights cannot matter, set them to 0
    h[dead, dead] = 1
    w[:, dead] = 0
    hinv = inverse_hessian_factor(h, damp)  # U, (cols, cols) upper triangular
    size = cols if group == "channel" else group
    q = torch.zeros_like(w)
    codes = torch.zeros_like(w)
    scales, zeros = [], []
    losses = torch.zeros_like(w)
    scale = zero = None
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1 = w[:, i1:i2].clone()  # (rows, B): this block's columns, updated as the block proceeds
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            j = i1 + i
            if j % size == 0:  # a group starts: its grid from the weights as the earlier blocks left them
                scale, zero = row_grid or rtn.grid(w[:, j : j + size], bits, symmetric)  # (rows, 1) each
                scales.append(scale)
                zeros.append(zero)
            col = w1[:, i : i + 1]  # (rows, 1)
            code = rtn.round_to_grid(col, scale, zero, bits)
            quant = rtn.from_grid(code, scale, zero)
            codes[:, j : j + 1], q[:, j : j + 1] = code, quant
            d = hinv1[i, i]
            losses[:, j] = ((col - quant)[:, 0] / d) ** 2 / 2
            err = (col - quant) / d  # (rows, 1): δ of Algorithm 1
            w1[:, i:] -= err @ hinv1[i : i + 1, i:]  # OBS update of this block's later columns
            err1[:, i : i + 1] = err
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]  # the lazy batch update of every column after the block
    scale = torch.cat(scales, dim=1)  # (rows, G)
    zero = None if symmetric else torch.cat(zeros, dim=1)
    dtype = torch.int8 if symmetric else torch.uint8
    quantized = rtn.QuantizedWeight(codes.to(dtype), scale, zero, bits, group)
    return GPTQResult(q, quantized, float(losses.sum()))
