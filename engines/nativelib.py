"""Loads the compiled C kernels (``workbench_engines._native``) and says why when it can't.

The engines never fall back silently: a caller asking for ``backend="native"``
without a build gets :class:`~workbench_engines.errors.NativeUnavailable` naming the cause.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from workbench_engines.arrays import require_int
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


@cache
def max_threads() -> int:
    """The most threads any kernel accepts: THREADS_PER_CPU per CPU of this machine, and never more than
    the C library's own WB_MAX_THREADS (OpenMP runtimes crash or call exit() when asked for 10^5 threads).

    Cached: os.cpu_count() reads /sys, and this is asked on every kernel call (every decoded token).
    """
    limit = THREADS_PER_CPU * (os.cpu_count() or 1)
    module, _ = _load()
    return min(limit, module.lib.WB_MAX_THREADS) if module is not None else limit


def default_threads() -> int:
    """Threads a native kernel uses when not told: the CPUs this process may run on, or fewer where
    OMP_NUM_THREADS says so (as torch and the BLAS libraries read it), within max_threads().

    A team of OpenMP threads waits at every barrier for its slowest member: where another process keeps the
    other cores busy, each parallel region can wait a scheduler time slice (milliseconds) for a thread to be
    run, and a decode step holds hundreds of regions. OMP_NUM_THREADS=1 is how a shared machine says so.
    """
    cpus = max(1, len(os.sched_getaffinity(0)))
    # OpenMP's own syntax: a comma-separated list whose first entry is the outermost team's size.
    wanted = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if wanted.isdigit() and int(wanted) >= 1:
        cpus = min(cpus, int(wanted))
    return min(cpus, max_threads())


def check_threads(threads: object) -> int:
    """The thread count every engine entry point hands to C: default_threads() for None, else threads itself.

    Raises TypeError for anything but an integer (bools, floats, strings) and ValueError outside
    1..max_threads() (0 included: it never means "default"), before a kernel runs.
    """
    if threads is None:
        return default_threads()
    return require_int(threads, "threads", low=1, high=max_threads())
