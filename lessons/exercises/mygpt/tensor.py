"""Exercise: Autograd over arrays.

Track: Build a GPT · lesson: gpt-autograd

The Value idea with one NumPy array per node: a Tensor holds data (a float
array; integers become float64), grad (zeros of data's shape and dtype),
_prev and _backward. Every _backward adds (+=) a gradient of exactly the
input's shape to input.grad.

Broadcasting is the new difficulty. a + b with a: (B, T, C) and b: (C,)
gives out: (B, T, C), so out.grad is (B, T, C) while b.grad is (C,).
Write unbroadcast(grad, shape) to sum grad back down to shape: over the
leading axes broadcasting added, then (keepdims) over every axis where
shape has size 1 but grad does not.

Then write, each with its _backward (g is out.grad):

    a + b:    da = g,              db = g
    a * b:    da = g * b,          db = g * a
    a @ b:    da = g @ bᵀ,         db = aᵀ @ g   (ᵀ: the last two axes)
    a ** n:   da = g * n * a ** (n - 1)   (n a plain number)
    exp(a):   da = g * exp(a)      log(a):  da = g / a
    sum:      da = g spread back over the summed axis

and pass every gradient of +, * and @ through unbroadcast: in the model,
x: (B, T, C) @ W: (C, N) gives (B, T, N), and W.grad must come back as
(C, N). sum(axis=None or an int, keepdims=False) must put a dropped axis
back (np.expand_dims) before broadcasting g to a's shape. backward() seeds
self.grad with ones of data's shape and runs every _backward in reversed
topological order (from mygpt.value import topological_order).

Given: __init__, shape, _lift (turns a plain number or array into a
Tensor of self's dtype, so float32 stays float32), reshape, transpose,
mean and the operators built from yours.
"""

import numpy as np

from mygpt.value import topological_order


def unbroadcast(grad, shape):
    """Sum grad (the shape of a broadcast result) back down to shape."""
    raise NotImplementedError("your code here")


class Tensor:
    # An array on the left of an operator (mask + scores) hands the operation to the Tensor's __radd__,
    # instead of NumPy applying it to the Tensor as an opaque object.
    __array_ufunc__ = None

    def __init__(self, data, _prev=()):
        data = np.asarray(data)
        self.data = data if data.dtype.kind == "f" else data.astype(np.float64)
        self.grad = np.zeros_like(self.data)
        self._prev = tuple(_prev)
        self._backward = lambda: None

    @property
    def shape(self):
        return self.data.shape

    def _lift(self, other):
        """other as a Tensor; a plain number takes self's dtype (a float64 scalar would promote float32)."""
        return other if isinstance(other, Tensor) else Tensor(np.asarray(other, dtype=self.data.dtype))

    def __add__(self, other):
        other = self._lift(other)
        out = Tensor(..., (self, other))  # your code here

        def _backward():
            ...  # your code here
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = self._lift(other)
        out = Tensor(..., (self, other))  # your code here

        def _backward():
            ...  # your code here
        out._backward = _backward
        return out

    def __matmul__(self, other):
        out = Tensor(..., (self, other))  # your code here

        def _backward():
            ...  # your code here
        out._backward = _backward
        return out

    def sum(self, axis=None, keepdims=False):
        out = Tensor(..., (self,))  # your code here

        def _backward():
            ...  # your code here
        out._backward = _backward
        return out

    def exp(self):
        out = Tensor(..., (self,))  # your code here

        def _backward():
            ...  # your code here
        out._backward = _backward
        return out

    def log(self):
        out = Tensor(..., (self,))  # your code here

        def _backward():
            ...  # your code here
        out._backward = _backward
        return out

    def __pow__(self, exponent):
        out = Tensor(..., (self,))  # your code here

        def _backward():
            ...  # your code here
        out._backward = _backward
        return out

    def backward(self):
        raise NotImplementedError("your code here")

    # Given: shape changes (their backward undoes the forward) and operators built from the ones above.
    def reshape(self, *shape):
        out = Tensor(self.data.reshape(*shape), (self,))

        def _backward():
            self.grad += out.grad.reshape(self.shape)
        out._backward = _backward
        return out

    def transpose(self, axis1, axis2):
        out = Tensor(np.swapaxes(self.data, axis1, axis2), (self,))

        def _backward():
            self.grad += np.swapaxes(out.grad, axis1, axis2)
        out._backward = _backward
        return out

    def mean(self, axis=None, keepdims=False):
        count = self.data.size if axis is None else self.data.shape[axis]
        return self.sum(axis, keepdims) * (1.0 / count)

    def __neg__(self):
        return self * -1.0

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-self._lift(other))

    def __rsub__(self, other):
        return self._lift(other) + (-self)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * (self._lift(other) ** -1.0)

    def __repr__(self):
        return f"Tensor(shape={self.shape}, dtype={self.data.dtype})"
