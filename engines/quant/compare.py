"""What each block format costs a real matrix: bits per weight, bytes, and the error in the weights and in W x.

The lesson's table: the same matrix quantised to every format, so the price
in storage and the price in accuracy sit side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench_engines.quant import reference


@dataclass(frozen=True)
class FormatCost:
    """One format on one matrix."""

    format: str
    bits_per_weight: float
    nbytes: int
    weight_error: float
    """‖W − Ŵ‖ / ‖W‖ over the whole matrix (Frobenius norms)."""
    output_error: float
    """‖(W − Ŵ) x‖ / ‖W x‖ for a standard-normal x."""


def format_costs(w: np.ndarray, formats: tuple[str, ...], rng: np.random.Generator) -> list[FormatCost]:
    """Quantise w (rows, cols) to each format and measure what was lost; formats whose block does not divide
    cols are left out (Q6_K needs cols a multiple of 256)."""
    from workbench_engines import quant

    w = np.ascontiguousarray(w, dtype=np.float32)
    x = rng.standard_normal(w.shape[1]).astype(np.float32)  # (cols,)
    exact = w.astype(np.float64) @ x
    costs = []
    for fmt in formats:
        if w.shape[1] % reference.block_size(fmt):
            continue
        tensor = quant.quantize(w, fmt)
        back = quant.dequantize(tensor).astype(np.float64)
        costs.append(FormatCost(fmt, reference.bits_per_weight(fmt), tensor.nbytes,
                                float(np.linalg.norm(back - w) / np.linalg.norm(w)),
                                float(np.linalg.norm(back @ x - exact) / np.linalg.norm(exact))))
    return costs
