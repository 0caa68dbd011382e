"""Loads the compiled C kernels (``workbench_engines._native``) and says why when it can't.

The engines never fall back silently: a caller asking for ``backend="native"``
without a build gets :class:`~workbench_engines.errors.NativeUnavailable` naming the cause.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from workbench_engines.errors import NativeKernelError, NativeUnavailable


@dataclass(frozen=True)
class NativeStatus:
    """What ``workbench_engines._native`` is: loaded or not, why not, and how it was built."""

    loaded: bool
    build_info: str
    error: str | None
    path: str | None


@cache
def _load() -> tuple[ModuleType | None, str | None]:
    if os.environ.get("WB_DISABLE_NATIVE") == "1":
        return None, "disabled by WB_DISABLE_NATIVE=1"
    try:
        from workbench_engines import _native  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, (
            f"workbench_engines._native is not built ({exc}); reinstall with a C compiler "
            "available and without WB_NATIVE=0"
        )
    return _native, None


def native_status() -> NativeStatus:
    """Report whether the C kernels loaded, with build flags or the reason they didn't."""
    module, error = _load()
    if module is None:
        return NativeStatus(loaded=False, build_info="", error=error, path=None)
    info = module.ffi.string(module.lib.wb_status_build_info()).decode()
    return NativeStatus(loaded=True, build_info=info, error=None, path=module.__file__)


def native() -> ModuleType:
    """The cffi module (``.ffi``, ``.lib``), or NativeUnavailable with the reason."""
    module, error = _load()
    if module is None:
        raise NativeUnavailable(f"native kernels unavailable: {error}")
    return module


def check_status(function: str, status: int) -> None:
    """Raise NativeKernelError for a non-zero status returned by ``function``."""
    if status != 0:
        module = native()
        message = module.ffi.string(module.lib.wb_status_message(status)).decode()
        raise NativeKernelError(function, status, message)


THREADS_PER_CPU = 4
"""How far past the machine's CPU count a caller may oversubscribe (to watch it cost), and no further."""


def default_threads() -> int:
    """Threads a native kernel uses when not told: the CPUs this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def max_threads() -> int:
    """The most threads any kernel accepts: THREADS_PER_CPU per CPU of this machine, and never more than
    the C library's own WB_MAX_THREADS (OpenMP runtimes crash or call exit() when asked for 10^5 threads)."""
    limit = THREADS_PER_CPU * (os.cpu_count() or 1)
    module, _ = _load()
    return min(limit, module.lib.WB_MAX_THREADS) if module is not None else limit


def check_threads(threads: object) -> int:
    """The thread count every engine entry point hands to C: the CPUs here for None, else threads itself
    if it is an integer from 1 to max_threads(); anything else (0, bools, floats, strings, 10^6) raises
    ValueError before a kernel runs."""
    limit = max_threads()
    if threads is None:
        return min(default_threads(), limit)
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or not 1 <= threads <= limit:
        raise ValueError(f"threads must be an integer from 1 to {limit}, got {threads!r}")
    return int(threads)
