"""Exercise: Scalar autograd.

Track: Build a GPT · lesson: gpt-autograd

This is the first module of your own package, mygpt. A Value holds one
number (data), the gradient of the final output with respect to it
(grad, 0.0 until backward runs), the Values it was computed from (_prev)
and a closure (_backward) that passes out.grad on to those inputs.

__add__ is written for you as the pattern: compute the result, record its
inputs, and give it a _backward that adds (+=, never =) each input's share
of out.grad by the chain rule. Write the same for __mul__, __pow__ (a plain
number as exponent), exp, log and tanh; their local derivatives are

    d(a * b)/da = b           d(a ** n)/da = n * a ** (n - 1)
    d exp(a)/da = exp(a)      d log(a)/da = 1 / a
    d tanh(a)/da = 1 - tanh(a)²

Then write topological_order(root): every Value reachable from root
through _prev, each one listed after all of its inputs, each exactly once.
Prefer an explicit stack to recursion: a long chain of operations can be
deeper than Python's recursion limit. Finally backward(): set self.grad to
1.0 and call _backward on every node, the output first, i.e. in reversed
topological order.

Negation, subtraction, division and the reflected operators are given;
they are built from yours. This module imports nothing from mygpt.
"""

import math


def topological_order(root):
    """Every node reachable from root through ._prev, each after all of its inputs, each once."""
    raise NotImplementedError("your code here")


class Value:
    def __init__(self, data, _prev=()):
        self.data = float(data)
        self.grad = 0.0
        self._prev = tuple(_prev)
        self._backward = lambda: None

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(..., (self, other))  # your code here

        def _backward():
            ...  # your code here
        out._backward = _backward
        return out

    def __pow__(self, exponent):
        out = Value(..., (self,))  # your code here

        def _backward():
            ...  # your code here
        out._backward = _backward
        return out

    def exp(self):
        out = Value(..., (self,))  # your code here

        def _backward():
            ...  # your code here
        out._backward = _backward
        return out

    def log(self):
        out = Value(..., (self,))  # your code here

        def _backward():
            ...  # your code here
        out._backward = _backward
        return out

    def tanh(self):
        out = Value(..., (self,))  # your code here

        def _backward():
            ...  # your code here
        out._backward = _backward
        return out

    def backward(self):
        raise NotImplementedError("your code here")

    # Given: every other operator in terms of the ones above.
    def __neg__(self):
        return self * -1.0

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * other ** -1.0 if isinstance(other, Value) else self * (1.0 / other)

    def __rtruediv__(self, other):
        return self ** -1.0 * other

    def __repr__(self):
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"
