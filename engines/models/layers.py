"""The layers of a transformer block written out from their formulas, in torch.

Each is the readable version of a layer torch also ships (``nn.LayerNorm``,
``nn.RMSNorm``, ``F.gelu``); the tests check forward values and gradients
against those. Autograd differentiates these as written.

Shapes use the project's letters: B batch, T time, C channels (``dim`` here),
HS head size; ``...`` is any leading axes and ``hidden`` the feed-forward
width. Every layer keeps its input's dtype (float32 unless autocast says
otherwise).

Example::

    >>> x = torch.randn(2, 5, 64)                  # (B, T, C)
    >>> SwiGLU(64, 172)(RMSNorm(64)(x)).shape      # norm, then feed-forward
    torch.Size([2, 5, 64])
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LayerNorm(nn.Module):
    """y = (x − mean) / sqrt(var + eps) · γ + β over the last axis (Ba et al., 2016).

    Every token's features are rescaled to zero mean and unit variance, so
    the next layer sees inputs of a steady size however deep the stack.

    Args:
        dim: C, the width normalised over; γ (ones) and β (zeros) are (C,).
        eps: Added to the variance so a constant row does not divide by zero.
        bias: Whether to learn β; without it the layer only rescales.
    """

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each row of x.

        Args:
            x: (..., C) float tensor.

        Returns:
            (..., C), x's dtype.
        """
        mean = x.mean(-1, keepdim=True)  # (..., 1)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased variance, as torch uses
        y = (x - mean) * torch.rsqrt(var + self.eps) * self.weight  # (..., C)
        return y + self.bias if self.bias is not None else y


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + eps) · γ: LayerNorm without centring or bias (Zhang & Sennrich, 2019).

    Dropping the mean costs nothing in quality in practice and saves a
    reduction; Llama-style blocks use it.

    Args:
        dim: C, the width normalised over; γ (ones) is (C,).
        eps: Added to the mean square so a zero row does not divide by zero.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale each row of x to unit root-mean-square, then by γ.

        Args:
            x: (..., C) float tensor.

        Returns:
            (..., C), x's dtype.
        """
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """GELU(x) = x·Φ(x) (Hendrycks & Gimpel, 2016); "tanh" is GPT-2's approximation of Φ.

    Args:
        x: Any float tensor.
        approximate: "none" for the exact erf form, "tanh" for the approximation.

    Returns:
        A tensor shaped and typed like x.

    Raises:
        ValueError: approximate is neither "none" nor "tanh".
    """
    if approximate == "tanh":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    if approximate != "none":
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU(x) = x·σ(x) (Elfwing et al., 2018; "swish" in Ramachandran et al., 2017), the gate of SwiGLU.

    Args:
        x: Any float tensor.

    Returns:
        A tensor shaped and typed like x.
    """
    return x * torch.sigmoid(x)


class SwiGLU(nn.Module):
    """FFN(x) = W_down (SiLU(W_gate x) ⊙ W_up x) (Shazeer, 2020), the feed-forward of Llama-style blocks.

    A gated linear unit: one projection decides, element by element, how much
    of the other passes. Three matrices instead of two, so Llama shrinks
    ``hidden`` to about 8/3·C to keep the parameter count of a 4·C MLP.

    Args:
        dim: C, the model width in and out.
        hidden: The width of the gate and up projections.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the feed-forward to every token independently.

        Args:
            x: (..., C) float tensor.

        Returns:
            (..., C), x's dtype.
        """
        return self.down(silu(self.gate(x)) * self.up(x))  # (..., hidden) inside, (..., C) out


class GELUMLP(nn.Module):
    """FFN(x) = W_2 GELU(W_1 x + b_1) + b_2, the feed-forward of GPT-2 and BERT.

    Vaswani et al. (2017, eq. 2)'s position-wise feed-forward with GELU in
    place of ReLU.

    Args:
        dim: C, the model width in and out.
        hidden: The inner width (4·C in GPT-2 and BERT).
        approximate: Passed to ``gelu``; "tanh" as GPT-2 ships.
    """

    def __init__(self, dim: int, hidden: int, approximate: str = "tanh") -> None:
        super().__init__()
        self.fc = nn.Linear(dim, hidden)
        self.proj = nn.Linear(hidden, dim)
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the feed-forward to every token independently.

        Args:
            x: (..., C) float tensor.

        Returns:
            (..., C), x's dtype.
        """
        return self.proj(gelu(self.fc(x), self.approximate))  # (..., hidden) inside, (..., C) out


def rope_tables(dim: int, context: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position·θ_i, θ_i = base^(−2i/dim) (Su et al., 2021), each (context, HS/2).

    Computed once per model in float64 (positions times small angles lose
    digits in float32) and stored as float32.

    Args:
        dim: HS, the head size the rotation acts on (even).
        context: The number of positions to tabulate.
        base: RoPE's base; larger bases turn the slow dimensions more slowly.

    Returns:
        (cos, sin), each (context, HS/2) float32.
    """
    theta = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (HS/2,)
    angle = torch.arange(context, dtype=torch.float64)[:, None] * theta  # (context, HS/2)
    return angle.cos().float(), angle.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., T, HS) in the rotate-half layout, as workbench_engines.positional.rope does.

    Dimension i is paired with i + HS/2 and the pair is turned by the angle of
    its position, so a query·key dot product depends only on their distance.

    Args:
        x: (..., T, HS) queries or keys, e.g. (B, NH, T, HS).
        cos: (T, HS/2), the rows of ``rope_tables`` for x's positions.
        sin: (T, HS/2), likewise.

    Returns:
        (..., T, HS), x's dtype.
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # (..., T, HS/2) each
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
