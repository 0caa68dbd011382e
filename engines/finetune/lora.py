"""LoRA from scratch: a frozen linear layer plus a trainable low-rank update, and the tools to wrap a model with it.

Low-Rank Adaptation (Hu et al., 2021) freezes a pretrained weight W (out, in)
and learns its change as a product of two thin matrices, ΔW = (α/r)·B·A with
A (r, in) and B (out, r), r ≪ min(in, out) (eq. 3):

    h = W x + (α/r) · B A x

A starts Gaussian and B at zero, so ΔW = 0 and the adapted model starts out
exactly the pretrained one (section 4.1). Dividing by r keeps the update's
scale steady when r changes, so α need not be retuned per rank. After
training, ΔW folds into W (``merge``): the deployed layer is a plain matmul
again, with no extra latency, and ``unmerge`` takes it back out to swap
adapters.

What the saving is: a full fine-tune trains in·out numbers per matrix and
AdamW keeps two fp32 moments for each; LoRA trains r·(in + out).

Example::

    >>> model = GPT(GPTConfig(vocab_size=256, d_model=64, n_heads=4))
    >>> apply_lora(model, ("attn.q", "attn.kv"), r=4, alpha=8.0, seed=0)
    ['blocks.0.attn.q', 'blocks.0.attn.kv', ...]
    >>> trainable_parameters(model)     # 4 layers · (4·(64+64) + 4·(64+128))
    5120
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from workbench_engines.errors import EngineError

DEFAULT_TARGETS = ("attn.q", "attn.kv")
"""The small GPT's query projection and its fused key/value projection. Hu et al. (2021, section 7.1) adapt
W_q and W_v; this GPT computes K and V with one matrix (``Attention.kv``), so adapting it adapts W_k as well."""

def check_lora_shape(base: nn.Module, r: int, alpha: float, dropout: float, name: str = "the layer") -> None:
    """Refuse a LoRA setting that cannot work, before anything is changed.

    Args:
        base: The layer to adapt.
        r: The rank of B·A.
        alpha: The numerator of the scaling α/r.
        dropout: The probability of zeroing an input component on the LoRA path.
        name: What to call the layer in messages.

    Raises:
        EngineError: base is not nn.Linear; r < 1; r > min(in, out); alpha <= 0; dropout outside [0, 1).
    """
    if not isinstance(base, nn.Linear):
        raise EngineError(f"{name} is {type(base).__name__}, not nn.Linear: LoRA here wraps linear layers only")
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise EngineError(f"LoRA rank r must be a positive integer, got {r!r}")
    out_features, in_features = base.weight.shape
    if r > min(in_features, out_features):
        raise EngineError(
            f"LoRA rank {r} is larger than {name} allows ({out_features}×{in_features}): the product B·A of "
            f"({out_features}×r)·(r×{in_features}) cannot have rank above min(in, out) = "
            f"{min(in_features, out_features)}"
        )
    if not math.isfinite(alpha) or alpha <= 0:
        raise EngineError(f"LoRA alpha must be a positive number, got {alpha!r}")
    if not 0.0 <= dropout < 1.0:
        raise EngineError(f"LoRA dropout must lie in [0, 1), got {dropout!r}")


class LoRALinear(nn.Module):
    """y = W x + b + (α/r) · B A dropout(x), W and b frozen, A and B trained (Hu et al., 2021, eq. 3).

    A (r, in) starts N(0, 1/in), so each component of A x has the variance of
    one of x's (Kaiming's fan-in scaling, He et al., 2015, with gain 1); B (out,
    r) starts at zero, so at initialisation the layer computes exactly what
    ``base`` does. Dropout, when set, applies to the input of the LoRA path
    only, as in the paper's released code.

    Args:
        base: The pretrained layer; its weight and bias are frozen in place.
        r: The rank of the update, 1 <= r <= min(in, out).
        alpha: The scaling's numerator: the update is multiplied by α/r.
        dropout: Probability of zeroing an input component on the LoRA path, in [0, 1).
        generator: Draws A; None uses torch's global generator.

    Raises:
        EngineError: see ``check_lora_shape``.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0,
                 generator: torch.Generator | None = None) -> None:
        check_lora_shape(base, r, alpha, dropout)
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        out_features, in_features = base.weight.shape
        self.r = r
        self.alpha = float(alpha)
        self.scaling = self.alpha / r
        """α/r, the factor on B·A."""
        factory = {"dtype": base.weight.dtype, "device": base.weight.device}
        a = torch.randn(r, in_features, generator=generator, dtype=torch.float64) / math.sqrt(in_features)
        self.lora_A = nn.Parameter(a.to(**factory))
        """A (r, in): projects the input down to r numbers."""
        self.lora_B = nn.Parameter(torch.zeros(out_features, r, **factory))
        """B (out, r): projects them back up; zero at the start, so ΔW = 0."""
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        """Whether ΔW is folded into base.weight (then forward is base's alone)."""

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, scaling={self.scaling:g}, merged={self.merged}"

    def delta_weight(self) -> torch.Tensor:
        """ΔW = (α/r) · B A, (out, in), detached: what merging adds to W."""
        with torch.no_grad():
            return (self.lora_B @ self.lora_A) * self.scaling  # (out, r) @ (r, in) -> (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The base layer plus the low-rank path; merged, the base layer alone (it already holds ΔW).

        Args:
            x: (..., in) float, base.weight's dtype.

        Returns:
            (..., out), x's dtype.
        """
        y = self.base(x)
        if self.merged:
            return y
        # (..., in) -> A -> (..., r) -> B -> (..., out): r·(in + out) multiply-adds per token, not in·out.
        return y + F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B) * self.scaling

    def merge(self) -> None:
        """Fold ΔW into W: W ← W + (α/r)·B A. The forward pass then costs what the base layer's does.

        Raises:
            EngineError: already merged (merging twice would add ΔW twice).
        """
        if self.merged:
            raise EngineError("this LoRA layer is already merged; unmerge it first")
        with torch.no_grad():
            self.base.weight += self.delta_weight()
        self.merged = True

    def unmerge(self) -> None:
        """Take ΔW back out of W: W ← W − (α/r)·B A, restoring the pretrained weight (to rounding).

        Raises:
            EngineError: not merged.
        """
        if not self.merged:
            raise EngineError("this LoRA layer is not merged")
        with torch.no_grad():
            self.base.weight -= self.delta_weight()
        self.merged = False


def _matches(name: str, target: str) -> bool:
    """Whether a module's qualified name ends with target at a dot boundary ("blocks.0.attn.q" ends with "attn.q")."""
    return name == target or name.endswith("." + target)


def _module_families(model: nn.Module) -> list[str]:
    """The model's nn.Linear names with layer indices replaced by *, once each: what a target can match."""
    seen: dict[str, None] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            seen[re.sub(r"\.\d+\.", ".*.", "." + name + ".")[1:-1]] = None
    return list(seen)


def apply_lora(model: nn.Module, targets: Sequence[str], r: int, alpha: float, dropout: float = 0.0,
               seed: int | None = None) -> list[str]:
    """Wrap every nn.Linear whose name ends with one of targets in a LoRALinear, and freeze everything else.

    Afterwards only LoRA matrices have requires_grad: an optimizer built from
    ``[p for p in model.parameters() if p.requires_grad]`` trains the adapters
    alone. Adapters an earlier call added stay trainable, so two calls on
    different targets train both sets. Every setting is checked against every matched layer
    before the model is touched, so a bad rank leaves it as it was.

    Args:
        model: Any torch module (e.g. ``models.gpt.GPT``; see DEFAULT_TARGETS).
        targets: Name suffixes such as ("attn.q", "attn.kv"), matched at a dot boundary.
        r: The rank of each update.
        alpha: The scaling's numerator (α/r multiplies B·A).
        dropout: Dropout on the LoRA path's input.
        seed: Seeds the draws of every A, in the order of ``model.named_modules()``; None uses torch's global RNG.

    Returns:
        The qualified names of the wrapped layers, in module order.

    Raises:
        EngineError: targets is empty; no nn.Linear matched (the message lists those that exist); a matched module
            is not nn.Linear or is already wrapped; or r, alpha, dropout is invalid for a matched layer.
    """
    if isinstance(targets, str) or not targets:
        raise EngineError(f"targets must be a non-empty sequence of module-name suffixes, got {targets!r}")
    matched: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if not any(_matches(name, t) for t in targets):
            continue
        if isinstance(module, LoRALinear):
            raise EngineError(f"{name} already has a LoRA adapter")
        matched.append((name, module))
    if not matched:
        raise EngineError(
            f"no module matches {', '.join(targets)}; the linear layers are: {', '.join(_module_families(model))}"
        )
    for name, module in matched:
        check_lora_shape(module, r, alpha, dropout, name)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    adapters = {id(p) for layer in lora_layers(model).values() for p in (layer.lora_A, layer.lora_B)}
    for p in model.parameters():
        if id(p) not in adapters:
            p.requires_grad_(False)
    for name, module in matched:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(module, r, alpha, dropout, generator))
    return [name for name, _ in matched]


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """Every LoRALinear in the model by qualified name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> int:
    """Merge every LoRA layer's ΔW into its base weight; returns how many were merged.

    Raises:
        EngineError: the model has no LoRA layer, or one is already merged.
    """
    layers = _require_layers(model)
    for layer in layers:
        layer.merge()
    return len(layers)


def unmerge_lora(model: nn.Module) -> int:
    """Take every LoRA layer's ΔW back out of its base weight; returns how many were unmerged.

    Raises:
        EngineError: the model has no LoRA layer, or one is not merged.
    """
    layers = _require_layers(model)
    for layer in layers:
        layer.unmerge()
    return len(layers)


def _require_layers(model: nn.Module) -> list[LoRALinear]:
    """The model's LoRA layers in module order, refusing a model with none (merging nothing is a mistake).

    Raises:
        EngineError: the model has no LoRA layer.
    """
    layers = list(lora_layers(model).values())
    if not layers:
        raise EngineError("the model has no LoRA layers (apply_lora first)")
    return layers


def trainable_parameters(model: nn.Module) -> int:
    """Parameters with requires_grad, each shared tensor counted once: what the optimizer updates."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

