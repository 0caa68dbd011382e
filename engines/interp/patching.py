"""Activation patching (causal tracing, Meng et al., 2022, "Locating and Editing Factual Associations in GPT").

Run a clean prompt ("The Eiffel Tower is in the city of" → " Paris") and a
corrupted one of the same token length whose subject is changed, so the
answer's probability falls. Then run the corrupted prompt again, copying one
activation of the clean run (one site, one position) into it: if the answer's
probability comes back, that activation carries what the model needs. The
restored fraction

    (p_patched − p_corrupt) / (p_clean − p_corrupt)

is 0 where the patch did nothing and 1 where it restored the clean answer
completely. Meng et al. corrupt by adding noise to the subject's embeddings;
a swapped subject (Wang et al., 2022, and most later work) keeps the input on
the model's own distribution and needs no noise level.

The clean run's cache is taken once, and so is the corrupted run's stream
entering every block. A run patched at layer l computes exactly what the
corrupted run computed below l, so it starts at block l from that stream:
on a 30-layer model the patched runs cost half a full pass on average.
Each patched run changes a different (layer, position), and one forward
pass carries many of them: row b of the batch is a copy of the corrupted
stream patched at its own position (``hooks.replace_rows``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workbench_engines.errors import Cancelled, EngineError

PATCH_KINDS = ("resid_pre", "resid_post", "attn_out", "mlp_out")
TOKENS_PER_PASS = 4096
"""Tokens one batched forward pass carries (see ablation.TOKENS_PER_PASS)."""


def restored_fraction(p_patched, p_clean: float, p_corrupt: float):
    """(p_patched − p_corrupt) / (p_clean − p_corrupt): 0 = no effect, 1 = the clean probability restored."""
    return (np.asarray(p_patched, dtype=np.float64) - p_corrupt) / (p_clean - p_corrupt)


@dataclass(frozen=True)
class PatchMap:
    """The restored fraction of every (layer, position) for one prompt pair and one site kind."""

    kind: str
    clean: list[int]
    corrupt: list[int]
    answer: int
    """The token whose probability is measured: the clean run's most likely next token unless one was given."""
    p_clean: float
    p_corrupt: float
    p_patched: np.ndarray
    """(layers, T) probability of the answer with that one activation patched."""
    layers: tuple[int, ...]
    """The layer of each row of p_patched."""

    @property
    def restored(self) -> np.ndarray:
        """(layers, T) restored fraction."""
        return restored_fraction(self.p_patched, self.p_clean, self.p_corrupt)

    @property
    def differing(self) -> list[int]:
        """Positions where the two prompts' tokens differ."""
        return [i for i, (a, b) in enumerate(zip(self.clean, self.corrupt)) if a != b]

    def best(self) -> tuple[int, int, float]:
        """(layer, position, restored) of the largest restoration (ties: lower layer, then earlier position)."""
        r = self.restored
        row, position = divmod(int(np.argmax(r)), r.shape[1])
        return self.layers[row], position, float(r[row, position])


def _answer_probs(logits, answer: int) -> np.ndarray:
    import torch

    return torch.softmax(logits[:, -1].double(), dim=-1)[:, answer].numpy()  # (B,)


def _run_from(module, start: int, x):
    """The rest of a forward pass: blocks start… on the residual stream x (B, T, C), then the last position's
    logits (B, 1, V), as ``module(ids, last_only=True)`` computes them (hooks on those blocks still fire)."""
    t = x.shape[1]
    cos, sin = module.rope_cos[:t], module.rope_sin[:t]
    for layer in range(start, len(module.blocks)):
        x = module.blocks[layer](x, cos, sin, layer, None)
    return module.unembed(module.norm(x[:, -1:]))


def patch_map(model, clean, corrupt, *, answer: int | None = None, kind: str = "resid_pre",
              layers: list[int] | None = None, progress: Callable[[float, str], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> PatchMap:
    """Patch each (layer, position) of ``kind`` from the clean run into the corrupted one; measure the answer.

    Args:
        model: A GPT-shaped model.
        clean: The clean prompt's token ids, (T,).
        corrupt: The corrupted prompt's ids, the same length T.
        answer: The token to measure; None for the clean run's most likely next token.
        kind: The site patched: resid_pre, resid_post, attn_out or mlp_out.
        layers: The layers to patch (default: all).

    Raises:
        EngineError: prompts of different lengths or empty, identical prompts' probabilities (nothing to restore),
            a bad kind, layer or answer.
        Cancelled: should_stop() returned True.
    """
    import torch

    from workbench_engines.interp.hooks import check_ids, gpt_module, hooked, parse_site, replace_rows

    if kind not in PATCH_KINDS:
        raise EngineError(f"unknown site kind {kind!r} to patch; choose one of {', '.join(PATCH_KINDS)}")
    module = gpt_module(model)
    c = module.config
    clean_ids = check_ids(clean, c.vocab_size, c.context)
    corrupt_ids = check_ids(corrupt, c.vocab_size, c.context)
    if clean_ids.shape[0] != 1 or corrupt_ids.shape[0] != 1:
        raise EngineError("patch one prompt pair at a time: clean and corrupt are each one prompt")
    t = clean_ids.shape[1]
    if corrupt_ids.shape[1] != t:
        raise EngineError(f"the clean prompt has {t} tokens and the corrupted one {corrupt_ids.shape[1]}: "
                          "patching needs the same length, position by position")
    n = len(module.blocks)
    chosen = list(range(n)) if layers is None else [parse_site(f"{kind}.{l}", n).layer for l in layers]
    sites = [f"{kind}.{l}" for l in chosen]
    with torch.no_grad(), hooked(module, read=sites) as cache:  # the clean run, once
        clean_logits = module(clean_ids, last_only=True)
    if answer is None:
        answer = int(clean_logits[0, -1].argmax())
    elif not 0 <= answer < c.vocab_size:
        raise EngineError(f"answer token {answer} is not in the vocabulary of {c.vocab_size}")
    with torch.no_grad():
        p_corrupt = float(_answer_probs(module(corrupt_ids, last_only=True), answer)[0])
    p_clean = float(_answer_probs(clean_logits, answer)[0])
    if p_clean == p_corrupt:
        raise EngineError("the corrupted prompt gives the answer the same probability as the clean one: "
                          "there is nothing to restore; change a word the answer depends on")
    # Every row patched at layer l shares the corrupted run below l: start it there, from the corrupted stream.
    starts = [l + 1 if kind == "resid_post" else l for l in chosen]  # the block each row starts at
    entering = {l: f"resid_post.{l - 1}" if l > 0 else "resid_pre.0" for l in set(starts)}  # start n: norm only
    with torch.no_grad(), hooked(module, read=set(entering.values())) as streams:
        module(corrupt_ids)  # the corrupted run's stream entering each start block
    per_pass = max(1, TOKENS_PER_PASS // t)
    patched = np.zeros((len(chosen), t))
    cells, done = len(chosen) * t, 0
    for i, (site, start) in enumerate(zip(sites, starts)):
        for first in range(0, t, per_pass):
            if should_stop is not None and should_stop():
                raise Cancelled("patching cancelled")
            positions = list(range(first, min(first + per_pass, t)))
            x = streams[entering[start]].expand(len(positions), t, -1)  # (R, T, C)
            edits = {}
            if kind in ("resid_pre", "resid_post"):
                x = replace_rows(cache[site], positions)(x)
            else:
                edits[site] = replace_rows(cache[site], positions)
            with torch.no_grad(), hooked(module, edits=edits):
                logits = _run_from(module, start, x)  # (R, 1, V)
            patched[i, first : first + len(positions)] = _answer_probs(logits, answer)
            done += len(positions)
            if progress is not None:
                progress(done / cells, f"{done} of {cells} patches")
    return PatchMap(kind, clean_ids[0].tolist(), corrupt_ids[0].tolist(), answer, p_clean, p_corrupt, patched,
                    tuple(chosen))


def patch_one(model, clean, corrupt, layer: int, position: int, *, kind: str = "resid_pre",
              answer: int | None = None) -> float:
    """The restored fraction of one (layer, position): what ``patch_map`` shows in that cell."""
    from workbench_engines.interp.hooks import gpt_module

    t = len(np.atleast_1d(np.asarray(clean)))
    if not 0 <= position < t:
        raise EngineError(f"position {position} is out of range: the prompt has positions 0 to {t - 1}")
    gpt_module(model)
    result = patch_map(model, clean, corrupt, answer=answer, kind=kind, layers=[layer])
    return float(result.restored[0, position])
