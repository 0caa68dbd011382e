"""The exercises: what each asks for, where it belongs, and its hints.

Starter files live in ``lessons/exercises`` (content), reference solutions in
``lessons/exercises/solutions``; the checks that judge them are in
:mod:`workbench.exercises.checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    track: str
    function: str
    file_name: str
    """The starter's name in lessons/exercises and in the workspace."""
    hints: tuple[str, ...]
    needs: tuple[str, ...] = ()
    """The earlier exercises whose modules this one imports (Build a GPT): a failure here is traced to them."""

    @property
    def package(self) -> str | None:
        """The package folder the file lives in within the workspace (``mygpt``), or None for a lone file."""
        parent = Path(self.file_name).parent.name
        return parent or None

    @property
    def module(self) -> str | None:
        """The dotted module the learner's file is imported as (``mygpt.value``), for packaged exercises."""
        return f"{self.package}.{Path(self.file_name).stem}" if self.package else None

    @property
    def starter(self) -> Path:
        return Path(str(files("workbench_lessons") / "exercises" / self.file_name))

    @property
    def solution(self) -> Path:
        return Path(str(files("workbench_lessons") / "exercises" / "solutions" / f"{self.id}.py"))


def _gpt(id_: str, title: str, function: str, needs: tuple[str, ...], hints: tuple[str, ...]) -> Exercise:
    """One step of Build a GPT: mygpt/<name>.py in the workspace, importing the learner's earlier steps."""
    name = id_.removeprefix("gpt_")
    return Exercise(id_, title, "Build a GPT", function, f"mygpt/{name}.py", hints, needs)


# Build a GPT: each file is a module of the learner's package mygpt; `function` names what they write.
BUILD_A_GPT: dict[str, Exercise] = {
    e.id: e
    for e in [
        _gpt("gpt_value", "Scalar autograd", "Value", (), (
            "Use += in every _backward: a Value used twice, as in x * x, must collect a gradient from each use.",
            "exp and tanh can reuse out.data in the closure: their derivatives are out.data and 1 - out.data ** 2.",
            "topological_order: pop (node, expanded) pairs off a stack and append a node when it comes back expanded.",
            "backward: self.grad = 1.0, then node._backward() for node in reversed(topological_order(self)).",
        )),
        _gpt("gpt_tensor", "Autograd over arrays", "Tensor", ("gpt_value",), (
            "unbroadcast: sum axis 0 while grad.ndim > len(shape), then keepdims=True where shape has a 1.",
            "For @, np.swapaxes(other.data, -1, -2) transposes the last two axes; out.grad @ it is self's gradient.",
            "sum's backward: np.expand_dims(g, axis) if an axis was dropped, then np.broadcast_to(g, self.shape).",
            "A shape error in a += inside _backward usually means a gradient that skipped unbroadcast.",
        )),
        _gpt("gpt_layers", "Linear and embedding layers", "Linear", ("gpt_tensor",), (
            "take_rows: table.data[ids] gathers the rows for ids of any shape, giving ids.shape + (C,).",
            "np.add.at(table.grad, ids, out.grad) adds every row, even a repeated id's; table.grad[ids] += does not.",
            "Linear's weight: Tensor((rng.standard_normal((n_in, n_out)) * std).astype(dtype)); the bias is zeros.",
            "Linear.__call__ is x @ self.weight, plus self.bias only when it is not None.",
        )),
        _gpt("gpt_loss", "Cross-entropy and its gradient", "cross_entropy", ("gpt_tensor",), (
            "m = x.max(axis=1, keepdims=True); lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1)) has shape (N,).",
            "x[np.arange(N), t] picks each row's target logit; wrap the mean as np.asarray(mean, dtype=x.dtype).",
            "Backward: np.exp(x - lse[:, None]) is the softmax; subtract 1 at [rows, t], then scale by out.grad / N.",
            "Reshape that (N, V) gradient to logits.shape before adding it to logits.grad.",
        )),
        _gpt("gpt_softmax", "Softmax and its gradient", "softmax", ("gpt_tensor",), (
            "e = np.exp(x.data - x.data.max(axis=axis, keepdims=True)); s = e / e.sum(axis=axis, keepdims=True).",
            "Keep s in the closure: the backward needs the output s, never x.",
            "With g = out.grad, x.grad += s * (g - (g * s).sum(axis=axis, keepdims=True)).",
        )),
        _gpt("gpt_attention", "Causal attention", "causal_attention", ("gpt_softmax",), (
            "np.triu(np.full((T, T), -np.inf), k=1) is -inf above the diagonal and 0 on and below it.",
            "k.transpose(-1, -2) turns (..., T, D) into (..., D, T), so q @ it gives the (..., T, T) scores.",
            "Scale with * (1.0 / np.sqrt(D)), add the mask, then softmax(scores, axis=-1) @ v.",
        )),
        _gpt("gpt_rope", "RoPE as an operation", "rope", ("gpt_tensor",), (
            "theta = base ** (-np.arange(0, head_dim, 2) / head_dim); angle = np.arange(context)[:, None] * theta.",
            "In rope, take cos[:T] and sin[:T] with .astype(x.data.dtype); they broadcast over the leading axes.",
            "Split with x.data[..., :half] and x.data[..., half:]; join with np.concatenate([...], axis=-1).",
            "The backward is the forward with sin negated: g1 * c + g2 * s and g2 * c - g1 * s.",
        )),
        _gpt("gpt_norm", "RMSNorm", "RMSNorm", ("gpt_layers", "gpt_tensor"), (
            "__init__: self.eps = eps and self.weight = Tensor(np.ones(dim, dtype=dtype)).",
            "(x * x).mean(axis=-1, keepdims=True) is (..., 1), so it broadcasts back against x.",
            "x * (ms + self.eps) ** -0.5 * self.weight: every operation already has its backward.",
        )),
        _gpt("gpt_self_attention", "Causal self-attention", "SelfAttention",
             ("gpt_attention", "gpt_layers", "gpt_rope"), (
            "Linear(d_model, d_model, bias=False, rng=rng, dtype=dtype) for q, k and v; out adds std=out_std.",
            "Split heads with y.reshape(B, T, H, C // H).transpose(1, 2), giving (B, H, T, D).",
            "Rotate after the split, rope(q, cos, sin) and rope(k, cos, sin): the tables are per head; v stays.",
            "Merge with y.transpose(1, 2).reshape(B, T, C) before self.out; reshaping (B, H, T, D) as is mixes heads.",
        )),
        _gpt("gpt_mlp", "SiLU and the SwiGLU MLP", "SwiGLU", ("gpt_layers", "gpt_tensor"), (
            "sig = 1.0 / (1.0 + np.exp(-x.data)); the forward is x.data * sig.",
            "Keep sig in the closure: x.grad += out.grad * sig * (1.0 + x.data * (1.0 - sig)).",
            "gate and up are Linear(dim, hidden, bias=False, ...); down is Linear(hidden, dim, ..., std=out_std).",
            "__call__ is self.down(silu(self.gate(x)) * self.up(x)); Tensor * Tensor is elementwise.",
        )),
        _gpt("gpt_block", "The transformer block", "Block",
             ("gpt_layers", "gpt_mlp", "gpt_norm", "gpt_self_attention"), (
            "RMSNorm(d_model, dtype=dtype) twice; SelfAttention and SwiGLU take rng, out_std and dtype as keywords.",
            "Normalize only the sub-layer's input: x + self.attn(self.attn_norm(x), cos, sin) keeps x itself as is.",
            "The second half, x + self.ffn(self.ffn_norm(x)), reads the x the first half returned.",
        )),
        _gpt("gpt_model", "The GPT", "GPT", ("gpt_block", "gpt_layers", "gpt_loss", "gpt_norm", "gpt_rope"), (
            "hidden = hidden or 32 * math.ceil(8 * d_model / 3 / 32); out_std = 0.02 / math.sqrt(2 * n_layers).",
            "self.blocks = [Block(d_model, n_heads, hidden, rng=rng, out_std=out_std, dtype=dtype) for _ in ...].",
            "rope_tables(d_model // n_heads, context) gives the per-head tables: self.cos, self.sin = ...",
            "The logits are self.norm(x) @ self.embed.weight.transpose(0, 1): (B, T, C) @ (C, V).",
        )),
        _gpt("gpt_adamw", "AdamW and gradient clipping", "AdamW", ("gpt_tensor",), (
            "self.m = [np.zeros_like(p.data) for p in self.params], the same for self.v, and self.t = 0.",
            "Update the state in place, m *= b1 then m += (1 - b1) * p.grad, so self.m keeps the same arrays.",
            "Increment self.t before the bias correction m / (1 - b1 ** self.t); decay only if p.data.ndim >= 2.",
            "clip_grad_norm: np.sqrt of the summed (p.grad.astype(np.float64) ** 2).sum(); scale only below 1.",
        )),
        _gpt("gpt_schedule", "Warm-up and cosine decay", "lr_at", (), (
            "Warm-up counts from step + 1, so step 0 already gets max_lr / warmup rather than 0.",
            "progress = min(1.0, (step - warmup) / max(1, total - warmup)) goes from 0 to 1, then stays at 1.",
            "With floor = max_lr * min_lr_ratio: floor + (max_lr - floor) * 0.5 * (1 + math.cos(math.pi * progress)).",
        )),
        _gpt("gpt_train", "The training loop", "train", ("gpt_adamw", "gpt_model", "gpt_schedule"), (
            "get_batch: x = np.stack([data[s:s + seq_len] for s in starts]), and y the same from s + 1.",
            "Call rng.integers once per batch, not once per row, so a seeded rng gives the batches the checks expect.",
            "train_step: zero_grad, model.loss(x, y), backward, clip_grad_norm(optimizer.params, max_norm), step(lr).",
            "train passes steps as lr_at's total; return float(loss.data) from train_step so the list holds numbers.",
        )),
        _gpt("gpt_sample", "Sampling from your model", "generate", ("gpt_model",), (
            "Work in float64: z = logits.astype(np.float64) / temperature.",
            "kth = np.sort(z)[-top_k]; np.where(z >= kth, z, -np.inf) keeps the top_k largest and any ties.",
            "cdf = np.cumsum(p / p.sum()); the token is min(np.searchsorted(cdf, u, side='right'), len(z) - 1).",
            "generate: model(np.asarray([ids[-model.context:]])).data[0, -1] is the last position's logits (V,).",
        )),
    ]
}

EXERCISES: dict[str, Exercise] = {
    e.id: e
    for e in [
        Exercise("softmax", "Stable softmax", "Getting started", "softmax", "01_softmax.py", (
            "x.max(axis=-1, keepdims=True) keeps the reduced axis, so it broadcasts against x.",
            "exp(x - m) is at most 1 for every entry, and exactly 1 for the maximum.",
            "Divide by e.sum(axis=-1, keepdims=True); np.exp keeps x's dtype.",
        )),
        Exercise("logsumexp", "logsumexp", "Getting started", "logsumexp", "02_logsumexp.py", (
            "Take m = x.max(axis=-1, keepdims=True) first.",
            "m + log(sum(exp(x - m))) has the reduced axis still of size 1: drop it with [..., 0].",
        )),
        Exercise("count_pairs", "Count adjacent pairs", "Tokenization", "count_pairs", "03_count_pairs.py", (
            "zip(symbols, symbols[1:]) walks the adjacent pairs of one word.",
            "Add the word's count, not 1, for each pair it contains.",
        )),
        Exercise("merge_pair", "Apply one merge", "Tokenization", "merge_pair", "04_merge_pair.py", (
            "Walk with an index i; when symbols[i], symbols[i + 1] is the pair, emit new_id and jump by 2.",
            "Build a new list; never assign into the input.",
        )),
        Exercise("bpe_encode", "Encode a piece with ranks", "Tokenization", "bpe_encode", "05_bpe_encode.py", (
            "Keep parts as a list of bytes objects, starting with piece[i:i+1] for each i.",
            "Each round, look up parts[i] + parts[i + 1] in ranks for every i and take the smallest rank.",
            "Merge with parts[i:i+2] = [parts[i] + parts[i+1]]; stop when no pair is in ranks.",
        )),
        Exercise("wordpiece", "WordPiece longest match", "Tokenization", "wordpiece", "06_wordpiece.py", (
            "Try end positions from the end of the word down to start + 1.",
            "Only pieces after the first carry the ## prefix.",
            "If no end position matches, the whole word is unk, not just that piece.",
        )),
        Exercise("causal_mask", "Causal mask", "Attention", "causal_mask", "07_causal_mask.py", (
            "np.tril keeps the lower triangle, diagonal included.",
            "Return dtype bool: np.ones((n, n), dtype=bool).",
        )),
        Exercise("attention", "Scaled dot-product attention", "Attention", "attention", "08_attention.py", (
            "np.swapaxes(k, -1, -2) transposes the last two axes of any batch shape.",
            "np.where(mask, scores, -np.inf) applies the mask before the softmax.",
            "Subtract the row maximum before exp, as in the softmax exercise; multiply the weights by v.",
        )),
        Exercise("rope", "Rotary position embeddings", "Positional encodings", "rope", "09_rope.py", (
            "theta = base ** (-np.arange(d // 2) * 2 / d); angles = positions[:, None] * theta has shape (L, d/2).",
            "cos and sin of the angles broadcast against x1 and x2 over the leading axes.",
            "Compute the angles in float64, then cast cos and sin to x's dtype.",
        )),
        Exercise("top_k", "Top-k filter", "Decoding", "top_k_filter", "10_top_k.py", (
            "np.argsort(-logits, axis=-1, kind='stable')[..., :k] gives the k kept indices, lower index first on ties.",
            "Start from np.full_like(logits, -np.inf) and copy the kept values back with np.put_along_axis.",
        )),
        Exercise("top_p", "Top-p (nucleus) filter", "Decoding", "top_p_filter", "11_top_p.py", (
            "Sort indices by descending logit with a stable sort.",
            "Softmax the sorted logits, then np.cumsum: keep up to and including the first position reaching p.",
            "np.searchsorted(cumulative, p * cumulative[-1]) + 1 is the number to keep; sum in float64.",
        )),
        Exercise("kv_cache_append", "KV-cache append", "KV cache and serving", "kv_cache_append", "12_kv_cache_append.py", (
            "Check length + n against cache_k.shape[0] before writing anything.",
            "Slice assignment cache_k[length:length + n] = k_new writes in place.",
        )),
        Exercise("moe_router", "Top-k MoE router", "Mixture of experts", "moe_router", "13_moe_router.py", (
            "A stable argsort of -router_logits along axis 1 ranks the experts per token.",
            "np.take_along_axis gathers the chosen logits; softmax over those k only.",
        )),
    ]
} | BUILD_A_GPT

TRACK_ORDER = ("Getting started", "Tokenization", "Positional encodings", "Attention", "Decoding",
               "KV cache and serving", "Mixture of experts", "Build a GPT")
"""The titles (track.toml) of the tracks whose lessons link exercises, in course order: an exercise's track
is the one whose lesson links it, so the exercise view and the palette file it where the lesson is."""


def needs_in_order(exercise_id: str) -> list[str]:
    """Every exercise exercise_id imports, directly or through another, earliest in the course first."""
    found: set[str] = set()
    stack = list(EXERCISES[exercise_id].needs)
    while stack:
        need = stack.pop()
        if need not in found:
            found.add(need)
            stack.extend(EXERCISES[need].needs)
    order = list(EXERCISES)
    return sorted(found, key=order.index)


def unsolved(solved: Callable[[str], bool]) -> list[str]:
    """The Build a GPT steps not yet solved, in course order."""
    return [e.id for e in BUILD_A_GPT.values() if not solved(e.id)]


def by_track() -> list[tuple[str, list[Exercise]]]:
    """Exercises grouped by track, in course order."""
    return [(track, [e for e in EXERCISES.values() if e.track == track]) for track in TRACK_ORDER]
