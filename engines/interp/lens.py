"""The logit lens: the next-token distribution read from the residual stream after every layer.

nostalgebraist (2020, "interpreting GPT: the logit lens") decoded GPT-2's
intermediate residual streams with the model's own final layer, as if the
network stopped there: logits_L = unembed(norm(resid_post.L)). The embedding
(resid_pre.0) is row 0, block L's output row L + 1; the last row is the
model's own output, exactly, because that is how the model computes it.

Example::

    >>> lens = logit_lens(model, ids)               # ids (T,) or (1, T)
    >>> [row.top_tokens[0] for row in lens.rows]    # the top guess after the embedding, layer 0, …
    >>> lens.first_top                               # the first row whose top token is the final answer
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from workbench_engines.errors import EngineError
from workbench_engines.interp.hooks import gpt_module, hooked

Progress = Callable[[float, str], None]
"""progress(fraction_done, what); it may raise to cancel the run."""
DECODE_FLOATS = 1 << 25
"""The most logits logit_lens decodes in one call (128 MiB of float32): memory stays bounded for long prompts."""


@dataclass(frozen=True)
class LensRow:
    """What the lens reads from one site at the chosen position."""

    site: str
    """resid_pre.0 (the embedding) or resid_post.L."""
    label: str
    """"embed" or "L0", "L1", …"""
    top_tokens: tuple[int, ...]
    """The most probable next tokens, best first."""
    top_probs: tuple[float, ...]
    target_rank: int
    """1 + how many tokens the lens scores above the target (1: the target is the top token)."""
    target_prob: float


@dataclass(frozen=True)
class LogitLens:
    """The lens at every layer for one prompt: a row per site at ``position``, and the top token everywhere."""

    ids: tuple[int, ...]
    position: int
    """The position read (non-negative), whose next token the rows predict."""
    target: int
    """The token whose rank and probability the rows track (by default the model's own top token)."""
    rows: list[LensRow]
    """Row 0 the embedding, row L + 1 block L's output; the last row is the model's output."""
    grid_top: np.ndarray
    """(L + 1, T) int: the top token of every row at every position."""
    grid_prob: np.ndarray
    """(L + 1, T) float: its probability."""

    @property
    def first_top(self) -> int | None:
        """The first row whose top token is the target, or None if none is."""
        return next((i for i, row in enumerate(self.rows) if row.target_rank == 1), None)

    @property
    def settled(self) -> int | None:
        """The first row from which the target stays the top token to the output, or None."""
        row = None
        for i in range(len(self.rows) - 1, -1, -1):
            if self.rows[i].target_rank != 1:
                break
            row = i
        return row


def lens_sites(n_layers: int) -> list[str]:
    """The lens's sites in order: the embedding, then every block's output."""
    return ["resid_pre.0", *(f"resid_post.{l}" for l in range(n_layers))]


def residual_streams(model, ids, *, progress: Progress | None = None):
    """(the model's logits (B, T, V), {site: its residual stream (B, T, C)} for every lens site) in one pass.

    Progress is reported after every block (and may raise to cancel).

    Raises:
        EngineError: bad ids (empty, out of the vocabulary, past the context).
    """
    import torch
    from workbench_engines.interp.hooks import check_ids

    module = gpt_module(model)
    ids = check_ids(ids, module.config.vocab_size, module.config.context)
    n = len(module.blocks)
    edits = {}
    if progress is not None:
        # An edit that changes nothing: only a place to report from as each block finishes.
        edits = {f"resid_post.{l}": (lambda x, l=l: progress(0.8 * (l + 1) / n, f"block {l + 1} of {n}"))
                 for l in range(n)}
    with torch.no_grad(), hooked(module, read=lens_sites(n), edits=edits) as store:
        logits = module(ids)  # (B, T, V)
    return logits, store


def decode(model, x):
    """The lens's logits (B, T, V) of a residual stream x (B, T, C): the model's own unembed(norm(x))."""
    import torch

    module = gpt_module(model)
    with torch.no_grad():
        return module.unembed(module.norm(x))


def lens_logits(model, ids, *, progress: Progress | None = None):
    """(the model's logits (B, T, V), the lens's logits (L + 1, B, T, V)) from one forward pass.

    Row i is :func:`decode` of lens site i. All rows at once take (L + 1)·B·T·V floats: for a long prompt on a
    large vocabulary :func:`logit_lens` decodes one row at a time instead.
    """
    import torch

    logits, streams = residual_streams(model, ids, progress=progress)
    return logits, torch.stack([decode(model, streams[s]) for s in lens_sites(len(streams) - 1)])


def logit_lens(model, ids, *, target: int | None = None, position: int = -1, top: int = 3,
               progress: Progress | None = None) -> LogitLens:
    """The logit lens of one prompt: each layer's top tokens and the target's rank and probability at position.

    Args:
        model: A GPT-shaped model (the small GPT, SmolLM2).
        ids: One prompt, (T,) or (1, T) token ids.
        target: The token to track; None means the model's own top next token at position.
        position: The position whose next token is read (negative counts from the end).
        top: How many top tokens each row keeps.
        progress: Called after every block; may raise to cancel.

    Raises:
        EngineError: an empty prompt, a batch of more than one, a position or target out of range.
    """
    import torch

    logits, streams = residual_streams(model, ids, progress=progress)
    if logits.shape[0] != 1:
        raise EngineError(f"the logit lens reads one prompt, got a batch of {logits.shape[0]}")
    t, vocab = logits.shape[1], logits.shape[2]
    if not -t <= position < t:
        raise EngineError(f"position {position} is out of range: the prompt has positions 0 to {t - 1}")
    position %= t
    if target is None:
        target = int(logits[0, position].argmax())
    if not 0 <= target < vocab:
        raise EngineError(f"target token {target} is out of range: the vocabulary has tokens 0 to {vocab - 1}")
    sites = lens_sites(len(streams) - 1)
    chunk = max(1, DECODE_FLOATS // (t * vocab))
    rows, grid_top, grid_prob = [], [], []
    for i, site in enumerate(sites):
        if i % chunk == 0:  # decode several sites in one call: a quantised unembedding unpacks its blocks per call
            part = torch.cat([streams[s] for s in sites[i:i + chunk]])  # (sites, T, C)
            decoded = decode(model, part).float()  # (sites, T, V)
        probs = torch.softmax(decoded[i % chunk], dim=-1)  # (T, V)
        best_all_p, best_all = probs.max(dim=-1)  # (T,) each
        grid_top.append(best_all.numpy())
        grid_prob.append(best_all_p.numpy())
        here = probs[position]  # (V,)
        best_p, best = here.topk(min(top, vocab))
        target_p = here[target]
        rank = 1 + int((here > target_p).sum())  # ties count in the target's favour
        rows.append(LensRow(site, "embed" if i == 0 else f"L{i - 1}", tuple(int(v) for v in best),
                            tuple(float(v) for v in best_p), rank, float(target_p)))
    if progress is not None:
        progress(1.0, "lens read")
    return LogitLens(tuple(check_flat(ids)), position, target, rows, np.stack(grid_top), np.stack(grid_prob))


def check_flat(ids) -> list[int]:
    """One prompt's ids as a flat list."""
    array = np.asarray(ids.detach().cpu().numpy() if hasattr(ids, "detach") else ids)
    return [int(v) for v in array.reshape(-1)]
