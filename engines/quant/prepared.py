"""A quantised weight matrix made ready for a decode loop: checked once, then called hundreds of times a token.

Unlike :func:`workbench_engines.quant.matmul`, which checks the tensor, x and
the thread count on every call and allocates a workspace, a prepared matrix
checks the tensor once, here, and keeps what each call needs: the C function,
the blocks' pointer and a workspace that grows to the largest x it has seen.
A call then looks only at x's type, dtype, shape and layout (attributes, no
pass over its values: the kernel refuses inf and nan itself as it reads x)
before calling C. SmolLM2-135M makes 210 such products per token::

    up = PreparedQuant(QuantTensor.from_gguf(tensors["blk.0.ffn_up.weight"]))  # float32 activations
    y = up(x)                                                                   # (T, 576) -> (T, 1536)
    up.set_threads(2)

Without the C kernels (``backend="reference"``, or "auto" where they did not
load) a call runs the NumPy statement of the same product, checked in full.
One call at a time per object: the workspace is shared by its calls.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.nativelib import check_threads
from workbench_engines.quant import reference
from workbench_engines.quant.tensor import NOT_CONTIGUOUS, QuantTensor, check_activations, check_mode

FLOAT32 = np.dtype(np.float32)


class PreparedQuant:
    """y = x @ W.T for one QuantTensor W, with the checks of W done once.

    Args:
        tensor: the weights, validated here (a later change to its blocks'
            shape does not reach the kernel: the pointer taken here stays valid).
        activations: "float32" (x as it is; the result is the product with the
            dequantised weights to float32 round-off) or "int8" (x rounded to
            int8 blocks first, llama.cpp's way; Q8_0, Q4_0 and Q4_1 only).
        backend: "auto", "native" or "reference".
        threads: threads of the C kernel; None for the CPUs here.

    Raises ValueError for an unknown activations, backend or thread count,
    TypeError for a tensor that is not a QuantTensor, NativeUnavailable for
    backend="native" without the C kernels.
    """

    def __init__(self, tensor: QuantTensor, *, activations: str = "float32", backend: str = "auto",
                 threads: int | None = None) -> None:
        from workbench_engines.quant import choose_backend

        if not isinstance(tensor, QuantTensor):
            raise TypeError(f"expected a QuantTensor (QuantTensor.from_gguf(...)), got {type(tensor).__name__}")
        tensor.validate()
        check_mode(activations, tensor.format)
        self.tensor = tensor
        self.activations = activations
        self.backend = choose_backend(backend)
        """The backend that runs, and why it was chosen."""
        self._rows, self._cols = tensor.rows, tensor.cols
        self._kernel = None
        """The C function, or None where the NumPy reference runs."""
        if self.backend.name == "native":
            from workbench_engines.nativelib import native
            from workbench_engines.quant import native as kernels

            module = native()
            self._kernels = kernels
            self._from_buffer = module.ffi.from_buffer
            self._name = kernels.KERNELS[activations]
            self._kernel = getattr(module.lib, self._name)
            self._w = module.ffi.from_buffer("uint8_t[]", tensor.blocks)
            self._format = kernels.format_id(tensor)
            self._grow(1)
        self.set_threads(threads)

    @property
    def threads(self) -> int:
        """Threads the C kernel runs on (the result does not depend on them)."""
        return self._threads

    def set_threads(self, threads: int | None) -> None:
        """Run on ``threads`` threads from the next call; None for the CPUs here. ValueError for a bad count."""
        if self._kernel is not None:
            self._threads = self._kernels.threads_for(threads)
        else:
            self._threads = 1 if threads is None else check_threads(threads)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x (T, cols) or (cols,) float32, C-contiguous and finite: (T, rows) or (rows,) float32.

        Raises TypeError or ValueError for any other x, before C sees it.
        """
        if (self._kernel is None or type(x) is not np.ndarray or x.dtype != FLOAT32 or x.ndim != 2
                or x.shape[1] != self._cols or not x.flags.c_contiguous):
            return self._checked_call(x)
        return self._run(x)

    def _checked_call(self, x: np.ndarray) -> np.ndarray:
        """Everything but the common case: a vector, an ndarray subclass, the reference backend, or bad x."""
        if isinstance(x, np.ndarray) and x.ndim == 1:
            if not x.flags.c_contiguous:
                raise ValueError(NOT_CONTIGUOUS)
            return self(x.reshape(1, -1))[0]
        check_activations(x, self._cols, finite=self._kernel is None)  # raises, saying what is wrong
        if self._kernel is None:
            product = reference.matmul if self.activations == "float32" else reference.integer_matmul
            return product(x, self.tensor.blocks, self.tensor.format)
        return self._run(x)

    def _run(self, x: np.ndarray) -> np.ndarray:
        """The C call, for a checked x."""
        T = x.shape[0]
        if T > self._capacity:
            self._grow(T)
        out = np.empty((T, self._rows), FLOAT32)  # fresh and writable: no need to ask from_buffer to check
        status = self._kernel(self._from_buffer("float[]", out), self._from_buffer("float[]", x), self._w,
                              self._format, T, self._rows, self._cols, self._workspace_ptr, self._workspace_bytes,
                              self._threads)
        if status:
            self._kernels.raise_for(self._name, status)
        return out

    def _grow(self, T: int) -> None:
        """A workspace for T rows of x (the largest seen so far)."""
        self._workspace = self._kernels.workspace(T, self._cols)
        self._workspace_ptr = self._from_buffer("uint8_t[]", self._workspace, require_writable=True)
        self._workspace_bytes = self._workspace.size
        self._capacity = T

    def __repr__(self) -> str:
        return (f"PreparedQuant({self.tensor!r}, {self.activations} activations, {self.backend.name}, "
                f"{self._threads} thread{'s' if self._threads != 1 else ''})")
