"""The transformer block's parts taken apart for the lessons: norms, activations, the residual stream, routing.

Each function returns the numbers a lab shows, computed with the model code
the rest of the workbench trains (``layers``, ``miniformer``, ``moe``).
torch is imported inside each function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NormOutputs:
    """One vector through LayerNorm (Ba et al., 2016) and RMSNorm (Zhang & Sennrich, 2019), unit gain."""

    layer: np.ndarray
    """(C,) (x − mean) / std."""
    rms: np.ndarray
    """(C,) x / RMS(x)."""


def norm_outputs(x: np.ndarray) -> NormOutputs:
    """LayerNorm and RMSNorm of a (C,) vector in float64 (eps 1e-5), from workbench_engines.models.layers."""
    import torch

    from workbench_engines.models.layers import LayerNorm, RMSNorm

    t = torch.tensor(np.asarray(x, dtype=np.float64))[None]  # (1, C)
    with torch.no_grad():
        return NormOutputs(LayerNorm(t.shape[-1]).double()(t)[0].numpy(),
                           RMSNorm(t.shape[-1], eps=1e-5).double()(t)[0].numpy())


@dataclass(frozen=True)
class ActivationCurves:
    x: np.ndarray
    curves: dict[str, np.ndarray]
    """name -> activation(x): GELU, ReLU, SiLU."""
    gelu_tanh_gap: float
    """The largest |GELU − tanh-approximated GELU| on [−8, 8]."""


def activation_curves(span: float, points: int = 161) -> ActivationCurves:
    """GELU (Hendrycks & Gimpel, 2016), ReLU and SiLU on [−span, span], and how far the tanh GELU strays."""
    import torch

    from workbench_engines.models.layers import gelu, silu

    x = torch.linspace(-span, span, points, dtype=torch.float64)
    wide = torch.linspace(-8, 8, 20001, dtype=torch.float64)
    gap = float((gelu(wide) - gelu(wide, "tanh")).abs().max())
    curves = {"GELU": gelu(x).numpy(), "ReLU": torch.relu(x).numpy(), "SiLU": silu(x).numpy()}
    return ActivationCurves(x.numpy(), curves, gap)


@dataclass(frozen=True)
class FeedForwardSizes:
    """Weights of a GELU MLP and of a SwiGLU MLP (Shazeer, 2020) at one model width."""

    gelu_hidden: int
    gelu_weights: int
    swiglu_hidden: int
    """8/3 · d rounded up to a multiple of 32, as Llama sizes it."""
    swiglu_weights: int


def feed_forward_sizes(d_model: int, hidden: int) -> FeedForwardSizes:
    swiglu_hidden = 32 * int(np.ceil(8 * d_model / 3 / 32))
    return FeedForwardSizes(hidden, 2 * d_model * hidden, swiglu_hidden, 3 * d_model * swiglu_hidden)


@dataclass(frozen=True)
class ResidualStream:
    """The residual stream of several models on one text, after the embedding and after each block."""

    hidden: dict[str, list[np.ndarray]]
    """model name -> one (T, C) array per point in the stack."""

    @property
    def rms(self) -> dict[str, list[float]]:
        """model name -> the root mean square of the stream at each point: how big it has grown."""
        return {name: [float(np.sqrt((h ** 2).mean())) for h in states] for name, states in self.hidden.items()}


def residual_stream(models: dict, ids: list[int]) -> ResidualStream:
    """Run each model on ids and keep its residual stream at every point of the stack."""
    import torch

    hidden = {}
    with torch.no_grad():
        for name, model in models.items():
            model.eval()
            hidden[name] = [h[0].numpy() for h in model(torch.tensor([ids]), keep_hidden=True).hidden]
    return ResidualStream(hidden)


def objective_samples(curves, tokenizer, prompt: str = "**HAMLET**  \nTo be, or not to be, that is the",
                      tokens: int = 12) -> list[tuple[str, str]]:
    """(variant, what it wrote): a greedy continuation from the causal and prefix models, a fill-in from the masked one."""
    import torch

    ids = tokenizer.encode_ordinary(prompt)
    out = []
    for curve in curves:
        model = curve.model.eval()
        with torch.no_grad():
            if curve.name.startswith("masked"):
                masked = ids[:-1] + [model.config.mask_token]
                logits = model(torch.tensor([masked]), attention="bidirectional").logits[0, -1]
                out.append((curve.name, f"fills '… that is [MASK]' with {tokenizer.decode([int(logits.argmax())])!r}"))
                continue
            written = list(ids)
            for _ in range(tokens):
                kwargs = {"attention": "prefix", "prefix": torch.tensor([len(ids)])} if curve.name.startswith("prefix") else {}
                logits = model(torch.tensor([written[-model.config.context:]]), **kwargs).logits[0, -1]
                written.append(int(logits.argmax()))
        out.append((curve.name, repr(tokenizer.decode(written[len(ids):]))))
    return out


@dataclass(frozen=True)
class Routing:
    """Where a mixture-of-experts layer sent each token of one text."""

    experts: list[int]
    """The first-choice expert of each token."""
    dropped: int
    """Assignments over capacity, dropped."""
    assignments: int


def route(model, ids: list[int], capacity_factor: float) -> Routing:
    """Run a MoE mini-former on ids and read its first MoE layer's routing at capacity_factor."""
    import torch

    layer = model.blocks[0].ffn
    layer.capacity_factor = capacity_factor
    model.eval()
    with torch.no_grad():
        model(torch.tensor([ids]))  # the MoE layer records where each token went
    stats = layer.stats
    return Routing(stats.experts[:, 0].tolist(), stats.dropped, stats.assignments)
