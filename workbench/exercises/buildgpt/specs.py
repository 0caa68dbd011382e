"""How each Build a GPT step is judged: fresh random cases, answers from torch and the engines, comparisons.

Every case's first argument names the child's driver
(:mod:`workbench.exercises.buildgpt.drivers`); :func:`expected` computes the
same case here with torch in float64: autograd for the plans, and the engines'
own modules (``workbench_engines.models.gpt`` and ``.layers``, the hand-written
``optim`` parts) loaded with the case's weights for everything built from
them. The learner's model is meant to equal the engine's GPT, so a step is
right when it agrees with the engine's part. Gradient-check cases ("fd") have
no answer here: they compare the learner's backward with finite differences of
the learner's own forward, which points at a backward that does not match its
forward even where the forward is wrong too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from workbench.exercises.buildgpt import plans
from workbench.exercises.buildgpt.weights import Shape, from_engine, to_engine
from workbench.exercises.checks import describe_value

TOLERANCE = {"float64": (1e-7, 1e-9), "float32": (3e-4, 3e-5)}
"""(rtol, atol as a fraction of the answer's largest entry): composed float64 parts differ from torch's in the
order of their sums, float32 parts by float32 rounding through a few layers."""
FD_STEP = 1e-6
"""The drivers' central-difference step (drivers.FD_STEP)."""
FD_TOLERANCE = (1e-5, 1e-7)
"""Central differences at h = 1e-6 in float64 are good to about 1e-9 relative; a wrong backward is off by far more."""
TINY = Shape(vocab_size=48, context=16, d_model=16, n_layers=2, n_heads=2)
"""The GPT the model, training and sampling cases build: small enough for a check in a second."""
HYPER = {"lr": 1e-2, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1}


# ---- comparisons --------------------------------------------------------------

def compare_array(expected: Any, got: Any, label: str) -> str | None:
    """None when got matches expected within its dtype's tolerance, else what differs (prefixed by label)."""
    expected = np.asarray(expected)
    if not isinstance(got, (np.ndarray, float, int, np.floating)) or isinstance(got, bool):
        return f"{label}: expected {describe_value(expected)}, got {describe_value(got)}"
    got = np.asarray(got)
    if got.shape != expected.shape:
        return f"{label}: expected shape {expected.shape}, got {got.shape}"
    if expected.dtype.kind == "f" and got.dtype != expected.dtype:
        return f"{label}: expected dtype {expected.dtype}, got {got.dtype}"
    if expected.dtype.kind in "iub":
        wrong = np.argwhere(got != expected)
        if len(wrong):
            at = tuple(int(i) for i in wrong[0])
            return f"{label}: at {list(at)} expected {expected[at]}, got {got[at]}"
        return None
    rtol, atol = TOLERANCE.get(str(expected.dtype), TOLERANCE["float32"])
    # A floor under the scale: an entry that is zero in exact arithmetic comes out as 1e-16 noise on either side.
    scale = max(float(np.max(np.abs(expected[np.isfinite(expected)]), initial=0.0)), 1e-3)
    close = np.isclose(got, expected, rtol=rtol, atol=atol * scale, equal_nan=True)
    if close.all():
        return None
    diff = np.where(close, 0.0, np.abs(np.nan_to_num(got.astype(np.float64) - expected, nan=np.inf)))
    at = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
    where = f" at {list(at)}" if at else ""
    return (f"{label}{where}: expected {float(expected[at]):.8g}, got {float(got[at]):.8g}"
            f" ({int((~close).sum())} of {close.size} entries off)")


def compare_named(expected: dict[str, Any], got: Any, label: str) -> str | None:
    if not isinstance(got, dict):
        return f"{label}: expected a dict, got {describe_value(got)}"
    missing = [k for k in expected if k not in got]
    if missing:
        return f"{label}: nothing for {missing[:4]}"
    for key, value in expected.items():
        if (problem := compare_array(value, got[key], f"{label} {key}")) is not None:
            return problem
    return None


def compare_fd(got: Any) -> str | None:
    """The learner's backward against central differences of their own forward."""
    try:
        where, analytic, numeric = list(got["where"]), np.asarray(got["analytic"]), np.asarray(got["numeric"])
        scale = float(got["scale"])
    except (KeyError, TypeError, ValueError):
        return f"expected the gradient check's record, got {describe_value(got)}"
    rtol, atol = FD_TOLERANCE
    # Rounding in f(x ± h) itself: a difference of two values of size |f| is good to about ε·|f|, divided by 2h.
    rounding = 64 * np.finfo(np.float64).eps * scale / FD_STEP if np.isfinite(scale) else np.inf
    for name, a, n in zip(where, analytic, numeric):
        if not (np.isfinite(a) and np.isfinite(n)) or abs(a - n) > rtol * max(abs(a), abs(n)) + atol + rounding:
            return (f"∂loss/∂{name}: your backward gives {a:.8g}, finite differences of your forward give {n:.8g}"
                    " — the backward does not match the forward")
    return None


def compare_plan(plan: list, n_leaves: int) -> Callable[[Any, Any], str | None]:
    def spelled() -> str:
        """The case as code, so a learner can replay it: n0..n{k} are the leaves."""
        steps = "; ".join(f"n{n_leaves + k} = {plans.describe(step)}" for k, step in enumerate(plan))
        return f" [leaves n0..n{n_leaves - 1}; {steps}]" if len(steps) < 400 else f" [{len(plan)} steps]"

    def compare(expected: dict[str, Any], got: Any) -> str | None:
        if not isinstance(got, dict) or "nodes" not in got or "grads" not in got:
            return f"expected the plan's nodes and gradients, got {describe_value(got)}"
        if len(got["nodes"]) != len(expected["nodes"]):
            return f"expected {len(expected['nodes'])} nodes, got {len(got['nodes'])}"
        for k in range(n_leaves, len(expected["nodes"])):
            step = plan[k - n_leaves]
            if (problem := compare_array(expected["nodes"][k], got["nodes"][k],
                                         f"forward of n{k} = {plans.describe(step)}")) is not None:
                return problem + spelled()
        for i in range(n_leaves):
            if (problem := compare_array(expected["grads"][i], got["grads"][i], f"gradient of n{i}")) is not None:
                return problem + spelled()
        return None
    return compare


def is_gradient_check(args: tuple) -> bool:
    """A case asking for the learner's backward beside finite differences (a "_fd" driver, or mode "fd")."""
    return args[0].endswith("_fd") or (len(args) > 1 and isinstance(args[1], str) and args[1] == "fd")


def compare_case(expected: Any, got: Any, args: tuple) -> str | None:
    """Dispatch on the case's driver (its first argument)."""
    driver = args[0]
    if is_gradient_check(args):
        return compare_fd(got)
    if driver in ("value", "tensor"):
        return compare_plan(args[1], len(args[2]))(expected, got)
    if driver in ("op", "module"):
        return compare_array(expected["out"], got.get("out") if isinstance(got, dict) else got, "output") \
            or compare_named(expected["grads"], got.get("grads"), "gradient of")
    if driver == "init":
        return compare_init(expected, got)
    if driver == "model_loss":
        if not isinstance(got, dict):
            return f"expected logits, loss and gradients, got {describe_value(got)}"
        return (compare_array(expected["logits"], got.get("logits"), "logits")
                or compare_array(expected["loss"], got.get("loss"), "loss")
                or compare_named(expected["grads"], got.get("grads"), "gradient of"))
    if driver == "adamw":
        if not isinstance(got, dict) or got.get("zero_grad_zeroes") is not True:
            return "after zero_grad() some gradient is not zero"
        for step, (want, have) in enumerate(zip(expected["after"], got.get("after") or [])):
            for i, (w, h) in enumerate(zip(want, have)):
                if (problem := compare_array(w, h, f"parameter {i} after step {step + 1}")) is not None:
                    return problem
        return None if len(got.get("after") or []) == len(expected["after"]) else "not every step was taken"
    if driver == "clip":
        if not isinstance(got, dict):
            return f"expected the norm and the gradients, got {describe_value(got)}"
        return compare_array(expected["norm"], got.get("norm"), "returned norm") or next(
            (p for i, (w, h) in enumerate(zip(expected["grads"], got.get("grads") or []))
             if (p := compare_array(w, h, f"gradient {i} after clipping")) is not None), None)
    if driver in ("schedule", "sample_next", "generate"):
        label = {"schedule": "learning rates", "sample_next": "chosen tokens", "generate": "generated ids"}[driver]
        if driver == "schedule":
            return compare_array(np.array(expected), np.array(got, dtype=np.float64) if isinstance(got, list) else got,
                                 label)
        if got != expected:
            k = next((i for i, (a, b) in enumerate(zip(expected, got or [])) if a != b), None)
            return f"{label}: expected {expected}, got {got}"[:300] if k is None else \
                f"{label}: draw {k} expected {expected[k]}, got {got[k]}"
        return None
    if driver == "op_tables":
        return compare_named(expected, got, "rope_tables")
    if driver == "batch":
        return compare_named(expected, got, "batch")
    if driver in ("train_step", "train"):
        if not isinstance(got, dict):
            return f"expected the run's record, got {describe_value(got)}"
        labels = {"losses": "losses", "norms": "gradient norms", "on_step": "on_step(step, loss, lr, norm) calls",
                  "returned": "train()'s returned losses"}
        for key, label in labels.items():
            if key in expected:
                have = got.get(key)
                have = np.asarray(have, dtype=np.float64) if isinstance(have, list) and have else have
                if (problem := compare_array(expected[key], have, label)) is not None:
                    return problem
        return compare_named(expected["params"], got.get("params"), "parameter") if "params" in expected else None
    raise ValueError(f"no comparison for driver {driver!r}")


def compare_init(expected: dict[str, Any], got: Any) -> str | None:
    """A fresh layer's parameters: names, shapes and dtypes exact; values drawn at the documented scale."""
    if not isinstance(got, dict):
        return f"expected the parameters by name, got {describe_value(got)}"
    if sorted(got) != sorted(expected):
        return f"named_parameters() gives {sorted(got)[:6]}, expected {sorted(expected)[:6]}"
    for name, (shape, dtype, kind, value) in expected.items():
        array = got[name]
        if not isinstance(array, np.ndarray) or array.shape != tuple(shape) or str(array.dtype) != dtype:
            return f"{name}: expected {dtype} {tuple(shape)}, got {describe_value(array)}"
        if kind == "constant" and not np.all(array == value):
            return f"{name}: expected every entry {value:g}"
        if kind == "normal":
            std, mean = float(array.std()), float(array.mean())
            if not (0.9 * value < std < 1.1 * value and abs(mean) < 0.1 * value):
                return f"{name}: expected N(0, {value:g}²), got mean {mean:.3g} and std {std:.3g}"
    return None


# ---- expected answers ---------------------------------------------------------

def _t(array: Any, grad: bool = True):
    import torch

    return torch.tensor(np.asarray(array), dtype=torch.float64, requires_grad=grad)


def _np(t) -> np.ndarray:
    return t.detach().numpy().copy()


def expected_plan(plan: list, leaves: list) -> dict[str, Any]:
    leaf_tensors = [_t(x) for x in leaves]
    nodes = plans.evaluate(plan, leaf_tensors, plans.torch_reduce)
    nodes[-1].backward()
    scalar = not isinstance(leaves[0], np.ndarray)
    dtypes = [np.asarray(x).dtype for x in leaves]

    def cast(t, dtype=np.float64):
        value = _np(t).astype(dtype)
        return float(value) if scalar else value
    # float32 leaves: the nodes are compared in float32 (the learner's Tensor must keep the dtype).
    out_dtype = np.result_type(*dtypes) if not scalar else np.float64
    return {"nodes": [cast(n, out_dtype) for n in nodes],
            "grads": [cast(t.grad if t.grad is not None else t * 0, d) for t, d in zip(leaf_tensors, dtypes)]}


def _op_reference(call: str) -> Callable[..., Any]:
    import torch.nn.functional as F
    from workbench_engines.models.layers import apply_rope

    return {
        "take_rows": lambda table, ids: F.embedding(torch_ids(ids), table),
        "cross_entropy": lambda logits, targets: F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                                 torch_ids(targets).reshape(-1)),
        "softmax": lambda x, axis=-1: x.softmax(dim=axis),
        "causal_attention": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "rope": lambda x, cos, sin: apply_rope(x, _t(cos[: x.shape[-2]], False), _t(sin[: x.shape[-2]], False)),
        "silu": lambda x: F.silu(x),
    }[call]


def torch_ids(ids: Any):
    import torch

    return torch.as_tensor(np.asarray(ids, dtype=np.int64))


def expected_op(mode: str, call: str, inputs: dict[str, np.ndarray], extra: dict[str, Any], g: Any) -> dict:
    tensors = {k: _t(v) for k, v in inputs.items()}
    plain = {k: v for k, v in extra.items() if not k.startswith("array:")}
    arrays = [v for k, v in extra.items() if k.startswith("array:")]
    out = _op_reference(call)(*tensors.values(), *arrays, **plain)
    (out if g is None else (out * _t(g, False)).sum()).backward()
    dtype = next(iter(inputs.values())).dtype
    return {"out": _np(out).astype(dtype), "grads": {k: _np(t.grad).astype(dtype) for k, t in tensors.items()}}


def _engine_module(cls: str, init: dict[str, Any]):
    """The engine's counterpart of one of the track's layers, in float64."""
    import torch
    import torch.nn.functional as F
    from workbench_engines.models import gpt, layers

    n = init.get("n_in")

    class LinearRef(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(init["n_out"], n))
            self.bias = torch.nn.Parameter(torch.zeros(init["n_out"])) if init.get("bias", True) else None

        def forward(self, x):
            return F.linear(x, self.weight, self.bias)

    def config():
        return gpt.GPTConfig(vocab_size=8, context=64, d_model=init["d_model"], n_layers=1, n_heads=init["n_heads"],
                             d_ff=init.get("hidden"))

    build = {
        "Linear": LinearRef,
        "Embedding": lambda: torch.nn.Embedding(init["n_rows"], init["dim"]),
        "RMSNorm": lambda: layers.RMSNorm(init["dim"], init.get("eps", 1e-5)),
        "SwiGLU": lambda: layers.SwiGLU(init["dim"], init["hidden"]),
        "SelfAttention": lambda: gpt.Attention(config()),
        "Block": lambda: gpt.Block(config()),
    }[cls]
    return build().to(torch.float64)


def expected_module(mode: str, cls: str, init: dict[str, Any], params: dict[str, np.ndarray], x: np.ndarray,
                    extra: list, g: Any) -> dict:
    import torch

    d_model = init.get("d_model", 0)
    module = _engine_module(cls, init)
    # An embedding table is (V, C) in both layouts; every other matrix is transposed.
    state = params if cls == "Embedding" else to_engine(params, d_model)
    module.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in state.items()})
    is_ids = x.dtype.kind in "iu"
    x_t = torch_ids(x) if is_ids else _t(x)
    if cls in ("SelfAttention", "Block"):
        cos, sin = (_t(a[: x.shape[1]], False) for a in extra)
        out = module(x_t, cos, sin, 0, None)
    else:
        out = module(x_t)
    (out.sum() if g is None else (out * _t(g, False)).sum()).backward()
    dtype = np.asarray(next(iter(params.values()))).dtype
    grads = {k: _np(p.grad) for k, p in module.named_parameters()}
    grads = grads if cls == "Embedding" else from_engine(grads, d_model)
    grads = {k: v.astype(dtype) for k, v in grads.items()}
    if not is_ids:
        grads["x"] = _np(x_t.grad).astype(dtype)
    return {"out": _np(out).astype(dtype), "grads": grads}


def _engine_gpt(shape: Shape, params: dict[str, np.ndarray]):
    import torch
    from workbench_engines.models.gpt import GPT

    model = GPT(shape.engine_config()).to(torch.float64)
    # The engine keeps its RoPE tables in float32; the checks compare float64 models, so they get float64 tables.
    cos, sin = expected_tables(shape.head_dim, shape.context, 10000.0).values()
    model.rope_cos, model.rope_sin = torch.from_numpy(cos), torch.from_numpy(sin)
    model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float64))
                           for k, v in to_engine(params, shape.d_model).items()})
    return model


def _ce(model, x: np.ndarray, y: np.ndarray):
    import torch.nn.functional as F

    logits = model(torch_ids(x))
    return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch_ids(y).reshape(-1))


def expected_model_loss(init: dict[str, Any], params: dict[str, np.ndarray], ids: np.ndarray,
                        targets: np.ndarray) -> dict:
    model = _engine_gpt(TINY, params)
    logits, loss = _ce(model, ids, targets)
    loss.backward()
    grads = from_engine({k: _np(p.grad) for k, p in model.named_parameters()}, TINY.d_model)
    return {"logits": _np(logits), "loss": float(loss.detach()), "grads": grads}


def _engine_adamw(tensors: list, hyper: dict[str, Any]):
    from workbench_engines.optim.adamw import AdamW

    groups = [{"params": [t for t in tensors if t.ndim >= 2], "weight_decay": hyper["weight_decay"]},
              {"params": [t for t in tensors if t.ndim < 2], "weight_decay": 0.0}]
    return AdamW([g for g in groups if g["params"]], lr=hyper["lr"], betas=hyper["betas"], eps=hyper["eps"])


def _set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def expected_adamw(params: list[np.ndarray], grads: list[list[np.ndarray]], lrs: list[float],
                   hyper: dict[str, Any]) -> dict:
    import torch

    tensors = [torch.tensor(p, dtype=torch.float64) for p in params]
    optimizer = _engine_adamw(tensors, hyper)
    after = []
    for step_grads, lr in zip(grads, lrs):
        for t, g in zip(tensors, step_grads):
            t.grad = torch.tensor(g, dtype=torch.float64)
        _set_lr(optimizer, lr)
        optimizer.step()
        after.append([t.numpy().copy() for t in tensors])
    return {"after": after}


def expected_clip(grads: list[np.ndarray], max_norm: float) -> dict:
    import torch
    from workbench_engines.optim.clip import clip_grad_norm

    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads):
        t.grad = torch.tensor(g, dtype=torch.float64)
    norm = clip_grad_norm(tensors, max_norm)
    return {"norm": float(norm), "grads": [_np(t.grad) for t in tensors]}


def expected_schedule(steps: list[int], max_lr: float, warmup: int, total: int, min_lr_ratio: float) -> list[float]:
    from workbench_engines.optim.schedule import warmup_cosine

    return [warmup_cosine(s, lr=max_lr, warmup=warmup, steps=total, min_lr_ratio=min_lr_ratio) for s in steps]


def batch_rule(data: np.ndarray, batch: int, seq_len: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The documented draw: one rng.integers call for the starts, windows of seq_len + 1 tokens."""
    starts = rng.integers(0, len(data) - seq_len, size=batch)
    return (np.stack([data[s:s + seq_len] for s in starts]), np.stack([data[s + 1:s + seq_len + 1] for s in starts]))


def expected_batch(data: np.ndarray, batch: int, seq_len: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    (x, y), (x2, y2) = batch_rule(data, batch, seq_len, rng), batch_rule(data, batch, seq_len, rng)
    return {"x": x, "y": y, "x2": x2, "y2": y2}


def _engine_steps(params: dict[str, np.ndarray], batches: list, lrs: list[float], hyper: dict[str, Any],
                  max_norm: float) -> tuple[Any, list[float], list[float]]:
    from workbench_engines.optim.clip import clip_grad_norm

    model = _engine_gpt(TINY, params)
    optimizer = _engine_adamw(list(model.parameters()), hyper)
    losses, norms = [], []
    for (x, y), lr in zip(batches, lrs):
        for p in model.parameters():
            p.grad = None
        _, loss = _ce(model, x, y)
        loss.backward()
        norms.append(float(clip_grad_norm(model.parameters(), max_norm)))
        _set_lr(optimizer, lr)
        optimizer.step()
        losses.append(float(loss.detach()))
    return model, losses, norms


def expected_train_step(init: dict[str, Any], params: dict[str, np.ndarray], batches: list, lrs: list[float],
                        hyper: dict[str, Any], max_norm: float) -> dict:
    model, losses, norms = _engine_steps(params, batches, lrs, hyper, max_norm)
    state = from_engine({k: _np(p) for k, p in model.named_parameters()}, TINY.d_model)
    return {"losses": np.array(losses), "norms": np.array(norms), "params": state}


def expected_train(init: dict[str, Any], params: dict[str, np.ndarray], data: np.ndarray, settings: dict[str, Any],
                   hyper: dict[str, Any], seed: int) -> dict:
    from workbench_engines.optim.schedule import warmup_cosine

    rng = np.random.default_rng(seed)
    steps = settings["steps"]
    lrs = [warmup_cosine(s, lr=settings["max_lr"], warmup=settings["warmup"], steps=steps,
                         min_lr_ratio=settings.get("min_lr_ratio", 0.1)) for s in range(steps)]
    batches = [batch_rule(data, settings["batch"], settings["seq_len"], rng) for _ in range(steps)]
    _, losses, norms = _engine_steps(params, batches, lrs, hyper, settings.get("max_norm", 1.0))
    on_step = np.array([[s, loss, lr, norm] for s, (loss, lr, norm) in enumerate(zip(losses, lrs, norms))])
    return {"on_step": on_step, "returned": np.array(losses)}


def next_token(logits: np.ndarray, temperature: float, top_k: int | None, u: float) -> int:
    """The documented rule: argmax at temperature 0; else top-k, softmax(z / T), the first index whose
    cumulative probability exceeds u."""
    if temperature == 0:
        return int(np.argmax(logits))
    z = np.asarray(logits, dtype=np.float64) / temperature
    if top_k is not None and top_k < len(z):
        z = np.where(z >= np.sort(z)[-top_k], z, -np.inf)
    p = np.exp(z - z.max())
    return int(min(np.searchsorted(np.cumsum(p / p.sum()), u, side="right"), len(z) - 1))


def expected_generate(init: dict[str, Any], params: dict[str, np.ndarray], prompt: list[int], n: int,
                      temperature: float, top_k: int | None, seed: int) -> list[int]:
    import torch

    model = _engine_gpt(TINY, params).eval()
    rng = np.random.default_rng(seed)
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch_ids([ids[-TINY.context:]]))[0, -1].numpy()
            ids.append(next_token(logits, temperature, top_k, rng.random()))
    return ids[len(prompt):]


def expected_tables(head_dim: int, context: int, base: float) -> dict[str, np.ndarray]:
    """cos and sin of position·θ_i with the engines' frequencies (workbench_engines.positional), in float64."""
    from workbench_engines.positional import rope_frequencies

    theta, _ = rope_frequencies(head_dim, base)
    angle = np.arange(context, dtype=np.float64)[:, None] * theta
    return {"cos": np.cos(angle), "sin": np.sin(angle)}


EXPECTED: dict[str, Callable[..., Any]] = {
    "op_tables": expected_tables,
    "value": expected_plan, "tensor": expected_plan, "op": expected_op, "module": expected_module,
    "model_loss": expected_model_loss, "adamw": expected_adamw, "clip": expected_clip,
    "schedule": expected_schedule, "batch": expected_batch, "train_step": expected_train_step,
    "train": expected_train, "generate": expected_generate,
    "sample_next": lambda draws: [next_token(*draw) for draw in draws],
}


def expected(driver: str, *args: Any) -> Any:
    """The answer for a case (None for gradient checks and init cases, judged on their own)."""
    if is_gradient_check((driver, *args)):
        return None
    if driver == "init":
        return init_expectation(*args)
    return EXPECTED[driver](*args)


def init_expectation(cls: str, init: dict[str, Any]) -> dict[str, tuple]:
    """name -> (shape, dtype, "normal" or "constant", std or value) for a freshly built layer."""
    dtype = str(np.dtype(init.get("dtype", "float32")))
    if cls == "Linear":
        found = {"weight": ((init["n_in"], init["n_out"]), dtype, "normal", init.get("std", 0.02))}
        return found | ({"bias": ((init["n_out"],), dtype, "constant", 0.0)} if init.get("bias", True) else {})
    if cls == "Embedding":
        return {"weight": ((init["n_rows"], init["dim"]), dtype, "normal", init.get("std", 0.02))}
    if cls == "GPT":
        shape = Shape(init["vocab_size"], init["context"], init["d_model"], init["n_layers"], init["n_heads"])
        residual = 0.02 / math.sqrt(2 * shape.n_layers)
        found = {}
        for name, size in shape.learner_names().items():
            if name.endswith("norm.weight"):
                found[name] = (size, dtype, "constant", 1.0)
            else:
                std = residual if name.endswith(("attn.out.weight", "ffn.down.weight")) else 0.02
                found[name] = (size, dtype, "normal", std)
        return found
    raise ValueError(f"no initialisation is checked for {cls}")
