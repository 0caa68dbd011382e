"""What the sandboxed child does with the learner's mygpt modules, case by case (Build a GPT).

A driver builds the learner's objects from a case's plain inputs, calls them,
runs their backward, and returns what they produced as plain data (arrays,
floats, dicts of them). It knows no answers: the parent computes those with
the engines and judges. Drivers run inside the child after the guard is up;
this module is imported before, with NumPy only.

Each driver takes the learner's module for the step being checked, then the
case's arguments. A case whose first argument is ``"fd"`` asks for a gradient
check instead: the learner's backward beside central differences of the
learner's own forward, at a few coordinates of each input.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from workbench.exercises.buildgpt import plans

FD_STEP = 1e-6
FD_POINTS = 6
"""Coordinates probed per input array in a gradient check (each costs two forward passes)."""


def mygpt(name: str) -> ModuleType:
    """The learner's module mygpt.<name> (an earlier step, imported the way their own code imports it)."""
    return importlib.import_module(f"mygpt.{name}")


class LayoutMismatch(Exception):
    """The learner's parameters are not named as the checker needs them."""


def load_params(module: Any, params: dict[str, np.ndarray]) -> dict[str, Any]:
    """Give each of module.named_parameters() the value params holds under its name; returns the Tensors."""
    found = module.named_parameters()
    if sorted(found) != sorted(params):
        raise LayoutMismatch(f"named_parameters() gives {sorted(found)[:6]}, the checker needs {sorted(params)[:6]}"
                             " (keep the starter's attribute names)")
    for name, tensor in found.items():
        tensor.data = np.array(params[name], copy=True)
        tensor.grad = np.zeros_like(tensor.data)
    return found


def grads_of(tensors: dict[str, Any]) -> dict[str, np.ndarray]:
    return {name: np.array(t.grad) for name, t in tensors.items()}


def finite_differences(inputs: dict[str, np.ndarray], loss: Callable[[dict[str, np.ndarray]], float],
                       analytic: dict[str, np.ndarray], rng_seed: int) -> dict[str, Any]:
    """Central differences of loss at FD_POINTS coordinates of each input, beside the analytic gradient there."""
    rng = np.random.default_rng(rng_seed)
    where, numeric, exact, scale = [], [], [], 0.0
    for name, value in inputs.items():
        for flat in rng.choice(value.size, size=min(FD_POINTS, value.size), replace=False):
            index = np.unravel_index(int(flat), value.shape)
            plus = {k: v.copy() for k, v in inputs.items()}
            minus = {k: v.copy() for k, v in inputs.items()}
            plus[name][index] += FD_STEP
            minus[name][index] -= FD_STEP
            up, down = loss(plus), loss(minus)
            numeric.append((up - down) / (2 * FD_STEP))
            scale = max(scale, abs(up), abs(down))
            exact.append(float(np.asarray(analytic[name])[index]))
            where.append(f"{name}{list(int(i) for i in index)}")
    return {"where": where, "analytic": np.array(exact), "numeric": np.array(numeric), "scale": scale}


# ---- autograd ----------------------------------------------------------------

def drive_value(module: ModuleType, plan: list, leaves: list[float]) -> dict[str, Any]:
    nodes = plans.evaluate(plan, [module.Value(x) for x in leaves], plans.learner_reduce)
    nodes[-1].backward()
    return {"nodes": [float(n.data) for n in nodes], "grads": [float(n.grad) for n in nodes[: len(leaves)]]}


def drive_value_fd(module: ModuleType, plan: list, leaves: list[float]) -> dict[str, Any]:
    def loss(inputs: dict[str, np.ndarray]) -> float:
        return float(plans.evaluate(plan, [module.Value(float(x)) for x in inputs["leaves"]],
                                    plans.learner_reduce)[-1].data)
    values = [module.Value(x) for x in leaves]
    plans.evaluate(plan, values, plans.learner_reduce)[-1].backward()
    return finite_differences({"leaves": np.array(leaves, dtype=np.float64)}, loss,
                              {"leaves": np.array([v.grad for v in values])}, len(plan))


def drive_tensor(module: ModuleType, plan: list, leaves: list[np.ndarray]) -> dict[str, Any]:
    nodes = plans.evaluate(plan, [module.Tensor(x.copy()) for x in leaves], plans.learner_reduce)
    nodes[-1].backward()
    return {"nodes": [np.asarray(n.data) for n in nodes], "grads": [np.asarray(n.grad) for n in nodes[: len(leaves)]]}


def drive_tensor_fd(module: ModuleType, plan: list, leaves: list[np.ndarray]) -> dict[str, Any]:
    names = [f"n{i}" for i in range(len(leaves))]

    def loss(inputs: dict[str, np.ndarray]) -> float:
        return float(plans.evaluate(plan, [module.Tensor(inputs[n]) for n in names], plans.learner_reduce)[-1].data)
    tensors = [module.Tensor(x.copy()) for x in leaves]
    plans.evaluate(plan, tensors, plans.learner_reduce)[-1].backward()
    return finite_differences(dict(zip(names, (x.copy() for x in leaves))), loss,
                              {n: t.grad for n, t in zip(names, tensors)}, len(plan))


# ---- layers, operations and modules ------------------------------------------

def _upstream(out: Any, g: np.ndarray) -> None:
    """Backward from sum(out * g): out's gradient becomes g, whatever the learner's operators do with it."""
    (out * g).sum().backward()


def _op_run(apply: Callable[[dict[str, Any]], Any], inputs: dict[str, np.ndarray], g: np.ndarray | None,
            tensor_cls: type) -> dict[str, Any]:
    tensors = {k: tensor_cls(v.copy()) for k, v in inputs.items()}
    out = apply(tensors)
    if g is None:
        out.backward()
    else:
        _upstream(out, g)
    return {"out": np.asarray(out.data), "grads": grads_of(tensors)}


def _op_fd(apply: Callable[[dict[str, Any]], Any], inputs: dict[str, np.ndarray], g: np.ndarray | None,
           tensor_cls: type) -> dict[str, Any]:
    def loss(values: dict[str, np.ndarray]) -> float:
        out = apply({k: tensor_cls(v) for k, v in values.items()})
        return float(out.data) if g is None else float((np.asarray(out.data) * g).sum())
    run = _op_run(apply, inputs, g, tensor_cls)
    return finite_differences({k: v.copy() for k, v in inputs.items()}, loss, run["grads"], 7)


def drive_op(module: ModuleType, mode: str, call: str, inputs: dict[str, np.ndarray], extra: dict[str, Any],
             g: np.ndarray | None) -> dict[str, Any]:
    """One operation of the step's module on Tensor inputs: ``call`` names it, extra holds plain arguments.

    mode "run": its output and the inputs' gradients; "fd": the gradient check.
    """
    tensor = mygpt("tensor").Tensor
    fn = getattr(module, call)
    plain = {k: v for k, v in extra.items() if not k.startswith("array:")}
    arrays = {k.removeprefix("array:"): v for k, v in extra.items() if k.startswith("array:")}

    def apply(t: dict[str, Any]) -> Any:
        return fn(*t.values(), *arrays.values(), **plain)
    return (_op_fd if mode == "fd" else _op_run)(apply, inputs, g, tensor)


def drive_module(module: ModuleType, mode: str, cls: str, init: dict[str, Any], params: dict[str, np.ndarray],
                 x: np.ndarray, extra: list, g: np.ndarray | None) -> dict[str, Any]:
    """A layer of the step's module: built with init, its parameters set from params, called on x (and extra).

    mode "run": the output and the gradients of x and of every parameter (by the learner's names); "fd": those
    gradients beside finite differences. x of integers is token ids (an embedding's input, which has no gradient).
    """
    tensor = mygpt("tensor").Tensor
    layer = getattr(module, cls)(**init)
    found = load_params(layer, params)
    is_ids = x.dtype.kind in "iu"
    x_tensor = None if is_ids else tensor(x.copy())
    out = layer(x if is_ids else x_tensor, *extra)
    out.backward() if g is None else _upstream(out, g)
    grads = grads_of(found) | ({} if is_ids else {"x": np.asarray(x_tensor.grad)})
    if mode != "fd":
        return {"out": np.asarray(out.data), "grads": grads}

    def loss(values: dict[str, np.ndarray]) -> float:
        for name in params:
            found[name].data = values[name]
        again = layer(x if is_ids else tensor(values["x"]), *extra)
        return float((np.asarray(again.data) * (1.0 if g is None else g)).sum())
    inputs = {name: np.array(value, copy=True) for name, value in params.items()} | ({} if is_ids else {"x": x.copy()})
    return finite_differences(inputs, loss, grads, 11)


def drive_op_tables(module: ModuleType, head_dim: int, context: int, base: float) -> dict[str, Any]:
    cos, sin = module.rope_tables(head_dim, context, base)
    return {"cos": np.asarray(cos), "sin": np.asarray(sin)}


def drive_init(module: ModuleType, cls: str, init: dict[str, Any]) -> dict[str, Any]:
    """A freshly built layer's parameters: their names, shapes, dtypes and values (the parent judges the init).

    A layer takes its generator as rng (built here from the case's seed); the GPT takes the seed itself.
    """
    init = dict(init)
    if cls != "GPT" and "seed" in init:
        init["rng"] = np.random.default_rng(init.pop("seed"))
    layer = getattr(module, cls)(**init)
    return {name: np.asarray(t.data) for name, t in layer.named_parameters().items()}


def drive_model_loss(module: ModuleType, init: dict[str, Any], params: dict[str, np.ndarray], ids: np.ndarray,
                     targets: np.ndarray) -> dict[str, Any]:
    """The GPT's logits and loss on ids, and every parameter's gradient of that loss."""
    model = module.GPT(**init)
    found = load_params(model, params)
    logits = model(ids)
    loss = model.loss(ids, targets)
    loss.backward()
    return {"logits": np.asarray(logits.data), "loss": float(loss.data), "grads": grads_of(found)}


# ---- optimisation ------------------------------------------------------------

def drive_adamw(module: ModuleType, params: list[np.ndarray], grads: list[list[np.ndarray]], lrs: list[float],
                hyper: dict[str, Any]) -> dict[str, Any]:
    """AdamW over Tensors holding params, stepped once per entry of grads with the matching lr."""
    tensor = mygpt("tensor").Tensor
    held = [tensor(p.copy()) for p in params]
    optimizer = module.AdamW(held, **hyper)
    after = []
    for step_grads, lr in zip(grads, lrs):
        optimizer.zero_grad()
        zeroed = all(not np.any(t.grad) for t in held)
        for t, g in zip(held, step_grads):
            t.grad += g
        optimizer.step(lr)
        after.append([np.array(t.data) for t in held])
    return {"after": after, "zero_grad_zeroes": zeroed}


def drive_clip(module: ModuleType, grads: list[np.ndarray], max_norm: float) -> dict[str, Any]:
    tensor = mygpt("tensor").Tensor
    held = [tensor(np.zeros_like(g)) for g in grads]
    for t, g in zip(held, grads):
        t.grad = g.copy()
    norm = module.clip_grad_norm(held, max_norm)
    return {"norm": float(norm), "grads": [np.array(t.grad) for t in held]}


def drive_schedule(module: ModuleType, steps: list[int], max_lr: float, warmup: int, total: int,
                   min_lr_ratio: float) -> list[float]:
    return [float(module.lr_at(s, max_lr, warmup, total, min_lr_ratio)) for s in steps]


def drive_batch(module: ModuleType, data: np.ndarray, batch: int, seq_len: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    first = module.get_batch(data, batch, seq_len, rng)
    second = module.get_batch(data, batch, seq_len, rng)
    return {"x": np.asarray(first[0]), "y": np.asarray(first[1]), "x2": np.asarray(second[0]),
            "y2": np.asarray(second[1])}


def _model(init: dict[str, Any], params: dict[str, np.ndarray]) -> Any:
    model = mygpt("model").GPT(**init)
    load_params(model, params)
    return model


def drive_train_step(module: ModuleType, init: dict[str, Any], params: dict[str, np.ndarray], batches: list,
                     lrs: list[float], hyper: dict[str, Any], max_norm: float) -> dict[str, Any]:
    """train_step with the learner's GPT and AdamW, once per batch; losses, norms and the parameters after."""
    model = _model(init, params)
    optimizer = mygpt("adamw").AdamW(model.parameters(), **hyper)
    results = [module.train_step(model, optimizer, x, y, lr, max_norm) for (x, y), lr in zip(batches, lrs)]
    return {"losses": [float(r[0]) for r in results], "norms": [float(r[1]) for r in results],
            "params": {name: np.array(t.data) for name, t in model.named_parameters().items()}}


def drive_train(module: ModuleType, init: dict[str, Any], params: dict[str, np.ndarray], data: np.ndarray,
                settings: dict[str, Any], hyper: dict[str, Any], seed: int) -> dict[str, Any]:
    """The learner's whole loop: what it reported step by step, and what it returned."""
    model = _model(init, params)
    optimizer = mygpt("adamw").AdamW(model.parameters(), **hyper)
    seen: list[list[float]] = []
    returned = module.train(model, optimizer, data, rng=np.random.default_rng(seed),
                            on_step=lambda step, loss, lr, norm: seen.append([float(step), float(loss), float(lr),
                                                                              float(norm)]), **settings)
    return {"on_step": seen, "returned": [float(v) for v in returned]}


def drive_sample_next(module: ModuleType, draws: list) -> list[int]:
    return [int(module.sample_next(logits, temperature, top_k, u)) for logits, temperature, top_k, u in draws]


def drive_generate(module: ModuleType, init: dict[str, Any], params: dict[str, np.ndarray], prompt: list[int],
                   n: int, temperature: float, top_k: int | None, seed: int) -> list[int]:
    model = _model(init, params)
    return [int(t) for t in module.generate(model, prompt, n, temperature, top_k, np.random.default_rng(seed))]


DRIVERS: dict[str, Callable[..., Any]] = {
    name.removeprefix("drive_"): fn for name, fn in globals().items() if name.startswith("drive_")
}
"""Every driver by name; a case names its driver as its first argument."""


def run_case(module: ModuleType, driver: str, *args: Any) -> Any:
    """The case's driver on the learner's module; what the child calls for every Build a GPT case."""
    return DRIVERS[driver](module, *args)
