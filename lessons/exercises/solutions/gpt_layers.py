"""Reference: the layers that hold parameters, a linear map and an embedding table."""

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
    out = Tensor(table.data[ids], (table,))

    def _backward():
        np.add.at(table.grad, ids, out.grad)  # a row picked twice receives both gradients
    out._backward = _backward
    return out


class Linear(Module):
    def __init__(self, n_in, n_out, bias=True, std=0.02, rng=None, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng()
        self.weight = Tensor((rng.standard_normal((n_in, n_out)) * std).astype(dtype))
        self.bias = Tensor(np.zeros(n_out, dtype=dtype)) if bias else None

    def __call__(self, x):
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y


class Embedding(Module):
    def __init__(self, n_rows, dim, std=0.02, rng=None, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng()
        self.weight = Tensor((rng.standard_normal((n_rows, dim)) * std).astype(dtype))

    def __call__(self, ids):
        return take_rows(self.weight, np.asarray(ids))
