"""llama.cpp's own quantised matrix-vector products, as a peer for ``workbench bench quant``.

ggml's CPU backend from the shared libraries llama-cpp-python installs
(``make llama-cpp``), called through ctypes: the weights' blocks are copied
once into a ggml context, ``ggml_mul_mat`` nodes are built for every matrix
of a decoding step, and each call copies in x and runs the graph with
``ggml_graph_compute``, which quantises x to the format's 8-bit partner
(q8_1 for Q4_1, q8_0 for Q8_0 and Q4_0) and uses integer dot products, as
llama.cpp does when it decodes. The struct layouts and function signatures
are those of the headers installed beside the libraries
(``include/ggml.h``, ``include/ggml-cpu.h``); the block sizes are checked
against ours before any data is copied.
"""

from __future__ import annotations

import ctypes
import weakref
from functools import cache
from pathlib import Path

import numpy as np

from workbench_engines.errors import EngineError
from workbench_engines.quant import reference
from workbench_engines.quant.tensor import QuantTensor

GGML_TYPES = {"F32": 0, "Q4_0": 2, "Q4_1": 3, "Q8_0": 8}
"""enum ggml_type values (ggml.h) of the formats raced against llama.cpp: those with int8 activations."""
_OVERHEAD = 1 << 20
"""Bytes of context memory beyond the tensors' data: ggml's tensor and graph bookkeeping."""

_THREADPOOL_PARAMS_BYTES = 4096
"""Room for struct ggml_threadpool_params (a 512-entry CPU mask and five small fields, about 530 bytes), which
ggml fills itself (ggml_threadpool_params_init)."""

_void = ctypes.c_void_p


class _InitParams(ctypes.Structure):
    """struct ggml_init_params (ggml.h)."""

    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", _void), ("no_alloc", ctypes.c_bool)]


class _CPlan(ctypes.Structure):
    """struct ggml_cplan (ggml-cpu.h): the work buffer a graph needs, which the caller allocates."""

    _fields_ = [("work_size", ctypes.c_size_t), ("work_data", _void), ("n_threads", ctypes.c_int),
                ("threadpool", _void), ("abort_callback", _void), ("abort_callback_data", _void),
                ("use_ref", ctypes.c_bool)]


def _library_dir() -> Path | None:
    """llama-cpp-python's lib folder, or None where it is not installed."""
    from importlib.util import find_spec

    spec = find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "lib"
    return folder if (folder / "libggml-cpu.so").exists() else None


def available() -> bool:
    """True where llama-cpp-python's ggml libraries are installed (Linux shared objects)."""
    return _library_dir() is not None


@cache
def _libraries() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    """(libggml-base, libggml-cpu) with the signatures used here declared."""
    folder = _library_dir()
    if folder is None:
        raise EngineError("llama.cpp's ggml libraries are not installed (make llama-cpp)")
    base = ctypes.CDLL(str(folder / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(str(folder / "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    signatures = [
        (base.ggml_init, _void, [_InitParams]),
        (base.ggml_free, None, [_void]),
        (base.ggml_type_size, ctypes.c_size_t, [ctypes.c_int]),
        (base.ggml_blck_size, ctypes.c_int64, [ctypes.c_int]),
        (base.ggml_tensor_overhead, ctypes.c_size_t, []),
        (base.ggml_graph_overhead, ctypes.c_size_t, []),
        (base.ggml_new_tensor_1d, _void, [_void, ctypes.c_int, ctypes.c_int64]),
        (base.ggml_new_tensor_2d, _void, [_void, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]),
        (base.ggml_nbytes, ctypes.c_size_t, [_void]),
        (base.ggml_get_data, _void, [_void]),
        (base.ggml_mul_mat, _void, [_void, _void, _void]),
        (base.ggml_new_graph, _void, [_void]),
        (base.ggml_build_forward_expand, None, [_void, _void]),
        (cpu.ggml_cpu_init, None, []),
        (base.ggml_threadpool_params_init, None, [_void, ctypes.c_int]),
        (cpu.ggml_threadpool_new, _void, [_void]),
        (cpu.ggml_threadpool_free, None, [_void]),
        (cpu.ggml_graph_plan, _CPlan, [_void, ctypes.c_int, _void]),
        (cpu.ggml_graph_compute, ctypes.c_int, [_void, ctypes.POINTER(_CPlan)]),
    ]
    for fn, restype, argtypes in signatures:
        fn.restype, fn.argtypes = restype, argtypes
    cpu.ggml_cpu_init()  # fills ggml's fp16 tables; idempotent
    return base, cpu


class GgmlMatvec:
    """y_i = W_i x_i for several quantised matrices at once, in one ggml graph, on ``threads`` threads.

    Args:
        tensors: The matrices (Q4_0, Q4_1 or Q8_0), their blocks copied once into ggml's memory.
        threads: ggml's thread count for every call.

    Raises:
        EngineError: llama.cpp not installed, an unsupported format, a block layout that differs from ours, or a
            bad thread count.
    """

    def __init__(self, tensors: list[QuantTensor], threads: int = 1) -> None:
        from workbench_engines.nativelib import check_threads

        base, cpu = _libraries()
        self.threads = check_threads(threads)
        for t in tensors:
            kind = GGML_TYPES.get(t.format)
            if kind is None:
                raise EngineError(f"llama.cpp's peer races {', '.join(f for f in GGML_TYPES if f != 'F32')}, "
                                  f"not {t.format}")
            ours = (reference.block_size(t.format), reference.block_dtype(t.format).itemsize)
            if (base.ggml_blck_size(kind), base.ggml_type_size(kind)) != ours:
                raise EngineError(f"this llama.cpp's {t.format} blocks differ from the ones quantised here")
        data = sum(t.nbytes + 4 * (t.cols + t.rows) for t in tensors)
        size = data + (3 * len(tensors) * base.ggml_tensor_overhead() + base.ggml_graph_overhead() + _OVERHEAD)
        self._ctx = base.ggml_init(_InitParams(size, None, False))
        if not self._ctx:
            raise EngineError(f"ggml could not allocate {size / 2**20:.0f} MiB")
        weakref.finalize(self, base.ggml_free, self._ctx)
        self._inputs, self._outputs = [], []
        graph = base.ggml_new_graph(self._ctx)
        for t in tensors:
            w = base.ggml_new_tensor_2d(self._ctx, GGML_TYPES[t.format], t.cols, t.rows)  # ne0 = cols, ne1 = rows
            blocks = np.ascontiguousarray(t.blocks)
            ctypes.memmove(base.ggml_get_data(w), blocks.ctypes.data, blocks.nbytes)
            x = base.ggml_new_tensor_1d(self._ctx, GGML_TYPES["F32"], t.cols)
            y = base.ggml_mul_mat(self._ctx, w, x)  # (rows,) float32
            base.ggml_build_forward_expand(graph, y)
            self._inputs.append((base.ggml_get_data(x), t.cols))
            self._outputs.append((y, t.rows))
        self._graph = graph
        # A thread pool kept for every call, as llama.cpp keeps one while it decodes (ggml's defaults: it polls).
        params = ctypes.create_string_buffer(_THREADPOOL_PARAMS_BYTES)
        base.ggml_threadpool_params_init(params, self.threads)
        pool = cpu.ggml_threadpool_new(params)
        if not pool:
            raise EngineError(f"ggml could not start {self.threads} threads")
        weakref.finalize(self, cpu.ggml_threadpool_free, pool)
        self._plan = cpu.ggml_graph_plan(graph, self.threads, pool)
        self._work = np.zeros(max(self._plan.work_size, 1), dtype=np.uint8)
        self._plan.work_data = self._work.ctypes.data
        self._cpu = cpu
        self._base = base

    def __call__(self, xs: list[np.ndarray]) -> np.ndarray:
        """The products for one x per matrix ((cols,) or (1, cols) float32 each), side by side: (Σ rows,)."""
        if len(xs) != len(self._inputs):
            raise EngineError(f"give one x per matrix: {len(self._inputs)}, got {len(xs)}")
        for (address, cols), x in zip(self._inputs, xs):
            x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
            if x.size != cols:
                raise EngineError(f"x has {x.size} values; the matrix has {cols} columns")
            ctypes.memmove(address, x.ctypes.data, x.nbytes)
        status = self._cpu.ggml_graph_compute(self._graph, ctypes.byref(self._plan))
        if status != 0:
            raise EngineError(f"ggml_graph_compute failed with status {status}")
        return np.concatenate([np.ctypeslib.as_array((ctypes.c_float * rows).from_address(
            self._base.ggml_get_data(y))).copy() for y, rows in self._outputs])
