"""Stretching RoPE past the context a model was trained on, and measuring where each method holds.

RoPE turns the pair (i, i + HS/2) of a query or key by position · θ_i, with
θ_i = base^(−2i/HS) (Su et al., 2021). A model trained on windows of L tokens
has seen angles up to L · θ_i: the slow pairs (small θ_i) never completed a
turn, so positions past L give them angles it never saw. Three ways to use a
context s times longer without training again change θ_i:

- **Position interpolation** (Chen et al., 2023, "Extending Context Window of
  Large Language Models via Positional Interpolation"): θ_i / s for every
  pair, so position s·L looks like position L. The fast pairs, which had
  turned many times, are squeezed too: neighbouring tokens become hard to tell
  apart. The paper fine-tunes briefly afterwards; without it the small GPT
  reads even its trained positions far worse (transformers'
  ``rope_type="linear"``).
- **NTK-aware scaling** (bloc97, 2023; written down in Peng et al., 2023,
  §3.1): a larger base, b' = b · s^(HS/(HS−2)), which leaves the fastest pair
  as it was and slows the slowest by s.
- **YaRN** (Peng et al., 2023, "YaRN: Efficient Context Window Extension of
  Large Language Models"): "NTK-by-parts" keeps θ_i for pairs that turn more
  than β = 32 times over L, takes θ_i / s for those that turn less than α = 1
  time, and ramps linearly between them; and it sharpens attention by
  multiplying q and k each by √(1/t) = 0.1 ln s + 1. The paper writes the
  ramp over the rotation count r; its code, and transformers after it, ramp
  over the pair index between the dimensions where r = β and r = α (floor and
  ceiling), which is what is computed here.

:func:`perplexity_by_position` then scores long held-out windows with a
model's RoPE tables swapped for each method's, position by position.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from workbench_engines.arrays import require_int
from workbench_engines.errors import Cancelled, EngineError

METHODS = ("plain", "pi", "ntk", "yarn")
LABELS = {"plain": "plain RoPE", "pi": "position interpolation", "ntk": "NTK-aware", "yarn": "YaRN"}
BETA_FAST = 32.0
"""YaRN's β: pairs turning more than this many times over the trained context keep their frequency."""
BETA_SLOW = 1.0
"""YaRN's α: pairs turning fewer times than this are interpolated fully."""


@dataclass(frozen=True)
class RopeScaling:
    """A method and the stretch it is asked for: ``factor`` = target context / trained context."""

    method: str
    factor: float
    trained_context: int

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise EngineError(f"unknown RoPE scaling {self.method!r}; choose one of {', '.join(METHODS)}")
        if not (isinstance(self.factor, (int, float)) and math.isfinite(self.factor) and self.factor >= 1.0):
            raise EngineError(f"the scaling factor must be a finite number >= 1, got {self.factor!r}")
        require_int(self.trained_context, "trained_context", low=2)


def yarn_attention_factor(factor: float) -> float:
    """YaRN's √(1/t) = 0.1 ln s + 1, by which q and k are each multiplied (1 for s <= 1)."""
    return 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0


def yarn_ramp(head_dim: int, base: float, trained_context: int) -> np.ndarray:
    """Per pair i (HS/2 of them), the share of θ_i that YaRN keeps: 1 for fast pairs, 0 for slow ones, linear between.

    The bounds are the pair indices where a pair turns β and α times over the trained context,
    i = HS · ln(L / (2π r)) / (2 ln b), floored and ceiled as YaRN's code does.
    """
    def pair_turning(rotations: float) -> float:
        return head_dim * math.log(trained_context / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(pair_turning(BETA_FAST)), 0)
    high = min(math.ceil(pair_turning(BETA_SLOW)), head_dim - 1)
    if low == high:
        high += 0.001  # as the reference code: a ramp of one step, not a division by zero
    ramp = np.clip((np.arange(head_dim // 2, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    return 1.0 - ramp


def inverse_frequencies(head_dim: int, base: float, scaling: RopeScaling) -> tuple[np.ndarray, float]:
    """(θ_i for i < HS/2 as float64, the factor q and k are multiplied by) for a method.

    Plain, PI and NTK-aware are ``positional.rope_frequencies``'s (the positional track's lab draws them as
    q·k curves); YaRN adds its ramp and attention factor here.
    """
    from workbench_engines.positional import rope_frequencies

    head_dim = require_int(head_dim, "head_dim", low=2)
    s = float(scaling.factor)
    if scaling.method == "yarn":
        theta, _ = rope_frequencies(head_dim, base)
        keep = yarn_ramp(head_dim, base, scaling.trained_context)
        return theta / s * (1.0 - keep) + theta * keep, yarn_attention_factor(s)
    kind = {"plain": None, "pi": "linear", "ntk": "ntk"}[scaling.method]
    theta, position_divisor = rope_frequencies(head_dim, base, scaling=kind, factor=s)
    # Dividing positions by s (PI) turns every pair by the angle of θ_i / s.
    return theta / position_divisor, 1.0


def tables(head_dim: int, positions: int, base: float, scaling: RopeScaling):
    """cos and sin of position · θ_i (float32 torch tensors (positions, HS/2)), times the attention factor,
    in the layout of ``models.layers.rope_tables``: what a model's rope_cos and rope_sin buffers hold."""
    import torch

    theta, attention = inverse_frequencies(head_dim, base, scaling)
    angle = torch.arange(require_int(positions, "positions", low=1), dtype=torch.float64)[:, None] \
        * torch.from_numpy(theta)
    return (angle.cos() * attention).float(), (angle.sin() * attention).float()


@contextmanager
def rope_scaled(model, scaling: RopeScaling) -> Iterator[None]:
    """model (a workbench GPT or Llama: rope_cos, rope_sin buffers) with one method's tables, restored after."""
    config = model.config
    old = model.rope_cos, model.rope_sin
    cos, sin = tables(config.head_dim, old[0].shape[0], config.rope_base, scaling)
    model.rope_cos, model.rope_sin = cos, sin
    try:
        yield
    finally:
        model.rope_cos, model.rope_sin = old


@dataclass(frozen=True)
class PositionCurve:
    """One method's mean next-token loss at each position of the scored windows."""

    method: str
    nll: np.ndarray
    """(window − 1,) mean over windows of −log p(token at position t + 1)."""
    windows: int

    def perplexity(self, lo: int, hi: int) -> float:
        """exp of the mean loss over positions [lo, hi), where position t is the prediction of the window's token t
        (counted from 0) after reading the t tokens before it: nll[t − 1]."""
        part = self.nll[max(lo - 1, 0): hi - 1]
        if part.size == 0:
            raise EngineError(f"no scored position in [{lo}, {hi}) of a {self.nll.size + 1}-token window")
        return float(np.exp(part.mean()))


def long_windows(ids: Sequence[int], window: int, count: int) -> np.ndarray:
    """The first ``count`` non-overlapping windows of ``window`` tokens of ids, (count, window) int64."""
    window, count = require_int(window, "window", low=2), require_int(count, "windows", low=1)
    have = len(ids) // window
    if have < count:
        raise EngineError(f"the text holds {have} windows of {window:,} tokens; {count} were asked for")
    return np.asarray(ids[: count * window], dtype=np.int64).reshape(count, window)


def perplexity_by_position(model, ids: Sequence[int], *, methods: Sequence[str] = METHODS, window: int,
                           windows: int, trained_context: int,
                           progress: Callable[[float, str], None] | None = None,
                           should_stop: Callable[[], bool] | None = None) -> list[PositionCurve]:
    """Score ``windows`` windows of ``window`` tokens with each method stretched by window / trained_context.

    Each window is one forward pass from position 0, so the loss at position t
    is the model reading t tokens of context. The tables are swapped in a
    private copy of the model. Raises EngineError for a window
    past the model's RoPE table or shorter than the trained context,
    Cancelled when should_stop() says so between windows.
    """
    import copy

    import torch

    model = copy.deepcopy(model)  # a model other threads share must never see another method's tables
    context = model.rope_cos.shape[0]
    window = require_int(window, "window", low=2)
    trained_context = require_int(trained_context, "trained_context", low=2)
    if window > context:
        raise EngineError(f"a window of {window:,} tokens is past the model's {context:,} tabulated positions")
    if window < trained_context:
        raise EngineError(f"a window of {window:,} tokens does not reach past the trained {trained_context:,}")
    batch = torch.from_numpy(long_windows(ids, window, windows))
    curves = []
    steps = len(methods) * windows
    for m, method in enumerate(methods):
        scaling = RopeScaling(method, window / trained_context, trained_context)
        total = np.zeros(window - 1)
        with rope_scaled(model, scaling), torch.inference_mode():
            for w in range(windows):
                if should_stop and should_stop():
                    raise Cancelled("RoPE scaling sweep cancelled")
                if progress:
                    progress((m * windows + w) / steps, f"{LABELS[method]}: window {w + 1} of {windows}")
                logits = model(batch[w: w + 1, :-1])[0].float()  # (window − 1, V)
                nll = torch.nn.functional.cross_entropy(logits, batch[w, 1:], reduction="none")
                total += nll.double().numpy()
        curves.append(PositionCurve(method, total / windows, windows))
    if progress:
        progress(1.0, "done")
    return curves
