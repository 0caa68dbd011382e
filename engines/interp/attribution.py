"""Which input tokens moved the answer: gradient × input and integrated gradients on the token embeddings.

F is the logit (or log-probability) a GPT-shaped model gives one chosen next
token at the prompt's last position, seen as a function of the embeddings x
(T, C) that enter block 0 (site resid_pre.0). A token's attribution sums its
C embedding coordinates' attributions.

- Gradient × input: x · ∂F/∂x at x. Exact for a linear F, a first-order
  guess otherwise.
- Integrated gradients (Sundararajan, Taly & Yan, 2017, "Axiomatic
  Attribution for Deep Networks"): (x − x') · ∫₀¹ ∂F(x' + α(x − x'))/∂x dα,
  with a baseline x'. The integral is approximated by a quadrature of m
  points: the trapezoid rule (the default; the paper's §5 uses a Riemann sum)
  or Gauss–Legendre (captum's default).

The baseline is the average token embedding at every position by default,
not the zero embedding the paper suggests for text models (§6). These models normalise
each position (RMSNorm) before every block: near zero the norm leaves its
scale-invariant regime, the gradient grows as 1/‖x‖ and the integrand spikes
in a sliver of the path by α = 0 that no affordable quadrature samples. On
the small GPT's default prompt, 32 trapezoid points miss completeness by
0.05% from the average token and by far more from zero (``baseline="zero"``
shows it).

Completeness (the paper's Proposition 1): the attributions sum to
F(x) − F(x'). The quadrature only approximates the integral, so the sum
misses by a gap that shrinks as m grows; :attr:`Attribution.gap` reports it.

A model that makes its first position an attention sink (SmolLM2 does:
the first token's residual stream grows activations far larger than the
rest, and every later token parks attention there) breaks the path: moving
the first embedding switches the sink on and off, and on the Eiffel prompt
the output jumps by up to 21 logits between path points 0.005 apart, so no
quadrature converges. ``keep_first=True`` leaves position 0 at its input
along the whole path (its attribution is then 0 by construction, and the
others share out F(x) − F(x') with the sink in place); with it, the same
path moves by at most 0.7 logits per 0.005.

The m interpolated inputs run as one batch (in chunks), replacing resid_pre.0
through ``hooks.patched``. Gradients must flow through the model: SmolLM2's
quantised linears run a C kernel for a few rows, which autograd cannot see,
so attribution on SmolLM2 loads its fp32 weights
(``models.llama.bundled("fp32")``); a model that cuts the graph gets an EngineError.

Example::

    >>> pretrained = small_gpt.load("target")
    >>> a = integrated_gradients(pretrained.model, pretrained.prompt_ids("ROMEO:\\nO"), steps=32)
    >>> a.scores, a.total, a.delta, a.gap
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from workbench_engines.errors import EngineError

METHODS = ("gausslegendre", "trapezoid")
BASELINES = ("zero", "mean")
OUTPUTS = ("logit", "log_prob")
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Attribution:
    """Per-token attributions of one next-token output, with the completeness check."""

    ids: list[int]
    """The prompt's tokens."""
    target: int
    """The next token whose output F is attributed."""
    output: str
    """"logit" or "log_prob"."""
    steps: int
    method: str
    scores: np.ndarray
    """(T,) integrated gradients per token."""
    grad_x_input: np.ndarray
    """(T,) gradient × input per token."""
    f_input: float
    """F(x), the output on the real prompt."""
    f_baseline: float
    """F(x'), the output with every embedding at the baseline."""
    baseline: str = "mean"
    """"mean" (the average token embedding) or "zero"."""
    keep_first: bool = False
    """Whether position 0 stayed at its input along the path (its score is then 0)."""

    @property
    def total(self) -> float:
        """Σ of the integrated-gradients scores."""
        return float(self.scores.sum())

    @property
    def delta(self) -> float:
        """F(x) − F(x'): what completeness says the scores must add up to."""
        return self.f_input - self.f_baseline

    @property
    def gap(self) -> float:
        """|Σ scores − (F(x) − F(x'))| / |F(x) − F(x')|: the quadrature's miss, relative to what it splits."""
        return abs(self.total - self.delta) / max(abs(self.delta), 1e-12)


def quadrature(steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """(α points in [0, 1], weights summing to 1) approximating ∫₀¹ g(α) dα by Σ wᵢ g(αᵢ).

    gausslegendre: the m Legendre nodes mapped from [−1, 1] to [0, 1], exact for polynomials of degree
    2m − 1 (captum's default, the same nodes and weights). trapezoid: m evenly spaced points from 0 to 1,
    spacing h = 1/(m − 1), the end points at half weight, error O(h²). (captum's riemann_trapezoid uses
    the same points with weights 1/m, which sum to (m − 1)/m: its sums run short by that factor.)

    Raises:
        EngineError: steps below 2 or an unknown method.
    """
    if int(steps) != steps or steps < 2:
        raise EngineError(f"steps must be an integer of at least 2, got {steps!r}")
    steps = int(steps)
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1) / 2, weights / 2
    if method == "trapezoid":
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    raise EngineError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def _output(logits, target: int, output: str):
    """(B,) F of each row: the last position's logit or log-probability of target."""
    import torch

    last = logits[:, -1].float()  # (B, V)
    if output == "log_prob":
        last = torch.log_softmax(last, dim=-1)
    return last[:, target]


def _outputs_and_grads(module, ids, inputs, target: int, output: str):
    """F of each row of inputs (B, T, C) put in place of resid_pre.0, and ∂F/∂inputs (B, T, C)."""
    import torch
    from workbench_engines.interp.hooks import patched

    inputs = inputs.detach().requires_grad_(True)
    with torch.enable_grad(), patched(module, {"resid_pre.0": lambda act: inputs}):
        try:
            f = _output(module(ids.expand(len(inputs), -1)), target, output)  # (B,)
        except RuntimeError as exc:  # a layer that hands a tensor needing grad to NumPy
            if "requires grad" not in str(exc):
                raise
            f = torch.zeros(())
        if f.grad_fn is None:
            raise EngineError("no gradient reaches the output: this model's layers cut the autograd graph "
                              "(SmolLM2's quantised linears do); load its fp32 weights for attribution")
        (grads,) = torch.autograd.grad(f.sum(), inputs)
    return f.detach(), grads  # (B,), (B, T, C)


def integrated_gradients(model, ids, target: int | None = None, *, steps: int = 32,
                         method: str = "trapezoid", output: str = "logit", baseline: str = "mean",
                         keep_first: bool = False, batch: int = 16,
                         progress: Progress | None = None) -> Attribution:
    """Integrated gradients and gradient × input of each prompt token for one next-token output.

    Args:
        model: A GPT-shaped model (small GPT, SmolLM2 with fp32 weights).
        ids: The prompt, (T,) or (1, T) token ids.
        target: The next token whose output is explained; None for the model's top next token.
        steps: Quadrature points m (see :func:`quadrature`).
        method: "trapezoid" or "gausslegendre".
        output: "logit" or "log_prob" of the target.
        baseline: "mean" (the average token embedding at every position) or "zero".
        keep_first: Leave position 0 at its input along the path (an attention sink's position; see above).
        batch: Interpolated inputs per forward and backward pass.
        progress: progress(fraction, what) after each batch (it may raise to cancel).

    Raises:
        EngineError: bad ids (empty, out of range, a batch of prompts), a target outside the vocabulary,
            a bad steps, method or output, or a model that cuts the gradient.
    """
    import torch
    from workbench_engines.interp.hooks import check_ids, gpt_module, run_with_cache

    module = gpt_module(model)
    c = module.config
    ids = check_ids(ids, c.vocab_size, c.context)  # (1, T)
    if ids.shape[0] != 1:
        raise EngineError(f"attribution explains one prompt at a time, got a batch of {ids.shape[0]}")
    if output not in OUTPUTS:
        raise EngineError(f"unknown output {output!r}; choose one of {', '.join(OUTPUTS)}")
    alphas, weights = quadrature(steps, method)
    logits, cache = run_with_cache(module, ids, ["resid_pre.0"])
    x = cache["resid_pre.0"][0].float()  # (T, C)
    if target is None:
        target = int(logits[0, -1].argmax())
    if not 0 <= int(target) < c.vocab_size:
        raise EngineError(f"target {target} is outside the vocabulary of {c.vocab_size}")
    target = int(target)
    if baseline not in BASELINES:
        raise EngineError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
    if baseline == "zero":
        base = torch.zeros_like(x)  # (T, C): the zero embedding
    elif not hasattr(module.embed, "weight"):
        raise EngineError("the average-token baseline needs the embedding table as a tensor; this model keeps it "
                          "quantised: load its fp32 weights for attribution")
    else:
        base = module.embed.weight.detach().float().mean(dim=0).expand_as(x)  # (T, C): the average token at every position
    if keep_first:
        base = base.clone()
        base[0] = x[0]
    ends, end_grads = _outputs_and_grads(module, ids, torch.stack([base, x]), target, output)
    total_grad = torch.zeros_like(x, dtype=torch.float64)  # Σ wᵢ ∂F/∂x at x' + αᵢ(x − x')
    for start in range(0, len(alphas), batch):
        a = torch.from_numpy(alphas[start:start + batch]).float()[:, None, None]  # (b, 1, 1)
        w = torch.from_numpy(weights[start:start + batch])[:, None, None]  # (b, 1, 1) float64
        _, grads = _outputs_and_grads(module, ids, base + a * (x - base), target, output)
        total_grad += (w * grads.double()).sum(dim=0)
        if progress is not None:
            progress(min(start + batch, len(alphas)) / len(alphas), f"integrating over {len(alphas)} points")
    diff = (x - base).double()
    scores = (diff * total_grad).sum(dim=-1).numpy()  # (T,)
    gxi = (x.double() * end_grads[1].double()).sum(dim=-1).numpy()  # (T,)
    return Attribution(ids[0].tolist(), target, output, int(steps), method, scores, gxi, float(ends[1]),
                       float(ends[0]), baseline, bool(keep_first))
