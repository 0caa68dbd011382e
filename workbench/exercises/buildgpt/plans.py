"""Expression plans: one recipe of operations, evaluated with the learner's Value or Tensor and with torch.

A plan is a list of steps ``(op, *operands)`` over numbered nodes: the leaves
come first, each step appends one node. The parent draws a plan and its leaf
values; the sandboxed child evaluates it with the learner's classes (and calls
``backward`` on the last node), the parent with torch in float64, and the two
are compared node by node, so a wrong forward is named by the step where it
first differs. Nothing here knows an answer: it only applies operations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Step = tuple[Any, ...]

BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "div": lambda a, b: a / b, "matmul": lambda a, b: a @ b}
WITH_NUMBER = {"addc": lambda a, c: a + c, "raddc": lambda a, c: c + a, "mulc": lambda a, c: a * c,
               "rmulc": lambda a, c: c * a, "rsubc": lambda a, c: c - a, "divc": lambda a, c: a / c,
               "pow": lambda a, p: a ** p}
UNARY = {"exp": lambda a: a.exp(), "log": lambda a: a.log(), "tanh": lambda a: a.tanh(), "neg": lambda a: -a}


def describe(step: Step) -> str:
    """A step as the learner would write it: ``n3 = n1 * n2``."""
    op, *rest = step
    name = lambda i: f"n{i}"  # noqa: E731
    if op in BINARY:
        symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@"}[op]
        return f"{name(rest[0])} {symbol} {name(rest[1])}"
    if op in WITH_NUMBER:
        a, c = name(rest[0]), f"{rest[1]:g}"
        return {"addc": f"{a} + {c}", "raddc": f"{c} + {a}", "mulc": f"{a} * {c}", "rmulc": f"{c} * {a}",
                "rsubc": f"{c} - {a}", "divc": f"{a} / {c}", "pow": f"{a} ** {c}"}[op]
    if op in UNARY:
        return f"-{name(rest[0])}" if op == "neg" else f"{name(rest[0])}.{op}()"
    if op in ("sum", "mean"):
        return f"{name(rest[0])}.{op}(axis={rest[1]}, keepdims={rest[2]})"
    if op == "reshape":
        return f"{name(rest[0])}.reshape{tuple(rest[1])}"
    if op == "transpose":
        return f"{name(rest[0])}.transpose({rest[1]}, {rest[2]})"
    return op


def evaluate(plan: Sequence[Step], leaves: Sequence[Any], reduce: Callable[[Any, str, tuple], Any]) -> list[Any]:
    """Every node of plan over leaves (already wrapped as Value, Tensor or torch tensors).

    reduce(node, op, operands) applies the ops whose spelling differs between
    the learner's classes and torch (sum, mean, reshape, transpose).
    """
    nodes = list(leaves)
    for op, *rest in plan:
        if op in BINARY:
            nodes.append(BINARY[op](nodes[rest[0]], nodes[rest[1]]))
        elif op in WITH_NUMBER:
            nodes.append(WITH_NUMBER[op](nodes[rest[0]], rest[1]))
        elif op in UNARY:
            nodes.append(UNARY[op](nodes[rest[0]]))
        else:
            nodes.append(reduce(nodes[rest[0]], op, tuple(rest[1:])))
    return nodes


def learner_reduce(node: Any, op: str, operands: tuple) -> Any:
    """sum, mean, reshape and transpose as the track's Tensor spells them."""
    if op in ("sum", "mean"):
        return getattr(node, op)(axis=operands[0], keepdims=operands[1])
    if op == "reshape":
        return node.reshape(*operands[0])
    if op == "transpose":
        return node.transpose(operands[0], operands[1])
    raise ValueError(f"unknown step {op!r}")


def torch_reduce(node: Any, op: str, operands: tuple) -> Any:
    """The same four as torch spells them."""
    if op in ("sum", "mean"):
        dims = () if operands[0] is None else operands[0]
        return getattr(node, op)(dim=dims, keepdim=operands[1]) if dims != () else getattr(node, op)()
    if op == "reshape":
        return node.reshape(*operands[0])
    if op == "transpose":
        return node.transpose(operands[0], operands[1])
    raise ValueError(f"unknown step {op!r}")
