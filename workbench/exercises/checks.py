"""How each exercise is judged: fresh random cases, a comparison, and a race.

The cases and comparisons run in the parent (see run.py), on what the
sandboxed child sends back; the child imports this module only to race,
after the verdict. The expected answers come from the engines' own
implementations (or, for the KV-cache append, which has no engine yet, from
the task's two-line rule), not from the solution files, so the tests that
run the solutions through these checks are real tests.
Every case draws new inputs from a seeded generator, so a hard-coded answer
fails. Comparisons scale their tolerance to the dtype and refuse outputs of
the wrong type, shape or dtype, and outputs that are all zeros or the input
itself when the answer is not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from inspect import signature
from typing import Any

import numpy as np
from workbench_engines.backends import available

from workbench.exercises.calls import Call
from workbench.exercises.wire import Opaque

Args = tuple[Any, ...]
Case = tuple[str, Args]


@dataclass
class Spec:
    expected: Callable[..., Any]
    """Computes the right answer, with the exercise function's signature."""
    cases: Callable[[np.random.Generator], list[Case]]
    compare: Callable[[Any, Any, Args], str | None]
    race_args: Callable[[np.random.Generator], Args] | None
    """The race's inputs; None for exercises that are not raced (Build a GPT's steps)."""
    peers: Callable[[], dict[str, Callable[..., Any]]] = field(default=dict)
    """Other implementations raced on the same inputs (native C, torch)."""
    observe: Callable[[Call], Any] = field(default=lambda call: call.returned)
    """What of a call is compared (e.g. its return value and the arrays it wrote)."""
    writes_args: bool = False
    """The function works in place: the child sends its arguments back after the call."""
    answer_errors: tuple[str, ...] = ()
    """Exceptions that are an answer, not a failure (the KV-cache append raises ValueError on overflow)."""
    race_wrap: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None
    """Turns a solution into what the race times (e.g. a loop over many words)."""


def race_label(spec: Spec, args: Args) -> str:
    """The race's case, named from the inputs actually drawn and the raced call's parameter names."""
    raced = (spec.race_wrap or (lambda f: f))(spec.expected)
    return f"race on {describe_inputs(args, list(signature(raced).parameters))}"


def judge(spec: Spec, expected: Call, got: Call, args: Args) -> str | None:
    """None when the learner's call gives the right answer, else why not; never raises for what got holds."""
    if expected.error and expected.error_type not in spec.answer_errors:
        raise RuntimeError(f"the reference failed on its own case: {expected.error}")
    if got.error and got.error_type not in spec.answer_errors:
        return got.error
    try:
        return spec.compare(spec.observe(expected), spec.observe(got), args)
    except Exception as exc:  # noqa: BLE001 - an output of a shape no comparison foresaw is still a wrong one
        return f"the output could not be compared with the answer ({type(exc).__name__}: {exc})"[:300]


# ---- comparisons --------------------------------------------------------------

TOLERANCE = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-10, 1e-12)}


def describe_value(value: Any) -> str:
    if isinstance(value, Opaque):
        return value.description
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}, dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:120]


def compare_arrays(expected: np.ndarray, got: Any, args: Args = ()) -> str | None:
    """None when got matches expected within the dtype's tolerance, else what differs and where."""
    if not isinstance(got, np.ndarray):
        return f"expected {describe_value(expected)}, got {describe_value(got)}"
    if got.shape != expected.shape:
        return f"expected shape {expected.shape}, got shape {got.shape}"
    if got.dtype != expected.dtype:
        return f"expected dtype {expected.dtype}, got {got.dtype}"
    if expected.dtype == bool:
        wrong = np.argwhere(got != expected)
        if len(wrong):
            at = tuple(int(i) for i in wrong[0])
            return f"at {at}: expected {expected[at]}, got {got[at]} ({len(wrong)} entries differ)"
        return None
    finite_expected = expected[np.isfinite(expected)]
    if finite_expected.size and np.any(finite_expected != 0) and not np.any(got):
        return "the output is all zeros"
    for arg in args:
        if (isinstance(arg, np.ndarray) and arg.shape == got.shape and not np.array_equal(arg, expected)
                and np.array_equal(arg, got, equal_nan=True)):
            return "the output equals the input unchanged"
    rtol, atol = TOLERANCE.get(expected.dtype, (1e-5, 1e-6))
    scale = float(np.max(np.abs(finite_expected), initial=1.0))
    close = np.isclose(got, expected, rtol=rtol, atol=atol * scale, equal_nan=True)
    if close.all():
        return None
    diff = np.where(close, 0.0, np.abs(np.nan_to_num(got.astype(np.float64) - expected, nan=np.inf, posinf=np.inf, neginf=np.inf)))
    at = np.unravel_index(int(np.argmax(diff)), diff.shape)
    at = tuple(int(i) for i in at)
    return (f"at index {at}: expected {expected[at]!r}, got {got[at]!r} "
            f"({int((~close).sum())} of {close.size} entries outside rtol={rtol:g})")


def compare_equal(expected: Any, got: Any, args: Args = ()) -> str | None:
    if type(got) is not type(expected):
        return f"expected {describe_value(expected)}, got {describe_value(got)}"
    if got == expected:
        return None
    if isinstance(expected, list):
        if len(got) != len(expected):
            return f"expected {len(expected)} items, got {len(got)}: expected {expected[:12]}…, got {got[:12]}…"
        k = next(i for i, (a, b) in enumerate(zip(expected, got)) if a != b)
        return f"at index {k}: expected {expected[k]!r}, got {got[k]!r}"
    if isinstance(expected, dict):
        missing = [key for key in expected if key not in got][:3]
        extra = [key for key in got if key not in expected][:3]
        wrong = [key for key in expected if key in got and got[key] != expected[key]][:3]
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"unexpected {extra}")
        if wrong:
            parts.append("; ".join(f"{k}: expected {expected[k]}, got {got[k]}" for k in wrong))
        return ", ".join(parts)
    return f"expected {expected!r}, got {got!r}"[:200]


def compare_pair_of_arrays(expected: tuple, got: Any, args: Args = ()) -> str | None:
    if not isinstance(got, tuple) or len(got) != 2:
        return f"expected a tuple (weights, experts), got {describe_value(got)}"
    weights = compare_arrays(expected[0], got[0], ())
    if weights:
        return f"weights: {weights}"
    experts = got[1]
    if not isinstance(experts, np.ndarray) or not np.issubdtype(experts.dtype, np.integer):
        return f"experts: expected an integer array, got {describe_value(experts)}"
    return None if np.array_equal(experts, expected[1]) else f"experts: expected {expected[1][:3].tolist()}…, got {experts[:3].tolist()}…"


# ---- inputs -------------------------------------------------------------------

def _describe_input(arg: Any) -> str:
    if isinstance(arg, np.ndarray):
        return f"{arg.dtype} {'×'.join(str(n) for n in arg.shape) or 'scalar'}"
    if isinstance(arg, (list, tuple, set, dict)):
        return f"{len(arg):,} {'entries' if isinstance(arg, dict) else 'items'}"
    if isinstance(arg, (bytes, str)):
        return f"{len(arg):,} {'bytes' if isinstance(arg, bytes) else 'characters'}"
    return repr(arg)[:20]


def describe_inputs(args: Args, names: Sequence[str] = ()) -> str:
    """The inputs as a label says them ("x = float32 512×4096", "q, k, v = float32 8×256×64"), so a label
    never claims a size it did not draw; names are the parameters', neighbours alike are said once."""
    groups: list[tuple[list[str], str]] = []
    for i, arg in enumerate(args):
        name, text = (names[i] if i < len(names) else f"#{i + 1}"), _describe_input(arg)
        if groups and groups[-1][1] == text:
            groups[-1][0].append(name)
        else:
            groups.append(([name], text))
    return "; ".join(f"{', '.join(group)} = {text}" for group, text in groups)


def _logits(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.float32, scale: float = 3.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _softmax_cases(rng: np.random.Generator) -> list[Case]:
    masked = _logits(rng, (4, 9))
    masked[:, rng.integers(1, 9)] = -np.inf
    width = int(rng.integers(3, 9))
    return [
        (f"random 2×{width}", (_logits(rng, (2, width)),)),
        ("logits near +1000 (overflow)", (_logits(rng, (3, 6)) + np.float32(1000),)),
        ("logits near -1000 (underflow)", (_logits(rng, (3, 6)) - np.float32(1000),)),
        ("3-D batch", (_logits(rng, (2, 3, int(rng.integers(4, 40)))),)),
        ("float64", (_logits(rng, (5, 17), np.float64),)),
        ("a single column", (_logits(rng, (4, 1)),)),
        ("masked entries (-inf)", (masked,)),
    ]


def _torch(fn_name: str):
    def run(*args):
        import torch

        return getattr(torch, fn_name)(torch.from_numpy(args[0]), dim=-1).numpy()

    return run


def _native(name: str):
    def run(x):
        from workbench_engines.softmax import native

        return getattr(native, name)(x, threads=1)

    return run


def _softmax_peers() -> dict[str, Callable[..., Any]]:
    peers: dict[str, Callable[..., Any]] = {"torch": _torch("softmax")}
    if available("native"):
        peers["native C"] = _native("softmax")
    return peers


def _logsumexp_peers() -> dict[str, Callable[..., Any]]:
    peers: dict[str, Callable[..., Any]] = {"torch": _torch("logsumexp")}
    if available("native"):
        peers["native C"] = _native("logsumexp")
    return peers


def _words(rng: np.random.Generator, n: int, alphabet: int = 6, longest: int = 9) -> list[list[int]]:
    return [rng.integers(0, alphabet, int(rng.integers(0, longest))).tolist() for _ in range(n)]


@cache
def _corpus_head() -> str:
    from workbench_engines.corpus import read_text

    return read_text(limit=400_000)


def _corpus_pieces(rng: np.random.Generator, n: int) -> list[bytes]:
    from workbench_engines.tokenizers.pretokenize import split

    text = _corpus_head()
    start = int(rng.integers(0, len(text) - 20_000))
    pieces = [p.encode("utf-8") for p in split(text[start : start + 20_000], "cl100k")]
    return pieces[:n]


def _cl100k_ranks() -> dict[bytes, int]:
    from workbench_engines.tokenizers.formats import _cl100k_ranks

    return _cl100k_ranks()


def _bpe_cases(rng: np.random.Generator) -> list[Case]:
    ranks = _cl100k_ranks()
    letters = "abcdefghijklmnopqrstuvwxyz"
    odd = "".join(rng.choice(list(letters + "éß日本👍 ")) for _ in range(int(rng.integers(5, 30))))
    pieces = _corpus_pieces(rng, 400)
    long = [p for p in pieces if len(p) > 6][:5] or pieces[:5]
    return [
        ("a single byte", (bytes([int(rng.integers(32, 127))]), ranks)),
        ("a whole-word token", (b" the", ranks)),
        *((f"corpus piece {p!r}", (p, ranks)) for p in long),
        ("unusual characters", (odd.encode("utf-8"), ranks)),
        ("a repeated letter", (b"z" * int(rng.integers(20, 60)), ranks)),
    ]


def _bpe_race_args(rng: np.random.Generator) -> Args:
    return (_corpus_pieces(rng, 3000), _cl100k_ranks())


def _over_pieces(fn: Callable[[bytes, dict], list[int]]):
    """Races run the function over many pieces: the call the race times."""
    def run(pieces, ranks):
        return [fn(p, ranks) for p in pieces]

    return run


def _bpe_native_peer() -> dict[str, Callable[..., Any]]:
    if not available("native"):
        return {}
    from workbench_engines.tokenizers.formats import load_cl100k

    encoder = load_cl100k("native")._native

    def run(pieces, ranks):
        return [a.tolist() for a in encoder.encode_batch(pieces, 1)]

    return {"native C": run}


def _wordpiece_vocab(rng: np.random.Generator) -> tuple[set[str], list[str]]:
    letters = list("abcdefgh")
    words = ["".join(rng.choice(letters, int(rng.integers(2, 9)))) for _ in range(60)]
    vocab = {"[UNK]"} | set(letters) | {"##" + c for c in letters}
    for w in words[:30]:
        vocab.add(w[: int(rng.integers(1, len(w) + 1))])
        cut = int(rng.integers(1, len(w)))
        vocab.add("##" + w[cut:])
    return vocab, words


def _over_words(fn: Callable[..., list[str]]):
    def run(words, vocab):
        return [fn(w, vocab) for w in words]

    return run


def _wordpiece_race_args(rng: np.random.Generator) -> Args:
    vocab, words = _wordpiece_vocab(rng)
    return ([words[int(i)] for i in rng.integers(0, len(words), 20_000)], vocab)


def _torch_tril(n: int) -> np.ndarray:
    import torch

    return torch.tril(torch.ones(n, n, dtype=torch.bool)).numpy()


def _wordpiece_cases(rng: np.random.Generator) -> list[Case]:
    vocab, words = _wordpiece_vocab(rng)
    cases: list[Case] = [(f"word {w!r}", (w, vocab)) for w in words[:8]]
    cases.append(("a character outside the vocabulary", (words[0] + "z", vocab)))
    cases.append(("a word longer than max_chars", ("a" * 101, vocab)))
    cases.append(("max_chars given", ("abcabc", vocab, "[UNK]", 5)))
    cases.append(("unaffable", ("unaffable", {"un", "##aff", "##able", "##a", "u", "[UNK]"})))
    return cases


def _attention_cases(rng: np.random.Generator) -> list[Case]:
    def qkv(batch: tuple[int, ...], lq: int, lk: int, d: int, dtype=np.float32):
        return (_logits(rng, (*batch, lq, d), dtype, 1.0), _logits(rng, (*batch, lk, d), dtype, 1.0),
                _logits(rng, (*batch, lk, d + 1), dtype, 1.0))

    lq = int(rng.integers(2, 9))
    causal = np.tril(np.ones((lq, lq), dtype=bool))
    random_mask = rng.random((3, 5)) < 0.6
    random_mask[:, 0] = True
    return [
        ("one head, no mask", (*qkv((), lq, lq + 2, 8),)),
        ("batch × heads, causal mask", (*qkv((2, 3), lq, lq, 16), causal)),
        ("a random mask", (*qkv((2,), 3, 5, 4), random_mask)),
        ("large scores (stability)", _large_scores(rng)),
        ("float64", qkv((2,), 5, 7, 8, np.float64)),
    ]


def _large_scores(rng: np.random.Generator) -> Args:
    """Scores in the thousands, far past exp's float32 range, with each query matching its own key
    by a wide margin, so the answer is well conditioned even in float32."""
    q = _logits(rng, (4, 8), scale=30.0)
    return q, q.copy(), _logits(rng, (4, 5), scale=1.0)


def _sdpa(q, k, v, mask=None):
    import torch
    from torch.nn.functional import scaled_dot_product_attention

    m = None if mask is None else torch.from_numpy(mask)
    return scaled_dot_product_attention(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), attn_mask=m).numpy()


def _attention_peers() -> dict[str, Callable[..., Any]]:
    """The project's own kernels on the race input (which has no mask)."""
    from workbench_engines.attention import attention
    peers: dict[str, Callable[..., Any]] = {"engines NumPy": lambda q, k, v, mask=None: attention(q, k, v)}
    if available("native"):
        peers["native C flash"] = lambda q, k, v, mask=None: attention(q, k, v, backend="native", threads=1)
    return peers


def _rope_cases(rng: np.random.Generator) -> list[Case]:
    L = int(rng.integers(3, 12))
    return [
        ("one sequence", (_logits(rng, (L, 8), scale=1.0), np.arange(L))),
        ("batch × heads", (_logits(rng, (2, 3, L, 16), scale=1.0), np.arange(L))),
        ("positions with an offset", (_logits(rng, (L, 8), scale=1.0), np.arange(L) + int(rng.integers(100, 5000)))),
        ("another base", (_logits(rng, (L, 32), scale=1.0), np.arange(L), 500.0)),
        ("float64", (_logits(rng, (L, 8), np.float64, 1.0), np.arange(L))),
    ]


def _top_k_cases(rng: np.random.Generator) -> list[Case]:
    V = int(rng.integers(20, 80))
    ties = rng.integers(0, 4, (3, 12)).astype(np.float32)
    return [
        ("random rows", (_logits(rng, (4, V)), int(rng.integers(1, V)))),
        ("k = 1", (_logits(rng, (2, V)), 1)),
        ("k = V keeps everything", (_logits(rng, (2, V)), V)),
        ("ties (lower index first)", (ties, 5)),
        ("one row, float64", (_logits(rng, (V,), np.float64), 3)),
    ]


def _top_p_cases(rng: np.random.Generator) -> list[Case]:
    V = int(rng.integers(30, 200))
    peaked = _logits(rng, (V,))
    peaked[int(rng.integers(0, V))] = 50.0
    return [
        ("p = 0.9", (_logits(rng, (V,)), 0.9)),
        ("p = 0.5", (_logits(rng, (V,)), 0.5)),
        ("p = 1 keeps everything", (_logits(rng, (V,)), 1.0)),
        ("tiny p keeps the top token", (_logits(rng, (V,)), 1e-6)),
        ("one dominant token", (peaked, 0.9)),
        ("ties", (rng.integers(0, 3, V).astype(np.float32), 0.7)),
        ("float64", (_logits(rng, (V,), np.float64), 0.8)),
    ]


def _torch_top_k(logits, k):
    import torch

    t = torch.from_numpy(np.ascontiguousarray(logits))
    values, index = torch.topk(t, k, dim=-1)
    return torch.full_like(t, float("-inf")).scatter_(-1, index, values).numpy()


def _torch_top_p(logits, p):
    import torch

    t = torch.from_numpy(logits)
    sorted_logits, order = torch.sort(t, descending=True, stable=True)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
    keep = min(int(torch.searchsorted(cumulative, p * cumulative[-1:])[0]) + 1, t.shape[-1])  # as the reference
    out = torch.full_like(t, float("-inf"))
    out[order[:keep]] = sorted_logits[:keep]
    return out.numpy()


def _kv_cases(rng: np.random.Generator) -> list[Case]:
    heads, d, cap = 2, 4, 8

    def state(length: int, n: int):
        ck = _logits(rng, (cap, heads, d))
        cv = _logits(rng, (cap, heads, d))
        return (ck, cv, length, _logits(rng, (n, heads, d)), _logits(rng, (n, heads, d)))

    return [
        ("append to an empty cache", state(0, 3)),
        ("append after existing entries", state(int(rng.integers(1, 5)), 2)),
        ("fill to capacity exactly", state(5, 3)),
        ("overflow raises and changes nothing", state(6, 3)),
    ]


def _kv_observe(call: Call) -> tuple[Any, Any, Any]:
    """The result of a cache append: what it returned (or that it raised ValueError), and the caches afterwards."""
    cache_k, cache_v = call.args_after[:2] if call.args_after and len(call.args_after) >= 2 else (None, None)
    return ("ValueError" if call.error_type == "ValueError" else call.returned), cache_k, cache_v


def _kv_compare(expected, got, args) -> str | None:
    if got[0] != expected[0]:
        return f"expected {'a ValueError' if expected[0] == 'ValueError' else f'new length {expected[0]}'}, got {got[0]!r}"
    for name, e, g in (("cache_k", expected[1], got[1]), ("cache_v", expected[2], got[2])):
        if not isinstance(g, np.ndarray) or g.shape != e.shape:
            return f"{name} should stay an array of shape {e.shape}, got {describe_value(g)}"
        if not np.array_equal(e, g):
            row = int(np.argwhere(np.any(e != g, axis=(1, 2)))[0][0])
            return f"{name} position {row} differs from what it should hold after the append"
    return None


def _kv_race_args(rng: np.random.Generator) -> Args:
    heads, d = 8, 64
    return (np.zeros((4096, heads, d), np.float32), np.zeros((4096, heads, d), np.float32), 0,
            _logits(rng, (1, heads, d)), _logits(rng, (1, heads, d)))


def _moe_cases(rng: np.random.Generator) -> list[Case]:
    E = int(rng.integers(4, 16))
    ties = rng.integers(0, 3, (6, E)).astype(np.float32)
    return [
        ("top-2 of random logits", (_logits(rng, (10, E)), 2)),
        ("top-1 (switch routing)", (_logits(rng, (5, E)), 1)),
        ("ties (lower index first)", (ties, 3)),
        ("k = all experts", (_logits(rng, (4, E)), E)),
    ]


def _torch_moe(router_logits, k):
    import torch

    t = torch.from_numpy(router_logits)
    values, experts = torch.topk(t, k, dim=-1)
    return torch.softmax(values, dim=-1).numpy(), experts.numpy()


# ---- the right answers, from the engines --------------------------------------

def _softmax(x):
    from workbench_engines.softmax.reference import softmax

    return softmax(x)


def _logsumexp(x):
    from workbench_engines.softmax.reference import logsumexp

    return logsumexp(x)


def _count_pairs(words, counts):
    from workbench_engines.tokenizers.bpe_train import pair_counts

    return dict(pair_counts(words, counts))


def _merge_pair(symbols, pair, new_id):
    from workbench_engines.tokenizers.bpe_train import merge_pair

    return merge_pair(symbols, tuple(pair), new_id)


def _bpe_encode(piece, ranks):
    from workbench_engines.tokenizers.bpe_reference import bpe_merge

    return bpe_merge(piece, ranks)


_WORDPIECE: list[tuple[Any, str, int, Any]] = []


def _wordpiece(word, vocab, unk="[UNK]", max_chars=100):
    from workbench_engines.tokenizers.wordpiece import WordPiece

    # Build one model per vocabulary object (the race calls this 20,000 times
    # with the same set); holding the set itself keeps identity checks sound.
    if not _WORDPIECE or _WORDPIECE[0][0] is not vocab or _WORDPIECE[0][1:3] != (unk, max_chars):
        model = WordPiece({t: i for i, t in enumerate(sorted(vocab))}, unk_token=unk,
                          max_chars=max_chars, special_tokens=())
        _WORDPIECE[:] = [(vocab, unk, max_chars, model)]
    return _WORDPIECE[0][3].word_pieces(word)


def _causal_mask(n):
    from workbench_engines.attention.reference import allowed_mask

    return allowed_mask(n, n, causal=True, window=None)


def _attention(q, k, v, mask=None):
    # torch's SDPA (the exercise's arbitrary boolean mask is exactly its attn_mask).
    return _sdpa(q, k, v, mask)


def _rope(x, positions, base=10000.0):
    from workbench_engines.positional import rope

    return rope(x, positions, base)


def _top_k(logits, k):
    from workbench_engines.sampling.reference import top_k

    return top_k(logits, k)


def _top_p(logits, p):
    from workbench_engines.sampling.reference import top_p

    return top_p(logits, p)


def _kv_expected(cache_k, cache_v, length, k_new, v_new):
    """The task's rule: write after the valid prefix if it fits, else raise and change nothing."""
    n = k_new.shape[0]
    if length + n > cache_k.shape[0]:
        raise ValueError("does not fit")
    cache_k[length : length + n], cache_v[length : length + n] = k_new, v_new
    return length + n


def _moe_router(router_logits, k):
    from workbench_engines.moe.reference import route

    weights, experts, _ = route(router_logits, k)
    return weights.astype(router_logits.dtype), experts


SPECS: dict[str, Spec] = {
    "softmax": Spec(_softmax, _softmax_cases, compare_arrays, lambda rng: (_logits(rng, (512, 4096)),), _softmax_peers),
    "logsumexp": Spec(_logsumexp, _softmax_cases, compare_arrays, lambda rng: (_logits(rng, (512, 4096)),), _logsumexp_peers),
    "count_pairs": Spec(
        _count_pairs,
        lambda rng: [("random words", (w := _words(rng, 30), rng.integers(1, 9, len(w)).tolist())),
                     ("no words", ([], [])), ("one-symbol words", ([[1], [2]], [3, 4])),
                     ("a repeated pair", ([[5, 5, 5, 5]], [2]))],
        compare_equal,
        lambda rng: (w := _words(rng, 50_000, 200, 12), rng.integers(1, 50, len(w)).tolist()),
    ),
    "merge_pair": Spec(
        _merge_pair,
        lambda rng: [("random symbols", (s := rng.integers(0, 4, 40).tolist(), (s[0], s[1]) if len(s) > 1 else (0, 1), 99)),
                     ("overlapping 7 7 7", ([7, 7, 7], (7, 7), 9)), ("no occurrence", ([1, 2, 3], (3, 1), 9)),
                     ("empty", ([], (1, 2), 9)), ("pair at the end", ([4, 1, 2], (1, 2), 8))],
        compare_equal,
        lambda rng: (rng.integers(0, 8, 300_000).tolist(), (3, 5), 256),
    ),
    "bpe_encode": Spec(_bpe_encode, _bpe_cases, compare_equal, _bpe_race_args, _bpe_native_peer, race_wrap=_over_pieces),
    "wordpiece": Spec(_wordpiece, _wordpiece_cases, compare_equal, _wordpiece_race_args, race_wrap=_over_words),
    "causal_mask": Spec(
        _causal_mask,
        lambda rng: [("n = 1", (1,)), ("n = 4", (4,)), (f"n = {(n := int(rng.integers(5, 64)))}", (n,))],
        compare_arrays,
        lambda rng: (2048,),
        lambda: {"torch tril": _torch_tril},
    ),
    # (batch, heads, seq, dim): the engines' kernels take exactly four axes.
    "attention": Spec(_attention, _attention_cases, compare_arrays,
                      lambda rng: (_logits(rng, (1, 8, 256, 64), scale=1.0), _logits(rng, (1, 8, 256, 64), scale=1.0),
                                   _logits(rng, (1, 8, 256, 64), scale=1.0)),
                      _attention_peers),
    "rope": Spec(_rope, _rope_cases, compare_arrays, lambda rng: (_logits(rng, (8, 1024, 128), scale=1.0), np.arange(1024))),
    # Distinct values in the race: torch.topk breaks ties its own way.
    "top_k": Spec(_top_k, _top_k_cases, compare_arrays,
                  lambda rng: (rng.permuted(np.tile(np.arange(32000, dtype=np.float32) / 1000, (64, 1)), axis=1), 50),
                  lambda: {"torch topk": _torch_top_k}),
    "top_p": Spec(_top_p, _top_p_cases, compare_arrays, lambda rng: (_logits(rng, (100_000,)), 0.9),
                  lambda: {"torch sort": _torch_top_p}),
    "kv_cache_append": Spec(_kv_expected, _kv_cases, _kv_compare, _kv_race_args, observe=_kv_observe,
                            writes_args=True, answer_errors=("ValueError",)),
    "moe_router": Spec(_moe_router, _moe_cases, compare_pair_of_arrays, lambda rng: (_logits(rng, (4096, 64)), 2),
                       lambda: {"torch topk": _torch_moe}),
}
