"""The cases each Build a GPT step is checked on, drawn fresh from a seeded generator every time.

Every case is ``(name, (driver, *arguments))``: the child runs the driver on
the learner's module, the parent computes :func:`specs.expected` on the same
arguments. Sizes stay small (a check takes about a second) and odd (3, 5, 7),
so a transposed axis or a hard-coded size shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.exercises.buildgpt.specs import HYPER, TINY, compare_case, expected
from workbench.exercises.checks import Case, Spec

F64 = "float64"


def _normal(rng: np.random.Generator, *shape: int, dtype=np.float64, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ---- plans ----------------------------------------------------------------------

def scalar_plan(rng: np.random.Generator, n_leaves: int, n_steps: int) -> tuple[list, list[float]]:
    """A random expression over n_leaves numbers, every leaf used, values kept in a safe range by tracking them."""
    leaves = [float(v) for v in rng.uniform(-2, 2, n_leaves)]
    values = list(leaves)
    plan: list[tuple] = []

    def add(step: tuple, value: float) -> None:
        plan.append(step)
        values.append(value)

    for k in range(n_steps):
        i = k if k < n_leaves else int(rng.integers(len(values)))
        j = int(rng.integers(len(values)))
        a, b = values[i], values[j]
        op = rng.choice(["add", "mul", "sub", "tanh", "pow", "exp", "log", "div", "raddc", "rsubc", "neg", "mulc"])
        if op == "mul" and abs(a * b) < 50:
            add(("mul", i, j), a * b)
        elif op == "sub":
            add(("sub", i, j), a - b)
        elif op == "pow":
            p = float(rng.choice([2.0, 3.0]))
            add(("pow", i, p), a ** p) if abs(a) < 3 else add(("tanh", i), float(np.tanh(a)))
        elif op == "exp" and a < 3:
            add(("exp", i), float(np.exp(a)))
        elif op == "log" and a > 0.1:
            add(("log", i), float(np.log(a)))
        elif op == "div" and abs(b) > 0.5:
            add(("div", i, j), a / b)
        elif op in ("raddc", "rsubc", "mulc"):
            c = round(float(rng.uniform(-2, 2)), 3)
            add((str(op), i, c), {"raddc": c + a, "rsubc": c - a, "mulc": a * c}[str(op)])
        elif op == "neg":
            add(("neg", i), -a)
        elif op == "tanh" or abs(a) > 10:
            add(("tanh", i), float(np.tanh(a)))
        else:
            add(("add", i, j), a + b)
    # One output that depends on every node: sum them (tanh keeps the sum's size down).
    last = len(values) - 1
    for node in range(len(values) - 1):
        plan.append(("add", last, node))
        last = len(leaves) + len(plan) - 1
    return plan, leaves


def value_cases(rng: np.random.Generator) -> list[Case]:
    a, b, c = (round(float(v), 4) for v in rng.uniform(-2, 2, 3))
    w1, x1, w2, x2, bias = (round(float(v), 4) for v in rng.uniform(-1, 1, 5))
    deep_leaves = [round(float(rng.uniform(0.5, 1.5)), 4)]
    deep = [("mulc", 0, 1.0001)] + [("mulc", k, 1.0001) for k in range(1, 1200)]
    random_plan, random_leaves = scalar_plan(rng, 4, 24)
    fd_plan, fd_leaves = scalar_plan(rng, 3, 16)
    return [
        (f"a*b + c at {a:g}, {b:g}, {c:g}", ("value", [("mul", 0, 1), ("add", 3, 2)], [a, b, c])),
        ("a value used twice: a*a + a (gradients add up)", ("value", [("mul", 0, 0), ("add", 1, 0)], [a])),
        ("a tanh neuron: tanh(w1*x1 + w2*x2 + b)", ("value", [("mul", 0, 1), ("mul", 2, 3), ("add", 5, 6),
                                                              ("add", 7, 4), ("tanh", 8)], [w1, x1, w2, x2, bias])),
        ("exp, log and powers: log(exp(a) + b**2) / c", ("value", [("exp", 0), ("pow", 1, 2.0), ("add", 3, 4),
                                                                   ("log", 5), ("div", 6, 2)],
                                                         [a, b, c if abs(c) > 0.3 else 1.5])),
        ("numbers on either side: 3 - a, 2 + a, -a, a / 4", ("value", [("rsubc", 0, 3.0), ("raddc", 0, 2.0),
                                                                      ("neg", 0), ("divc", 0, 4.0), ("mul", 1, 2),
                                                                      ("add", 5, 3), ("add", 6, 4)], [a])),
        ("a chain of 1,200 operations (no recursion limit)", ("value", deep, deep_leaves)),
        (f"a random expression of {len(random_plan)} operations", ("value", random_plan, random_leaves)),
        ("gradient check: finite differences of your forward", ("value_fd", fd_plan, fd_leaves)),
    ]


def _weighted(plan: list, node: int, n_leaves: int, weight_leaf: int) -> list:
    """plan, then sum(node * weight): one scalar whose gradient reaches every entry differently."""
    mul = n_leaves + len(plan)
    return [*plan, ("mul", node, weight_leaf), ("sum", mul, None, False)]


def tensor_cases(rng: np.random.Generator) -> list[Case]:
    n, k, m = (int(v) for v in rng.integers(2, 6, 3))
    A, b = _normal(rng, n, k), _normal(rng, k)
    col, row = _normal(rng, n, 1), _normal(rng, 1, k)
    W = _normal(rng, n, k)
    B3, M = _normal(rng, 3, n, k), _normal(rng, k, m)
    pos = rng.uniform(0.5, 2.0, (n, k))
    f32 = [_normal(rng, n, k, dtype=np.float32), _normal(rng, k, m, dtype=np.float32), _normal(rng, n, m, dtype=np.float32)]
    # Kept small (exp of at most a few): the check's f must not dwarf its own rounding.
    fd_leaves = [_normal(rng, n, k, scale=0.5), _normal(rng, k, m, scale=0.5), rng.uniform(0.5, 2.0, (n, m)),
                 _normal(rng, n, 1, scale=0.5)]
    fd_plan = [("matmul", 0, 1), ("mul", 4, 2), ("add", 5, 3), ("exp", 6), ("log", 2), ("add", 7, 8),
               ("sum", 9, 1, True), ("mean", 9, 0, False), ("mul", 10, 11), ("sum", 12, None, False)]
    return [
        (f"broadcast add: ({n},{k}) + ({k},)", ("tensor", _weighted([("add", 0, 1)], 3, 3, 2), [A, b, W])),
        (f"broadcast mul: ({n},1) * (1,{k})", ("tensor", _weighted([("mul", 0, 1)], 3, 3, 2), [col, row, W])),
        (f"matmul: ({n},{k}) @ ({k},{m})", ("tensor", _weighted([("matmul", 0, 1)], 3, 3, 2),
                                            [A, M, _normal(rng, n, m)])),
        (f"batched matmul, shared right side: (3,{n},{k}) @ ({k},{m})",
         ("tensor", _weighted([("matmul", 0, 1)], 3, 3, 2), [B3, M, _normal(rng, 3, n, m)])),
        ("sum over an axis, kept and dropped", ("tensor", [("sum", 0, 1, True), ("mul", 0, 2), ("sum", 3, 0, False),
                                                            ("sum", 4, None, False)], [A, W])),
        ("exp, log and a power: (log(exp(x) + y)) ** 2", ("tensor", _weighted([("exp", 0), ("add", 3, 1), ("log", 4),
                                                                              ("pow", 5, 2.0)], 6, 3, 2),
                                                          [A, pos, W])),
        ("a tensor used twice: x * x + x", ("tensor", _weighted([("mul", 0, 0), ("add", 2, 0)], 3, 2, 1), [A, W])),
        ("reshape, transpose, mean and division",
         ("tensor", [("reshape", 0, (k, n)), ("transpose", 3, 0, 1), ("div", 4, 1), ("mean", 5, -1, True),
                     ("sub", 5, 6), ("mul", 7, 2), ("sum", 8, None, False)], [A, pos, W])),
        ("float32 stays float32: (x @ w + b) * 2", ("tensor", _weighted([("matmul", 0, 1), ("mulc", 3, 2.0)], 4, 3, 2),
                                                    f32)),
        ("gradient check: finite differences of your forward", ("tensor_fd", fd_plan, fd_leaves)),
    ]


# ---- operations and layers ------------------------------------------------------

def layers_cases(rng: np.random.Generator) -> list[Case]:
    b, t, n_in, n_out = 2, int(rng.integers(3, 6)), int(rng.integers(3, 7)), int(rng.integers(2, 6))
    v, c = int(rng.integers(6, 11)), int(rng.integers(3, 6))
    x = _normal(rng, b, t, n_in)
    W, bias = _normal(rng, n_in, n_out), _normal(rng, n_out)
    ids = rng.integers(0, v, (b, t))
    ids[0, :2] = ids[1, 0]  # a row picked three times
    table = _normal(rng, v, c)
    seed = int(rng.integers(2**31))
    lin = {"n_in": n_in, "n_out": n_out, "bias": True, "dtype": F64}
    return [
        (f"Linear with bias on x ({b},{t},{n_in})", ("module", "run", "Linear", lin, {"weight": W, "bias": bias}, x, [],
                                                     _normal(rng, b, t, n_out))),
        ("Linear without bias", ("module", "run", "Linear", lin | {"bias": False}, {"weight": W}, x, [],
                                 _normal(rng, b, t, n_out))),
        ("Linear: gradient check", ("module", "fd", "Linear", lin, {"weight": W, "bias": bias}, x, [],
                                    _normal(rng, b, t, n_out))),
        ("take_rows with a row picked three times", ("op", "run", "take_rows", {"table": table}, {"array:ids": ids},
                                                     _normal(rng, b, t, c))),
        ("Embedding on ids", ("module", "run", "Embedding", {"n_rows": v, "dim": c, "dtype": F64}, {"weight": table},
                              ids, [], _normal(rng, b, t, c))),
        ("Linear(512, 256) starts at N(0, 0.02²) weights and zero bias, float32",
         ("init", "Linear", {"n_in": 512, "n_out": 256, "seed": seed})),
        ("Embedding(400, 300) starts at N(0, 0.02²), float32",
         ("init", "Embedding", {"n_rows": 400, "dim": 300, "seed": seed})),
    ]


def loss_cases(rng: np.random.Generator) -> list[Case]:
    n, v = int(rng.integers(3, 8)), int(rng.integers(4, 12))
    targets = rng.integers(0, v, n)
    big = _normal(rng, n, v, scale=3.0) + 1000.0
    return [
        (f"logits ({n},{v})", ("op", "run", "cross_entropy", {"logits": _normal(rng, n, v, scale=2.0)},
                               {"array:targets": targets}, None)),
        ("logits near +1000 (logsumexp must not overflow)", ("op", "run", "cross_entropy", {"logits": big},
                                                             {"array:targets": targets}, None)),
        ("logits (B, T, V) with targets (B, T)", ("op", "run", "cross_entropy", {"logits": _normal(rng, 2, 3, v)},
                                                  {"array:targets": rng.integers(0, v, (2, 3))}, None)),
        ("an upstream gradient of 2.5 (the loss scaled)", ("op", "run", "cross_entropy",
                                                           {"logits": _normal(rng, n, v)},
                                                           {"array:targets": targets}, np.float64(2.5))),
        ("float32 logits give a float32 loss", ("op", "run", "cross_entropy",
                                                {"logits": _normal(rng, n, v, dtype=np.float32)},
                                                {"array:targets": targets}, None)),
        ("gradient check: finite differences of your forward", ("op", "fd", "cross_entropy",
                                                                {"logits": _normal(rng, n, v)},
                                                                {"array:targets": targets}, None)),
    ]


def softmax_cases(rng: np.random.Generator) -> list[Case]:
    n, v = int(rng.integers(2, 6)), int(rng.integers(3, 9))
    masked = _normal(rng, n, v)
    masked[:, int(rng.integers(1, v))] = -np.inf
    return [
        (f"rows of ({n},{v})", ("op", "run", "softmax", {"x": _normal(rng, n, v)}, {}, _normal(rng, n, v))),
        ("along axis 0", ("op", "run", "softmax", {"x": _normal(rng, n, v)}, {"axis": 0}, _normal(rng, n, v))),
        ("values near 1000", ("op", "run", "softmax", {"x": _normal(rng, n, v) + 1000}, {}, _normal(rng, n, v))),
        ("a masked column (-inf): probability 0, gradient 0", ("op", "run", "softmax", {"x": masked}, {},
                                                                 _normal(rng, n, v))),
        ("4-D scores (B, H, T, T)", ("op", "run", "softmax", {"x": _normal(rng, 2, 2, 3, 3)}, {},
                                     _normal(rng, 2, 2, 3, 3))),
        ("gradient check: finite differences of your forward", ("op", "fd", "softmax", {"x": _normal(rng, n, v)}, {},
                                                                _normal(rng, n, v))),
    ]


def attention_cases(rng: np.random.Generator) -> list[Case]:
    def qkv(b: int, h: int, t: int, d: int, dtype=np.float64) -> dict[str, np.ndarray]:
        return {name: _normal(rng, b, h, t, d, dtype=dtype) for name in ("q", "k", "v")}
    t = int(rng.integers(4, 9))
    return [
        ("one head, 5 positions", ("op", "run", "causal_attention", qkv(1, 1, 5, 4), {}, _normal(rng, 1, 1, 5, 4))),
        (f"(2, 3, {t}, 8)", ("op", "run", "causal_attention", qkv(2, 3, t, 8), {}, _normal(rng, 2, 3, t, 8))),
        ("a single position", ("op", "run", "causal_attention", qkv(2, 2, 1, 4), {}, _normal(rng, 2, 2, 1, 4))),
        ("float32 stays float32", ("op", "run", "causal_attention", qkv(1, 2, 6, 4, np.float32), {},
                                   _normal(rng, 1, 2, 6, 4, dtype=np.float32))),
        ("gradient check: finite differences of your forward", ("op", "fd", "causal_attention", qkv(1, 2, 4, 4), {},
                                                                _normal(rng, 1, 2, 4, 4))),
    ]


def _tables(head_dim: int, context: int, base: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    theta = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angle = np.arange(context, dtype=np.float64)[:, None] * theta
    return np.cos(angle), np.sin(angle)


def rope_cases(rng: np.random.Generator) -> list[Case]:
    d, t, context = int(rng.choice([4, 8, 16])), int(rng.integers(3, 9)), 24
    base = float(rng.choice([100.0, 10000.0]))
    cos, sin = _tables(d, context, base)
    extra = {"array:cos": cos, "array:sin": sin}
    return [
        (f"rope_tables({d}, {context}, base={base:g})", ("op_tables", d, context, base)),
        (f"rotate (2, 2, {t}, {d}), tables longer than T", ("op", "run", "rope", {"x": _normal(rng, 2, 2, t, d)}, extra,
                                                            _normal(rng, 2, 2, t, d))),
        ("float32 x stays float32", ("op", "run", "rope", {"x": _normal(rng, 1, 3, t, d, dtype=np.float32)}, extra,
                                     _normal(rng, 1, 3, t, d, dtype=np.float32))),
        ("gradient check: finite differences of your forward", ("op", "fd", "rope", {"x": _normal(rng, 1, 2, t, d)},
                                                                extra, _normal(rng, 1, 2, t, d))),
    ]


def norm_cases(rng: np.random.Generator) -> list[Case]:
    c, t = int(rng.integers(3, 9)), int(rng.integers(2, 5))
    gain = rng.uniform(0.5, 1.5, c)
    small = _normal(rng, 2, t, c, scale=1e-3)  # eps matters at this size: a wrong default shows
    return [
        (f"RMSNorm({c}) on (2, {t}, {c})", ("module", "run", "RMSNorm", {"dim": c, "dtype": F64}, {"weight": gain},
                                            _normal(rng, 2, t, c, scale=2.0), [], _normal(rng, 2, t, c))),
        ("rows of size 1e-3, where eps = 1e-5 matters", ("module", "run", "RMSNorm", {"dim": c, "dtype": F64},
                                                         {"weight": gain}, small, [], _normal(rng, 2, t, c))),
        ("gradient check: finite differences of your forward", ("module", "fd", "RMSNorm", {"dim": c, "dtype": F64},
                                                                {"weight": gain}, _normal(rng, 1, t, c), [],
                                                                _normal(rng, 1, t, c))),
    ]


def _attention_params(rng: np.random.Generator, c: int, prefix: str = "") -> dict[str, np.ndarray]:
    return {f"{prefix}{name}.weight": _normal(rng, c, c, scale=c ** -0.5) for name in ("q", "k", "v", "out")}


def self_attention_cases(rng: np.random.Generator) -> list[Case]:
    heads, head_dim = int(rng.choice([1, 2, 4])), int(rng.choice([2, 4]))
    c, t = heads * head_dim, int(rng.integers(3, 8))
    cos, sin = _tables(head_dim, 16)
    init = {"d_model": c, "n_heads": heads, "dtype": F64}
    return [
        (f"{heads} head(s) of {head_dim}, x (2, {t}, {c})",
         ("module", "run", "SelfAttention", init, _attention_params(rng, c), _normal(rng, 2, t, c), [cos, sin],
          _normal(rng, 2, t, c))),
        ("gradient check: finite differences of your forward",
         ("module", "fd", "SelfAttention", init, _attention_params(rng, c), _normal(rng, 1, t, c), [cos, sin],
          _normal(rng, 1, t, c))),
    ]


def mlp_cases(rng: np.random.Generator) -> list[Case]:
    c, hidden, t = int(rng.integers(3, 7)), int(rng.integers(4, 10)), int(rng.integers(2, 5))

    def weights() -> dict[str, np.ndarray]:
        return {"gate.weight": _normal(rng, c, hidden), "up.weight": _normal(rng, c, hidden),
                "down.weight": _normal(rng, hidden, c)}
    init = {"dim": c, "hidden": hidden, "dtype": F64}
    return [
        ("silu on (3, 7), large values included", ("op", "run", "silu", {"x": _normal(rng, 3, 7, scale=4.0)}, {},
                                                   _normal(rng, 3, 7))),
        ("silu: gradient check", ("op", "fd", "silu", {"x": _normal(rng, 2, 5)}, {}, _normal(rng, 2, 5))),
        (f"SwiGLU({c}, {hidden}) on (2, {t}, {c})", ("module", "run", "SwiGLU", init, weights(),
                                                     _normal(rng, 2, t, c), [], _normal(rng, 2, t, c))),
        ("SwiGLU: gradient check", ("module", "fd", "SwiGLU", init, weights(), _normal(rng, 1, t, c), [],
                                    _normal(rng, 1, t, c))),
    ]


def _block_params(rng: np.random.Generator, c: int, hidden: int, prefix: str = "") -> dict[str, np.ndarray]:
    return (_attention_params(rng, c, prefix + "attn.")
            | {f"{prefix}attn_norm.weight": rng.uniform(0.5, 1.5, c), f"{prefix}ffn_norm.weight": rng.uniform(0.5, 1.5, c),
               f"{prefix}ffn.gate.weight": _normal(rng, c, hidden, scale=c ** -0.5),
               f"{prefix}ffn.up.weight": _normal(rng, c, hidden, scale=c ** -0.5),
               f"{prefix}ffn.down.weight": _normal(rng, hidden, c, scale=hidden ** -0.5)})


def block_cases(rng: np.random.Generator) -> list[Case]:
    heads, head_dim, hidden, t = 2, 4, int(rng.integers(8, 17)), int(rng.integers(3, 7))
    c = heads * head_dim
    cos, sin = _tables(head_dim, 16)
    init = {"d_model": c, "n_heads": heads, "hidden": hidden, "dtype": F64}
    return [
        (f"a block of width {c}, hidden {hidden}, x (2, {t}, {c})",
         ("module", "run", "Block", init, _block_params(rng, c, hidden), _normal(rng, 2, t, c), [cos, sin],
          _normal(rng, 2, t, c))),
        ("gradient check: finite differences of your forward",
         ("module", "fd", "Block", init, _block_params(rng, c, hidden), _normal(rng, 1, t, c), [cos, sin],
          _normal(rng, 1, t, c))),
    ]


def gpt_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random weights for the TINY GPT in the track's layout, at sizes that keep activations near 1."""
    params = {"embed.weight": _normal(rng, TINY.vocab_size, TINY.d_model, scale=0.5),
              "norm.weight": rng.uniform(0.5, 1.5, TINY.d_model)}
    for i in range(TINY.n_layers):
        params |= _block_params(rng, TINY.d_model, TINY.hidden, f"blocks.{i}.")
    return params


def tiny_init(dtype: str = F64) -> dict[str, Any]:
    return {"vocab_size": TINY.vocab_size, "context": TINY.context, "d_model": TINY.d_model,
            "n_layers": TINY.n_layers, "n_heads": TINY.n_heads, "dtype": dtype}


def model_cases(rng: np.random.Generator) -> list[Case]:
    t = int(rng.integers(5, TINY.context + 1))
    ids, targets = rng.integers(0, TINY.vocab_size, (2, t)), rng.integers(0, TINY.vocab_size, (2, t))
    seed = int(rng.integers(2**31))
    return [
        (f"logits, loss and every gradient on ids (2, {t})", ("model_loss", tiny_init(), gpt_params(rng), ids, targets)),
        ("a single position", ("model_loss", tiny_init(), gpt_params(rng), ids[:1, :1], targets[:1, :1])),
        ("GPT(256, 32, 64, 2, 4) starts as the engine's GPT does, float32",
         ("init", "GPT", {"vocab_size": 256, "context": 32, "d_model": 64, "n_layers": 2, "n_heads": 4,
                          "seed": seed})),
    ]


def adamw_cases(rng: np.random.Generator) -> list[Case]:
    shapes = [(int(rng.integers(2, 5)), int(rng.integers(2, 5))), (int(rng.integers(2, 6)),), (3, 2, 2)]
    params = [_normal(rng, *s) for s in shapes]
    grads = [[_normal(rng, *s) for s in shapes] for _ in range(4)]
    lrs = [float(v) for v in rng.uniform(1e-3, 3e-2, 4)]
    hyper = {"lr": 1e-2, "betas": (0.9, float(rng.choice([0.95, 0.999]))), "eps": 1e-8,
             "weight_decay": float(rng.choice([0.0, 0.1]))}
    big = [_normal(rng, 4, 3, scale=5.0), _normal(rng, 3, scale=5.0)]
    small = [_normal(rng, 4, 3, scale=1e-3), _normal(rng, 3, scale=1e-3)]
    return [
        (f"4 steps on a matrix, a vector and a 3-D array (weight decay {hyper['weight_decay']:g})",
         ("adamw", params, grads, lrs, hyper)),
        ("one step with weight decay 0.1 (matrices only)", ("adamw", params[:2], grads[:1], lrs[:1],
                                                            hyper | {"weight_decay": 0.1})),
        ("clip_grad_norm over its threshold", ("clip", big, 1.0)),
        ("clip_grad_norm under its threshold (unchanged)", ("clip", small, 1.0)),
    ]


def schedule_cases(rng: np.random.Generator) -> list[Case]:
    total, warmup = int(rng.integers(50, 200)), int(rng.integers(1, 20))
    max_lr, ratio = float(rng.uniform(1e-4, 1e-2)), float(rng.choice([0.0, 0.1, 0.5]))
    steps = sorted({0, 1, warmup - 1, warmup, warmup + 1, total // 2, total - 1, total, total + 5,
                    *(int(v) for v in rng.integers(0, total, 6))})
    return [
        (f"warm-up {warmup}, {total} steps, floor {ratio:g}", ("schedule", steps, max_lr, warmup, total, ratio)),
        ("no warm-up", ("schedule", [0, 1, total // 3, total], max_lr, 0, total, 0.1)),
    ]


def train_cases(rng: np.random.Generator) -> list[Case]:
    data = rng.integers(0, TINY.vocab_size, 400)
    seq_len = int(rng.integers(4, 9))
    batches = [tuple(rng.integers(0, TINY.vocab_size, (2, seq_len)) for _ in range(2)) for _ in range(3)]
    settings = {"steps": 4, "batch": 2, "seq_len": seq_len, "max_lr": 1e-2, "warmup": 2, "min_lr_ratio": 0.1,
                "max_norm": 1.0}
    return [
        (f"get_batch: two draws of 3 windows of {seq_len}", ("batch", data, 3, seq_len, int(rng.integers(2**31)))),
        ("train_step three times (loss, norm, parameters after)",
         ("train_step", tiny_init(), gpt_params(rng), batches, [1e-2, 5e-3, 2e-3], HYPER, 1.0)),
        ("train: 4 steps with warm-up 2 (what on_step saw and what it returned)",
         ("train", tiny_init(), gpt_params(rng), data, settings, HYPER, int(rng.integers(2**31)))),
    ]


def sample_cases(rng: np.random.Generator) -> list[Case]:
    def draws(n: int, v: int) -> list:
        out = []
        for _ in range(n):
            temperature = float(rng.choice([0.0, 0.5, 1.0, 1.7]))
            top_k = None if rng.random() < 0.4 else int(rng.integers(1, v + 3))
            out.append((_normal(rng, v, scale=2.0), temperature, top_k, float(rng.random())))
        return out
    prompt = [int(v) for v in rng.integers(0, TINY.vocab_size, int(rng.integers(1, 5)))]
    return [
        ("sample_next on 40 draws (temperatures 0 to 1.7, top-k or none)", ("sample_next", draws(40, 11))),
        ("generate greedily past the context (it must crop)",
         ("generate", tiny_init(), gpt_params(rng), prompt, TINY.context + 4, 0.0, None, 1)),
        ("generate at temperature 0.8, top-k 5", ("generate", tiny_init(), gpt_params(rng), prompt, 8, 0.8, 5,
                                                  int(rng.integers(2**31)))),
    ]


def _spec(cases) -> Spec:
    return Spec(expected=expected, cases=cases, compare=compare_case, race_args=None)


SPECS: dict[str, Spec] = {
    "gpt_value": _spec(value_cases), "gpt_tensor": _spec(tensor_cases), "gpt_layers": _spec(layers_cases),
    "gpt_loss": _spec(loss_cases), "gpt_softmax": _spec(softmax_cases), "gpt_attention": _spec(attention_cases),
    "gpt_rope": _spec(rope_cases), "gpt_norm": _spec(norm_cases), "gpt_self_attention": _spec(self_attention_cases),
    "gpt_mlp": _spec(mlp_cases), "gpt_block": _spec(block_cases), "gpt_model": _spec(model_cases),
    "gpt_adamw": _spec(adamw_cases), "gpt_schedule": _spec(schedule_cases), "gpt_train": _spec(train_cases),
    "gpt_sample": _spec(sample_cases),
}
"""Build a GPT's checks; no race (the payoff races the whole model instead)."""
