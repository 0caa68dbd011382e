"""Ablation: knock out an attention head or a whole MLP and measure how much worse the model predicts text.

Zero-ablation replaces a component's output with zeros; mean-ablation with
its mean over a reference batch (every window and position of the text the
loss is measured on), which keeps the stream at its usual offset and removes
only what the component says about *this* token. The change in next-token
loss (Δloss, nats) when one head is removed is the direct measurement that
Michel et al. (2019, "Are Sixteen Heads Really Better than One?") approximate
with a gradient, ``compress.prune.head_importance``; they found that most
heads can be removed one at a time, and many together, at little cost.

Every run here is a *configuration*: which heads and MLPs are ablated. One
forward pass scores many configurations at once, each on its own copy of the
windows in the batch (row r·N + n is configuration r on window n), so the
whole layers × heads grid costs a few passes.

Example::

    >>> windows = text_windows(ids, length=128, count=8)
    >>> grid = ablation_grid(model, windows, "mean")
    >>> grid.heads[2, 4]          # Δloss when head 4 of layer 2 is mean-ablated alone
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workbench_engines.errors import Cancelled, EngineError

ABLATIONS = ("zero", "mean")
TOKENS_PER_PASS = 4096
"""Tokens one batched forward pass carries: bounds memory, and for quantised weights (dequantised once per pass)
it keeps the passes few."""


def text_windows(ids, length: int, count: int) -> np.ndarray:
    """``count`` consecutive, non-overlapping (length + 1)-token windows from the start of ``ids``, (N, length + 1).

    Raises:
        EngineError: the text is too short for them, or a length or count below 1.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if length < 1 or count < 1:
        raise EngineError(f"windows need a length and a count of at least 1, got {length} and {count}")
    if len(ids) < count * length + 1:
        raise EngineError(f"{len(ids)} tokens do not make {count} windows of {length} + 1")
    return np.stack([ids[i * length : i * length + length + 1] for i in range(count)])


def _checked(model, windows):
    from workbench_engines.interp.hooks import check_ids, gpt_module

    module = gpt_module(model)
    windows = check_ids(windows, module.config.vocab_size, module.config.context + 1)
    if windows.shape[1] < 2:
        raise EngineError("each window needs at least 2 tokens: one to read, one to predict")
    return module, windows


def reference_means(model, windows) -> dict[str, object]:
    """The mean of every head_z.L (NH, HS) and mlp_out.L (C,) over the windows' batch and positions.

    These are what mean-ablation writes: position-agnostic, one value per head (or MLP) for the whole text.
    """
    import torch

    from workbench_engines.interp.hooks import hooked

    module, windows = _checked(model, windows)
    n = len(module.blocks)
    sites = [f"{k}.{l}" for l in range(n) for k in ("head_z", "mlp_out")]
    with torch.no_grad(), hooked(module, read=sites) as store:
        module(windows[:, :-1], last_only=True)
    return {s: store[s].float().mean(dim=(0, 1)) for s in sites}  # (NH, HS) or (C,)


@dataclass(frozen=True)
class Configuration:
    """What one run ablates: a boolean (layers, heads) mask of heads and a (layers,) mask of MLPs."""

    heads: np.ndarray
    mlps: np.ndarray


def ablated_losses(model, windows, configurations: list[Configuration], mode: str = "zero", *,
                   means: dict | None = None, progress: Callable[[float, str], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Mean next-token cross-entropy (nats) over the windows under each configuration, (R,).

    Args:
        model: A GPT-shaped model (small GPT or SmolLM2).
        windows: (N, T + 1) token ids; the loss is over their last T tokens.
        configurations: What each run ablates.
        mode: "zero" or "mean".
        means: ``reference_means`` of the windows (computed here for mode "mean" when missing).

    Raises:
        EngineError: a bad mode, masks of the wrong shape, bad windows.
        Cancelled: should_stop() returned True.
    """
    import torch
    import torch.nn.functional as F

    from workbench_engines.interp.hooks import hooked

    if mode not in ABLATIONS:
        raise EngineError(f"unknown ablation {mode!r}; choose one of {', '.join(ABLATIONS)}")
    module, windows = _checked(model, windows)
    c = module.config
    n_layers, shape = len(module.blocks), (len(module.blocks), c.n_heads)
    for conf in configurations:
        if np.shape(conf.heads) != shape or np.shape(conf.mlps) != (n_layers,):
            raise EngineError(f"an ablation mask must be {shape} for heads and ({n_layers},) for MLPs")
    if mode == "mean" and means is None:
        means = reference_means(module, windows)
    n, t = windows.shape[0], windows.shape[1] - 1
    per_pass = max(1, TOKENS_PER_PASS // (n * t))
    last = f"resid_post.{n_layers - 1}"
    losses = np.zeros(len(configurations))
    for start in range(0, len(configurations), per_pass):
        if should_stop is not None and should_stop():
            raise Cancelled("ablation cancelled")
        chunk = configurations[start : start + per_pass]
        heads = torch.from_numpy(np.stack([c_.heads for c_ in chunk]).astype(np.float32))  # (R, L, NH)
        mlps = torch.from_numpy(np.stack([c_.mlps for c_ in chunk]).astype(np.float32))  # (R, L)
        edits = {}
        for layer in range(n_layers):
            if heads[:, layer].any():
                m = heads[:, layer].repeat_interleave(n, dim=0)[:, None, :, None]  # (R·N, 1, NH, 1)
                fill = 0.0 if mode == "zero" else means[f"head_z.{layer}"]  # (NH, HS)
                edits[f"head_z.{layer}"] = lambda z, m=m, fill=fill: z * (1 - m) + (m * fill).to(z.dtype)
            if mlps[:, layer].any():
                m = mlps[:, layer].repeat_interleave(n, dim=0)[:, None, None]  # (R·N, 1, 1)
                fill = 0.0 if mode == "zero" else means[f"mlp_out.{layer}"]  # (C,)
                edits[f"mlp_out.{layer}"] = lambda y, m=m, fill=fill: y * (1 - m) + (m * fill).to(y.dtype)
        batch = windows.repeat(len(chunk), 1)  # (R·N, T + 1)
        with torch.no_grad(), hooked(module, read=[last], edits=edits) as store:
            module(batch[:, :-1], last_only=True)  # the loss needs every position: read from the stream below
            stream = store[last]  # (R·N, T, C)
            targets = batch[:, 1:]
            for r in range(len(chunk)):
                rows = slice(r * n, (r + 1) * n)
                logits = module.unembed(module.norm(stream[rows])).float()  # (N, T, V)
                losses[start + r] = float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                          targets[rows].reshape(-1)))
        if progress is not None:
            done = min(start + per_pass, len(configurations))
            progress(done / len(configurations), f"{done} of {len(configurations)} ablations")
    return losses


def _nothing(model) -> Configuration:
    from workbench_engines.interp.hooks import gpt_module

    c = gpt_module(model).config
    return Configuration(np.zeros((c.n_layers, c.n_heads), dtype=bool), np.zeros(c.n_layers, dtype=bool))


def single_ablations(model) -> list[Configuration]:
    """Every head alone (layer-major: index L · NH + h), then every MLP alone."""
    blank = _nothing(model)
    layers, heads = blank.heads.shape
    out = []
    for layer in range(layers):
        for head in range(heads):
            mask = blank.heads.copy()
            mask[layer, head] = True
            out.append(Configuration(mask, blank.mlps))
    for layer in range(layers):
        mask = blank.mlps.copy()
        mask[layer] = True
        out.append(Configuration(blank.heads, mask))
    return out


@dataclass(frozen=True)
class AblationGrid:
    """Δloss of ablating each head and each MLP alone, against the intact model's loss on the same windows."""

    mode: str
    base_loss: float
    """The intact model's mean next-token loss, nats."""
    heads: np.ndarray
    """(layers, heads) Δloss of each head ablated alone."""
    mlps: np.ndarray
    """(layers,) Δloss of each MLP ablated alone."""
    tokens: int
    """Tokens scored per run."""

    def ranked(self) -> list[tuple[int, int]]:
        """(layer, head) from least to most Δloss (ties: lower layer, then lower head)."""
        flat = self.heads.ravel()
        order = np.lexsort((np.arange(flat.size), flat))
        return [divmod(int(i), self.heads.shape[1]) for i in order]


def ablation_grid(model, windows, mode: str = "zero", *, progress: Callable[[float, str], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> AblationGrid:
    """Ablate every head and every MLP alone and measure Δloss on the windows (one run per component)."""
    configurations = [_nothing(model), *single_ablations(model)]
    means = reference_means(model, windows) if mode == "mean" else None
    losses = ablated_losses(model, windows, configurations, mode, means=means, progress=progress,
                            should_stop=should_stop)
    blank = configurations[0]
    layers, heads = blank.heads.shape
    delta = losses[1:] - losses[0]
    return AblationGrid(mode, float(losses[0]), delta[: layers * heads].reshape(layers, heads),
                        delta[layers * heads :], int(np.prod(np.asarray(windows).shape) - len(windows)))


def removal_curve(model, windows, order: list[tuple[int, int]], counts: list[int], mode: str = "zero", *,
                  means: dict | None = None, progress: Callable[[float, str], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Loss with the first k heads of ``order`` ablated together, for each k in ``counts``, (len(counts),).

    Michel et al.'s pruning experiment: remove heads from the least important up and watch when the loss turns.
    """
    blank = _nothing(model)
    if any(not 0 <= k <= len(order) for k in counts):
        raise EngineError(f"counts must lie between 0 and {len(order)} heads")
    configurations = []
    for k in counts:
        mask = blank.heads.copy()
        for layer, head in order[:k]:
            mask[layer, head] = True
        configurations.append(Configuration(mask, blank.mlps))
    return ablated_losses(model, windows, configurations, mode, means=means, progress=progress,
                          should_stop=should_stop)


def ablation_delta(model, windows, layer: int, head: int | None = None, mode: str = "zero") -> float:
    """Δloss of ablating one head (or, with head None, layer's MLP) alone on the windows."""
    blank = _nothing(model)
    layers, heads = blank.heads.shape
    if not 0 <= layer < layers:
        raise EngineError(f"layer {layer} is out of range: the model has layers 0 to {layers - 1}")
    if head is not None and not 0 <= head < heads:
        raise EngineError(f"head {head} is out of range: the layer has heads 0 to {heads - 1}")
    hmask, mmask = blank.heads.copy(), blank.mlps.copy()
    if head is None:
        mmask[layer] = True
    else:
        hmask[layer, head] = True
    losses = ablated_losses(model, windows, [blank, Configuration(hmask, mmask)], mode)
    return float(losses[1] - losses[0])


def logit_difference(model, ids, answer: int, other: int, configuration: Configuration | None = None,
                     mode: str = "zero", means: dict | None = None) -> float:
    """logit(answer) − logit(other) at the prompt's last position, with ``configuration`` ablated (None: intact).

    A prompt pair's measure (e.g. " Paris" against " Rome"): how much a component pushes one answer over another.
    For mode "mean", ``means`` comes from ``reference_means`` on some reference text.
    """
    import torch

    from workbench_engines.interp.hooks import check_ids, gpt_module, hooked

    module = gpt_module(model)
    ids = check_ids(ids, module.config.vocab_size, module.config.context)
    for token in (answer, other):
        if not 0 <= token < module.config.vocab_size:
            raise EngineError(f"token {token} is not in the vocabulary of {module.config.vocab_size}")
    edits = {}
    if configuration is not None:
        if mode == "mean" and means is None:
            raise EngineError("mean-ablation of a prompt needs the means of a reference text (reference_means)")
        for layer in range(len(module.blocks)):
            heads = np.flatnonzero(configuration.heads[layer])
            if len(heads):
                m = torch.zeros(module.config.n_heads, 1)
                m[heads] = 1.0
                fill = 0.0 if mode == "zero" else means[f"head_z.{layer}"]
                edits[f"head_z.{layer}"] = lambda z, m=m, fill=fill: z * (1 - m) + (m * fill).to(z.dtype)
            if configuration.mlps[layer]:
                fill = 0.0 if mode == "zero" else means[f"mlp_out.{layer}"]
                edits[f"mlp_out.{layer}"] = lambda y, fill=fill: torch.zeros_like(y) + fill
    with torch.no_grad(), hooked(module, edits=edits):
        logits = module(ids, last_only=True)[0, -1].float()  # (V,)
    return float(logits[answer] - logits[other])
