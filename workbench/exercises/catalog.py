"""The exercises: what each asks for, where it belongs, and its hints.

Starter files live in ``lessons/exercises`` (content), reference solutions in
``lessons/exercises/solutions``; the checks that judge them are in
:mod:`workbench.exercises.checks`.
"""

from __future__ import annotations

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

    @property
    def starter(self) -> Path:
        return Path(str(files("workbench_lessons") / "exercises" / self.file_name))

    @property
    def solution(self) -> Path:
        return Path(str(files("workbench_lessons") / "exercises" / "solutions" / f"{self.id}.py"))


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
}

TRACK_ORDER = ("Getting started", "Tokenization", "Positional encodings", "Attention", "Decoding",
               "KV cache and serving", "Mixture of experts")
"""The titles (track.toml) of the tracks whose lessons link exercises, in course order: an exercise's track
is the one whose lesson links it, so the exercise view and the palette file it where the lesson is."""


def by_track() -> list[tuple[str, list[Exercise]]]:
    """Exercises grouped by track, in course order."""
    return [(track, [e for e in EXERCISES.values() if e.track == track]) for track in TRACK_ORDER]
