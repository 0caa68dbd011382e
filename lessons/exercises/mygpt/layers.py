"""Exercise: Linear and embedding layers.

Track: Build a GPT · lesson: gpt-layers-and-loss

The layers that hold parameters. Module is given: named_parameters()
finds every Tensor among a layer's attributes, in its sub-layers and in
lists of them, and names it by its path ("blocks.0.attn.q.weight"), so
the attribute names below are part of the task.

take_rows(table, ids): table: (V, C) Tensor, ids: an integer array of any
shape; return the rows table.data[ids] as a Tensor of shape
ids.shape + (C,). Its backward adds each row of out.grad into the row of
table.grad it came from; an id that appears twice must receive both
gradients (np.add.at does this, table.grad[ids] += ... does not).

Linear(n_in, n_out, bias=True, std=0.02, rng=None, dtype=np.float32):
self.weight, a (n_in, n_out) Tensor drawn from N(0, std²) as
rng.standard_normal((n_in, n_out)) * std cast to dtype, and self.bias, a
(n_out,) Tensor of zeros, or None when bias is False. Calling it on x:
(..., n_in) returns (..., n_out):

    y = x @ W + b

Embedding(n_rows, dim, std=0.02, rng=None, dtype=np.float32):
self.weight, (n_rows, dim), drawn the same way; calling it on ids of any
shape returns take_rows(self.weight, ids): ids.shape + (dim,).

Both use rng = np.random.default_rng() when none is passed. Imports
Tensor from mygpt.tensor.
"""

import numpy as np

from mygpt.tensor import Tensor


class Module:
    """Given: finds the parameters (Tensors) among a layer's attributes, in sub-layers and in lists of them."""

    def named_parameters(self, prefix=""):
        found = {}
        for name, value in vars(self).items():
            items = enumerate(value) if isinstance(value, list) else [(None, value)]
            for index, item in items:
                key = prefix + name + ("" if index is None else f".{index}")
                if isinstance(item, Tensor):
                    found[key] = item
                elif isinstance(item, Module):
                    found.update(item.named_parameters(key + "."))
        return found

    def parameters(self):
        return list(self.named_parameters().values())


def take_rows(table, ids):
    """Rows of table (V, C) at the integer array ids (any shape): out has shape ids.shape + (C,)."""
    out = Tensor(..., (table,))  # your code here

    def _backward():
        ...  # your code here
    out._backward = _backward
    return out


class Linear(Module):
    def __init__(self, n_in, n_out, bias=True, std=0.02, rng=None, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng()
        raise NotImplementedError("your code here")

    def __call__(self, x):
        raise NotImplementedError("your code here")


class Embedding(Module):
    def __init__(self, n_rows, dim, std=0.02, rng=None, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng()
        raise NotImplementedError("your code here")

    def __call__(self, ids):
        raise NotImplementedError("your code here")
