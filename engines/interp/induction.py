"""Induction heads: the heads that find an earlier copy of the current token and predict what followed it.

Olsson et al. (2022, "In-context Learning and Induction Heads") pin an
induction head down by two behaviours on a sequence of random tokens
repeated twice, where nothing but the repeat makes the second half
predictable:

- prefix matching: at a token of the second repeat, the head attends to the
  token that followed the same token's first occurrence;
- copying: what the head writes raises the logit of the token it attends to.

A model with induction heads predicts the second repeat far better than the
first: per-token loss drops from about ln V (a guess among V tokens) to near 0.

Layout of one sequence: ``[start] r_1 … r_n r_1 … r_n`` (2n + 1 tokens, the
start token optional). At position i of the second repeat (n + 1 ≤ i ≤ 2n
with a start token) the current token first appeared at i − n, so an
induction head attends to i − n + 1.

Example::

    >>> scan = induction_scan(model, n=50, batch=4, seed=0, start=eot)
    >>> scan.first_loss, scan.second_loss     # nats per token on each repeat
    >>> scan.top_heads(3)                    # [(layer, head, prefix score, copying score), …]
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from workbench_engines.errors import EngineError
from workbench_engines.interp.hooks import attention_patterns, gpt_module, hooked

Progress = Callable[[float, str], None]
"""progress(fraction_done, what); it may raise to cancel the run."""


@dataclass(frozen=True)
class InductionScan:
    """What one run on repeated random tokens measured."""

    n: int
    """Length of the random sequence; each row is [start] + n tokens + the same n again."""
    batch: int
    seed: int
    ids: np.ndarray
    """(B, T) int64 the sequences run, T = 2n + (1 with a start token)."""
    offset: int
    """1 with a start token, else 0: where the first repeat begins."""
    loss_by_token: np.ndarray
    """(2n,) float: mean over the batch of −log p of each repeated token given everything before it; entry k is
    the (k + 1)-th token of the two repeats (k < n the first, k ≥ n the second)."""
    prefix: np.ndarray
    """(L, NH) float: each head's prefix-matching score, its mean attention from a second-repeat token to the
    token after that token's first occurrence; 1 / (positions so far) for uniform attention, 1 at most."""
    copying: np.ndarray
    """(L, NH) float in [−1, 1]: each head's copying score (:func:`ov_copying`)."""

    @property
    def first_loss(self) -> float:
        """Mean loss on the first repeat's tokens after its first (nothing before them predicts them)."""
        return float(self.loss_by_token[1:self.n].mean())

    @property
    def second_loss(self) -> float:
        """Mean loss on the second repeat's tokens after its first (the repeat predicts them)."""
        return float(self.loss_by_token[self.n + 1:].mean())

    def top_heads(self, k: int = 3) -> list[tuple[int, int, float, float]]:
        """The k heads with the highest prefix-matching score: (layer, head, prefix, copying), best first."""
        order = np.argsort(-self.prefix, axis=None, kind="stable")[:k]
        return [(int(l), int(h), float(self.prefix[l, h]), float(self.copying[l, h]))
                for l, h in zip(*np.unravel_index(order, self.prefix.shape))]

    def induction_heads(self, prefix: float = 0.4, copying: float = 0.0) -> list[tuple[int, int, float, float]]:
        """Every head that both prefix-matches (score ≥ ``prefix``) and copies (score > ``copying``), best first."""
        return [head for head in self.top_heads(self.prefix.size) if head[2] >= prefix and head[3] > copying]


def repeated_tokens(vocab_size: int, n: int, batch: int, seed: int = 0, *, start: int | None = None,
                    avoid: Iterable[int] = ()) -> np.ndarray:
    """(B, 2n [+ 1]) int64: rows of n random tokens, each repeated once, after ``start`` if given.

    The tokens are drawn uniformly, without replacement within a row, from the
    vocabulary less ``avoid`` (special tokens) and ``start``: a fixed seed gives the same rows.

    Raises:
        EngineError: n or batch below 1, or fewer than n tokens to draw from.
    """
    if n < 1 or batch < 1:
        raise EngineError(f"a repeated sequence needs n ≥ 1 and batch ≥ 1, got n = {n}, batch = {batch}")
    banned = set(avoid) | ({start} if start is not None else set())
    pool = np.array([i for i in range(vocab_size) if i not in banned], dtype=np.int64)
    if len(pool) < n:
        raise EngineError(f"{len(pool)} tokens to draw from cannot make {n} distinct ones")
    rng = np.random.default_rng(seed)
    rows = np.stack([rng.choice(pool, size=n, replace=False) for _ in range(batch)])  # (B, n)
    head = np.full((batch, 1 if start is not None else 0), start if start is not None else 0, dtype=np.int64)
    return np.concatenate([head, rows, rows], axis=1)


def prefix_scores(patterns: dict[int, object], n: int, offset: int) -> np.ndarray:
    """(L, NH): each head's mean attention from second-repeat position i to i − n + 1.

    Args:
        patterns: layer -> (B, NH, T, T) attention weights, every layer.
        n: The random sequence's length.
        offset: 1 when a start token precedes the first repeat, else 0.
    """
    import torch

    queries = torch.arange(offset + n, offset + 2 * n)  # the second repeat's positions
    keys = queries - n + 1
    return np.stack([patterns[l][:, :, queries, keys].mean(dim=(0, 2)).numpy()  # (NH,)
                     for l in sorted(patterns)]).astype(np.float64)


def dense(linear, width: int):
    """A linear map's matrix as (out, width) float32, whatever holds it (nn.Linear, quantised blocks): its outputs
    for the identity's rows."""
    import torch

    with torch.no_grad():
        return linear(torch.eye(width)).float().T  # (out, in)


_COPYING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""module -> its copying scores: they depend on the weights alone, which the shipped models never change."""


def ov_copying(model, *, fresh: bool = False, progress: Progress | None = None) -> np.ndarray:
    """(L, NH): each head's copying score, Σλ / Σ|λ| over the eigenvalues λ of its full OV circuit.

    Computed once per model and kept (``fresh=True`` recomputes it, for weights changed since); ``progress`` hears
    of each layer done and may raise to cancel.

    The full OV circuit of head h (Elhage et al., 2021, "A Mathematical
    Framework for Transformer Circuits") maps a token attended to, through its
    embedding, the head's value and output matrices and the unembedding, to
    the logits it adds: the (V, V) matrix

        M_h = W_U · diag(g_f) · W_O^h · W_V^h · diag(g_a) · W_Eᵀ

    with g_a, g_f the gains of the block's attention norm and of the final
    norm (RMSNorm's division by the RMS is a positive scalar per token and is
    left out). A head that copies raises the logit of whatever token it reads,
    so M_h has mostly positive eigenvalues; Elhage et al. summarise this as
    Σλ / Σ|λ|, 1 for pure copying, −1 for pure suppression, near 0 for a random
    matrix. The (V, V) eigenproblem is not formed: M_h = A·B with A = W_U diag(g_f) W_O^h
    (V, HS) and B = W_V^h diag(g_a) W_Eᵀ (HS, V) has the eigenvalues of the (HS, HS) matrix B·A besides zeros,
    and Σλ = trace(B·A).
    """
    module = gpt_module(model)
    if fresh or module not in _COPYING:
        _COPYING[module] = _ov_copying(module, progress)
    return _COPYING[module].copy()


def _ov_copying(module, progress: Progress | None) -> np.ndarray:
    """ov_copying's computation, uncached."""
    import torch

    c = module.config
    with torch.no_grad():
        w_e = module.embed(torch.arange(c.vocab_size)[None])[0].float()  # (V, C)
        w_u = dense(module.unembed, c.d_model)  # (V, C)
        inner = w_e.T @ (w_u * module.norm.weight.float())  # (C, C): W_Eᵀ W_U diag(g_f)
        scores = np.zeros((c.n_layers, c.n_heads))
        group = c.n_heads // c.kv_heads
        for l, block in enumerate(module.blocks):
            attn = block.attn
            w_v = dense(attn.kv, c.d_model)[c.kv_heads * c.head_dim:]  # (KVH·HS, C): the value rows
            w_v = w_v * block.attn_norm.weight.float()  # W_V diag(g_a)
            w_o = dense(attn.out, c.d_model)  # (C, NH·HS)
            for h in range(c.n_heads):
                v = w_v[(h // group) * c.head_dim:(h // group + 1) * c.head_dim]  # (HS, C)
                o = w_o[:, h * c.head_dim:(h + 1) * c.head_dim]  # (C, HS)
                small = (v @ inner @ o).double().numpy()  # (HS, HS): B·A
                eigen = np.linalg.eigvals(small)
                scores[l, h] = float(np.trace(small) / np.abs(eigen).sum())
            if progress is not None:
                progress((l + 1) / c.n_layers, f"OV circuits of layer {l + 1} of {c.n_layers}")
    return scores


def induction_scan(model, *, n: int = 50, batch: int = 4, seed: int = 0, start: int | None = None,
                   avoid: Iterable[int] = (), progress: Progress | None = None) -> InductionScan:
    """Run repeated random tokens through the model: loss per token, prefix-matching and copying per head.

    One forward pass gives the attention patterns (hooks.attention_patterns)
    and, through a hook on the last block's output, the logits; the copying
    scores need only the weights.

    Raises:
        EngineError: bad n, batch or start; sequences past the model's context.
    """
    import torch

    module = gpt_module(model)
    c = module.config
    if start is not None and not 0 <= start < c.vocab_size:
        raise EngineError(f"start token {start} is out of range: the vocabulary has tokens 0 to {c.vocab_size - 1}")
    ids = repeated_tokens(c.vocab_size, n, batch, seed, start=start, avoid=avoid)
    if ids.shape[1] > c.context:
        raise EngineError(f"2n{' + 1' if start is not None else ''} = {ids.shape[1]} tokens do not fit the model's "
                          f"context of {c.context}")
    last = f"resid_post.{c.n_layers - 1}"
    edits = {}
    if progress is not None:
        edits = {f"resid_post.{l}": (lambda x, l=l: progress(0.7 * (l + 1) / c.n_layers, f"block {l + 1} of "
                                                             f"{c.n_layers}")) for l in range(c.n_layers)}
    with hooked(module, read=[last], edits=edits) as store:
        patterns = attention_patterns(module, ids)
    offset = 0 if start is None else 1
    with torch.no_grad():
        logits = module.unembed(module.norm(store[last])).float()  # (B, T, V)
        logp = torch.log_softmax(logits[:, offset:-1], dim=-1)  # predicting each repeated token but the first
        target = torch.from_numpy(ids[:, offset + 1:])
        loss = -logp.gather(-1, target[..., None])[..., 0].mean(dim=0)  # (2n − 1,)
    loss_by_token = np.concatenate([[np.nan], loss.double().numpy()])  # the first token has nothing to go on
    if offset:
        loss_by_token[0] = float(-torch.log_softmax(logits[:, 0], dim=-1)
                                 .gather(-1, torch.from_numpy(ids[:, 1:2]))[:, 0].mean())
    step = None if progress is None else (lambda fraction, what: progress(0.75 + 0.25 * fraction, what))
    copying = ov_copying(module, progress=step)
    if progress is not None:
        progress(1.0, "scored")
    return InductionScan(n, batch, seed, ids, offset, loss_by_token, prefix_scores(patterns, n, offset), copying)
